//! The rustls client configuration for a [`TlsTrust`] (PROTOCOL.md §2.1): TLS 1.2 and 1.3
//! on the aws-lc-rs provider, no ALPN, no client certificate.

use std::fmt;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::TlsTrust;
use crate::error::{ClientError, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The SHA-256 fingerprint of a DER certificate, as [`TlsTrust::Pinned`] expects it.
///
/// # Examples
///
/// ```
/// let fp = btps_client::certificate_fingerprint(b"not really a certificate");
/// assert_eq!(fp.len(), 32);
/// ```
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    let hash = provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.tls13().map(|t| t.common.hash_provider))
        .find(|h| h.algorithm() == HashAlgorithm::SHA256)
        .map(|h| h.hash(der));
    let mut out = [0_u8; 32];
    if let Some(hash) = hash {
        out.copy_from_slice(&hash.as_ref()[..32]);
    }
    out
}

/// Parses a certificate fingerprint written as 64 hex digits, optionally with `:`
/// separators (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it).
///
/// # Errors
///
/// [`ClientError::Config`] when it is not 32 bytes of hex.
///
/// # Examples
///
/// ```
/// let fp = btps_client::parse_fingerprint(&"ab".repeat(32)).unwrap();
/// assert_eq!(fp, [0xab; 32]);
/// assert_eq!(btps_client::parse_fingerprint(&"AB:".repeat(32)[..95]).unwrap(), fp);
/// ```
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    let bad = || {
        ClientError::Config(format!(
            "certificate fingerprint {text:?} is not 32 bytes of hex"
        ))
    };
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0_u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The rustls configuration for `trust`.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS: {e}")))?;
    let config = match trust {
        TlsTrust::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!(error = %e, "reading a system trust store");
            }
            let mut roots = rustls::RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "unusable system root certificates skipped");
            }
            if added == 0 {
                return Err(ClientError::Config(
                    "no usable certificate in the system trust store".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::CaPem(pem) => builder
            .with_root_certificates(roots_from_pem(pem, "CA certificates")?)
            .with_no_client_auth(),
        TlsTrust::CaFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Config(format!("CA file {}: {e}", path.display())))?;
            builder
                .with_root_certificates(roots_from_pem(&pem, &path.display().to_string())?)
                .with_no_client_auth()
        }
        TlsTrust::Pinned(pins) => {
            if pins.is_empty() {
                return Err(ClientError::Config(
                    "certificate pinning with no pinned fingerprint".into(),
                ));
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyOrPinned {
                    pins: Some(pins.clone()),
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
        TlsTrust::DangerousAcceptAnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyOrPinned {
                pins: None,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| ClientError::Config(format!("{what}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("{what}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Config(format!("{what}: no certificate")));
    }
    Ok(roots)
}

/// Certificate pinning (`pins: Some`) or, for tests only, no certificate check at all
/// (`pins: None`). Handshake signatures are verified either way.
struct AnyOrPinned {
    pins: Option<Vec<[u8; 32]>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AnyOrPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyOrPinned")
            .field("pins", &self.pins.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for AnyOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.pins {
            None => Ok(ServerCertVerified::assertion()),
            Some(pins) => {
                let fp = certificate_fingerprint(end_entity.as_ref());
                if pins.contains(&fp) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ApplicationVerificationFailure,
                    ))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Sorts a failed handshake into a certificate refusal (final) or another TLS failure.
pub(crate) fn handshake_error(addr: &str, e: &std::io::Error) -> ClientError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(
            err @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) => ClientError::Certificate {
            addr: addr.to_owned(),
            reason: err.to_string(),
        },
        _ => ClientError::Tls {
            addr: addr.to_owned(),
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        // SHA-256("abc").
        assert_eq!(
            certificate_fingerprint(b"abc"),
            parse_fingerprint("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .unwrap()
        );
        assert!(parse_fingerprint("ab").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        assert_eq!(
            parse_fingerprint(&"AB:".repeat(32)[..95]).unwrap(),
            [0xab; 32]
        );
    }

    #[test]
    fn configurations() {
        assert!(client_config(&TlsTrust::CaPem(b"nothing".to_vec())).is_err());
        assert!(client_config(&TlsTrust::Pinned(vec![])).is_err());
        assert!(client_config(&TlsTrust::CaFile("/nonexistent/ca.pem".into())).is_err());
        client_config(&TlsTrust::Pinned(vec![[0; 32]])).unwrap();
        client_config(&TlsTrust::DangerousAcceptAnyCertificate).unwrap();
        // The system store, where the machine has one.
        if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
            client_config(&TlsTrust::SystemRoots).unwrap();
        }
    }
}
