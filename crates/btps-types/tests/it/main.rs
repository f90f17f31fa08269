//! The one integration test binary of btps-types (`tests/it/main.rs`, STYLE.md rule 11).

mod js_differential;
mod records;
mod roundtrip;
mod vectors;
