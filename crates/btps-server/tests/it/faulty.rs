//! A message store with injected faults at the trait seam, over a real file store: writes
//! that fail (a full disk: then the store refuses every write, as the file backend does
//! after a failed write of its log) or writes that stall (an overloaded disk or database).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use async_trait::async_trait;
use btps_trust::file::FileStore;
use btps_trust::{
    DeliveryOutcome, Mailbox, MessagePage, MessageQuery, MessageStore, NewMessage, ReplayEntry,
    StoreOutcome, StoredMessage, TrustError,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

/// The injected fault.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// `store` fails with "no space left on device"; from then on [`MessageStore::health`]
    /// reports the store as refusing writes.
    FailWrites,
    /// `store` sleeps this long, then stores.
    Stall(Duration),
    /// The first `record_delivery` of a final failure fails (the process stopped between
    /// storing the failure artifact and recording the failure); everything else works.
    StopBeforeFailedRecord,
}

pub(crate) struct FaultyMessages {
    inner: Arc<FileStore>,
    fault: Fault,
    /// The fault has struck.
    failed: AtomicBool,
    /// Calls of `store` that began.
    pub(crate) stores_begun: AtomicUsize,
}

impl FaultyMessages {
    pub(crate) fn new(inner: Arc<FileStore>, fault: Fault) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fault,
            failed: AtomicBool::new(false),
            stores_begun: AtomicUsize::new(0),
        })
    }
}

const FULL: &str = "write or fsync of the log failed: No space left on device (os error 28)";

#[async_trait]
impl MessageStore for FaultyMessages {
    async fn store(
        &self,
        message: &NewMessage,
        replay: Option<&ReplayEntry>,
        now: UnixMillis,
    ) -> btps_trust::Result<StoreOutcome> {
        self.stores_begun.fetch_add(1, SeqCst);
        match self.fault {
            Fault::FailWrites => {
                self.failed.store(true, SeqCst);
                Err(TrustError::Poisoned(FULL.to_owned()))
            }
            Fault::Stall(pause) => {
                tokio::time::sleep(pause).await;
                self.inner.store(message, replay, now).await
            }
            Fault::StopBeforeFailedRecord => self.inner.store(message, replay, now).await,
        }
    }
    async fn health(&self) -> btps_trust::Result<()> {
        if matches!(self.fault, Fault::FailWrites) && self.failed.load(SeqCst) {
            return Err(TrustError::Poisoned(FULL.to_owned()));
        }
        MessageStore::health(&*self.inner).await
    }
    async fn get_message(
        &self,
        o: &str,
        m: Mailbox,
        id: &str,
    ) -> btps_trust::Result<Option<StoredMessage>> {
        self.inner.get_message(o, m, id).await
    }
    async fn fetch(
        &self,
        o: &str,
        m: Mailbox,
        q: &MessageQuery,
    ) -> btps_trust::Result<MessagePage> {
        self.inner.fetch(o, m, q).await
    }
    async fn mark_seen(
        &self,
        o: &str,
        m: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> btps_trust::Result<u64> {
        self.inner.mark_seen(o, m, ids, now).await
    }
    async fn delete_messages(
        &self,
        o: &str,
        m: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> btps_trust::Result<u64> {
        self.inner.delete_messages(o, m, ids, now).await
    }
    async fn replace_message(
        &self,
        o: &str,
        m: Mailbox,
        id: &str,
        a: &Object,
        now: UnixMillis,
    ) -> btps_trust::Result<bool> {
        self.inner.replace_message(o, m, id, a, now).await
    }
    async fn claim_due(
        &self,
        now: UnixMillis,
        lease: UnixMillis,
        limit: usize,
    ) -> btps_trust::Result<Vec<StoredMessage>> {
        self.inner.claim_due(now, lease, limit).await
    }
    async fn record_delivery(
        &self,
        o: &str,
        id: &str,
        out: &DeliveryOutcome,
        now: UnixMillis,
    ) -> btps_trust::Result<bool> {
        if matches!(self.fault, Fault::StopBeforeFailedRecord)
            && matches!(out, DeliveryOutcome::Failed { .. })
            && !self.failed.swap(true, SeqCst)
        {
            return Err(TrustError::Io {
                op: "write",
                path: "state.log".into(),
                source: std::io::Error::other("stopped"),
            });
        }
        self.inner.record_delivery(o, id, out, now).await
    }
    async fn cancel_outbox(
        &self,
        o: &str,
        ids: &[&str],
        now: UnixMillis,
    ) -> btps_trust::Result<Vec<String>> {
        self.inner.cancel_outbox(o, ids, now).await
    }
}
