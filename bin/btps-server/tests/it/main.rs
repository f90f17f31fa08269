//! The btps-server binary: the embedded default, admin subcommands, abuse under load, crash
//! safety and faults (disk full, PostgreSQL restarts), signals and the observability
//! endpoints, each against the real binary as a child process.

mod abuse_load;
mod admin;
mod crash;
mod embedded;
mod faults;
mod observability;
#[path = "../../../../crates/btps-store-postgres/tests/it/support.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the PostgreSQL test cluster of btps-store-postgres"
)]
mod pg;
mod postgres;
mod signals;
mod support;
