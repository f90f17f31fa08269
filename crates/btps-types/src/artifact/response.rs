//! The server response envelope (§2.5) as a client validates it, and the reply documents
//! (AuthRes, QueryResult §3.10; identity key §3.6).

use super::SchemaError;
use super::common::{Encryption, SignatureRef};
use super::rules::{
    Fields, array, boolean, enumeration, fail, identity, number, object, quote, selector, string,
    wire_enum,
};
use super::transporter::{
    DELIVERY_FAILURE_TYPE, DeliveryFailure, Transporter, validate_delivery_failure,
    validate_transporter,
};
use crate::json::{Object, Value};
use crate::{ErrorCode, Identity, UnixMillis};

wire_enum! {
    /// The reply `type` (PROTOCOL.md §2.5).
    pub enum ResponseType {
        /// `btps_response`: `status.ok` is true.
        Response = "btps_response",
        /// `btps_error`: `status.ok` is false.
        Error = "btps_error",
    }
}

/// A server reply (PROTOCOL.md §2.5), as a client sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Response<'a> {
    /// The reply as received (signed replies are verified over this, minus `signature`).
    pub raw: &'a Object,
    /// `version` (`x.y.z`).
    pub version: &'a str,
    /// `status`.
    pub status: Status<'a>,
    /// `id` of this reply.
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `reqId`: the `id` of the request, when the server could read it.
    pub req_id: Option<&'a str>,
    /// `type`, consistent with `status.ok`.
    pub kind: ResponseType,
    /// `document`: any JSON value (see [`AuthRes`], [`QueryResult`], [`IdentityKeyDocument`]).
    pub document: Option<&'a Value>,
    /// `signedBy`: whose key signed the reply (present when signed).
    pub signed_by: Option<Identity>,
    /// `selector` of that key (present when signed).
    pub selector: Option<&'a str>,
    /// `encryption`, when an object (then `document` is the ciphertext string).
    pub encryption: Option<Encryption<'a>>,
    /// `signature`, when signed.
    pub signature: Option<SignatureRef<'a>>,
}

/// `status`: `{ok, code, message, errorCode?}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Status<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// `ok`.
    pub ok: bool,
    /// `code`: the numeric status (HTTP-like classes, PROTOCOL.md §2.6).
    pub code: f64,
    /// `message` (never to be parsed: use `error_code`, then `code`).
    pub message: &'a str,
    /// `errorCode`: the `BTP_ERROR_*` string (a Rust-server extension).
    pub error_code: Option<&'a str>,
}

impl Status<'_> {
    /// `errorCode` as a known [`ErrorCode`] (`None` when absent or unknown).
    pub fn parsed_error_code(&self) -> Option<ErrorCode> {
        self.error_code.and_then(|c| c.parse().ok())
    }

    /// `code` as an integer in `0..=65535`, when it is one.
    pub fn code_u16(&self) -> Option<u16> {
        let c = self.code;
        (c.fract() == 0.0 && (0.0..=65535.0).contains(&c)).then_some(c as u16)
    }
}

/// Validates a server reply (PROTOCOL.md §2.5).
///
/// `document` may be any JSON value; `type` must match `status.ok`; `encryption`, when an
/// object, requires a string `document`; a `signature` requires `signedBy` and `selector`.
///
/// # Errors
///
/// [`SchemaError`] with the path of the first offending member.
///
/// # Examples
///
/// ```
/// use btps_types::{json::parse_str, validate_response};
/// let v = parse_str(r#"{"version":"1.0.0","status":{"ok":true,"code":200,"message":"pong"},"id":"r1","issuedAt":"2025-07-01T09:30:00.000Z","reqId":"ctl-0002","type":"btps_response"}"#).unwrap().value;
/// let r = validate_response(v.as_object().unwrap()).unwrap();
/// assert_eq!((r.status.code_u16(), r.req_id), (Some(200), Some("ctl-0002")));
/// ```
pub fn validate_response(obj: &Object) -> Result<Response<'_>, SchemaError> {
    let f = Fields(obj);
    let version = f.req("version", |v| {
        let s = string(v)?;
        if is_semver(s) {
            Ok(s)
        } else {
            fail(format!("{} is not of the form x.y.z", quote(s)))
        }
    })?;
    let status = f.req("status", status)?;
    let id = f.req_str("id")?;
    let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
    let req_id = f.opt_str("reqId")?;
    let kind: ResponseType = f.req("type", enumeration)?;
    let expected = if status.ok {
        ResponseType::Response
    } else {
        ResponseType::Error
    };
    if kind != expected {
        return Err(SchemaError::new(format!(
            "must be {expected} when status.ok is {}",
            status.ok
        ))
        .at("type"));
    }
    let document = f.get("document");
    let signed_by = f.opt("signedBy", identity)?;
    let selector = f.opt("selector", selector)?;
    let encryption = f.opt_nullable("encryption", Encryption::validate)?;
    if encryption.is_some() && !document.is_some_and(Value::is_string) {
        return Err(SchemaError::new(
            "expected a string (the ciphertext) because `encryption` is an object",
        )
        .at("document"));
    }
    let signature = f.opt("signature", SignatureRef::validate)?;
    if signature.is_some() {
        if signed_by.is_none() {
            return Err(
                SchemaError::new("missing required member (the reply is signed)").at("signedBy"),
            );
        }
        if selector.is_none() {
            return Err(
                SchemaError::new("missing required member (the reply is signed)").at("selector"),
            );
        }
    }
    Ok(Response {
        raw: obj,
        version,
        status,
        id,
        issued_at,
        issued_at_ms,
        req_id,
        kind,
        document,
        signed_by,
        selector,
        encryption,
        signature,
    })
}

