//! Integration tests of `btps-crypto` against the interoperability vectors
//! (`../shared/vectors`, produced by the btps-node reference) and local fixtures
//! (`tests/data`, made with OpenSSL). No crypto is mocked.

mod common;
mod delegation;
mod encryption;
mod keys;
mod signatures;
mod vectors;
