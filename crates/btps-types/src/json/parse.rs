//! A strict RFC 8259 parser into [`Value`] with size and depth limits and duplicate-key
//! reporting (PROTOCOL.md §2.3, §4.1 rule 1, §4.6).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::write::{is_array_index, write_value};
use super::{JsString, Object, Value};
use crate::ErrorCode;

/// Limits applied while parsing untrusted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Maximum input size in bytes (default 4 MiB, PROTOCOL.md §2.3).
    pub max_bytes: usize,
    /// Maximum nesting depth of arrays and objects; the top-level object is depth 1
    /// (default 64, PROTOCOL.md §2.3).
    pub max_depth: usize,
}

impl ParseLimits {
    /// The protocol defaults: 4 MiB and depth 64.
    pub const DEFAULT: Self = Self {
        max_bytes: 4 * 1024 * 1024,
        max_depth: 64,
    };
    /// The hard ceiling on `max_depth`: the parser recurses once per level.
    pub const MAX_DEPTH_CEILING: usize = 1024;
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a text is not acceptable JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The input is larger than [`ParseLimits::max_bytes`].
    #[error("input is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than [`ParseLimits::max_depth`].
    #[error("nesting deeper than {limit} at byte {offset}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Byte offset of the container that went over.
        offset: usize,
    },
    /// The input is not UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The input is not JSON.
    #[error("invalid JSON at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset of the error.
        offset: usize,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// A number overflows to infinity as a double.
    #[error("number out of range at byte {offset}")]
    NumberOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
}

impl JsonError {
    /// The wire error code: `BTP_ERROR_LINE_TOO_LONG` for size, `BTP_ERROR_VALIDATION` for
    /// depth and number range, `BTP_ERROR_INVALID_JSON` otherwise.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::LineTooLong,
            Self::TooDeep { .. } | Self::NumberOutOfRange { .. } => ErrorCode::Validation,
            Self::InvalidUtf8 { .. } | Self::Syntax { .. } => ErrorCode::InvalidJson,
        }
    }
}

/// One duplicate key found while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateKey {
    /// JSON-pointer-like path of the object holding the key (`""` for the top level).
    pub path: String,
    /// The key (lossy for lone surrogates).
    pub key: String,
    /// Whether this occurrence's value serializes differently from the first occurrence's.
    pub conflicting: bool,
}

/// The duplicate keys of one parsed text (PROTOCOL.md §4.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duplicates {
    count: usize,
    conflicting: usize,
    samples: Vec<DuplicateKey>,
}

impl Duplicates {
    const MAX_SAMPLES: usize = 16;

    /// Number of repeated occurrences (a key seen three times counts two).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether any duplicate carried a value that serializes differently from the first
    /// occurrence's: such a line must be rejected with `BTP_ERROR_VALIDATION`.
    pub fn has_conflicting(&self) -> bool {
        self.conflicting > 0
    }

    /// The first few duplicates, for error messages and logs.
    pub fn samples(&self) -> &[DuplicateKey] {
        &self.samples
    }
}

/// The result of [`parse`]: the value (with JavaScript's duplicate semantics applied) and the
/// duplicate keys that were seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// The value, duplicates resolved as `JSON.parse` does (first position, last value).
    pub value: Value,
    /// Every duplicate key seen.
    pub duplicates: Duplicates,
    /// Whether the input is exactly the serializer's text of `value`
    /// (`to_js_string(&value)`, what `JSON.stringify` of the received object gives): no
    /// insignificant whitespace, no duplicate keys, no array-index keys, numbers as
    /// ECMAScript prints them and no string escapes but `\"`, `\\`, `\b`, `\f`, `\n`, `\r`
    /// and `\t`. A `false` may be conservative; a `true` never is: such a text can be
    /// stored or forwarded as it is instead of serializing the value again.
    pub verbatim: bool,
}

