//! The btps-trust backend conformance suite, every case on a database of its own.

use crate::support::Databases;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all() {
    btps_trust::conformance::run_all(&Databases).await;
}
