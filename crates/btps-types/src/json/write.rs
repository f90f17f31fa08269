//! The `JSON.stringify` serializer (PROTOCOL.md §4.1 rules 2–6).

use super::{JsString, Object, Value};

/// Serializes `value` exactly as ECMAScript `JSON.stringify(value)` would.
pub fn to_js_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    // The serializer writes valid UTF-8 only: lone surrogates are written as `\udxxx`.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`to_js_string`] of an object, without wrapping (copying) it into a [`Value`].
pub fn object_to_js_string(object: &Object) -> String {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, object);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the `JSON.stringify` text of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, *n),
        Value::String(s) => write_js_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(o) => write_object(out, o),
    }
}

/// Writes a number as ECMAScript `Number::toString` does; non-finite values as `null`
/// (what `JSON.stringify` writes for them).
pub fn write_number(out: &mut Vec<u8>, n: f64) {
    if !n.is_finite() {
        out.extend_from_slice(b"null");
    } else if n == 0.0 {
        // Both +0 and -0 print as "0".
        out.push(b'0');
    } else {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(n).as_bytes());
    }
}

/// Whether `key` is an ECMAScript array index: the canonical decimal form of an integer in
/// `0..=4294967294`. Such keys are serialized first, in ascending numeric order.
pub fn is_array_index(key: &[u8]) -> bool {
    array_index(key).is_some()
}

fn array_index(key: &[u8]) -> Option<u32> {
    match key {
        [] => None,
        [b'0'] => Some(0),
        [b'0', ..] => None,
        _ if key.len() > 10 => None,
        _ => {
            let mut v: u64 = 0;
            for &b in key {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u64::from(b - b'0');
            }
            // 2^32 - 1 is not an array index.
            u32::try_from(v).ok().filter(|&v| v != u32::MAX)
        }
    }
}

/// Appends the `JSON.stringify` text of `o` to `out` ([`write_value`] of an object, without
/// wrapping (copying) it into a [`Value`]).
pub fn write_object(out: &mut Vec<u8>, o: &Object) {
    let members = o.members();
    // Fast path: no key can be an array index unless it starts with a digit.
    if !members
        .iter()
        .any(|(k, _)| k.as_wtf8_bytes().first().is_some_and(u8::is_ascii_digit))
    {
        out.push(b'{');
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_js_string(out, k);
            out.push(b':');
            write_value(out, v);
        }
        out.push(b'}');
        return;
    }
    let entries: Vec<(&JsString, ViewValue<'_>)> = members
        .iter()
        .map(|(k, v)| (k, ViewValue::Value(v)))
        .collect();
    write_entries(out, &entries);
}

/// A value inside an [`ObjectView`]: a plain value or another view.
#[derive(Clone, Copy, Debug)]
pub enum ViewValue<'a> {
    /// A value serialized as is.
    Value(&'a Value),
    /// An object serialized through a view.
    View(&'a ObjectView<'a>),
}

/// An object as it would look after member removals, replacements and additions, serialized
/// without copying the object.
///
/// This is how the signed texts of PROTOCOL.md §4.3 and §9.2 are produced from the *received*
/// value: "the artifact minus `signature`", "the delegation minus `signature` and minus
/// `attestation`, in its wire position", "… followed by `attestation` minus `signature`".
/// Members keep their positions; replaced members keep theirs; appended members go last
/// (JavaScript's array-index ordering still applies on top, as in `JSON.stringify`).
#[derive(Clone, Copy, Debug)]
pub struct ObjectView<'a> {
    base: &'a Object,
    skip: &'a [&'a str],
    replace: &'a [(&'a str, ViewValue<'a>)],
    append: &'a [(&'a JsString, ViewValue<'a>)],
}

