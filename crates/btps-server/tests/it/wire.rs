//! A server under test and a line client. (Direct calls into the handler until the TLS
//! transport is wired.)

use std::net::SocketAddr;
use std::sync::Arc;

use btps_server::{LineHandler, Peer, Pipeline};

pub(crate) struct TestServer {
    pipeline: Arc<Pipeline>,
}

impl TestServer {
    pub(crate) async fn start(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline }
    }

    pub(crate) async fn connect(&self) -> TestClient {
        TestClient {
            pipeline: self.pipeline.clone(),
            closed: false,
        }
    }
}

pub(crate) struct TestClient {
    pipeline: Arc<Pipeline>,
    closed: bool,
}

impl TestClient {
    /// Sends lines and returns the replies (text without LF).
    pub(crate) async fn send_lines(&mut self, lines: &[&str]) -> Vec<String> {
        let peer = Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
            connection: 1,
        };
        let mut out = Vec::new();
        for line in lines {
            let h = self.pipeline.handle(line.as_bytes(), &peer).await;
            if let Some(r) = h.reply {
                out.push(String::from_utf8(r).unwrap().trim_end().to_owned());
            }
            if h.close {
                self.closed = true;
                break;
            }
        }
        out
    }

    pub(crate) async fn is_closed(&mut self) -> bool {
        self.closed
    }
}
