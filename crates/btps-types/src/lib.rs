//! BTPS wire types: the order-preserving JSON value and its JavaScript-exact serializer, the
//! signed-text builders, identities and selectors, protocol datetimes, DNS record names and
//! TXT parsers, artifact classification and schemas, and the `BTP_ERROR_*` codes.
//!
//! This crate does no I/O, no cryptography and never reads the clock: time arrives as an
//! argument. See `PROTOCOL.md` §2–§4 and §6 for the rules implemented here.
//!
//! The inbound path through this crate: [`json::parse`] (size, UTF-8, JSON, duplicate keys),
//! then [`validate`] (classification §3.1 and the schema of that kind only), which returns an
//! [`Artifact`] view borrowing the parsed object; signatures are checked over the parsed object
//! with the texts of [`signing`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod artifact;
mod datetime;
mod error_code;
mod identity;
#[doc(hidden)]
pub mod internal;
pub mod json;
pub mod record;
pub mod signing;

pub use artifact::{
    Agent, Artifact, ArtifactKind, Control, IdentityLookup, Response, SchemaError, Transporter,
    classify, classify_object, validate, validate_object, validate_response,
};
pub use datetime::{DateTimeError, UnixMillis, format_datetime, is_datetime, parse_datetime};
pub use error_code::{ErrorCode, UnknownErrorCode};
pub use identity::{
    Identity, IdentityError, MAX_IDENTITY_LEN, MAX_LABEL_LEN, Selector, is_selector,
};
