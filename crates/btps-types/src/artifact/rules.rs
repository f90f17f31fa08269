//! The shared value rules of PROTOCOL.md §3.0 (email, url, base64, currency, ids) and the
//! member-access helpers every schema uses.

use std::borrow::Cow;

use super::SchemaError;
use crate::datetime::parse_datetime;
use crate::identity::is_selector;
use crate::json::{Object, Value};
use crate::{Identity, UnixMillis};

/// Maximum length of an artifact `id` in bytes (PROTOCOL.md §3.2, **deviation**: the reference
/// has no bound).
pub const MAX_ID_LEN: usize = 256;

/// Declares a wire enum: a closed set of protocol strings.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in protocol order.
            pub const ALL: &'static [Self] = &[$( Self::$variant, )+];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }

            /// Parses the wire string (exact, case-sensitive).
            pub fn from_wire(s: &str) -> Option<Self> {
                match s {
                    $( $wire => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::artifact::rules::WireEnum for $name {
            const ALL: &'static [Self] = Self::ALL;
            fn as_str(self) -> &'static str {
                self.as_str()
            }
            fn from_wire(s: &str) -> Option<Self> {
                Self::from_wire(s)
            }
        }
    };
}
pub(crate) use wire_enum;

/// What the schema helpers need from a wire enum.
pub(crate) trait WireEnum: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn from_wire(s: &str) -> Option<Self>;
}

// ---------------------------------------------------------------------------------------------
// Value rules
// ---------------------------------------------------------------------------------------------

/// The email rule of PROTOCOL.md §3.0: the case-insensitive pattern
/// `^(?!\.)(?!.*\.\.)([A-Z0-9_'+\-\.]*)[A-Z0-9_+-]@([A-Z0-9][A-Z0-9\-]*\.)+[A-Z]{2,}$`
/// (the reference's zod rule), implemented without a regex engine.
///
/// # Examples
///
/// ```
/// use btps_types::artifact::is_email;
/// assert!(is_email("billing@vendorcorp.test"));
/// assert!(is_email("O'Brien+x@mail.example.co"));
/// assert!(!is_email("a..b@example.com"));
/// assert!(!is_email("a@example.c0m"));
/// ```
pub fn is_email(s: &str) -> bool {
    let b = s.as_bytes();
    // (?!\.) and (?!.*\.\.): no leading dot, no two consecutive dots anywhere.
    if b.first() == Some(&b'.') || b.windows(2).any(|w| w == b"..") {
        return false;
    }
    let Some(at) = b.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // ([A-Z0-9_'+\-\.]*)[A-Z0-9_+-]
    let Some((&last, init)) = local.split_last() else {
        return false;
    };
    if !(last.is_ascii_alphanumeric() || matches!(last, b'_' | b'+' | b'-')) {
        return false;
    }
    if !init
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\'' | b'+' | b'-' | b'.'))
    {
        return false;
    }
    // ([A-Z0-9][A-Z0-9\-]*\.)+[A-Z]{2,}: labels split on '.', at least two; the last is
    // two or more letters, every other label starts alphanumeric and continues with
    // alphanumerics or '-'.
    let Some(dot) = domain.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let (labels, tld) = (&domain[..dot], &domain[dot + 1..]);
    tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && labels.split(|&c| c == b'.').all(|label| {
            label.first().is_some_and(u8::is_ascii_alphanumeric)
                && label
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// The url rule of PROTOCOL.md §3.0: anything a WHATWG URL parser accepts as an absolute URL
/// (`ftp://x` passes, `x.com` fails).
pub fn is_url(s: &str) -> bool {
    url::Url::parse(s).is_ok()
}

const B64: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        c += 1;
    }
    t
};

fn b64_value(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

/// The base64 rule of PROTOCOL.md §3.0: standard alphabet, padded to a multiple of four,
/// strict (no whitespace, and the unused bits before the padding are zero, as a strict
/// decoder requires). The empty string is valid (zero bytes).
///
/// # Examples
///
/// ```
/// use btps_types::artifact::is_base64;
/// assert!(is_base64("QUJD") && is_base64("QUI=") && is_base64("QQ=="));
/// assert!(!is_base64("QUI") && !is_base64("QR==") && !is_base64("QU-_"));
/// ```
pub fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = if b.ends_with(b"==") {
        2
    } else {
        usize::from(b.ends_with(b"="))
    };
    let data = &b[..b.len() - pad];
    if !data.iter().all(|&c| B64[usize::from(c)]) {
        return false;
    }
    match (pad, data.last()) {
        (1, Some(&c)) => b64_value(c) & 0b11 == 0,
        (2, Some(&c)) => b64_value(c) & 0b1111 == 0,
        _ => true,
    }
}