impl<'a> Response<'a> {
    /// Same as [`validate_response`].
    ///
    /// # Errors
    ///
    /// [`SchemaError`].
    pub fn validate(obj: &'a Object) -> Result<Self, SchemaError> {
        validate_response(obj)
    }

    /// Whether the reply carries a signature.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }
}

fn is_semver(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn status(v: &Value) -> Result<Status<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(Status {
        raw,
        ok: f.req("ok", boolean)?,
        code: f.req("code", number)?,
        message: f.req_str("message")?,
        error_code: f.opt_str("errorCode")?,
    })
}

/// AuthRes, the reply document of `auth.request`/`auth.refresh` (PROTOCOL.md §3.10, §8.2):
/// `{agentId, refreshToken, expiresAt, decryptBy}`, all required.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthRes<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `agentId`: the registered agent id.
    pub agent_id: &'a str,
    /// `refreshToken`.
    pub refresh_token: &'a str,
    /// `expiresAt` (datetime).
    pub expires_at: &'a str,
    /// `decryptBy`: the identity whose key decrypts documents for this agent.
    pub decrypt_by: Identity,
}

impl<'a> AuthRes<'a> {
    /// Validates an AuthRes document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            agent_id: f.req_str("agentId")?,
            refresh_token: f.req_str("refreshToken")?,
            expires_at: f.req_datetime("expiresAt")?.0,
            decrypt_by: f.req_identity("decryptBy")?,
        })
    }
}

/// The reply document of an identity lookup (PROTOCOL.md §3.6): `{selector, publicKey,
/// keyType, version}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdentityKeyDocument<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// The key record's selector.
    pub selector: &'a str,
    /// PEM SPKI public key.
    pub public_key: &'a str,
    /// `keyType` (`"rsa"`).
    pub key_type: &'a str,
    /// `version`.
    pub version: &'a str,
}

impl<'a> IdentityKeyDocument<'a> {
    /// Validates an identity-lookup reply document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            selector: f.req("selector", selector)?,
            public_key: f.req_str("publicKey")?,
            key_type: f.req_str("keyType")?,
            version: f.req_str("version")?,
        })
    }
}

/// QueryResult, the reply document of the fetch actions (PROTOCOL.md §3.10).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `results`.
    pub results: Vec<QueryResultEntry<'a>>,
    /// `cursor`.
    pub cursor: Option<&'a str>,
    /// `total`.
    pub total: Option<f64>,
    /// `hasNext`.
    pub has_next: Option<bool>,
}

/// One entry of a [`QueryResult`]: `{artifact, meta?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResultEntry<'a> {
    /// The entry as received.
    pub raw: &'a Object,
    /// `artifact`.
    pub artifact: StoredArtifact<'a>,
    /// `meta`: `{seen?: bool, seenAt?: datetime, ...}`.
    pub meta: Option<&'a Object>,
}

/// An artifact listed in a [`QueryResult`].
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived borrowed views; boxing would add an allocation per entry"
)]
pub enum StoredArtifact<'a> {
    /// A transporter artifact.
    Transporter(Transporter<'a>),
    /// A delivery-failure artifact.
    DeliveryFailure(DeliveryFailure<'a>),
}

impl<'a> QueryResult<'a> {
    /// Validates a QueryResult document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        let results = f.req("results", |v| {
            array(v)?
                .iter()
                .enumerate()
                .map(|(i, e)| entry(e).map_err(|err| err.at_index(i)))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(Self {
            raw,
            results,
            cursor: f.opt_str("cursor")?,
            total: f.opt("total", number)?,
            has_next: f.opt("hasNext", boolean)?,
        })
    }
}

