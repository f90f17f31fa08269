//! [`SchemaError`]: why a value does not fit its schema, with the JSON path of the culprit.

use std::borrow::Cow;
use std::fmt;

use crate::ErrorCode;

/// A schema violation: the wire error code (almost always `BTP_ERROR_VALIDATION`), the JSON
/// pointer of the offending member and a short reason.
///
/// Displays as `"<path>: <reason>"`, e.g.
/// `/document/totalAmount/currency: "XYZ" is not an ISO 4217 code in the BTPS list`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", PathPrefix(.path), .reason)]
pub struct SchemaError {
    code: ErrorCode,
    path: String,
    reason: Cow<'static, str>,
}

impl SchemaError {
    /// A `BTP_ERROR_VALIDATION` error at the root; [`at`](Self::at) adds path segments.
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: ErrorCode::Validation,
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// The wire error code to answer with.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The JSON pointer (RFC 6901) of the offending member, `""` for the value itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the path.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Prefixes the path with member `key` (the error happened inside it).
    #[must_use]
    pub(crate) fn at(mut self, key: &str) -> Self {
        let mut seg = String::with_capacity(key.len() + 1 + self.path.len());
        seg.push('/');
        for c in key.chars() {
            match c {
                '~' => seg.push_str("~0"),
                '/' => seg.push_str("~1"),
                c => seg.push(c),
            }
        }
        seg.push_str(&self.path);
        self.path = seg;
        self
    }

    /// Prefixes the path with array index `i`.
    #[must_use]
    pub(crate) fn at_index(mut self, i: usize) -> Self {
        self.path = format!("/{i}{}", self.path);
        self
    }
}

struct PathPrefix<'a>(&'a str);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_display() {
        let e = SchemaError::new("bad")
            .at("currency")
            .at("totalAmount")
            .at("document");
        assert_eq!(e.path(), "/document/totalAmount/currency");
        assert_eq!(e.to_string(), "/document/totalAmount/currency: bad");
        assert_eq!(e.code(), ErrorCode::Validation);
        let e = SchemaError::new("x").at_index(3).at("a/b~c");
        assert_eq!(e.path(), "/a~1b~0c/3");
        assert_eq!(SchemaError::new("root").to_string(), "root");
        assert_eq!(SchemaError::new("root").reason(), "root");
    }
}