impl<'a> ObjectView<'a> {
    /// A view of `base` without the members named in `skip`.
    pub fn new(base: &'a Object, skip: &'a [&'a str]) -> Self {
        Self {
            base,
            skip,
            replace: &[],
            append: &[],
        }
    }

    /// Replaces the value of existing members in place.
    #[must_use]
    pub fn replacing(mut self, replace: &'a [(&'a str, ViewValue<'a>)]) -> Self {
        self.replace = replace;
        self
    }

    /// Appends members after the base's (a key already in the base replaces its value in
    /// place, as a JavaScript assignment would).
    #[must_use]
    pub fn appending(mut self, append: &'a [(&'a JsString, ViewValue<'a>)]) -> Self {
        self.append = append;
        self
    }

    /// Appends this view's `JSON.stringify` text to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        // Fast path (the common "minus `signature`" view): nothing replaced or appended and no
        // key that could be an array index, so members stream out in order.
        if self.replace.is_empty()
            && self.append.is_empty()
            && !self
                .base
                .members()
                .iter()
                .any(|(k, _)| k.as_wtf8_bytes().first().is_some_and(u8::is_ascii_digit))
        {
            out.push(b'{');
            let mut first = true;
            for (k, v) in self.base.members() {
                if self.skip.iter().any(|s| k == s) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_js_string(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
            return;
        }
        let mut entries: Vec<(&JsString, ViewValue<'_>)> =
            Vec::with_capacity(self.base.len() + self.append.len());
        for (k, v) in self.base.members() {
            if self.skip.iter().any(|s| k == s) {
                continue;
            }
            let value = self
                .replace
                .iter()
                .find(|(name, _)| k == name)
                .map_or(ViewValue::Value(v), |(_, r)| *r);
            entries.push((k, value));
        }
        for (k, v) in self.append {
            match entries.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = *v,
                None => entries.push((k, *v)),
            }
        }
        write_entries(out, &entries);
    }

    /// This view's `JSON.stringify` text as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write(&mut out);
        out
    }
}

fn write_view_value(out: &mut Vec<u8>, v: ViewValue<'_>) {
    match v {
        ViewValue::Value(v) => write_value(out, v),
        ViewValue::View(view) => view.write(out),
    }
}

/// Writes `{…}` with JavaScript's member order: array-index keys first, ascending, then the
/// other keys in order.
fn write_entries(out: &mut Vec<u8>, entries: &[(&JsString, ViewValue<'_>)]) {
    let mut indexed: Vec<(u32, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, (k, _))| array_index(k.as_wtf8_bytes()).map(|n| (n, i)))
        .collect();
    indexed.sort_unstable();
    out.push(b'{');
    let mut first = true;
    let mut emit = |out: &mut Vec<u8>, (k, v): &(&JsString, ViewValue<'_>)| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_js_string(out, k);
        out.push(b':');
        write_view_value(out, *v);
    };
    for &(_, i) in &indexed {
        emit(out, &entries[i]);
    }
    let mut is_index = vec![false; if indexed.is_empty() { 0 } else { entries.len() }];
    for &(_, i) in &indexed {
        is_index[i] = true;
    }
    for (i, entry) in entries.iter().enumerate() {
        if !is_index.get(i).copied().unwrap_or(false) {
            emit(out, entry);
        }
    }
    out.push(b'}');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that end a raw run: C0 controls, `"`, `\`, and 0xED (the lead byte of a WTF-8
/// surrogate; in well-formed UTF-8 it is an ordinary lead byte and is written raw).
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0xED] = true;
    t
};

/// Writes a string literal with JavaScript's `JSON.stringify` escaping: `"` `\` and
/// U+0000–U+001F escaped (short forms where they exist, else `\u00xx`), lone surrogates as
/// `\udxxx`, everything else raw UTF-8.
pub(crate) fn write_js_string(out: &mut Vec<u8>, s: &JsString) {
    let bytes = s.as_wtf8_bytes();
    let wtf8 = !s.is_well_formed();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip the raw run quickly.
        while i < bytes.len() && !STOP[usize::from(bytes[i])] {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let b = bytes[i];
        if b == 0xED {
            if wtf8 && bytes.get(i + 1).is_some_and(|&n| n >= 0xA0) {
                // A generalized-UTF-8 surrogate: ED [A0-BF] [80-BF].
                out.extend_from_slice(&bytes[start..i]);
                let unit =
                    0xD000 | (u16::from(bytes[i + 1] & 0x3F) << 6) | u16::from(bytes[i + 2] & 0x3F);
                write_u_escape(out, unit);
                i += 3;
                start = i;
            } else {
                i += 1;
            }
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            _ => write_u_escape(out, u16::from(b)),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xF)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_str;

    fn roundtrip(text: &str) -> String {
        to_js_string(&parse_str(text).expect("parses").value)
    }

    #[test]
    fn appendix_a_key_order() {
        assert_eq!(
            roundtrip(r#"{"b":1,"2":2,"a":3,"1":4,"01":5,"4294967295":6,"4294967294":7,"-1":8}"#),
            r#"{"1":4,"2":2,"4294967294":7,"b":1,"a":3,"01":5,"4294967295":6,"-1":8}"#
        );
    }

    #[test]
    fn appendix_a_numbers() {
        assert_eq!(
            roundtrip("[1500.0,1e21,1e-7,0.000001,-0,9007199254740993]"),
            "[1500,1e+21,1e-7,0.000001,0,9007199254740992]"
        );
    }

    #[test]
    fn section_4_1_number_examples() {
        for (wire, signed) in [
            ("1.0", "1"),
            ("1.0E0", "1"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1.5e-5", "0.000015"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("5e-7", "5e-7"),
            ("12345678901234567890", "12345678901234567000"),
            ("9007199254740993", "9007199254740992"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("4.35", "4.35"),
            ("-1.5e-10", "-1.5e-10"),
            ("123e-2", "1.23"),
            ("-1e-7", "-1e-7"),
        ] {
            assert_eq!(roundtrip(wire), signed, "wire {wire}");
        }
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            roundtrip(r#""\u0000\b\t\n\f\r\u001f\"\\\/\u007f\u2028\u2029caf\u00e9""#),
            "\"\\u0000\\b\\t\\n\\f\\r\\u001f\\\"\\\\/\u{7f}\u{2028}\u{2029}café\""
        );
    }

    #[test]
    fn lone_surrogates_written_back() {
        assert_eq!(roundtrip(r#""\ud800""#), r#""\ud800""#);
        assert_eq!(roundtrip(r#""a\uDC00b""#), r#""a\udc00b""#);
        assert_eq!(roundtrip(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(roundtrip(r#""\ud83d\ud83d\ude00""#), "\"\\ud83d😀\"");
        assert_eq!(roundtrip(r#"{"\udfff":1}"#), r#"{"\udfff":1}"#);
    }

    #[test]
    fn view_skips_replaces_appends() {
        let o = parse_str(r#"{"a":1,"sig":2,"d":{"x":1,"s":2,"t":3},"9":0}"#)
            .unwrap()
            .value;
        let o = o.as_object().unwrap();
        let d = o.get_object("d").unwrap();
        let inner = ObjectView::new(d, &["s", "t"]);
        let replace = [("d", ViewValue::View(&inner))];
        let view = ObjectView::new(o, &["sig"]).replacing(&replace);
        assert_eq!(
            String::from_utf8(view.to_vec()).unwrap(),
            r#"{"9":0,"a":1,"d":{"x":1}}"#
        );
        let k = JsString::from("t");
        let t = Value::Bool(true);
        let append = [(&k, ViewValue::Value(&t))];
        let view = ObjectView::new(d, &["t"]).appending(&append);
        assert_eq!(
            String::from_utf8(view.to_vec()).unwrap(),
            r#"{"x":1,"s":2,"t":true}"#
        );
    }

    #[test]
    fn non_finite_numbers_write_null() {
        let mut out = Vec::new();
        write_number(&mut out, f64::NAN);
        assert_eq!(out, b"null");
    }
}
