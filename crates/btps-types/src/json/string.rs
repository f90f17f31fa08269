//! [`JsString`]: a JavaScript string value, lone surrogates included.

use std::fmt;

/// A JSON string as JavaScript sees it: a sequence of UTF-16 code units.
///
/// Almost every string is well-formed Unicode and is stored as a plain [`String`]. A string
/// that contains a lone surrogate escape on the wire (`"\ud800"`) cannot be a Rust `String`;
/// it is kept in WTF-8 (surrogates encoded as three-byte generalized UTF-8) so that the
/// serializer can write it back as `\ud800`, as `JSON.stringify` does.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsString(Repr);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    /// Well-formed Unicode.
    Utf8(String),
    /// WTF-8 holding at least one lone surrogate (invariant: never well-formed UTF-8).
    Wtf8(Vec<u8>),
}

impl JsString {
    /// The text, when the string is well-formed Unicode (it has no lone surrogate).
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Utf8(s) => Some(s),
            Repr::Wtf8(_) => None,
        }
    }

    /// Whether the string is well-formed Unicode (no lone surrogate).
    pub fn is_well_formed(&self) -> bool {
        matches!(self.0, Repr::Utf8(_))
    }

    /// The text with every lone surrogate replaced by U+FFFD (for display and logs only).
    pub fn to_string_lossy(&self) -> String {
        match &self.0 {
            Repr::Utf8(s) => s.clone(),
            Repr::Wtf8(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }

    /// The raw bytes: UTF-8, or WTF-8 when the string holds lone surrogates.
    pub fn as_wtf8_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Utf8(s) => s.as_bytes(),
            Repr::Wtf8(b) => b,
        }
    }

    /// Length of the string in UTF-16 code units (JavaScript's `length`).
    pub fn utf16_len(&self) -> usize {
        match &self.0 {
            Repr::Utf8(s) => s.chars().map(char::len_utf16).sum(),
            Repr::Wtf8(b) => {
                // Every 4-byte sequence is a surrogate pair (2 units); every other sequence
                // (1-3 bytes, generalized surrogates included) is one unit.
                b.iter()
                    .filter(|&&c| (c & 0xC0) != 0x80)
                    .map(|&c| if c >= 0xF0 { 2 } else { 1 })
                    .sum()
            }
        }
    }

    /// Builds a string from WTF-8 bytes produced by the parser: the plain `String` form when
    /// the bytes are well-formed UTF-8.
    pub(crate) fn from_wtf8(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => Self(Repr::Utf8(s)),
            Err(e) => Self(Repr::Wtf8(e.into_bytes())),
        }
    }

    /// Encodes a lone surrogate code unit (0xD800..=0xDFFF) as generalized UTF-8.
    pub(crate) fn push_surrogate(buf: &mut Vec<u8>, unit: u16) {
        debug_assert!((0xD800..=0xDFFF).contains(&unit));
        buf.push(0xED);
        buf.push(0x80 | ((unit >> 6) & 0x3F) as u8);
        buf.push(0x80 | (unit & 0x3F) as u8);
    }
}

impl From<String> for JsString {
    fn from(s: String) -> Self {
        Self(Repr::Utf8(s))
    }
}

impl From<&str> for JsString {
    fn from(s: &str) -> Self {
        Self(Repr::Utf8(s.to_owned()))
    }
}

impl PartialEq<str> for JsString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for JsString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl fmt::Debug for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        super::write::write_js_string(&mut out, self);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl fmt::Display for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogate_is_kept() {
        let mut b = b"a".to_vec();
        JsString::push_surrogate(&mut b, 0xD800);
        let s = JsString::from_wtf8(b);
        assert!(!s.is_well_formed());
        assert_eq!(s.as_str(), None);
        assert_eq!(s.utf16_len(), 2);
        assert_eq!(format!("{s:?}"), r#""a\ud800""#);
    }

    #[test]
    fn utf16_len_counts_pairs() {
        assert_eq!(JsString::from("a€😀").utf16_len(), 4);
    }
}