/// The 160 currency codes accepted in `totalAmount.currency` (PROTOCOL.md Appendix B), sorted.
pub const CURRENCY_CODES: [&str; 160] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "FOK", "GBP", "GEL", "GGP", "GHS", "GIP", "GMD",
    "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "IMP", "INR", "IQD",
    "IRR", "ISK", "JEP", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KID", "KMF", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLL", "SOS", "SRD", "SSP",
    "STN", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TVD", "TWD", "TZS",
    "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF",
    "YER", "ZAR", "ZMW", "ZWL",
];

/// Whether `code` is one of the [`CURRENCY_CODES`] (exact, upper case).
pub fn is_currency_code(code: &str) -> bool {
    CURRENCY_CODES.binary_search(&code).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Value checkers: errors carry the path relative to the value (callers add the member name).
// ---------------------------------------------------------------------------------------------

fn type_error(expected: &'static str, found: &Value) -> SchemaError {
    SchemaError::new(format!("expected {expected}, found {}", found.type_name()))
}

/// Shortens user input quoted in an error message.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 48;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}…", &s[..cut])
}

pub(crate) fn object(v: &Value) -> Result<&Object, SchemaError> {
    v.as_object().ok_or_else(|| type_error("an object", v))
}

pub(crate) fn string(v: &Value) -> Result<&str, SchemaError> {
    match v {
        Value::String(s) => s.as_str().ok_or_else(|| {
            SchemaError::new("expected text, found a string with a lone UTF-16 surrogate")
        }),
        _ => Err(type_error("a string", v)),
    }
}

pub(crate) fn array(v: &Value) -> Result<&[Value], SchemaError> {
    v.as_array().ok_or_else(|| type_error("an array", v))
}

pub(crate) fn number(v: &Value) -> Result<f64, SchemaError> {
    v.as_f64().ok_or_else(|| type_error("a number", v))
}

pub(crate) fn boolean(v: &Value) -> Result<bool, SchemaError> {
    v.as_bool().ok_or_else(|| type_error("a boolean", v))
}

/// An array whose items are all well-formed strings.
pub(crate) fn string_array(v: &Value) -> Result<&[Value], SchemaError> {
    let items = array(v)?;
    for (i, item) in items.iter().enumerate() {
        string(item).map_err(|e| e.at_index(i))?;
    }
    Ok(items)
}

pub(crate) fn datetime(v: &Value) -> Result<(&str, UnixMillis), SchemaError> {
    let s = string(v)?;
    parse_datetime(s)
        .map(|t| (s, t))
        .map_err(|e| SchemaError::new(format!("{} is not a datetime: {e}", quote(s))))
}

pub(crate) fn datetime_str(v: &Value) -> Result<&str, SchemaError> {
    datetime(v).map(|(s, _)| s)
}

pub(crate) fn identity(v: &Value) -> Result<Identity, SchemaError> {
    let s = string(v)?;
    Identity::parse(s)
        .map_err(|e| SchemaError::new(format!("{} is not an identity: {e}", quote(s))))
}

pub(crate) fn selector(v: &Value) -> Result<&str, SchemaError> {
    let s = string(v)?;
    if is_selector(s) {
        Ok(s)
    } else {
        Err(SchemaError::new(format!(
            "{} is not a selector (a DNS label of 1-63 letters, digits, '-' or '_')",
            quote(s)
        )))
    }
}

/// An artifact id: non-empty, at most [`MAX_ID_LEN`] bytes.
pub(crate) fn artifact_id(v: &Value) -> Result<&str, SchemaError> {
    let s = string(v)?;
    if s.is_empty() {
        Err(SchemaError::new("must not be empty"))
    } else if s.len() > MAX_ID_LEN {
        Err(SchemaError::new(format!(
            "is {} bytes, over the limit of {MAX_ID_LEN}",
            s.len()
        )))
    } else {
        Ok(s)
    }
}

pub(crate) fn email(v: &Value) -> Result<&str, SchemaError> {
    let s = string(v)?;
    if is_email(s) {
        Ok(s)
    } else {
        Err(SchemaError::new(format!(
            "{} is not an email address",
            quote(s)
        )))
    }
}

