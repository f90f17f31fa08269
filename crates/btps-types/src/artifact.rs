//! Artifact classification and schemas ([PROTOCOL.md §3], response envelope §2.5,
//! delegation §9.1).
//!
//! [`validate`] runs steps 3 and 4 of the inbound pipeline (§2.7): classify the parsed line
//! ([`classify`], §3.1), then validate it against the schema of **that kind only**. The result
//! is a typed view ([`Artifact`]) that borrows from the raw [`Object`]: the views sit beside
//! the received value, and signatures are always checked over the raw value through
//! [`signing`](crate::signing), never over a view.
//!
//! Shared value rules (§3.0): unknown members are accepted and preserved; optional members,
//! when present, must not be `null` unless the table says "or null"; strings read into a view
//! must be well-formed text (a lone UTF-16 surrogate fails); identities use
//! [`Identity::parse`](crate::Identity::parse); datetimes [`parse_datetime`](crate::parse_datetime);
//! emails [`is_email`]; urls [`is_url`]; base64 [`is_base64`].
//!
//! Every violation is a [`SchemaError`] carrying `BTP_ERROR_VALIDATION`, the JSON pointer of
//! the offending member and a short reason.
//!
//! ```
//! use btps_types::{Artifact, ArtifactKind, json::parse_str, validate};
//! let line = r#"{"version":"1.0.0","id":"ctl-1","issuedAt":"2025-07-01T09:30:00.000Z","action":"PING"}"#;
//! let parsed = parse_str(line).unwrap();
//! let artifact = validate(&parsed.value).unwrap();
//! assert_eq!(artifact.kind(), ArtifactKind::Control);
//! assert!(matches!(artifact, Artifact::Control(c) if c.id == "ctl-1"));
//!
//! let bad = parse_str(r#"{"action":"NOOP","id":"x","version":"1","issuedAt":"2025-07-01T09:30Z"}"#).unwrap();
//! assert_eq!(validate(&bad.value).unwrap_err().to_string(), r#"/action: "NOOP" is not one of QUIT, PING"#);
//! ```
//!
//! [PROTOCOL.md §3]: https://btps.invalid/PROTOCOL.md#3-artifacts-and-documents

mod agent;
mod common;
mod control;
mod document;
mod error;
mod response;
pub(crate) mod rules;
mod transporter;

use std::fmt;

pub use agent::{
    Agent, AgentAction, AgentDocument, AuthReq, Create, Envelope, Ids, Mutation, Query,
    QueryFilters, SortOrder, StringFilter, validate_agent,
};
pub use common::{
    AES_256_GCM, Attestation, Delegation, Encryption, EncryptionType, ReplayKey, ReplayScope,
    SHA256, SignatureRef,
};
pub use control::{
    Control, ControlAction, IdentityLookup, validate_control, validate_identity_lookup,
};
pub use document::{
    Amount, Attachment, AttachmentType, BusinessDocument, Invoice, InvoiceStatus, Issuer,
    LineItems, PaymentLink, PrivacyType, Template, TransporterType, TrustDecision, TrustReq,
    TrustRes,
};
pub use error::SchemaError;
pub use response::{
    AuthRes, IdentityKeyDocument, QueryResult, QueryResultEntry, Response, ResponseType, Status,
    StoredArtifact, validate_response,
};
pub use rules::{CURRENCY_CODES, MAX_ID_LEN, is_base64, is_currency_code, is_email, is_url};
pub use transporter::{
    DELIVERY_FAILURE_TYPE, DeliveryFailure, DeliveryFailureDocument, Transporter,
    TransporterDocument, validate_delivery_failure, validate_transporter,
};

use crate::UnixMillis;
use crate::json::{Object, Value};

/// The four kinds an inbound line can be classified as (PROTOCOL.md §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// `action` only (`QUIT`, `PING`): unsigned.
    Control,
    /// Server to server, signed by the sender or a delegated device.
    Transporter,
    /// An unsigned request for an identity's key.
    IdentityLookup,
    /// Agent to its own server, signed by the device key.
    Agent,
}

