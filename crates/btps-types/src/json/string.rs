//! [`JsString`]: a JavaScript string value, lone surrogates included.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

/// A JSON string as JavaScript sees it: a sequence of UTF-16 code units.
///
/// Almost every string is well-formed Unicode and is stored as a plain [`String`]. A string
/// that contains a lone surrogate escape on the wire (`"\ud800"`) cannot be a Rust `String`;
/// it is kept in WTF-8 (surrogates encoded as three-byte generalized UTF-8) so that the
/// serializer can write it back as `\ud800`, as `JSON.stringify` does.
///
/// A string the parser read without escapes shares the parsed text instead of holding a
/// copy (one allocation per parse instead of one per string); it keeps that text alive for
/// as long as it lives. Equality, ordering and hashing depend only on the string's value,
/// never on how it is stored.
#[derive(Clone)]
pub struct JsString(Repr);

#[derive(Clone)]
enum Repr {
    /// Well-formed Unicode.
    Utf8(String),
    /// Well-formed Unicode: a range of a parsed text (always on `char` boundaries).
    Shared(Arc<str>, u32, u32),
    /// WTF-8 holding at least one lone surrogate (invariant: never well-formed UTF-8).
    Wtf8(Vec<u8>),
}

impl PartialEq for JsString {
    fn eq(&self, other: &Self) -> bool {
        // Well-formed and WTF-8 bytes never coincide (WTF-8 is never valid UTF-8).
        self.as_wtf8_bytes() == other.as_wtf8_bytes()
    }
}

impl Eq for JsString {}

impl Hash for JsString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.is_well_formed().hash(state);
        self.as_wtf8_bytes().hash(state);
    }
}

impl PartialOrd for JsString {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JsString {
    /// Well-formed strings first, then strings with lone surrogates; each by their bytes.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .is_well_formed()
            .cmp(&self.is_well_formed())
            .then_with(|| self.as_wtf8_bytes().cmp(other.as_wtf8_bytes()))
    }
}

impl JsString {
    /// The text, when the string is well-formed Unicode (it has no lone surrogate).
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Utf8(s) => Some(s),
            Repr::Shared(text, start, end) => Some(&text[*start as usize..*end as usize]),
            Repr::Wtf8(_) => None,
        }
    }

    /// Whether the string is well-formed Unicode (no lone surrogate).
    pub fn is_well_formed(&self) -> bool {
        !matches!(self.0, Repr::Wtf8(_))
    }

    /// The text with every lone surrogate replaced by U+FFFD (for display and logs only).
    pub fn to_string_lossy(&self) -> String {
        match self.as_str() {
            Some(s) => s.to_owned(),
            None => String::from_utf8_lossy(self.as_wtf8_bytes()).into_owned(),
        }
    }

    /// The raw bytes: UTF-8, or WTF-8 when the string holds lone surrogates.
    pub fn as_wtf8_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Utf8(s) => s.as_bytes(),
            Repr::Shared(text, start, end) => &text.as_bytes()[*start as usize..*end as usize],
            Repr::Wtf8(b) => b,
        }
    }

    /// Length of the string in UTF-16 code units (JavaScript's `length`).
    pub fn utf16_len(&self) -> usize {
        match &self.0 {
            Repr::Utf8(_) | Repr::Shared(..) => self
                .as_str()
                .map_or(0, |s| s.chars().map(char::len_utf16).sum()),
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

    /// The part `range` of a parsed `text`, shared rather than copied. Falls back to a copy
    /// when the range does not fit the compact form (texts over 4 GiB).
    ///
    /// # Panics
    ///
    /// When `range` is out of bounds or not on `char` boundaries (a parser bug).
    pub(crate) fn shared(text: &Arc<str>, range: Range<usize>) -> Self {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) if text.is_char_boundary(range.start) => {
                // Checks the range once here, so `as_str` cannot fail later.
                let _ = &text[range];
                Self(Repr::Shared(Arc::clone(text), start, end))
            }
            _ => Self(Repr::Utf8(text[range].to_owned())),
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
    fn shared_and_owned_strings_are_the_same_value() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |s: &JsString| {
            let mut h = DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        let text: Arc<str> = Arc::from("x\"a€b\"");
        let shared = JsString::shared(&text, 2..7);
        let owned = JsString::from("a€b");
        assert_eq!(shared.as_str(), Some("a€b"));
        assert_eq!(shared, owned);
        assert_eq!(hash(&shared), hash(&owned));
        assert_eq!(shared.cmp(&owned), Ordering::Equal);
        assert_eq!(shared.utf16_len(), 3);
        assert!(JsString::shared(&text, 2..3) < owned);
        // Well-formed strings order before strings with lone surrogates, as before.
        let mut lone = Vec::new();
        JsString::push_surrogate(&mut lone, 0xD800);
        let lone = JsString::from_wtf8(lone);
        let highest = JsString::from("\u{ffff}");
        assert!(shared < lone && highest < lone);
        assert_ne!(shared, lone);
    }

    #[test]
    fn utf16_len_counts_pairs() {
        assert_eq!(JsString::from("a€😀").utf16_len(), 4);
    }
}