pub(crate) fn url(v: &Value) -> Result<&str, SchemaError> {
    let s = string(v)?;
    url::Url::parse(s)
        .map(|_| s)
        .map_err(|e| SchemaError::new(format!("{} is not an absolute URL: {e}", quote(s))))
}

pub(crate) fn base64(v: &Value) -> Result<&str, SchemaError> {
    let s = string(v)?;
    if is_base64(s) {
        Ok(s)
    } else {
        Err(SchemaError::new("is not standard base64 with padding"))
    }
}

pub(crate) fn literal(expected: &'static str) -> impl Fn(&Value) -> Result<&str, SchemaError> {
    move |v| {
        let s = string(v)?;
        if s == expected {
            Ok(s)
        } else {
            Err(SchemaError::new(format!(
                "must be {expected:?}, found {}",
                quote(s)
            )))
        }
    }
}

pub(crate) fn enumeration<E: WireEnum>(v: &Value) -> Result<E, SchemaError> {
    let s = string(v)?;
    E::from_wire(s).ok_or_else(|| {
        let mut allowed = String::new();
        for (i, e) in E::ALL.iter().enumerate() {
            if i > 0 {
                allowed.push_str(", ");
            }
            allowed.push_str(e.as_str());
        }
        SchemaError::new(format!("{} is not one of {allowed}", quote(s)))
    })
}

// ---------------------------------------------------------------------------------------------
// Member access
// ---------------------------------------------------------------------------------------------

/// Member access on an object under validation; errors get the member name as path.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a>(pub(crate) &'a Object);

impl<'a> Fields<'a> {
    pub(crate) fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    /// A required member (null is a value like any other: the checker decides).
    pub(crate) fn req<T>(
        self,
        key: &str,
        check: impl FnOnce(&'a Value) -> Result<T, SchemaError>,
    ) -> Result<T, SchemaError> {
        match self.0.get(key) {
            None => Err(SchemaError::new("missing required member").at(key)),
            Some(v) => check(v).map_err(|e| e.at(key)),
        }
    }

    /// An optional member: absent is `None`; present must pass `check` and must not be null.
    pub(crate) fn opt<T>(
        self,
        key: &str,
        check: impl FnOnce(&'a Value) -> Result<T, SchemaError>,
    ) -> Result<Option<T>, SchemaError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => {
                Err(SchemaError::new("must not be null (omit the member instead)").at(key))
            }
            Some(v) => check(v).map(Some).map_err(|e| e.at(key)),
        }
    }

    /// A member whose key is required but whose value may be null ("key required").
    pub(crate) fn req_nullable<T>(
        self,
        key: &str,
        check: impl FnOnce(&'a Value) -> Result<T, SchemaError>,
    ) -> Result<Option<T>, SchemaError> {
        match self.0.get(key) {
            None => Err(SchemaError::new("missing required member (null is allowed)").at(key)),
            Some(Value::Null) => Ok(None),
            Some(v) => check(v).map(Some).map_err(|e| e.at(key)),
        }
    }

    /// An optional member that may also be null (absent and null are both `None`).
    pub(crate) fn opt_nullable<T>(
        self,
        key: &str,
        check: impl FnOnce(&'a Value) -> Result<T, SchemaError>,
    ) -> Result<Option<T>, SchemaError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => check(v).map(Some).map_err(|e| e.at(key)),
        }
    }

    pub(crate) fn req_str(self, key: &str) -> Result<&'a str, SchemaError> {
        self.req(key, string)
    }

    pub(crate) fn opt_str(self, key: &str) -> Result<Option<&'a str>, SchemaError> {
        self.opt(key, string)
    }

    pub(crate) fn req_object(self, key: &str) -> Result<&'a Object, SchemaError> {
        self.req(key, object)
    }

    pub(crate) fn req_datetime(self, key: &str) -> Result<(&'a str, UnixMillis), SchemaError> {
        self.req(key, datetime)
    }

    pub(crate) fn opt_datetime(self, key: &str) -> Result<Option<&'a str>, SchemaError> {
        self.opt(key, datetime_str)
    }

    pub(crate) fn req_identity(self, key: &str) -> Result<Identity, SchemaError> {
        self.req(key, identity)
    }
}

