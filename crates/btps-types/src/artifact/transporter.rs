//! Transporter artifacts (§3.2) and the local delivery-failure artifact (§3.3).

use super::SchemaError;
use super::common::{Delegation, Encryption, Header, ReplayKey, ReplayScope, SignatureRef};
use super::document::{BusinessDocument, TransporterType};
use super::rules::{Fields, base64, enumeration, fail, literal, number, object, string};
use crate::json::{Object, Value};
use crate::{Identity, UnixMillis};

/// A transporter artifact (PROTOCOL.md §3.2): a typed view beside the raw object it borrows.
///
/// Signatures are always checked over [`raw`](Self::raw) (through
/// [`signing`](crate::signing)), never over this view.
#[derive(Clone, Debug, PartialEq)]
pub struct Transporter<'a> {
    /// The artifact as received.
    pub raw: &'a Object,
    /// `version` (any string; not compared).
    pub version: &'a str,
    /// `type`.
    pub kind: TransporterType,
    /// `from`: the sender.
    pub from: Identity,
    /// `to`: the receiver.
    pub to: Identity,
    /// `selector`: the sender's signing key (in delegated artifacts only the receiver's
    /// encryption key, §5.4).
    pub selector: &'a str,
    /// `id`: non-empty, at most 256 bytes.
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `document`: ciphertext or a plain document valid for `kind`.
    pub document: TransporterDocument<'a>,
    /// `encryption` (`None` when `null`).
    pub encryption: Option<Encryption<'a>>,
    /// `signature`.
    pub signature: SignatureRef<'a>,
    /// `delegation`, when a device signed the artifact.
    pub delegation: Option<Delegation<'a>>,
}

/// The `document` of a transporter artifact.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived borrowed views; boxing would add an allocation per artifact"
)]
pub enum TransporterDocument<'a> {
    /// Base64 AES-GCM ciphertext (`encryption` is an object).
    Encrypted(&'a str),
    /// A plain document valid for the artifact `type` (`encryption` is `null`).
    Plain(BusinessDocument<'a>),
}

/// Validates a transporter artifact (PROTOCOL.md §3.2).
///
/// # Errors
///
/// [`SchemaError`] (`BTP_ERROR_VALIDATION`) with the path of the first offending member.
pub fn validate_transporter(obj: &Object) -> Result<Transporter<'_>, SchemaError> {
    transporter(obj, true)
}

pub(crate) fn transporter(
    obj: &Object,
    allow_delegation: bool,
) -> Result<Transporter<'_>, SchemaError> {
    let f = Fields(obj);
    let kind: TransporterType = f.req("type", enumeration)?;
    let header = Header::validate(f)?;
    let encryption = f.req_nullable("encryption", Encryption::validate)?;
    let document = f.req("document", |v| document(kind, encryption.is_some(), v))?;
    let signature = f.req("signature", SignatureRef::validate)?;
    let delegation = if allow_delegation {
        f.opt("delegation", Delegation::validate)?
    } else if f.get("delegation").is_some() {
        return Err(SchemaError::new("a send envelope carries no delegation").at("delegation"));
    } else {
        None
    };
    Ok(Transporter {
        raw: obj,
        version: header.version,
        kind,
        from: header.from,
        to: header.to,
        selector: header.selector,
        id: header.id,
        issued_at: header.issued_at,
        issued_at_ms: header.issued_at_ms,
        document,
        encryption,
        signature,
        delegation,
    })
}

/// The `document` rule shared by transporter artifacts and send envelopes.
pub(crate) fn document(
    kind: TransporterType,
    encrypted: bool,
    v: &Value,
) -> Result<TransporterDocument<'_>, SchemaError> {
    match (encrypted, v) {
        (true, Value::String(_)) => base64(v).map(TransporterDocument::Encrypted),
        (true, _) => fail(format!(
            "expected a string (the base64 ciphertext) because `encryption` is set, found {}",
            v.type_name()
        )),
        (false, Value::Object(_)) => {
            BusinessDocument::validate(kind, v).map(TransporterDocument::Plain)
        }
        (false, _) => fail(format!(
            "expected an object (a plain {kind} document) because `encryption` is null, found {}",
            v.type_name()
        )),
    }
}

impl<'a> Transporter<'a> {
    /// Same as [`validate_transporter`].
    ///
    /// # Errors
    ///
    /// [`SchemaError`].
    pub fn validate(obj: &'a Object) -> Result<Self, SchemaError> {
        validate_transporter(obj)
    }