/// Parses `bytes` as one JSON text.
///
/// Strict RFC 8259: no comments, trailing commas, `NaN`, leading zeros or control characters
/// in strings; insignificant whitespace is space, tab, LF and CR; nothing may follow the
/// value. Numbers become the nearest double (round-half-even); one that overflows is
/// [`JsonError::NumberOutOfRange`]. String escapes are decoded, and a lone surrogate escape
/// is kept as such (see [`JsString`]).
///
/// # Errors
///
/// [`JsonError`] for oversized, too deep, non-UTF-8 or malformed input.
///
/// # Examples
///
/// ```
/// use btps_types::json::{parse, to_js_string, ParseLimits};
/// let parsed = parse(br#"{"b":1, "1":2, "b":3}"#, &ParseLimits::DEFAULT).unwrap();
/// assert_eq!(to_js_string(&parsed.value), r#"{"1":2,"b":3}"#);
/// assert!(parsed.duplicates.has_conflicting());
/// ```
pub fn parse(bytes: &[u8], limits: &ParseLimits) -> Result<Parsed, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut p = Parser {
        src: text.as_bytes(),
        shared: Arc::from(text),
        members: Vec::new(),
        items: Vec::new(),
        pos: 0,
        depth: 0,
        max_depth: limits.max_depth.min(ParseLimits::MAX_DEPTH_CEILING),
        path: Vec::new(),
        duplicates: Duplicates::default(),
        verbatim: true,
    };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos != p.src.len() {
        return Err(p.syntax("end of input"));
    }
    Ok(Parsed {
        value,
        duplicates: p.duplicates,
        verbatim: p.verbatim,
    })
}

/// [`parse`] of a `&str` with the default limits.
///
/// # Errors
///
/// As [`parse`].
pub fn parse_str(text: &str) -> Result<Parsed, JsonError> {
    parse(text.as_bytes(), &ParseLimits::DEFAULT)
}

enum Seg {
    /// Byte range of the raw key text inside the source.
    Key(usize, usize),
    Index(usize),
}

struct Parser<'a> {
    src: &'a [u8],
    /// The same text, shared by the strings read without escapes ([`JsString::shared`]).
    shared: Arc<str>,
    /// Members of the objects being parsed, innermost last: each object takes its members
    /// off the top when it ends, in one allocation of the exact size.
    members: Vec<(JsString, Value)>,
    /// Items of the arrays being parsed, likewise.
    items: Vec<Value>,
    pos: usize,
    depth: usize,
    max_depth: usize,
    path: Vec<Seg>,
    duplicates: Duplicates,
    /// No byte seen so far that the serializer would write differently ([`Parsed::verbatim`]).
    verbatim: bool,
}

/// Objects with at least this many members get a key index while parsing, so that a huge
/// object cannot make duplicate detection quadratic.
const INDEX_THRESHOLD: usize = 32;

