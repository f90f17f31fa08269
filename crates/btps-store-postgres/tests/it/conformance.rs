//! The btps-trust backend conformance suite, every case on a database of its own: with group
//! commit (the default configuration) and without (every `store` a transaction of its own).

use btps_store_postgres::PgStoreConfig;

use crate::support::Databases;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all() {
    let databases = Databases::with_writers(PgStoreConfig::new("").writers);
    btps_trust::conformance::run_all(&databases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_without_group_commit() {
    let databases = Databases::with_writers(0);
    btps_trust::conformance::run_all(&databases).await;
}
