//! TLS material (PROTOCOL.md §2.1): certificate chain and key from PEM files, reloadable,
//! and the self-signed certificate of the embedded default.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TransportError;
use crate::config::ServerConfig;

/// Where the server's certificate and key come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Generate a self-signed certificate for `self_signed_names` when either file is
    /// missing ([`ensure_self_signed`]).
    pub self_signed: bool,
    /// Subject alternative names of the generated certificate (DNS names or IP addresses).
    pub self_signed_names: Vec<String>,
}

impl TlsSettings {
    /// Existing PEM files, nothing generated.
    pub fn from_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            self_signed: false,
            self_signed_names: Vec::new(),
        }
    }

    /// The `[tls]` section of `config`, paths resolved against `data_dir`.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            cert: config.resolve(&config.tls.cert),
            key: config.resolve(&config.tls.key),
            self_signed: config.tls.self_signed,
            self_signed_names: config.tls.self_signed_names.clone(),
        }
    }

    /// Builds the rustls server configuration: TLS 1.3 and 1.2, no ALPN, no client
    /// certificates, on the aws-lc-rs provider. Generates the self-signed pair first when
    /// `self_signed` is set and a file is missing.
    ///
    /// # Errors
    ///
    /// Unreadable or invalid PEM, no certificate, a key rustls refuses or that does not match
    /// the certificate, or a failed self-signed generation.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TransportError> {
        if self.self_signed {
            ensure_self_signed(&self.cert, &self.key, &self.self_signed_names)?;
        }
        let pem_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TransportError::Pem { path, source }
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(pem_error(&self.cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(&self.cert))?;
        if certs.is_empty() {
            return Err(TransportError::NoCertificate(self.cert.clone()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(pem_error(&self.key))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        Ok(Arc::new(config))
    }
}

/// The server's TLS configuration, swappable at run time: [`reload`](Self::reload) (on
/// SIGHUP) rereads the files; connections accepted afterwards use the new certificate,
/// established ones keep theirs. Clones share the configuration.
#[derive(Clone, Debug)]
pub struct TlsReloader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: TlsSettings,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsReloader {
    /// Loads the configuration described by `settings`.
    ///
    /// # Errors
    ///
    /// As [`TlsSettings::server_config`].
    pub fn load(settings: TlsSettings) -> Result<Self, TransportError> {
        let config = settings.server_config()?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                current: RwLock::new(config),
            }),
        })
    }

    /// Rereads the certificate and key and swaps them in atomically. On error the current
    /// configuration stays in use. Reads files synchronously (call it from
    /// `spawn_blocking` on a busy runtime).
    ///
    /// # Errors
    ///
    /// As [`TlsSettings::server_config`].
    pub fn reload(&self) -> Result<(), TransportError> {
        let config = self.inner.settings.server_config()?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// The configuration new connections use now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(
            &self
                .inner
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The settings it loads from.
    pub fn settings(&self) -> &TlsSettings {
        &self.inner.settings
    }
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses) with a new
/// P-256 key when `cert_path` or `key_path` is missing, creating parent directories. The
/// key file gets mode 0600 on Unix. Each file is written to a temporary name and renamed
/// into place. Returns whether it generated a new pair.
///
/// # Errors
///
/// Generation failures (an invalid name) and file-system errors.
pub fn ensure_self_signed(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<bool, TransportError> {
    if cert_path.exists() && key_path.exists() {
        return Ok(false);
    }
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names.to_vec())?;
    write_file(key_path, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TransportError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TransportError::Io { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&tmp)(e)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))
}