impl Parser<'_> {
    fn syntax(&self, expected: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
            self.verbatim = false;
        }
    }

    fn expect_lit(&mut self, lit: &'static [u8], expected: &'static str) -> Result<(), JsonError> {
        if self.src[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect_lit(b"true", "true").map(|()| Value::Bool(true)),
            Some(b'f') => self
                .expect_lit(b"false", "false")
                .map(|()| Value::Bool(false)),
            Some(b'n') => self.expect_lit(b"null", "null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.syntax("a value")),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(JsonError::TooDeep {
                limit: self.max_depth,
                offset: self.pos,
            });
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        self.pos += 1;
        let base = self.items.len();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(Vec::new()));
        }
        loop {
            self.skip_ws();
            self.path.push(Seg::Index(self.items.len() - base));
            let v = self.value()?;
            self.path.pop();
            self.items.push(v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(self.items.drain(base..).collect()));
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        self.pos += 1;
        let base = self.members.len();
        let mut index: Option<BTreeMap<JsString, usize>> = None;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(Object::new()));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("a string key"));
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_end = self.pos;
            if self.verbatim && is_array_index(key.as_wtf8_bytes()) {
                // The serializer moves array-index keys to the front.
                self.verbatim = false;
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.syntax("':'"));
            }
            self.pos += 1;
            self.skip_ws();
            self.path.push(Seg::Key(key_start, key_end));
            let value = self.value()?;
            self.path.pop();

            let existing = match &mut index {
                Some(ix) => ix.get(&key).copied(),
                None => self.members[base..].iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(i) => {
                    let slot = &mut self.members[base + i].1;
                    let conflicting = serialized_differs(slot, &value);
                    *slot = value;
                    self.verbatim = false;
                    self.record_duplicate(&key, conflicting);
                }
                None => {
                    let len = self.members.len() - base;
                    if let Some(ix) = &mut index {
                        ix.insert(key.clone(), len);
                    }
                    self.members.push((key, value));
                    if index.is_none() && len + 1 >= INDEX_THRESHOLD {
                        index = Some(
                            self.members[base..]
                                .iter()
                                .map(|(k, _)| k.clone())
                                .zip(0..)
                                .collect(),
                        );
                    }
                }
            }

            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    let members = self.members.drain(base..).collect();
                    return Ok(Value::Object(Object::from_members(members)));
                }
                _ => return Err(self.syntax("',' or '}'")),
            }
        }
    }

    fn record_duplicate(&mut self, key: &JsString, conflicting: bool) {
        let d = &mut self.duplicates;
        d.count += 1;
        if conflicting {
            d.conflicting += 1;
        }
        if d.samples.len() < Duplicates::MAX_SAMPLES {
            let mut path = String::new();
            for seg in &self.path {
                path.push('/');
                match *seg {
                    Seg::Key(s, e) => {
                        path.push_str(&String::from_utf8_lossy(&self.src[s + 1..e - 1]));
                    }
                    Seg::Index(i) => path.push_str(&i.to_string()),
                }
            }
            self.duplicates.samples.push(DuplicateKey {
                path,
                key: key.to_string_lossy(),
                conflicting,
            });
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("a digit after '.'"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.syntax("a digit in the exponent"));
            }
            self.digits();
        }
        // The slice is ASCII digits and signs only, so it is valid UTF-8.
        let text =
            std::str::from_utf8(&self.src[start..self.pos]).map_err(|_| JsonError::Syntax {
                offset: start,
                expected: "a number",
            })?;
        // Rust's float parsing is correctly rounded (round-half-even), as JavaScript's is.
        let n: f64 = text.parse().map_err(|_| JsonError::Syntax {
            offset: start,
            expected: "a number",
        })?;
        if self.verbatim && !number_is_verbatim(text, n) {
            self.verbatim = false;
        }
        if n.is_finite() {
            Ok(Value::Number(n))
        } else {
            Err(JsonError::NumberOutOfRange { offset: start })
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<JsString, JsonError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let start = self.pos;
        // Fast path: no escapes.
        loop {
            match self.peek() {
                None => return Err(self.syntax("'\"'")),
                Some(b'"') => {
                    // The whole text is UTF-8 (checked up front) and `"` is ASCII, so the
                    // range lies on `char` boundaries.
                    let s = JsString::shared(&self.shared, start..self.pos);
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => break,
                Some(0x00..=0x1F) => return Err(self.syntax("no control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut buf = self.src[start..self.pos].to_vec();
        loop {
            match self.peek() {
                None => return Err(self.syntax("'\"'")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(JsString::from_wtf8(buf));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or_else(|| self.syntax("an escape"))?;
                    self.pos += 1;
                    if matches!(esc, b'/' | b'u') {
                        // `\/` is written as `/`; `\u` escapes only for some code points.
                        self.verbatim = false;
                    }
                    match esc {
                        b'"' => buf.push(b'"'),
                        b'\\' => buf.push(b'\\'),
                        b'/' => buf.push(b'/'),
                        b'b' => buf.push(0x08),
                        b'f' => buf.push(0x0C),
                        b'n' => buf.push(b'\n'),
                        b'r' => buf.push(b'\r'),
                        b't' => buf.push(b'\t'),
                        b'u' => self.unicode_escape(&mut buf)?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.syntax("a valid escape"));
                        }
                    }
                }
                Some(0x00..=0x1F) => return Err(self.syntax("no control character in a string")),
                Some(b) => {
                    buf.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.syntax("four hex digits"))?;
        let mut v: u16 = 0;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.syntax("four hex digits")),
            };
            v = (v << 4) | u16::from(n);
        }
        self.pos += 4;
        Ok(v)
    }

    /// Decodes the `XXXX` after `\u`, combining a surrogate pair written as two escapes and
    /// keeping a lone surrogate as generalized UTF-8.
    fn unicode_escape(&mut self, buf: &mut Vec<u8>) -> Result<(), JsonError> {
        let unit = self.hex4()?;
        let scalar = match unit {
            0xD800..=0xDBFF => {
                let is_low_next = self.src[self.pos..].starts_with(b"\\u")
                    && self.src.get(self.pos + 2..self.pos + 6).is_some_and(|h| {
                        matches!(h[0], b'd' | b'D') && matches!(h[1], b'c'..=b'f' | b'C'..=b'F')
                    });
                if is_low_next {
                    self.pos += 2;
                    let low = self.hex4()?;
                    0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                } else {
                    JsString::push_surrogate(buf, unit);
                    return Ok(());
                }
            }
            0xDC00..=0xDFFF => {
                JsString::push_surrogate(buf, unit);
                return Ok(());
            }
            _ => u32::from(unit),
        };
        let c = char::from_u32(scalar).ok_or_else(|| self.syntax("a valid code point"))?;
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        Ok(())
    }
}

/// Whether the serializer prints `n` (parsed from `text`) as `text`.
fn number_is_verbatim(text: &str, n: f64) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        // An integer below 10^15 is exact and printed in plain digits; "0" but not "-0",
        // and no leading zero (the grammar allows none).
        return n != 0.0 || text == "0";
    }
    if !n.is_finite() {
        return false;
    }
    let mut printed = Vec::with_capacity(24);
    super::write::write_number(&mut printed, n);
    printed == text.as_bytes()
}

