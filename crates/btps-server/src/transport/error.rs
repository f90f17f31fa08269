//! The transport's error type.

use std::path::PathBuf;

/// Why the transport could not be set up (TLS material, settings). Failures of single
/// connections are never errors of the server: they close that connection and are counted
/// in [`TransportStats`](crate::TransportStats).
///
/// Not `Clone`/`PartialEq`: the variants carry I/O and PEM errors, which are neither.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A PEM file could not be read or decoded.
    #[error("cannot read PEM file {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// rustls refused the certificate chain or key (a key that does not match the
    /// certificate, an unsupported key type).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    /// Writing a file (self-signed certificate or key) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A limit or timeout that cannot work (zero, or inconsistent with another one).
    #[error("invalid transport setting: {0}")]
    InvalidSetting(&'static str),
}
