//! Entry points for `fuzz/` (hidden from the docs; not a stable API).

/// One function per fuzz target; each must never panic except on a real bug.
pub mod fuzzing {
    use crate::json::{Object, ParseLimits, Value, is_array_index, parse, to_js_string};
    use crate::record::{
        DelegationListRecord, HostRecord, KeyRecord, TxtTags, delegation_list_record_name,
        device_record_name, host_record_name, identity_record_name, split_character_strings,
    };
    use crate::{Identity, Selector, UnixMillis, is_selector, validate, validate_response};

    /// Parse, stringify, parse: the same value (up to JavaScript's move of array-index keys to
    /// the front) and a fixed point.
    pub fn json_roundtrip(data: &[u8]) {
        let Ok(first) = parse(data, &ParseLimits::DEFAULT) else {
            return;
        };
        let text = to_js_string(&first.value);
        // The serialized text may be longer than the input (`1e20` → 21 digits).
        let limits = ParseLimits {
            max_bytes: usize::MAX,
            ..ParseLimits::DEFAULT
        };
        let second = parse(text.as_bytes(), &limits).expect("serializer output must parse");
        assert_eq!(
            second.duplicates.count(),
            0,
            "serializer wrote a duplicate key"
        );
        assert!(
            js_equal(&first.value, &second.value),
            "round trip changed the value"
        );
        let again = to_js_string(&second.value);
        assert_eq!(again, text, "stringify must be a fixed point");
    }

    /// Equality as JavaScript sees two parsed values: same members with equal values, and the
    /// same relative order of the keys that are not array indices.
    fn js_equal(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| js_equal(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                let plain = |o: &'_ Object| -> Vec<Vec<u8>> {
                    o.keys()
                        .filter(|k| !is_array_index(k.as_wtf8_bytes()))
                        .map(|k| k.as_wtf8_bytes().to_vec())
                        .collect()
                };
                x.len() == y.len()
                    && plain(x) == plain(y)
                    && x.iter().all(|(k, v)| {
                        y.iter()
                            .find(|(k2, _)| *k2 == k)
                            .is_some_and(|(_, v2)| js_equal(v, v2))
                    })
            }
            _ => a == b,
        }
    }

    /// A whole inbound line: parse, duplicate-key policy, classification, schema; replies are
    /// validated too. Views must agree with the raw value.
    pub fn artifact_parse(data: &[u8]) {
        let Ok(parsed) = parse(data, &ParseLimits::DEFAULT) else {
            return;
        };
        if parsed.duplicates.has_conflicting() {
            return;
        }
        if let Ok(artifact) = validate(&parsed.value) {
            assert!(std::ptr::eq(
                artifact.raw(),
                parsed.value.as_object().expect("object")
            ));
            assert_eq!(artifact.raw().get_str("id"), Some(artifact.id()));
            let _ = artifact.freshness_reference();
            let _ = artifact.replay_key();
        }
        if let Some(obj) = parsed.value.as_object() {
            let _ = validate_response(obj);
        }
    }

    /// The TXT parsers (input read as lossy UTF-8); a parsed record's `to_txt` must parse
    /// back to the same values.
    pub fn txt_record(data: &[u8]) {
        let txt = &*String::from_utf8_lossy(data);
        let _ = TxtTags::parse(txt);
        if let Ok(r) = HostRecord::parse(txt) {
            let back = HostRecord::parse(&r.to_txt()).expect("host record round trip");
            assert_eq!(
                (back.host, back.port, back.selector),
                (r.host, r.port, r.selector)
            );
        }
        if let Ok(r) = KeyRecord::parse(txt) {
            let back = KeyRecord::parse(&r.to_txt()).expect("key record round trip");
            assert_eq!(back.public_key, r.public_key);
        }
        if let Ok(r) = DelegationListRecord::parse(txt) {
            let back = DelegationListRecord::parse(&r.to_txt()).expect("list round trip");
            // Ids containing ',' or ';' cannot round-trip; skip those.
            if r.devices.iter().all(|d| !d.contains([',', ';'])) {
                assert_eq!(back.devices, r.devices);
            }
        }
        let parts = split_character_strings(txt, 255);
        assert_eq!(parts.concat(), txt);
    }

    /// Identity and selector parsing, record-name builders and datetimes (input read as lossy
    /// UTF-8).
    pub fn identity(data: &[u8]) {
        let text = &*String::from_utf8_lossy(data);
        if let Ok(id) = Identity::parse(text) {
            assert_eq!(format!("{}${}", id.account(), id.domain()), text);
            let _ = host_record_name(id.domain());
            let _ = delegation_list_record_name(&id);
            let _ = device_record_name("dev", &id);
            if let Ok(sel) = Selector::parse("btps1") {
                let _ = identity_record_name(sel.as_str(), &id);
            }
        }
        assert_eq!(Selector::parse(text).is_ok(), is_selector(text));
        if let Ok(t) = UnixMillis::parse(text) {
            let s = t.to_datetime_string();
            assert_eq!(UnixMillis::parse(&s), Ok(t), "datetime round trip");
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn targets_accept_vector_like_inputs() {
            json_roundtrip(br#"{"b":1,"2":2,"a":[1e20,-0,"\ud800"],"b":3}"#);
            json_roundtrip(b"not json");
            json_roundtrip(br#"{"z":{"b":1,"10":2,"a":[{"2":0,"1":1}]},"1":null}"#);
            assert!(!js_equal(
                &crate::json::parse_str(r#"{"a":1,"b":2}"#).unwrap().value,
                &crate::json::parse_str(r#"{"b":2,"a":1}"#).unwrap().value
            ));
            artifact_parse(
                br#"{"version":"1","id":"x","issuedAt":"2025-07-01T09:30Z","action":"PING"}"#,
            );
            artifact_parse(b"[]");
            txt_record(b"v=1.0.0;u=[::1]:99;s=btps1");
            txt_record(b"v=1.0.0;k=rsa;p=QUI=");
            txt_record(b"d=a, b,,c");
            txt_record(&[0xff]);
            identity(b"billing$vendorcorp.test");
            identity(b"2025-07-01T09:30:00.123456Z");
            identity(b"\xff");
        }
    }
}