    /// Whether a device signed the artifact under a delegation.
    pub fn is_delegated(&self) -> bool {
        self.delegation.is_some()
    }

    /// Whether the document is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// The plain document, when not encrypted.
    pub fn plain_document(&self) -> Option<&BusinessDocument<'a>> {
        match &self.document {
            TransporterDocument::Plain(d) => Some(d),
            TransporterDocument::Encrypted(_) => None,
        }
    }

    /// The freshness reference time T (PROTOCOL.md §10.1): `delegation.issuedAt` for
    /// delegated artifacts, else `issuedAt`.
    pub fn freshness_reference(&self) -> UnixMillis {
        self.delegation
            .as_ref()
            .map_or(self.issued_at_ms, |d| d.issued_at_ms)
    }

    /// The replay key (PROTOCOL.md §10.2): lower-case `from` + `id`.
    pub fn replay_key(&self) -> ReplayKey<'a> {
        ReplayKey {
            scope: ReplayScope::Sender(self.from.to_lowercase()),
            id: self.id,
        }
    }
}

/// The `type` of a delivery-failure artifact.
pub const DELIVERY_FAILURE_TYPE: &str = "BTP_DELIVERY_FAILURE";

/// A delivery-failure artifact (PROTOCOL.md §3.3; local only, unsigned): `{id, issuedAt,
/// type: "BTP_DELIVERY_FAILURE", from, to, document}`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryFailure<'a> {
    /// The artifact as stored.
    pub raw: &'a Object,
    /// `id`.
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `from`: the sender whose delivery failed.
    pub from: Identity,
    /// `to`: the intended receiver.
    pub to: Identity,
    /// `document`.
    pub document: DeliveryFailureDocument<'a>,
}

/// The `document` of a delivery-failure artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryFailureDocument<'a> {
    /// The document as stored.
    pub raw: &'a Object,
    /// `id`.
    pub id: &'a str,
    /// `reason`.
    pub reason: &'a str,
    /// `failedAt` (datetime).
    pub failed_at: &'a str,
    /// `retryCount`.
    pub retry_count: Option<f64>,
    /// `document`: the failed transporter artifact.
    pub artifact: Option<Transporter<'a>>,
    /// `errorLog` (any value).
    pub error_log: Option<&'a Value>,
    /// `recipient`.
    pub recipient: Identity,
    /// `transportArtifactId`.
    pub transport_artifact_id: &'a str,
    /// `agentArtifactId`.
    pub agent_artifact_id: Option<&'a str>,
}

/// Validates a delivery-failure artifact (PROTOCOL.md §3.3).
///
/// # Errors
///
/// [`SchemaError`] with the path of the first offending member.
pub fn validate_delivery_failure(obj: &Object) -> Result<DeliveryFailure<'_>, SchemaError> {
    let f = Fields(obj);
    f.req("type", literal(DELIVERY_FAILURE_TYPE))?;
    let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
    Ok(DeliveryFailure {
        raw: obj,
        id: f.req_str("id")?,
        issued_at,
        issued_at_ms,
        from: f.req_identity("from")?,
        to: f.req_identity("to")?,
        document: f.req("document", delivery_failure_document)?,
    })
}