impl ArtifactKind {
    /// A short lower-case name (`"control"`, `"transporter"`, `"identityLookup"`, `"agent"`),
    /// as the vector files spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::Transporter => "transporter",
            Self::IdentityLookup => "identityLookup",
            Self::Agent => "agent",
        }
    }

    /// Whether artifacts of this kind are signed (and so checked for freshness and replay).
    pub const fn is_signed(self) -> bool {
        matches!(self, Self::Transporter | Self::Agent)
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an object by the first matching rule of PROTOCOL.md §3.1 ("absent" = the key
/// does not occur at all, even with a `null` value):
///
/// 1. control: `action` is a string and `agentId`, `document`, `signature`, `to` are absent;
/// 2. transporter: `from` and `type` are strings and `agentId` is absent;
/// 3. identity lookup: `identity` and `hostSelector` are strings and `signature`,
///    `document`, `to` are absent;
/// 4. agent: `to` and `action` are strings and `agentId` and `signature` are present.
///
/// `None` when no rule matches.
pub fn classify_object(obj: &Object) -> Option<ArtifactKind> {
    let mut seen = Seen::default();
    for (key, value) in obj.iter() {
        let Some(key) = key.as_str() else { continue };
        let is_string = value.is_string();
        match key {
            "action" => seen.action_str = is_string,
            "agentId" => seen.agent_id = true,
            "document" => seen.document = true,
            "signature" => seen.signature = true,
            "to" => {
                seen.to = true;
                seen.to_str = is_string;
            }
            "from" => seen.from_str = is_string,
            "type" => seen.type_str = is_string,
            "identity" => seen.identity_str = is_string,
            "hostSelector" => seen.host_selector_str = is_string,
            _ => {}
        }
    }
    let s = seen;
    if s.action_str && !s.agent_id && !s.document && !s.signature && !s.to {
        Some(ArtifactKind::Control)
    } else if s.from_str && s.type_str && !s.agent_id {
        Some(ArtifactKind::Transporter)
    } else if s.identity_str && s.host_selector_str && !s.signature && !s.document && !s.to {
        Some(ArtifactKind::IdentityLookup)
    } else if s.to_str && s.action_str && s.agent_id && s.signature {
        Some(ArtifactKind::Agent)
    } else {
        None
    }
}

#[derive(Default, Clone, Copy)]
struct Seen {
    action_str: bool,
    agent_id: bool,
    document: bool,
    signature: bool,
    to: bool,
    to_str: bool,
    from_str: bool,
    type_str: bool,
    identity_str: bool,
    host_selector_str: bool,
}

/// Classifies a parsed line (PROTOCOL.md §3.1, see [`classify_object`]).
///
/// # Errors
///
/// `BTP_ERROR_VALIDATION` when the value is not an object or matches no rule.
pub fn classify(value: &Value) -> Result<ArtifactKind, SchemaError> {
    let obj = value.as_object().ok_or_else(|| not_an_object(value))?;
    classify_object(obj).ok_or_else(|| unclassifiable(obj))
}

fn not_an_object(value: &Value) -> SchemaError {
    SchemaError::new(format!(
        "expected a JSON object, found {}",
        value.type_name()
    ))
}

fn unclassifiable(obj: &Object) -> SchemaError {
    let has = |k: &str| obj.contains_key(k);
    let hint = if has("agentId") {
        "an agent artifact needs string `to` and `action` and a `signature`"
    } else if has("identity") || has("hostSelector") {
        "an identity lookup needs string `identity` and `hostSelector` and no `to`, `document` or `signature`"
    } else if has("from") || has("type") {
        "a transporter artifact needs string `from` and `type`"
    } else if has("action") {
        "a control artifact needs a string `action` and no `to`, `document`, `signature` or `agentId`"
    } else {
        "no member identifies the kind (`action`, `from`+`type`, `identity`+`hostSelector`)"
    };
    SchemaError::new(format!(
        "not a BTPS artifact (matches none of control, transporter, identity lookup, agent): {hint}"
    ))
}

/// A classified, schema-valid inbound artifact: a typed view borrowing the raw object.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived borrowed views; boxing would add an allocation per line"
)]
pub enum Artifact<'a> {
    /// A transporter artifact (§3.2).
    Transporter(Transporter<'a>),
    /// An agent artifact (§3.4).
    Agent(Agent<'a>),
    /// A control artifact (§3.6).
    Control(Control<'a>),
    /// An identity lookup request (§3.6).
    IdentityLookup(IdentityLookup<'a>),
}

impl<'a> Artifact<'a> {
    /// The kind.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Self::Transporter(_) => ArtifactKind::Transporter,
            Self::Agent(_) => ArtifactKind::Agent,
            Self::Control(_) => ArtifactKind::Control,
            Self::IdentityLookup(_) => ArtifactKind::IdentityLookup,
        }
    }

    /// The artifact as received (signatures are checked over this).
    pub fn raw(&self) -> &'a Object {
        match self {
            Self::Transporter(a) => a.raw,
            Self::Agent(a) => a.raw,
            Self::Control(a) => a.raw,
            Self::IdentityLookup(a) => a.raw,
        }
    }

    /// The artifact `id` (the reply's `reqId`).
    pub fn id(&self) -> &'a str {
        match self {
            Self::Transporter(a) => a.id,
            Self::Agent(a) => a.id,
            Self::Control(a) => a.id,
            Self::IdentityLookup(a) => a.id,
        }
    }

    /// The freshness reference time T (PROTOCOL.md §10.1) of a signed artifact; `None` for
    /// unsigned kinds, which are not checked.
    pub fn freshness_reference(&self) -> Option<UnixMillis> {
        match self {
            Self::Transporter(a) => Some(a.freshness_reference()),
            Self::Agent(a) => Some(a.freshness_reference()),
            Self::Control(_) | Self::IdentityLookup(_) => None,
        }
    }

    /// The replay key (PROTOCOL.md §10.2) of a signed artifact; `None` for unsigned kinds.
    pub fn replay_key(&self) -> Option<ReplayKey<'a>> {
        match self {
            Self::Transporter(a) => Some(a.replay_key()),
            Self::Agent(a) => Some(a.replay_key()),
            Self::Control(_) | Self::IdentityLookup(_) => None,
        }
    }
}

