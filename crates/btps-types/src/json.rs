//! The order-preserving JSON value and its JavaScript-exact serializer.
//!
//! BTPS has no canonical form: the signed bytes are ECMAScript `JSON.stringify` of the object
//! that `JSON.parse` produced from the received line ([PROTOCOL.md §4.1]). This module owns
//! that whole rule:
//!
//! * [`Value`] and [`Object`] keep members in the order they were first seen; a duplicate key
//!   keeps its first position and takes the last value, exactly like `JSON.parse`;
//! * [`parse`] is a strict RFC 8259 parser with size and depth limits that reports every
//!   duplicate key (so the server can reject conflicting ones, §4.6) and keeps lone UTF-16
//!   surrogate escapes (`"\ud800"`) intact in a [`JsString`];
//! * [`to_js_string`] / [`write_value`] serialize exactly as `JSON.stringify`: array-index keys
//!   first in ascending order, ECMAScript number printing, JavaScript string escaping.
//!
//! A `BTreeMap`- or `HashMap`-based value is as wrong for BTPS as serde_json's `Value`; never
//! convert through them on a signed path.
//!
//! [PROTOCOL.md §4.1]: https://btps.invalid/PROTOCOL.md#41-there-is-no-canonical-form

mod parse;
mod pretty;
mod string;
mod value;
mod write;

pub use parse::{DuplicateKey, Duplicates, JsonError, ParseLimits, Parsed, parse, parse_str};
pub use pretty::to_js_string_pretty;
pub use string::JsString;
pub use value::{Object, Value};
pub use write::{
    ObjectView, ViewValue, is_array_index, object_to_js_string, to_js_string, write_number,
    write_object, write_value,
};
