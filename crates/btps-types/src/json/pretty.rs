//! `JSON.stringify(value, null, 2)`: the serializer of [`write`](super::write) with
//! two-space indentation, for files people read (trust and identity stores, CLI output).

use super::{Value, is_array_index, write_value};

/// Serializes `value` as ECMAScript `JSON.stringify(value, null, 2)` would: two-space
/// indentation, `": "` after keys, empty containers as `{}` / `[]`, array-index keys first
/// in ascending order, numbers and strings as [`to_js_string`](super::to_js_string) writes
/// them. The compact form of the result parses back to the same value.
///
/// # Examples
///
/// ```
/// use btps_types::json::{parse_str, to_js_string_pretty};
/// let v = parse_str(r#"{"b":[1],"2":{},"a":[]}"#).unwrap().value;
/// assert_eq!(to_js_string_pretty(&v), "{\n  \"2\": {},\n  \"b\": [\n    1\n  ],\n  \"a\": []\n}");
/// ```
pub fn to_js_string_pretty(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_pretty(&mut out, value, 0);
    // The serializer writes valid UTF-8 only: lone surrogates are written as `\udxxx`.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn indent(out: &mut Vec<u8>, level: usize) {
    out.push(b'\n');
    out.resize(out.len() + 2 * level, b' ');
}

fn write_pretty(out: &mut Vec<u8>, value: &Value, level: usize) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, level + 1);
                write_pretty(out, item, level + 1);
            }
            indent(out, level);
            out.push(b']');
        }
        Value::Object(object) if !object.is_empty() => {
            // JavaScript puts array-index keys first, in ascending numeric order; the
            // others keep their order.
            let mut members: Vec<_> = object.iter().collect();
            members.sort_by_key(|(k, _)| {
                let bytes = k.as_wtf8_bytes();
                if is_array_index(bytes) {
                    let n = std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(u64::MAX);
                    (0, n)
                } else {
                    (1, 0)
                }
            });
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, level + 1);
                write_value(out, &Value::String(key.clone()));
                out.extend_from_slice(b": ");
                write_pretty(out, item, level + 1);
            }
            indent(out, level);
            out.push(b'}');
        }
        scalar => write_value(out, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_str, to_js_string};

    #[test]
    fn pretty_is_json_stringify_with_two_spaces() {
        let v = parse_str(
            r#"{"b":[1.0,{"x":null}],"2":[],"a":{"x":[1,"\u00e9\n",null]},"1":{},"c":1e21,"d":{"e":true}}"#,
        )
        .unwrap()
        .value;
        let text = to_js_string_pretty(&v);
        assert_eq!(
            text,
            "{\n  \"1\": {},\n  \"2\": [],\n  \"b\": [\n    1,\n    {\n      \"x\": null\n    }\n  ],\n  \"a\": {\n    \"x\": [\n      1,\n      \"é\\n\",\n      null\n    ]\n  },\n  \"c\": 1e+21,\n  \"d\": {\n    \"e\": true\n  }\n}"
        );
        // Same value back, same compact text.
        assert_eq!(
            to_js_string(&parse_str(&text).unwrap().value),
            to_js_string(&v)
        );
        assert_eq!(to_js_string_pretty(&Value::from("x")), "\"x\"");
        assert_eq!(to_js_string_pretty(&parse_str("[]").unwrap().value), "[]");
    }
}