fn serialized_differs(a: &Value, b: &Value) -> bool {
    // Cheap structural answer first; equal values always serialize equally.
    if a == b {
        return false;
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    write_value(&mut x, a);
    write_value(&mut y, b);
    x != y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbatim_means_the_serializer_writes_the_same_text() {
        let verbatim = |t: &str| parse_str(t).unwrap().verbatim;
        for t in [
            r#"{"a":1,"b":[true,null,"x\"y\\z\n"],"c":{"d":-2.5,"e":1e+21,"f":0.001}}"#,
            "{\"n\":123456789012345,\"s\":\"é\u{2028}\"}",
            "[]",
            "{}",
        ] {
            assert!(verbatim(t), "{t}");
            assert_eq!(crate::json::to_js_string(&parse_str(t).unwrap().value), t);
        }
        for t in [
            r#"{"a": 1}"#,
            "{\"a\":1}\n",
            r#"{"a":1,"a":1}"#,
            r#"{"b":1,"1":2}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":1.0}"#,
            r#"{"a":-0}"#,
            r#"{"a":1E3}"#,
            r#"{"a":12345678901234567890}"#,
        ] {
            assert!(!verbatim(t), "{t}");
        }
    }

    fn err(text: &str) -> JsonError {
        parse_str(text).expect_err(text)
    }

    #[test]
    fn rejects_non_rfc8259() {
        for bad in [
            "",
            " ",
            "{",
            "{]",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "'a'",
            "{a:1}",
            "[1 2]",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "tru",
            "nul",
            "{\"a\" 1}",
            "1 2",
            "/*c*/1",
            "\u{feff}{}",
        ] {
            assert!(
                matches!(err(bad), JsonError::Syntax { .. }),
                "{bad:?} should be a syntax error"
            );
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(err("{").error_code(), ErrorCode::InvalidJson);
        assert_eq!(err("1e400").error_code(), ErrorCode::Validation);
        assert_eq!(err("-1e400").error_code(), ErrorCode::Validation);
        let e = parse(b"\xff", &ParseLimits::DEFAULT).unwrap_err();
        assert_eq!(e, JsonError::InvalidUtf8 { offset: 0 });
        let e = parse(
            b"[1]",
            &ParseLimits {
                max_bytes: 2,
                max_depth: 8,
            },
        )
        .unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::LineTooLong);
    }

    #[test]
    fn depth_limit() {
        let limits = ParseLimits {
            max_bytes: 1 << 20,
            max_depth: 64,
        };
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(ok.as_bytes(), &limits).is_ok());
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(matches!(
            parse(deep.as_bytes(), &limits),
            Err(JsonError::TooDeep { limit: 64, .. })
        ));
        // Far past the ceiling: an error, never a stack overflow.
        let huge = "[".repeat(200_000);
        let limits = ParseLimits {
            max_bytes: 1 << 20,
            max_depth: usize::MAX,
        };
        assert!(matches!(
            parse(huge.as_bytes(), &limits),
            Err(JsonError::TooDeep { .. })
        ));
    }

    #[test]
    fn duplicates_reported() {
        let p = parse_str(r#"{"a":1,"b":{"c":[1],"c":[1.0]},"a":1}"#).unwrap();
        assert_eq!(p.duplicates.count(), 2);
        assert!(!p.duplicates.has_conflicting());
        assert_eq!(p.duplicates.samples()[0].path, "/b");
        assert_eq!(p.duplicates.samples()[1].path, "");

        let p = parse_str(r#"[{"to":"a","x":0,"to":"b"}]"#).unwrap();
        assert!(p.duplicates.has_conflicting());
        assert_eq!(p.duplicates.samples()[0].path, "/0");
        assert_eq!(p.value.to_string(), r#"[{"to":"b","x":0}]"#);
    }

    #[test]
    fn duplicates_in_large_objects_use_index() {
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k5\":55,\"k99\":99}");
        let p = parse_str(&text).unwrap();
        assert_eq!(p.duplicates.count(), 2);
        assert!(p.duplicates.has_conflicting());
        let o = p.value.as_object().unwrap();
        assert_eq!(o.len(), 100);
        assert_eq!(o.get("k5"), Some(&Value::Number(55.0)));
        assert_eq!(o.position("k5"), Some(5));
    }

    #[test]
    fn nested_containers_keep_their_own_members() {
        // Objects and arrays inside objects and arrays, with duplicates at several levels:
        // each container keeps exactly its members, in order.
        let text = r#"{"a":{"x":1,"y":[{"p":1,"p":2},[],{}],"x":3},"b":[1,[2,{"q":[3]}],4],"a2":{},"c":"s"}"#;
        let p = parse_str(text).unwrap();
        assert_eq!(
            p.value.to_string(),
            r#"{"a":{"x":3,"y":[{"p":2},[],{}]},"b":[1,[2,{"q":[3]}],4],"a2":{},"c":"s"}"#
        );
        assert_eq!(p.duplicates.count(), 2);
        assert_eq!(p.duplicates.samples()[0].path, "/a/y/0");
        assert_eq!(p.duplicates.samples()[1].path, "/a");
        let a = p.value.as_object().unwrap().get_object("a").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.get("y").and_then(Value::as_array).map(<[_]>::len),
            Some(3)
        );
        // A string value outlives the text it was parsed from.
        let kept = p.value.as_object().unwrap().get("c").cloned();
        drop(p);
        assert_eq!(kept.as_ref().and_then(Value::as_str), Some("s"));
    }

    #[test]
    fn whitespace_and_escapes() {
        let p = parse_str(" \t\r\n{ \"a\" : [ true , false , null ] , \"\\/\":\"\\u00e9\" } \n")
            .unwrap();
        assert_eq!(p.value.to_string(), r#"{"a":[true,false,null],"/":"é"}"#);
    }
}
