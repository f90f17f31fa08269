//! The shared store workload of the `store` benchmarks: every backend is measured storing the
//! same artifacts the same way, so their figures compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use btps_types::UnixMillis;
use btps_types::json::{Object, parse_str};

use crate::{Mailbox, MessageStore, NewMessage, ReplayEntry, ReplayStore, StoreOutcome};

/// The fixed clock of the workload.
pub fn now() -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000)
}

/// A typical plain invoice artifact as received (about 1.6 KB on the wire).
pub fn artifact(id: &str) -> Object {
    let line = format!(
        r#"{{"version":"1.0.0","type":"BTPS_DOC","from":"billing$vendorcorp.com","to":"pay$client.com","selector":"btps1","id":"{id}","issuedAt":"2025-07-01T09:30:00.000Z","document":{{"title":"Invoice 2025-0042","id":"INV-2025-0042","issuedAt":"2025-07-01T09:00:00.000Z","status":"unpaid","dueAt":"2025-07-31T00:00:00.000Z","totalAmount":{{"value":1250.5,"currency":"EUR"}},"lineItems":{{"columns":["Description","Quantity","Unit Price","Amount"],"rows":[{{"Description":"Consulting","Quantity":10,"Unit Price":100,"Amount":1000}},{{"Description":"Support plan","Quantity":1,"Unit Price":250.5,"Amount":250.5}}]}},"issuer":{{"name":"VendorCorp Ltd","email":"billing@vendorcorp.com","phone":"+1 555 0100"}},"paymentLink":{{"linkText":"Pay now","url":"https://pay.vendorcorp.com/i/2025-0042"}},"description":"July services"}},"encryption":null,"signature":{{"algorithmHash":"sha256","value":"{sig}","fingerprint":"n3Hl0Yq5Z3lQ0GmQ9zv8cJqK0bG2bOEQ7d3m0Y0Yf0c="}}}}"#,
        sig = "S".repeat(344)
    );
    parse_str(&line)
        .expect("artifact parses")
        .value
        .as_object()
        .expect("object")
        .clone()
}

/// Inserts by `writers` concurrent tasks for `dur` (or `max` inserts in total); returns
/// inserts per second.
pub async fn run_inserts<S>(
    store: &Arc<S>,
    writers: usize,
    dur: Duration,
    max: u64,
    tag: &str,
    with_message: bool,
) -> (f64, u64)
where
    S: MessageStore + ReplayStore + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = Arc::clone(store);
        let count = Arc::clone(&count);
        let tag = tag.to_owned();
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < dur && count.load(Ordering::Relaxed) < max {
                let id = format!("{tag}-{w}-{n}");
                let entry = ReplayEntry {
                    scope: "from:billing$vendorcorp.com".into(),
                    id: id.clone(),
                    signature: format!("sig-{id}"),
                    expires_at: now().saturating_add_millis(600_000),
                };
                if with_message {
                    let m = NewMessage::new("pay$client.com", Mailbox::Inbox, artifact(&id), now())
                        .expect("message");
                    let out = store.store(&m, Some(&entry), now()).await.expect("store");
                    assert_eq!(out, StoreOutcome::Stored);
                } else {
                    store
                        .insert_replay(&entry, now())
                        .await
                        .expect("replay insert");
                }
                n += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tasks.join_all().await;
    let n = count.load(Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), n)
}
