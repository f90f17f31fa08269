//! BTPS wire types: the order-preserving JSON value and its JavaScript-exact serializer, the
//! signed-text builders, identities and selectors, DNS record names and TXT parsers, artifact
//! classification and schemas, and the `BTP_ERROR_*` codes.
//!
//! This crate does no I/O, no cryptography and never reads the clock: time arrives as an
//! argument. See `PROTOCOL.md` §2–§4 and §6 for the rules implemented here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error_code;
mod identity;
pub mod json;
pub mod signing;

pub use error_code::{ErrorCode, UnknownErrorCode};
pub use identity::{Identity, IdentityError, MAX_IDENTITY_LEN, MAX_LABEL_LEN, Selector, is_selector};