/// Wraps a static reason (avoids a `String` for fixed messages).
pub(crate) fn fail<T>(reason: impl Into<Cow<'static, str>>) -> Result<T, SchemaError> {
    Err(SchemaError::new(reason))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "billing@vendorcorp.test",
            "a@b.co",
            "A@B.CO",
            "first.last@sub.example.com",
            "o'brien@example.ie",
            "x+tag@example.com",
            "_@example.com",
            "-@example.com",
            "a-b_c+d@ex-ample.com",
            "1@2.xn",
            "a@0a.b-c.de",
        ] {
            assert!(is_email(ok), "{ok} should pass");
        }
        for bad in [
            "",
            "@example.com",
            "a@",
            "a",
            ".a@example.com",
            "a..b@example.com",
            "a@example..com",
            "a.@example.com",
            "a'@example.com",
            "a@example",
            "a@example.c",
            "a@example.c0m",
            "a@-example.com",
            "a@.example.com",
            "a@example.com.",
            "a@ex_ample.com",
            "a b@example.com",
            "a@b@example.com",
            "a@exa mple.com",
            "é@example.com",
            "a@exämple.com",
            "a@example.com\n",
            "\na@example.com",
            "a\"b@example.com",
            "a@example.-com",
        ] {
            assert!(!is_email(bad), "{bad:?} should fail");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://vendorcorp.test/logo.png",
            "ftp://x",
            "mailto:a@b.c",
            "http://127.0.0.1:8080/",
            "btps://h:1",
            "  https://trimmed.example ",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for bad in [
            "x.com",
            "",
            "/relative",
            "https://",
            "http://a b.com",
            "://x",
        ] {
            assert!(!is_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn base64_matches_a_strict_decoder() {
        let engine = base64::engine::general_purpose::STANDARD;
        let alphabet = b"AQgw+/=-_ ";
        // Every string up to length 4 over a small alphabet, plus longer samples.
        let mut cases: Vec<String> = vec![String::new()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for c in cases.iter().filter(|c| c.len() == len - 1) {
                for &a in alphabet {
                    next.push(format!("{c}{}", a as char));
                }
            }
            cases.extend(next);
        }
        cases.extend(
            [
                "QUJDRA==",
                "QUJDREU=",
                "QUJDREVG",
                "QUJD\nREVG",
                "QUJDREVG====",
            ]
            .map(String::from),
        );
        for c in &cases {
            assert_eq!(is_base64(c), engine.decode(c).is_ok(), "{c:?}");
        }
    }

    #[test]
    fn currencies() {
        assert_eq!(CURRENCY_CODES.len(), 160);
        assert!(
            CURRENCY_CODES.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique"
        );
        for ok in ["AUD", "USD", "EUR", "ZWL", "AED", "FOK", "TVD"] {
            assert!(is_currency_code(ok), "{ok}");
        }
        for bad in ["aud", "XYZ", "", "USDT", "BTC", "EU"] {
            assert!(!is_currency_code(bad), "{bad}");
        }
    }

    #[test]
    fn checkers_report_types() {
        let e = string(&Value::Number(1.0)).unwrap_err();
        assert_eq!(e.reason(), "expected a string, found number");
        let e = artifact_id(&Value::from("")).unwrap_err();
        assert_eq!(e.reason(), "must not be empty");
        assert!(artifact_id(&Value::from("x".repeat(256))).is_ok());
        assert!(artifact_id(&Value::from("x".repeat(257))).is_err());
        let e = datetime(&Value::from("2025-02-30T00:00Z")).unwrap_err();
        assert!(e.reason().contains("does not exist"), "{e}");
        let lone = crate::json::parse_str(r#""\ud800""#).unwrap().value;
        assert!(string(&lone).unwrap_err().reason().contains("surrogate"));
        assert!(
            string_array(&crate::json::parse_str(r#"["a",1]"#).unwrap().value)
                .unwrap_err()
                .path()
                .ends_with("/1")
        );
    }

    #[test]
    fn fields() {
        let o = crate::json::parse_str(r#"{"a":null,"b":"x"}"#)
            .unwrap()
            .value;
        let f = Fields(o.as_object().unwrap());
        assert_eq!(
            f.req_str("zz").unwrap_err().to_string(),
            "/zz: missing required member"
        );
        assert!(f.opt_str("a").unwrap_err().reason().contains("null"));
        assert_eq!(f.opt_str("zz").unwrap(), None);
        assert_eq!(f.req_nullable("a", string).unwrap(), None);
        assert!(f.req_nullable("zz", string).is_err());
        assert_eq!(f.opt_nullable("a", string).unwrap(), None);
        assert_eq!(f.req_str("b").unwrap(), "x");
    }
}
