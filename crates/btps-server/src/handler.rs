//! The seam between the transport and the pipeline: the transport frames lines and writes
//! replies; a [`LineHandler`] turns one line into exactly one reply (PROTOCOL.md §2.4).

use std::net::SocketAddr;

use async_trait::async_trait;

/// The connection a line arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Remote address (rate limits per IP, logs).
    pub addr: SocketAddr,
    /// The connection's sequence number in this process (logs).
    pub connection: u64,
}

/// What the handler wants done with a line's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The reply line, LF included. `None` for lines that get no reply (blank lines).
    pub reply: Option<Vec<u8>>,
    /// After this reply the connection ends (`QUIT`: stop reading, write the replies of the
    /// requests in flight, then this one, then close_notify).
    pub close: bool,
    /// The reply refuses the request for a rate limit (`BTP_ERROR_RATE_LIMITER`, 429). The
    /// transport counts such replies per connection in reply order and closes the
    /// connection after [`LineHandler::close_after_rejections`] of them in a row (§11).
    pub rate_limited: bool,
}

impl Handled {
    /// A reply; the connection stays open.
    pub fn reply(line: Vec<u8>) -> Self {
        Self {
            reply: Some(line),
            close: false,
            rate_limited: false,
        }
    }

    /// No reply (blank line).
    pub fn none() -> Self {
        Self {
            reply: None,
            close: false,
            rate_limited: false,
        }
    }
}

/// Why the transport writes a reply of its own (no handler involved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A line exceeded the maximum length: `BTP_ERROR_LINE_TOO_LONG` (413), then close.
    LineTooLong,
    /// Idle or line-read timeout: `BTP_ERROR_SOCKET_TIMEOUT` (408), then close.
    Timeout,
    /// Too many rate-limit rejections or connections from one address.
    Overloaded,
}

/// Turns lines into replies. Implemented by the pipeline ([`crate::Pipeline`]); tests of the
/// transport implement it with scripted handlers.
#[async_trait]
pub trait LineHandler: Send + Sync + 'static {
    /// Handles one complete line (without its LF; a trailing CR already stripped). Called
    /// concurrently for pipelined lines of one connection; the transport writes the replies
    /// in request order.
    async fn handle(&self, line: &[u8], peer: &Peer) -> Handled;

    /// The reply line the transport writes for `event` (`req_id` when known).
    fn transport_reply(&self, event: TransportEvent, req_id: Option<&str>) -> Vec<u8>;

    /// After how many consecutive [`Handled::rate_limited`] replies the transport closes the
    /// connection (the last one is written first); a reply that is not rate limited starts
    /// the count again. `0` (the default) never closes for it.
    fn close_after_rejections(&self) -> u32 {
        0
    }
}