fn entry(v: &Value) -> Result<QueryResultEntry<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    let artifact = f.req("artifact", |v| {
        let o = object(v)?;
        if o.get_str("type") == Some(DELIVERY_FAILURE_TYPE) {
            validate_delivery_failure(o).map(StoredArtifact::DeliveryFailure)
        } else {
            validate_transporter(o).map(StoredArtifact::Transporter)
        }
    })?;
    let meta = f.opt("meta", |v| {
        let o = object(v)?;
        let f = Fields(o);
        f.opt("seen", boolean)?;
        f.opt_datetime("seenAt")?;
        Ok(o)
    })?;
    Ok(QueryResultEntry {
        raw,
        artifact,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::document::tests::obj;
    use crate::artifact::transporter::tests::{ENC, SIG, invoice_artifact};
    use crate::json::{parse_str, to_js_string};

    const OK: &str = r#"{"version":"1.0.0","status":{"ok":true,"message":"success","code":200},"id":"c58b","issuedAt":"2026-11-22T16:03:47.550Z","reqId":"e8ba","type":"btps_response"}"#;

    fn edit(text: &str, member: &str, value: Option<&str>) -> Object {
        let mut o = obj(text);
        match value {
            Some(v) => {
                o.insert(member, parse_str(v).unwrap().value);
            }
            None => {
                o.remove(member);
            }
        }
        o
    }

    #[test]
    fn unsigned_reply() {
        let o = obj(OK);
        let r = validate_response(&o).unwrap();
        assert_eq!(r.kind, ResponseType::Response);
        assert!(r.status.ok && !r.is_signed());
        assert_eq!(r.status.parsed_error_code(), None);
        for member in ["version", "status", "id", "issuedAt", "type"] {
            let e = validate_response(&edit(OK, member, None)).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"));
        }
        validate_response(&edit(OK, "reqId", None)).unwrap();
        for (member, value, path) in [
            ("version", r#""1.0""#, "/version"),
            ("version", r#""v1.0.0""#, "/version"),
            ("status", r#"{"ok":true,"code":200}"#, "/status/message"),
            (
                "status",
                r#"{"ok":"yes","code":200,"message":"m"}"#,
                "/status/ok",
            ),
            ("status", r#"{"ok":true,"message":"m"}"#, "/status/code"),
            (
                "status",
                r#"{"ok":true,"code":200,"message":"m","errorCode":null}"#,
                "/status/errorCode",
            ),
            (
                "status",
                r#"{"ok":false,"code":400,"message":"m"}"#,
                "/type",
            ),
            ("type", r#""btps_error""#, "/type"),
            ("type", r#""btp_response""#, "/type"),
            ("reqId", "null", "/reqId"),
            ("issuedAt", r#""2026-11-22 16:03:47Z""#, "/issuedAt"),
            ("signedBy", r#""server""#, "/signedBy"),
        ] {
            let e = validate_response(&edit(OK, member, Some(value))).unwrap_err();
            assert_eq!(e.path(), path, "{member} = {value}: {e}");
        }
        // Any document is accepted, null included.
        for doc in ["null", "1", r#""text""#, "[1]", r#"{"results":[]}"#] {
            let o = edit(OK, "document", Some(doc));
            assert_eq!(validate_response(&o).unwrap().document, o.get("document"));
        }
    }

    #[test]
    fn error_reply() {
        let text = OK
            .replace(r#""ok":true,"message":"success","code":200"#, r#""ok":false,"code":409,"message":"Artifact already received","errorCode":"BTP_ERROR_DUPLICATE""#)
            .replace("btps_response", "btps_error");
        let o = obj(&text);
        let r = validate_response(&o).unwrap();
        assert_eq!(r.status.parsed_error_code(), Some(ErrorCode::Duplicate));
        assert_eq!(r.status.code_u16(), Some(409));
        assert_eq!(r.kind, ResponseType::Error);
    }

    #[test]
    fn signed_and_encrypted_replies() {
        let signed = edit(
            &to_js_string(&Value::Object(edit(
                &to_js_string(&Value::Object(edit(
                    OK,
                    "signedBy",
                    Some(r#""server$buyer.test""#),
                ))),
                "selector",
                Some(r#""btps1""#),
            ))),
            "signature",
            Some(SIG),
        );
        let r = validate_response(&signed).unwrap();
        assert!(r.is_signed());
        assert_eq!(r.signed_by.unwrap().as_str(), "server$buyer.test");
        for member in ["signedBy", "selector"] {
            let mut o = signed.clone();
            o.remove(member);
            assert_eq!(
                validate_response(&o).unwrap_err().path(),
                format!("/{member}")
            );
        }
        // `encryption: null` is accepted (btps-node clients want it in signed replies).
        let mut o = signed.clone();
        o.insert("encryption", Value::Null);
        assert!(validate_response(&o).unwrap().encryption.is_none());
        // An encryption object requires a string document.
        o.insert("encryption", parse_str(ENC).unwrap().value);
        assert_eq!(validate_response(&o).unwrap_err().path(), "/document");
        o.insert("document", "QUJD");
        assert!(validate_response(&o).unwrap().encryption.is_some());
        o.insert(
            "encryption",
            parse_str(r#"{"algorithm":"x"}"#).unwrap().value,
        );
        assert_eq!(
            validate_response(&o).unwrap_err().path(),
            "/encryption/algorithm"
        );
    }

    #[test]
    fn reply_documents() {
        let v = parse_str(r#"{"agentId":"btps_ag_1","refreshToken":"q8cW","expiresAt":"2099-01-01T00:00:00.000Z","decryptBy":"server$buyer.test"}"#).unwrap().value;
        assert_eq!(
            AuthRes::validate(&v).unwrap().decrypt_by.as_str(),
            "server$buyer.test"
        );
        for member in ["agentId", "refreshToken", "expiresAt", "decryptBy"] {
            let mut o = v.as_object().unwrap().clone();
            o.remove(member);
            assert_eq!(
                AuthRes::validate(&Value::Object(o)).unwrap_err().path(),
                format!("/{member}")
            );
        }
        let v = parse_str(
            r#"{"selector":"btps1","publicKey":"PEM","keyType":"rsa","version":"1.0.0"}"#,
        )
        .unwrap()
        .value;
        assert_eq!(IdentityKeyDocument::validate(&v).unwrap().key_type, "rsa");
        for member in ["selector", "publicKey", "keyType", "version"] {
            let mut o = v.as_object().unwrap().clone();
            o.remove(member);
            assert_eq!(
                IdentityKeyDocument::validate(&Value::Object(o))
                    .unwrap_err()
                    .path(),
                format!("/{member}")
            );
        }
    }

    #[test]
    fn query_results() {
        let t = to_js_string(&Value::Object(invoice_artifact()));
        let df = r#"{"id":"df-1","issuedAt":"2026-11-22T16:10:00.000Z","type":"BTP_DELIVERY_FAILURE","from":"billing$vendorcorp.test","to":"finance$buyer.test","document":{"id":"d1","reason":"r","failedAt":"2026-11-22T16:09:00.000Z","recipient":"finance$buyer.test","transportArtifactId":"e8"}}"#;
        let text = format!(
            r#"{{"results":[{{"artifact":{t},"meta":{{"seen":true,"seenAt":"2026-11-22T16:11:00Z","tag":"x"}}}},{{"artifact":{df}}}],"cursor":"c2","total":2,"hasNext":false}}"#
        );
        let v = parse_str(&text).unwrap().value;
        let q = QueryResult::validate(&v).unwrap();
        assert_eq!(q.results.len(), 2);
        assert!(matches!(
            q.results[0].artifact,
            StoredArtifact::Transporter(_)
        ));
        assert!(matches!(
            q.results[1].artifact,
            StoredArtifact::DeliveryFailure(_)
        ));
        assert_eq!(q.has_next, Some(false));
        QueryResult::validate(&parse_str(r#"{"results":[]}"#).unwrap().value).unwrap();
        for (doc, path) in [
            ("{}", "/results"),
            (r#"{"results":[{}]}"#, "/results/0/artifact"),
            (r#"{"results":[1]}"#, "/results/0"),
            (r#"{"results":[],"hasNext":"no"}"#, "/hasNext"),
            (r#"{"results":[],"total":null}"#, "/total"),
        ] {
            let e = QueryResult::validate(&parse_str(doc).unwrap().value).unwrap_err();
            assert_eq!(e.path(), path, "{doc}");
        }
        let bad = text.replace(r#""seen":true"#, r#""seen":1"#);
        let e = QueryResult::validate(&parse_str(&bad).unwrap().value).unwrap_err();
        assert_eq!(e.path(), "/results/0/meta/seen");
        let bad = text.replace(r#""currency":"AUD""#, r#""currency":"XXX""#);
        let e = QueryResult::validate(&parse_str(&bad).unwrap().value).unwrap_err();
        assert_eq!(
            e.path(),
            "/results/0/artifact/document/totalAmount/currency"
        );
    }
}
