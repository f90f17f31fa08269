//! [`ClientDeliver`]: the [`Deliver`] seam over btps-client — host record, pooled TLS
//! connections with pipelining, one line out, the reply back.

use async_trait::async_trait;
use btps_client::{Client, ClientError};
use btps_types::json::Object;

use super::seam::{Deliver, DeliverError, PeerReply};

/// Delivers through a [`btps_client::Client`]: the recipient's server comes from its
/// domain's host record (or the client's overrides), connections are pooled per server
/// (PROTOCOL.md §11.1), and the client's own short retries (a closed connection, a 429 or
/// 503 reply) happen inside one attempt of the delivery schedule.
#[derive(Clone, Debug)]
pub struct ClientDeliver {
    client: Client,
}

impl ClientDeliver {
    /// Delivers with `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Deliver for ClientDeliver {
    async fn deliver(&self, artifact: &Object) -> Result<PeerReply, DeliverError> {
        match self.client.send(artifact).await {
            Ok(reply) => Ok(PeerReply {
                ok: reply.ok(),
                code: reply.code(),
                error_code: reply.error_code_text().map(str::to_owned),
                message: reply.message().to_owned(),
            }),
            Err(e) => Err(deliver_error(&e)),
        }
    }
}

/// Which client failures end the delivery at once: a recipient whose domain publishes no
/// host record (a permanent DNS answer) and an artifact the client cannot send. Everything
/// else — connect, TLS and certificate failures (an operator may fix them), timeouts,
/// closed connections, temporary DNS failures, protocol violations — is retried on the
/// schedule.
fn deliver_error(e: &ClientError) -> DeliverError {
    match e {
        ClientError::Dns(d) if !d.is_temporary() => DeliverError::Permanent(e.to_string()),
        ClientError::Invalid(_) => DeliverError::Permanent(e.to_string()),
        _ => DeliverError::Temporary(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_permanent_failures() {
        let closed = ClientError::ConnectionClosed {
            addr: "b:3443".into(),
        };
        assert!(matches!(deliver_error(&closed), DeliverError::Temporary(_)));
        let cert = ClientError::Certificate {
            addr: "b:3443".into(),
            reason: "unknown issuer".into(),
        };
        assert!(matches!(deliver_error(&cert), DeliverError::Temporary(_)));
        let invalid = ClientError::Invalid("no `to`".into());
        assert!(matches!(
            deliver_error(&invalid),
            DeliverError::Permanent(_)
        ));
    }
}
