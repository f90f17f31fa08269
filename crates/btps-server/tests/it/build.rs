//! Builders for fresh signed lines in tests.

use btps_crypto::{KeyPair, SystemRandom, TransporterSigner, sign_in_place};
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::{Identity, Selector, UnixMillis, signing};

use crate::harness::{read_key, vectors_dir};

/// The plain invoice document of vector `transporter_doc_invoice_plain`.
pub(crate) fn invoice() -> Value {
    let case =
        std::fs::read_to_string(vectors_dir().join("cases/transporter_doc_invoice_plain.json"))
            .unwrap();
    let case: serde_json::Value = serde_json::from_str(&case).unwrap();
    let line = parse_str(case["line"].as_str().unwrap()).unwrap().value;
    line.as_object().unwrap().get("document").unwrap().clone()
}

pub(crate) fn billing_key() -> KeyPair {
    KeyPair::from_pem(&read_key("billing-btps1-private.pem")).unwrap()
}

pub(crate) fn device_key() -> KeyPair {
    KeyPair::from_pem(&read_key("agent-device-private.pem")).unwrap()
}

/// A transporter artifact `kind` from `from` to `to`, signed by `key` at selector `btps1`.
pub(crate) fn transporter(
    kind: &str,
    from: &str,
    to: &str,
    id: &str,
    issued_at: UnixMillis,
    document: Value,
    key: &KeyPair,
) -> Object {
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", kind)
        .with("from", from)
        .with("to", to)
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", issued_at.to_datetime_string())
        .with("document", document)
        .with("encryption", Value::Null);
    TransporterSigner::new(key)
        .identity(from.parse::<Identity>().unwrap())
        .selector(Selector::parse("btps1").unwrap())
        .sign(&mut a)
        .unwrap();
    a
}

/// An encrypted `BTPS_DOC` for `receiver`.
pub(crate) fn encrypted_doc(
    from: &str,
    to: &str,
    id: &str,
    issued_at: UnixMillis,
    key: &KeyPair,
    receiver: &btps_crypto::PublicKey,
) -> Object {
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", from)
        .with("to", to)
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", issued_at.to_datetime_string());
    TransporterSigner::new(key)
        .identity(from.parse::<Identity>().unwrap())
        .selector(Selector::parse("btps1").unwrap())
        .sign_encrypt(&mut a, &invoice(), Some(receiver), &SystemRandom)
        .unwrap();
    a
}

pub(crate) fn doc_line(from: &str, to: &str, id: &str, at: UnixMillis) -> String {
    line(&transporter(
        "BTPS_DOC",
        from,
        to,
        id,
        at,
        invoice(),
        &billing_key(),
    ))
}

/// An agent artifact signed by `key`.
pub(crate) fn agent(
    action: &str,
    agent_id: &str,
    to: &str,
    document: Option<Value>,
    id: &str,
    issued_at: UnixMillis,
    key: &KeyPair,
) -> String {
    let mut a = Object::new()
        .with("action", action)
        .with("agentId", agent_id)
        .with("to", to);
    if let Some(d) = document {
        a.insert("document", d);
    }
    a.insert("encryption", Value::Null);
    a.insert("id", id);
    a.insert("issuedAt", issued_at.to_datetime_string());
    a.insert("version", "1.0.0");
    sign_in_place(&mut a, signing::AGENT, key).unwrap();
    line(&a)
}

/// A send envelope (Env(T)) signed by the device key.
pub(crate) fn envelope(
    kind: &str,
    from: &str,
    to: &str,
    id: &str,
    at: UnixMillis,
    document: Value,
    key: &KeyPair,
) -> Value {
    let mut e = Object::new()
        .with("version", "1.0.0")
        .with("type", kind)
        .with("from", from)
        .with("to", to)
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", at.to_datetime_string())
        .with("document", document)
        .with("encryption", Value::Null);
    sign_in_place(&mut e, signing::ENVELOPE, key).unwrap();
    Value::Object(e)
}

pub(crate) fn line(obj: &Object) -> String {
    to_js_string(&Value::Object(obj.clone()))
}

/// Parses a reply line.
pub(crate) struct Parsed {
    pub(crate) obj: Object,
}

impl Parsed {
    pub(crate) fn new(text: &str) -> Self {
        let v = parse_str(text)
            .unwrap_or_else(|e| panic!("{e}: {text}"))
            .value;
        Self {
            obj: v.as_object().unwrap().clone(),
        }
    }

    pub(crate) fn ok(&self) -> bool {
        self.obj
            .get_object("status")
            .and_then(|s| s.get("ok"))
            .and_then(Value::as_bool)
            .unwrap()
    }

    pub(crate) fn error_code(&self) -> Option<&str> {
        self.obj
            .get_object("status")
            .and_then(|s| s.get_str("errorCode"))
    }

    /// `status.code`, the HTTP-style status.
    pub(crate) fn status_code(&self) -> Option<f64> {
        self.obj
            .get_object("status")
            .and_then(|s| s.get("code"))
            .and_then(Value::as_f64)
    }

    pub(crate) fn message(&self) -> &str {
        self.obj
            .get_object("status")
            .and_then(|s| s.get_str("message"))
            .unwrap()
    }

    pub(crate) fn req_id(&self) -> Option<&str> {
        self.obj.get_str("reqId")
    }

    pub(crate) fn document(&self) -> &Object {
        self.obj.get_object("document").expect("document")
    }
}
