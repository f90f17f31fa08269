//! The graceful-shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

/// A graceful-shutdown signal (PROTOCOL.md §2.4): once [triggered](Self::trigger), the
/// server stops accepting, lets connections finish the requests in flight (bounded by the
/// shutdown grace), then closes them. Clones share the signal: keep one to trigger it
/// (for example on SIGTERM) and pass another to [`serve`](crate::serve).
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Triggers the shutdown. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the shutdown has been triggered (at once if it already has).
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = rx.wait_for(|triggered| *triggered).await;
    }
}
