//! Property: parse → stringify → parse is the identity, and stringify is a fixed point; a
//! text the parser calls verbatim is its own serialization.

use btps_types::json::{JsString, Object, Value, parse_str, to_js_string};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        (0u32..30).prop_map(|n| n.to_string()),
        Just("4294967295".to_owned()),
        Just("01".to_owned()),
        ".{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Number),
        (-1_000_000i64..1_000_000).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        // Lone surrogates go through the parser, the only way to build them.
        (0xD800u16..0xE000).prop_map(|u| parse_str(&format!("\"x\\u{u:04x}\"")).unwrap().value),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|members| {
                let mut o = Object::new();
                for (k, v) in members {
                    o.insert(JsString::from(k), v);
                }
                Value::Object(o)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_stringify_parse_is_identity(v in value()) {
        let text = to_js_string(&v);
        let parsed = parse_str(&text).expect("our own output parses");
        prop_assert_eq!(parsed.duplicates.count(), 0);
        // Objects come back with array-index keys first: compare by serialized form, and
        // the re-serialization must be a fixed point.
        let again = to_js_string(&parsed.value);
        prop_assert_eq!(&again, &text);
        let reparsed = parse_str(&again).unwrap().value;
        prop_assert_eq!(reparsed, parsed.value);
    }

    /// Texts in other spellings of the same values: whitespace, escapes, number forms.
    #[test]
    fn verbatim_texts_are_their_own_serialization(
        v in value(),
        ws in any::<bool>(),
        esc in any::<bool>(),
    ) {
        let mut text = to_js_string(&v);
        if ws {
            text = text.replacen(',', ", ", 1).replacen(':', " :", 1);
        }
        if esc {
            text = text.replacen('a', "\\u0061", 1).replacen('/', "\\/", 1);
        }
        // A replacement outside a string may break the text; such cases prove nothing.
        let Ok(parsed) = parse_str(&text) else {
            return Ok(());
        };
        if parsed.verbatim {
            prop_assert_eq!(to_js_string(&parsed.value), text);
        }
    }
}
