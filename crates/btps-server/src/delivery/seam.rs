//! The seam between the delivery worker and the network: [`Deliver`] sends one artifact and
//! says what the receiving server answered.

use async_trait::async_trait;
use btps_types::json::Object;

/// Sends transporter artifacts to the servers hosting their `to` (PROTOCOL.md §11.1).
///
/// The delivery worker calls it once per attempt with the delegated artifact and classifies
/// the result ([`classify`](crate::classify)); it knows nothing about DNS, TLS or
/// connections. An implementation resolves the recipient's host record, keeps a connection
/// pool, writes the artifact as one line and reads the reply.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Sends one transporter artifact to the server hosting its `to`.
    ///
    /// # Errors
    ///
    /// [`DeliverError::Temporary`] when no reply was read and a later attempt may succeed
    /// (connect, TLS, timeout, connection closed, temporary DNS failure);
    /// [`DeliverError::Permanent`] when it never will (the recipient's domain has no host
    /// record). A reply, success or error, is `Ok`.
    async fn deliver(&self, artifact: &Object) -> Result<PeerReply, DeliverError>;
}

/// The `status` of the receiving server's reply (PROTOCOL.md §2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReply {
    /// `status.ok`.
    pub ok: bool,
    /// `status.code`.
    pub code: u16,
    /// `status.errorCode`: present in error replies of Rust servers, absent from btps-node's.
    pub error_code: Option<String>,
    /// `status.message`.
    pub message: String,
}

impl PeerReply {
    /// A success reply (`{ok: true, code: 200}`) with `message`.
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            code: 200,
            error_code: None,
            message: message.into(),
        }
    }

    /// An error reply with `code`, `errorCode` (`None`: a btps-node peer) and `message`.
    pub fn error(code: u16, error_code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            code,
            error_code: error_code.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Why an artifact could not be handed to the receiving server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// No reply, and a later attempt may succeed: connect, TLS, timeout, connection closed
    /// without a reply, temporary DNS failure. Retried.
    #[error("temporary: {0}")]
    Temporary(String),
    /// It never will: for example the recipient's domain publishes no host record. Final.
    #[error("permanent: {0}")]
    Permanent(String),
}
