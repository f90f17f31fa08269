//! btps-server integration tests: the pipeline over real stores and the vectors' DNS table.

mod abuse;
mod build;
mod client;
mod deadline;
mod delegation;
mod delivery;
mod dns_down;
mod faulty;
#[allow(dead_code, reason = "shared with the vectors test")]
mod harness;
mod key_types;
mod keys;
mod pipeline;
mod rate_limits;
mod readiness;
mod transport;
#[allow(dead_code, reason = "shared with the vectors test")]
mod wire;