fn delivery_failure_document(v: &Value) -> Result<DeliveryFailureDocument<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(DeliveryFailureDocument {
        raw,
        id: f.req_str("id")?,
        reason: f.req("reason", string)?,
        failed_at: f.req_datetime("failedAt")?.0,
        retry_count: f.opt("retryCount", number)?,
        artifact: f.opt("document", |v| validate_transporter(object(v)?))?,
        error_log: f.get("errorLog"),
        recipient: f.req_identity("recipient")?,
        transport_artifact_id: f.req_str("transportArtifactId")?,
        agent_artifact_id: f.opt_str("agentArtifactId")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::artifact::document::tests::{INVOICE, TRUST_REQ, TRUST_RES, obj};
    use crate::json::parse_str;

    pub(crate) const SIG: &str =
        r#"{"algorithmHash":"sha256","value":"QUJD","fingerprint":"QUI="}"#;
    pub(crate) const ENC: &str = r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI=","type":"standardEncrypt"}"#;

    pub(crate) fn transporter_text(kind: &str, doc: &str) -> String {
        format!(
            r#"{{"version":"1.0.0","type":"{kind}","from":"billing$vendorcorp.test","to":"finance$buyer.test","selector":"btps1","id":"e8ba57e5-113e-4424-baf0-b0f4e8330be9","issuedAt":"2026-11-22T16:03:46.407Z","document":{doc},"encryption":null,"signature":{SIG}}}"#
        )
    }

    pub(crate) fn invoice_artifact() -> Object {
        obj(&transporter_text("BTPS_DOC", INVOICE))
    }

    fn edit(mut o: Object, key: &str, v: Option<&str>) -> Object {
        match v {
            Some(v) => {
                o.insert(key, parse_str(v).unwrap().value);
            }
            None => {
                o.remove(key);
            }
        }
        o
    }

    fn err(o: &Object) -> SchemaError {
        validate_transporter(o).unwrap_err()
    }

    #[test]
    fn valid_plain_and_encrypted() {
        let o = invoice_artifact();
        let t = validate_transporter(&o).unwrap();
        assert_eq!(t.kind, TransporterType::BtpsDoc);
        assert_eq!(t.from.as_str(), "billing$vendorcorp.test");
        assert!(!t.is_encrypted() && !t.is_delegated());
        assert!(matches!(
            t.plain_document(),
            Some(BusinessDocument::Invoice(_))
        ));
        assert_eq!(t.freshness_reference(), t.issued_at_ms);
        assert_eq!(
            t.replay_key(),
            ReplayKey {
                scope: ReplayScope::Sender("billing$vendorcorp.test".into()),
                id: "e8ba57e5-113e-4424-baf0-b0f4e8330be9"
            }
        );

        let o = edit(
            edit(invoice_artifact(), "document", Some(r#""QUJDREVG""#)),
            "encryption",
            Some(ENC),
        );
        let t = validate_transporter(&o).unwrap();
        assert_eq!(t.document, TransporterDocument::Encrypted("QUJDREVG"));
        assert!(t.is_encrypted());

        for (kind, doc) in [("TRUST_REQ", TRUST_REQ), ("TRUST_RES", TRUST_RES)] {
            let o = obj(&transporter_text(kind, doc));
            assert_eq!(validate_transporter(&o).unwrap().kind.as_str(), kind);
        }
        // Unknown members are accepted and preserved.
        let o = edit(invoice_artifact(), "note", Some(r#"{"x":[1]}"#));
        assert!(validate_transporter(&o).unwrap().raw.contains_key("note"));
        // Mixed case sender keeps its spelling; the replay key is lower case.
        let o = edit(
            invoice_artifact(),
            "from",
            Some(r#""Billing$VendorCorp.test""#),
        );
        let t = validate_transporter(&o).unwrap();
        assert_eq!(t.from.as_str(), "Billing$VendorCorp.test");
        assert_eq!(
            t.replay_key().scope,
            ReplayScope::Sender("billing$vendorcorp.test".into())
        );
    }

    #[test]
    fn required_members() {
        for member in [
            "version",
            "issuedAt",
            "id",
            "type",
            "from",
            "to",
            "selector",
            "document",
            "encryption",
            "signature",
        ] {
            let e = err(&edit(invoice_artifact(), member, None));
            assert_eq!(e.path(), format!("/{member}"), "{member}: {e}");
            assert!(e.reason().starts_with("missing required member"), "{e}");
        }
        let e = err(&edit(
            invoice_artifact(),
            "document",
            Some(r#"{"title":"x"}"#),
        ));
        assert_eq!(e.path(), "/document/id");
        let e = err(&edit(
            invoice_artifact(),
            "signature",
            Some(r#"{"algorithmHash":"sha256","value":"QUJD"}"#),
        ));
        assert_eq!(e.path(), "/signature/fingerprint");
    }

    #[test]
    fn member_rules() {
        let long_id = format!("\"{}\"", "x".repeat(257));
        let max_id = format!("\"{}\"", "x".repeat(256));
        for (member, value, path) in [
            ("id", r#""""#, "/id"),
            ("id", long_id.as_str(), "/id"),
            ("id", "7", "/id"),
            ("type", r#""INVOICE""#, "/type"),
            ("type", r#""btps_doc""#, "/type"),
            ("from", r#""billing@vendorcorp.test""#, "/from"),
            ("to", r#""a$$b.c""#, "/to"),
            ("to", r#""finance$buyer""#, "/to"),
            ("selector", r#""""#, "/selector"),
            ("selector", r#""btps.1""#, "/selector"),
            ("selector", "null", "/selector"),
            (
                "issuedAt",
                r#""2026-11-22T16:03:46.407+01:00""#,
                "/issuedAt",
            ),
            ("issuedAt", r#""2026-02-29T16:03:46Z""#, "/issuedAt"),
            ("version", "1", "/version"),
            ("document", r#""QUJD""#, "/document"),
            ("document", "null", "/document"),
            (
                "encryption",
                r#"{"algorithm":"aes-256-gcm"}"#,
                "/encryption/encryptedKey",
            ),
            ("encryption", r#""none""#, "/encryption"),
            ("delegation", "null", "/delegation"),
            ("delegation", "{}", "/delegation/issuedAt"),
        ] {
            let e = err(&edit(invoice_artifact(), member, Some(value)));
            assert_eq!(e.path(), path, "{member} = {value}: {e}");
            assert_eq!(e.code(), crate::ErrorCode::Validation);
        }
        assert!(validate_transporter(&edit(invoice_artifact(), "id", Some(&max_id))).is_ok());
        // The document of another type does not fit.
        let o = obj(&transporter_text("TRUST_RES", TRUST_REQ));
        assert_eq!(err(&o).path(), "/document/decision");
        // Encrypted: the document must be a base64 string.
        let enc = edit(invoice_artifact(), "encryption", Some(ENC));
        let e = err(&enc);
        assert_eq!(e.path(), "/document");
        assert!(e.reason().contains("because `encryption` is set"), "{e}");
        let e = err(&edit(enc, "document", Some(r#""not base64""#)));
        assert_eq!(e.path(), "/document");
    }

    #[test]
    fn delegated() {
        let delegation = format!(
            r#"{{"agentId":"btps_ag_1","agentPubKey":"-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n","signedBy":"admin$vendorcorp.test","issuedAt":"2026-11-22T16:04:00.000Z","selector":"btps1","signature":{SIG}}}"#
        );
        let o = edit(invoice_artifact(), "delegation", Some(&delegation));
        let t = validate_transporter(&o).unwrap();
        assert!(t.is_delegated());
        assert_eq!(
            t.freshness_reference().to_string(),
            "2026-11-22T16:04:00.000Z"
        );
        assert!(
            transporter(&o, false)
                .unwrap_err()
                .reason()
                .contains("no delegation")
        );
    }

    #[test]
    fn delivery_failure() {
        let inner = crate::json::to_js_string(&Value::Object(invoice_artifact()));
        let text = format!(
            r#"{{"id":"df-1","issuedAt":"2026-11-22T16:10:00.000Z","type":"BTP_DELIVERY_FAILURE","from":"billing$vendorcorp.test","to":"finance$buyer.test","document":{{"id":"d1","reason":"Connection refused","failedAt":"2026-11-22T16:09:00.000Z","retryCount":5,"document":{inner},"errorLog":null,"recipient":"finance$buyer.test","transportArtifactId":"e8ba57e5","agentArtifactId":"a1"}}}}"#
        );
        let o = obj(&text);
        let d = validate_delivery_failure(&o).unwrap();
        assert_eq!(d.document.retry_count, Some(5.0));
        assert_eq!(
            d.document.artifact.as_ref().unwrap().kind,
            TransporterType::BtpsDoc
        );
        assert_eq!(d.document.error_log, Some(&Value::Null));
        for member in [
            "id",
            "reason",
            "failedAt",
            "recipient",
            "transportArtifactId",
        ] {
            let mut o = o.clone();
            o.get_mut("document")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(member);
            assert_eq!(
                validate_delivery_failure(&o).unwrap_err().path(),
                format!("/document/{member}")
            );
        }
        for member in ["retryCount", "document", "errorLog", "agentArtifactId"] {
            let mut o = o.clone();
            o.get_mut("document")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(member);
            validate_delivery_failure(&o).unwrap();
        }
        for member in ["id", "issuedAt", "type", "from", "to", "document"] {
            let e = validate_delivery_failure(&edit(o.clone(), member, None)).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"));
        }
        let e =
            validate_delivery_failure(&edit(o.clone(), "type", Some(r#""BTPS_DOC""#))).unwrap_err();
        assert_eq!(e.path(), "/type");
        let mut bad = o.clone();
        bad.get_mut("document")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("document", Value::from("x"));
        assert_eq!(
            validate_delivery_failure(&bad).unwrap_err().path(),
            "/document/document"
        );
    }
}