/// Classifies `value` (§3.1) and validates it against the schema of that kind only.
///
/// # Errors
///
/// [`SchemaError`] (`BTP_ERROR_VALIDATION`): not an object, unclassifiable, or the first
/// schema violation with its JSON path.
///
/// # Examples
///
/// ```
/// use btps_types::{json::parse_str, validate, ErrorCode};
/// let line = r#"{"version":"1.0.0","type":"BTPS_DOC","from":"billing$vendorcorp.test","to":"finance$buyer.test","id":"1","issuedAt":"2025-07-01T09:30:00.000Z","document":"QUJD","encryption":null,"signature":{"algorithmHash":"sha256","value":"QUJD","fingerprint":"QUI="}}"#;
/// let e = validate(&parse_str(line).unwrap().value).unwrap_err();
/// assert_eq!(e.code(), ErrorCode::Validation);
/// assert_eq!(e.path(), "/selector");
/// ```
pub fn validate(value: &Value) -> Result<Artifact<'_>, SchemaError> {
    let obj = value.as_object().ok_or_else(|| not_an_object(value))?;
    validate_object(obj)
}

/// [`validate`] for an object.
///
/// # Errors
///
/// As [`validate`].
pub fn validate_object(obj: &Object) -> Result<Artifact<'_>, SchemaError> {
    match classify_object(obj).ok_or_else(|| unclassifiable(obj))? {
        ArtifactKind::Control => validate_control(obj).map(Artifact::Control),
        ArtifactKind::Transporter => validate_transporter(obj).map(Artifact::Transporter),
        ArtifactKind::IdentityLookup => validate_identity_lookup(obj).map(Artifact::IdentityLookup),
        ArtifactKind::Agent => validate_agent(obj).map(Artifact::Agent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_str;

    fn kind(text: &str) -> Option<ArtifactKind> {
        classify_object(parse_str(text).unwrap().value.as_object().unwrap())
    }

    #[test]
    fn classification_rules() {
        use ArtifactKind::*;
        assert_eq!(kind(r#"{"action":"QUIT"}"#), Some(Control));
        assert_eq!(
            kind(r#"{"action":"anything","version":"1"}"#),
            Some(Control)
        );
        assert_eq!(kind(r#"{"from":"a","type":"b"}"#), Some(Transporter));
        assert_eq!(
            kind(r#"{"identity":"a","hostSelector":"b"}"#),
            Some(IdentityLookup)
        );
        assert_eq!(
            kind(r#"{"to":"a","action":"b","agentId":"c","signature":{}}"#),
            Some(Agent)
        );
        assert_eq!(kind("{}"), None);
    }

    #[test]
    fn classification_precedence() {
        use ArtifactKind::*;
        // Rule 1 before rule 2: `action` without to/document/signature/agentId is control
        // even when `from` and `type` are strings.
        assert_eq!(
            kind(r#"{"action":"PING","from":"a","type":"b"}"#),
            Some(Control)
        );
        // ... but any of the four keys, even null, moves it on.
        for k in ["agentId", "document", "signature", "to"] {
            let text = format!(r#"{{"action":"PING","from":"a","type":"b","{k}":null}}"#);
            let expected = if k == "agentId" {
                None
            } else {
                Some(Transporter)
            };
            assert_eq!(kind(&text), expected, "{k}");
        }
        // Rule 2 before rule 3.
        assert_eq!(
            kind(r#"{"from":"a","type":"b","identity":"c","hostSelector":"d"}"#),
            Some(Transporter)
        );
        // Rule 2 before rule 4: no agentId means transporter, whatever else is there.
        assert_eq!(
            kind(r#"{"from":"a","type":"b","to":"c","action":"d","signature":{}}"#),
            Some(Transporter)
        );
        // agentId (even null) disables rules 1 and 2.
        assert_eq!(kind(r#"{"from":"a","type":"b","agentId":null}"#), None);
        assert_eq!(
            kind(
                r#"{"from":"a","type":"b","agentId":null,"to":"c","action":"d","signature":null}"#
            ),
            Some(Agent)
        );
        // Rule 3 needs signature, document and to absent (null counts as present).
        assert_eq!(
            kind(r#"{"identity":"a","hostSelector":"b","document":null}"#),
            None
        );
        assert_eq!(
            kind(r#"{"identity":"a","hostSelector":"b","to":null}"#),
            None
        );
        assert_eq!(
            kind(r#"{"identity":"a","hostSelector":"b","signature":null}"#),
            None
        );
        // Rule 3 before rule 4 cannot collide (rule 4 needs to and signature).
        // Rule 4 needs string `to` and `action` and present agentId and signature.
        assert_eq!(kind(r#"{"to":"a","action":"b","agentId":"c"}"#), None);
        assert_eq!(
            kind(r#"{"to":1,"action":"b","agentId":"c","signature":{}}"#),
            None
        );
        assert_eq!(
            kind(r#"{"to":"a","action":null,"agentId":"c","signature":{}}"#),
            None
        );
        // Non-string values do not satisfy "is a string".
        assert_eq!(kind(r#"{"action":1}"#), None);
        assert_eq!(kind(r#"{"from":"a","type":null}"#), None);
        assert_eq!(kind(r#"{"identity":"a","hostSelector":2}"#), None);
        // A lone-surrogate string is still a string for classification.
        assert_eq!(kind(r#"{"action":"\ud800"}"#), Some(Control));
    }

    #[test]
    fn classify_errors() {
        let e = classify(&parse_str("[1]").unwrap().value).unwrap_err();
        assert_eq!(e.to_string(), "expected a JSON object, found array");
        let e = classify(
            &parse_str(r#"{"to":"a","action":"b","agentId":"c"}"#)
                .unwrap()
                .value,
        )
        .unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Validation);
        assert!(e.reason().contains("agent artifact needs"), "{e}");
        let e = classify(
            &parse_str(r#"{"identity":"a$b.c","from":"x$b.c","hostSelector":"s","document":null}"#)
                .unwrap()
                .value,
        )
        .unwrap_err();
        assert!(e.reason().contains("identity lookup needs"), "{e}");
        let e = classify(&parse_str(r#"{"x":1}"#).unwrap().value).unwrap_err();
        assert!(e.reason().starts_with("not a BTPS artifact"), "{e}");
        assert_eq!(
            classify(&parse_str(r#"{"action":"QUIT"}"#).unwrap().value).unwrap(),
            ArtifactKind::Control
        );
    }

    #[test]
    fn validate_dispatches_on_the_classified_kind_only() {
        // A control-classified line with an unknown action fails the control schema, even
        // though it might fit another kind's schema.
        let v = parse_str(
            r#"{"action":"inbox.fetch","version":"1","id":"x","issuedAt":"2025-07-01T09:30Z"}"#,
        )
        .unwrap()
        .value;
        let e = validate(&v).unwrap_err();
        assert_eq!(e.path(), "/action");
        assert!(validate(&parse_str("null").unwrap().value).is_err());
        let v =
            parse_str(r#"{"version":"1","id":"x","issuedAt":"2025-07-01T09:30Z","action":"QUIT"}"#)
                .unwrap()
                .value;
        let a = validate(&v).unwrap();
        assert_eq!(a.kind(), ArtifactKind::Control);
        assert_eq!(a.id(), "x");
        assert_eq!(a.freshness_reference(), None);
        assert_eq!(a.replay_key(), None);
        assert!(std::ptr::eq(a.raw(), v.as_object().unwrap()));
        assert_eq!(ArtifactKind::IdentityLookup.to_string(), "identityLookup");
        assert!(ArtifactKind::Agent.is_signed() && !ArtifactKind::Control.is_signed());
    }
}
