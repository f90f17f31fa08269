//! Agent artifacts (§3.4), the action catalogue (§3.5) and the agent documents (§3.10).

use super::SchemaError;
use super::common::{Encryption, Header, ReplayKey, ReplayScope, SignatureRef};
use super::document::{BusinessDocument, TransporterType};
use super::rules::{
    Fields, artifact_id, base64, enumeration, fail, identity, number, object, quote, string,
    string_array, wire_enum,
};
use super::transporter::{Transporter, transporter};
use crate::json::{Object, Value};
use crate::{Identity, UnixMillis};

wire_enum! {
    /// An agent action: the full catalogue of PROTOCOL.md §3.5 (an action outside it is
    /// `BTP_ERROR_VALIDATION`).
    pub enum AgentAction {
        /// `trust.request`: send Env(`TRUST_REQ`).
        TrustRequest = "trust.request",
        /// `trust.respond`: send Env(`TRUST_RES`).
        TrustRespond = "trust.respond",
        /// `trust.update`: Mutation, bare or in an envelope.
        TrustUpdate = "trust.update",
        /// `trust.delete`: Ids, bare or in an envelope.
        TrustDelete = "trust.delete",
        /// `trust.fetch`: optional object (Query recommended).
        TrustFetch = "trust.fetch",
        /// `inbox.fetch`: optional Query.
        InboxFetch = "inbox.fetch",
        /// `inbox.seen`: Ids.
        InboxSeen = "inbox.seen",
        /// `inbox.delete`: Ids.
        InboxDelete = "inbox.delete",
        /// `outbox.fetch`: optional Query.
        OutboxFetch = "outbox.fetch",
        /// `outbox.cancel`: Ids.
        OutboxCancel = "outbox.cancel",
        /// `sentbox.fetch`: optional Query (missing from the reference's enum).
        SentboxFetch = "sentbox.fetch",
        /// `sentbox.delete`: Ids (missing from the reference's enum).
        SentboxDelete = "sentbox.delete",
        /// `draft.fetch`: optional Query.
        DraftFetch = "draft.fetch",
        /// `draft.create`: Create.
        DraftCreate = "draft.create",
        /// `draft.update`: Mutation.
        DraftUpdate = "draft.update",
        /// `draft.delete`: Ids.
        DraftDelete = "draft.delete",
        /// `trash.fetch`: optional Query.
        TrashFetch = "trash.fetch",
        /// `trash.delete`: Ids.
        TrashDelete = "trash.delete",
        /// `system.ping`: no document (one, if present, is ignored).
        SystemPing = "system.ping",
        /// `auth.request`: AuthReq, plaintext (device onboarding).
        AuthRequest = "auth.request",
        /// `auth.refresh`: AuthReq with the refresh token.
        AuthRefresh = "auth.refresh",
        /// `artifact.send`: send Env(`BTPS_DOC`).
        ArtifactSend = "artifact.send",
    }
}

/// What an action takes as `document` (PROTOCOL.md §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocRule {
    /// A send envelope of this type.
    Envelope(TransporterType),
    /// Mutation, bare or enveloped.
    MutationOrEnvelope,
    /// Ids, bare or enveloped.
    IdsOrEnvelope,
    /// Optional, any object.
    AnyObject,
    /// Optional Query.
    Query,
    Ids,
    Mutation,
    Create,
    AuthReq,
    /// Ignored.
    Ignored,
}

impl AgentAction {
    fn doc_rule(self) -> DocRule {
        use AgentAction::*;
        match self {
            TrustRequest => DocRule::Envelope(TransporterType::TrustReq),
            TrustRespond => DocRule::Envelope(TransporterType::TrustRes),
            ArtifactSend => DocRule::Envelope(TransporterType::BtpsDoc),
            TrustUpdate => DocRule::MutationOrEnvelope,
            TrustDelete => DocRule::IdsOrEnvelope,
            TrustFetch => DocRule::AnyObject,
            InboxFetch | OutboxFetch | SentboxFetch | DraftFetch | TrashFetch => DocRule::Query,
            InboxSeen | InboxDelete | OutboxCancel | SentboxDelete | DraftDelete | TrashDelete => {
                DocRule::Ids
            }
            DraftCreate => DocRule::Create,
            DraftUpdate => DocRule::Mutation,
            AuthRequest | AuthRefresh => DocRule::AuthReq,
            SystemPing => DocRule::Ignored,
        }
    }

    /// Whether the action must carry a `document`.
    pub fn requires_document(self) -> bool {
        !matches!(
            self.doc_rule(),
            DocRule::AnyObject | DocRule::Query | DocRule::Ignored
        )
    }

    /// Send-type actions (`trust.request`, `trust.respond`, `artifact.send`): the document is
    /// a send envelope, the reply comes after durable enqueue, the owner is `document.from`.
    pub const fn is_send(self) -> bool {
        matches!(
            self,
            Self::TrustRequest | Self::TrustRespond | Self::ArtifactSend
        )
    }

    /// Whether the server replies immediately (every action that is not send-type).
    pub const fn is_immediate(self) -> bool {
        !self.is_send()
    }

    /// `auth.request` and `auth.refresh`.
    pub const fn is_auth(self) -> bool {
        matches!(self, Self::AuthRequest | Self::AuthRefresh)
    }

    /// Whether `encryption` must be `null` (auth and send-type actions, PROTOCOL.md §3.4).
    pub const fn requires_plaintext(self) -> bool {
        self.is_auth() || self.is_send()
    }

    /// The envelope type T of a send-type action's Env(T).
    pub const fn send_type(self) -> Option<TransporterType> {
        match self {
            Self::TrustRequest => Some(TransporterType::TrustReq),
            Self::TrustRespond => Some(TransporterType::TrustRes),
            Self::ArtifactSend => Some(TransporterType::BtpsDoc),
            _ => None,
        }
    }
}

/// An agent artifact (PROTOCOL.md §3.4): a typed view beside the raw object it borrows.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent<'a> {
    /// The artifact as received.
    pub raw: &'a Object,
    /// `id`: non-empty, at most 256 bytes.
    pub id: &'a str,
    /// `action`.
    pub action: AgentAction,
    /// `agentId` (any string; ignored for `auth.request`).
    pub agent_id: &'a str,
    /// `to`: the user's own identity, or the counterpart for send-type actions.
    pub to: Identity,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds (the freshness reference time).
    pub issued_at_ms: UnixMillis,
    /// `version`, when present (not in the reference schema, always sent by its agents).
    pub version: Option<&'a str>,
    /// `document`, typed by the action.
    pub document: AgentDocument<'a>,
    /// `encryption` (`None` when `null`).
    pub encryption: Option<Encryption<'a>>,
    /// `signature` (device key).
    pub signature: SignatureRef<'a>,
}

/// The `document` of an agent artifact, typed by its action.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived borrowed views; boxing would add an allocation per artifact"
)]
pub enum AgentDocument<'a> {
    /// No document (allowed for the optional-document actions).
    Absent,
    /// `system.ping`: the document, if any, is ignored.
    Ignored(&'a Value),
    /// `encryption` is set: base64 ciphertext passed to the application undecrypted.
    Encrypted(&'a str),
    /// Send-type actions: the send envelope Env(T), a complete transporter artifact without
    /// delegation, signed by the device key.
    Send(Transporter<'a>),
    /// `draft.update` or the bare form of `trust.update`.
    Mutation(Mutation<'a>),
    /// The envelope form of `trust.update` (what btps-node agents send).
    EnvelopedMutation(Envelope<'a>, Mutation<'a>),
    /// Ids actions and the bare form of `trust.delete`.
    Ids(Ids<'a>),
    /// The envelope form of `trust.delete`.
    EnvelopedIds(Envelope<'a>, Ids<'a>),
    /// Fetch actions (and `trust.fetch` when its object is a Query).
    Query(Query<'a>),
    /// `trust.fetch` with an object that is not a Query.
    Object(&'a Object),
    /// `draft.create`.
    Create(Create<'a>),
    /// `auth.request` and `auth.refresh`.
    AuthReq(AuthReq<'a>),
}

/// The header of the envelope form of `trust.update`/`trust.delete`: a transporter-shaped
/// object signed by the device key whose `document` is a Mutation or Ids; its `type` is not
/// interpreted (btps-node writes `TRUST_RES`).
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope<'a> {
    /// The envelope object as received (verify its signature over this).
    pub raw: &'a Object,
    /// `version`.
    pub version: &'a str,
    /// `type` as written (ignored).
    pub kind: &'a str,
    /// `from`: the user identity that owns the agent.
    pub from: Identity,
    /// `to`: equal to the agent artifact's `to`.
    pub to: Identity,
    /// `selector`.
    pub selector: &'a str,
    /// `id`.
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `signature` (device key).
    pub signature: SignatureRef<'a>,
}

/// Validates an agent artifact (PROTOCOL.md §3.4–§3.5).
///
/// # Errors
///
/// [`SchemaError`] (`BTP_ERROR_VALIDATION`) with the path of the first offending member;
/// an action outside the catalogue fails at `/action`.
pub fn validate_agent(obj: &Object) -> Result<Agent<'_>, SchemaError> {
    let f = Fields(obj);
    let action = f.req("action", |v| {
        let s = string(v)?;
        AgentAction::from_wire(s).ok_or_else(|| {
            SchemaError::new(format!(
                "unknown action {} (not in the catalogue of §3.5)",
                quote(s)
            ))
        })
    })?;
    let id = f.req("id", artifact_id)?;
    let agent_id = f.req_str("agentId")?;
    let to = f.req_identity("to")?;
    let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
    let version = f.opt_str("version")?;
    let encryption = f.req_nullable("encryption", Encryption::validate)?;
    if encryption.is_some() && action.requires_plaintext() {
        return Err(SchemaError::new(format!(
            "must be null for {action} (auth and send actions are never encrypted; a send \
             envelope encrypts its own document)"
        ))
        .at("encryption"));
    }
    let signature = f.req("signature", SignatureRef::validate)?;
    let document = agent_document(action, f, encryption.is_some(), &to)?;
    Ok(Agent {
        raw: obj,
        id,
        action,
        agent_id,
        to,
        issued_at,
        issued_at_ms,
        version,
        document,
        encryption,
        signature,
    })
}

fn agent_document<'a>(
    action: AgentAction,
    f: Fields<'a>,
    encrypted: bool,
    to: &Identity,
) -> Result<AgentDocument<'a>, SchemaError> {
    let rule = action.doc_rule();
    let doc = match f.get("document") {
        None if encrypted => {
            return Err(SchemaError::new(
                "missing required member (`encryption` is set, so the document is the ciphertext string)",
            )
            .at("document"));
        }
        None if action.requires_document() => {
            return Err(SchemaError::new(format!(
                "missing required member ({action} takes a document)"
            ))
            .at("document"));
        }
        None => return Ok(AgentDocument::Absent),
        Some(v) => v,
    };
    let at_doc = |e: SchemaError| e.at("document");
    if encrypted {
        return match doc {
            Value::String(_) => base64(doc).map(AgentDocument::Encrypted).map_err(at_doc),
            _ => Err(at_doc(SchemaError::new(format!(
                "expected a string (the base64 ciphertext) because `encryption` is set, found {}",
                doc.type_name()
            )))),
        };
    }
    if rule == DocRule::Ignored {
        return Ok(AgentDocument::Ignored(doc));
    }
    if doc.is_null() {
        return Err(at_doc(SchemaError::new(if action.requires_document() {
            "must not be null"
        } else {
            "must not be null (omit the member instead)"
        })));
    }
    match rule {
        DocRule::Envelope(kind) => send_envelope(doc, kind, to).map(AgentDocument::Send),
        DocRule::MutationOrEnvelope => match envelope_form(doc) {
            Some(env) => envelope(env, to).and_then(|e| {
                let m = f_doc(env, Mutation::validate)?;
                Ok(AgentDocument::EnvelopedMutation(e, m))
            }),
            None => Mutation::validate(doc).map(AgentDocument::Mutation),
        },
        DocRule::IdsOrEnvelope => match envelope_form(doc) {
            Some(env) => envelope(env, to).and_then(|e| {
                let ids = f_doc(env, Ids::validate)?;
                Ok(AgentDocument::EnvelopedIds(e, ids))
            }),
            None => Ids::validate(doc).map(AgentDocument::Ids),
        },
        DocRule::AnyObject => object(doc).map(|o| match Query::validate(doc) {
            Ok(q) => AgentDocument::Query(q),
            Err(_) => AgentDocument::Object(o),
        }),
        DocRule::Query => Query::validate(doc).map(AgentDocument::Query),
        DocRule::Ids => Ids::validate(doc).map(AgentDocument::Ids),
        DocRule::Mutation => Mutation::validate(doc).map(AgentDocument::Mutation),
        DocRule::Create => Create::validate(doc).map(AgentDocument::Create),
        DocRule::AuthReq => AuthReq::validate(doc).map(AgentDocument::AuthReq),
        DocRule::Ignored => Ok(AgentDocument::Ignored(doc)),
    }
    .map_err(at_doc)
}

/// The envelope form of `trust.update`/`trust.delete` is recognised like a transporter
/// (§3.1 rule 2): `from` and `type` are strings.
fn envelope_form(doc: &Value) -> Option<&Object> {
    let o = doc.as_object()?;
    (o.get("from").is_some_and(Value::is_string) && o.get("type").is_some_and(Value::is_string))
        .then_some(o)
}

/// Validates the envelope's inner `document` with `check`.
fn f_doc<'a, T>(
    env: &'a Object,
    check: impl FnOnce(&'a Value) -> Result<T, SchemaError>,
) -> Result<T, SchemaError> {
    Fields(env).req("document", check)
}

fn check_envelope_to(env_to: &Identity, to: &Identity) -> Result<(), SchemaError> {
    if env_to.eq_ignore_case(to) {
        Ok(())
    } else {
        Err(SchemaError::new(format!(
            "{} must equal the artifact's `to` ({})",
            quote(env_to.as_str()),
            quote(to.as_str())
        ))
        .at("to"))
    }
}

/// Env(T): a complete transporter artifact without delegation, of type T, whose `to` is the
/// agent artifact's `to`.
fn send_envelope<'a>(
    doc: &'a Value,
    kind: TransporterType,
    to: &Identity,
) -> Result<Transporter<'a>, SchemaError> {
    let o = object(doc)?;
    let found: TransporterType = Fields(o).req("type", enumeration)?;
    if found != kind {
        return Err(
            SchemaError::new(format!("must be {kind} for this action, found {found}")).at("type"),
        );
    }
    let t = transporter(o, false)?;
    check_envelope_to(&t.to, to)?;
    Ok(t)
}

/// The envelope header of `trust.update`/`trust.delete` (encryption must be null: the server
/// applies the mutation and cannot decrypt).
fn envelope<'a>(o: &'a Object, to: &Identity) -> Result<Envelope<'a>, SchemaError> {
    let f = Fields(o);
    let kind = f.req("type", string)?;
    let header = Header::validate(f)?;
    if f.req_nullable("encryption", Encryption::validate)?
        .is_some()
    {
        return Err(SchemaError::new(
            "must be null: the server applies this envelope's document and never decrypts",
        )
        .at("encryption"));
    }
    let signature = f.req("signature", SignatureRef::validate)?;
    if f.get("delegation").is_some() {
        return Err(SchemaError::new("a send envelope carries no delegation").at("delegation"));
    }
    check_envelope_to(&header.to, to)?;
    Ok(Envelope {
        raw: o,
        version: header.version,
        kind,
        from: header.from,
        to: header.to,
        selector: header.selector,
        id: header.id,
        issued_at: header.issued_at,
        issued_at_ms: header.issued_at_ms,
        signature,
    })
}

impl<'a> Agent<'a> {
    /// Same as [`validate_agent`].
    ///
    /// # Errors
    ///
    /// [`SchemaError`].
    pub fn validate(obj: &'a Object) -> Result<Self, SchemaError> {
        validate_agent(obj)
    }

    /// The owner (PROTOCOL.md §3.5, §8.3): the identity whose agent record authenticates the
    /// agent. `document.from` for send-type actions and the envelope forms, `None` for
    /// `auth.request` (onboarding), else `to`.
    pub fn owner(&self) -> Option<&Identity> {
        match &self.document {
            _ if self.action == AgentAction::AuthRequest => None,
            AgentDocument::Send(t) => Some(&t.from),
            AgentDocument::EnvelopedMutation(e, _) | AgentDocument::EnvelopedIds(e, _) => {
                Some(&e.from)
            }
            _ => Some(&self.to),
        }
    }

    /// The send envelope object, whose own signature must verify with the device key
    /// (PROTOCOL.md §3.5).
    pub fn envelope(&self) -> Option<&'a Object> {
        match &self.document {
            AgentDocument::Send(t) => Some(t.raw),
            AgentDocument::EnvelopedMutation(e, _) | AgentDocument::EnvelopedIds(e, _) => {
                Some(e.raw)
            }
            _ => None,
        }
    }

    /// Whether the server replies immediately (else after durable enqueue).
    pub fn is_immediate(&self) -> bool {
        self.action.is_immediate()
    }

    /// Whether the action is send-type.
    pub fn is_send(&self) -> bool {
        self.action.is_send()
    }

    /// The freshness reference time (PROTOCOL.md §10.1): `issuedAt`.
    pub fn freshness_reference(&self) -> UnixMillis {
        self.issued_at_ms
    }

    /// The replay key (PROTOCOL.md §10.2): `agentId` + `id`, or for `auth.request` the
    /// fingerprint of `document.publicKey` + `id`.
    pub fn replay_key(&self) -> ReplayKey<'a> {
        let scope = match (&self.document, self.action) {
            (AgentDocument::AuthReq(d), AgentAction::AuthRequest) => {
                ReplayScope::AgentKey(d.public_key)
            }
            _ => ReplayScope::Agent(self.agent_id),
        };
        ReplayKey { scope, id: self.id }
    }
}

/// AuthReq (PROTOCOL.md §3.10): `{identity, authToken, publicKey (PEM SPKI), agentInfo?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthReq<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `identity`: the user identity (must equal `to`; checked by the server).
    pub identity: Identity,
    /// `authToken`: the auth token, or the refresh token for `auth.refresh`.
    pub auth_token: &'a str,
    /// `publicKey`: PEM SPKI of the device key (parsed by the crypto crate).
    pub public_key: &'a str,
    /// `agentInfo`: values are strings or arrays of strings.
    pub agent_info: Option<&'a Object>,
}

impl<'a> AuthReq<'a> {
    /// Validates an AuthReq document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            identity: f.req("identity", identity)?,
            auth_token: f.req_str("authToken")?,
            public_key: f.req_str("publicKey")?,
            agent_info: f.opt("agentInfo", |v| {
                let o = object(v)?;
                for (k, item) in o.iter() {
                    let ok = match item {
                        Value::String(_) => true,
                        Value::Array(a) => a.iter().all(Value::is_string),
                        _ => false,
                    };
                    if !ok {
                        return Err(SchemaError::new(format!(
                            "expected a string or an array of strings, found {}",
                            if item.is_string() {
                                "string"
                            } else {
                                item.type_name()
                            }
                        ))
                        .at(&k.to_string_lossy()));
                    }
                }
                Ok(o)
            })?,
        })
    }
}

wire_enum! {
    /// Query `sort` (PROTOCOL.md §3.10).
    pub enum SortOrder {
        /// `asc`.
        Asc = "asc",
        /// `desc`.
        Desc = "desc",
    }
}

/// Query (PROTOCOL.md §3.10): at least one of `since`, `until`, `limit`, `cursor`, `sort`,
/// `query`; an empty object fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Query<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `since` (datetime).
    pub since: Option<&'a str>,
    /// `until` (datetime).
    pub until: Option<&'a str>,
    /// `limit` (servers SHOULD clamp to 1..1000).
    pub limit: Option<f64>,
    /// `cursor`.
    pub cursor: Option<&'a str>,
    /// `sort`.
    pub sort: Option<SortOrder>,
    /// `query`: string filters on title, from and to.
    pub query: Option<QueryFilters<'a>>,
}

/// `query` inside a Query: `{title?, from?, to?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryFilters<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// Filter on the title.
    pub title: Option<StringFilter<'a>>,
    /// Filter on `from`.
    pub from: Option<StringFilter<'a>>,
    /// Filter on `to`.
    pub to: Option<StringFilter<'a>>,
}

/// A string filter `{like?, notLike?, eq?, ne?, in?, notIn?}`; semantics belong to the
/// application.
#[derive(Clone, Debug, PartialEq)]
pub struct StringFilter<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// `like`.
    pub like: Option<&'a str>,
    /// `notLike`.
    pub not_like: Option<&'a str>,
    /// `eq`.
    pub eq: Option<&'a str>,
    /// `ne`.
    pub ne: Option<&'a str>,
    /// `in` (all items strings).
    pub any_of: Option<&'a [Value]>,
    /// `notIn` (all items strings).
    pub none_of: Option<&'a [Value]>,
}

impl<'a> Query<'a> {
    /// The members of which at least one must be present.
    pub const MEMBERS: [&'static str; 6] = ["since", "until", "limit", "cursor", "query", "sort"];

    /// Validates a Query document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        if !Self::MEMBERS.iter().any(|m| raw.contains_key(m)) {
            return fail("a query needs at least one of since, until, limit, cursor, query, sort");
        }
        let f = Fields(raw);
        Ok(Self {
            raw,
            since: f.opt_datetime("since")?,
            until: f.opt_datetime("until")?,
            limit: f.opt("limit", number)?,
            cursor: f.opt_str("cursor")?,
            sort: f.opt("sort", enumeration)?,
            query: f.opt("query", |v| {
                let raw = object(v)?;
                let f = Fields(raw);
                Ok(QueryFilters {
                    raw,
                    title: f.opt("title", string_filter)?,
                    from: f.opt("from", string_filter)?,
                    to: f.opt("to", string_filter)?,
                })
            })?,
        })
    }
}

fn string_filter(v: &Value) -> Result<StringFilter<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(StringFilter {
        raw,
        like: f.opt_str("like")?,
        not_like: f.opt_str("notLike")?,
        eq: f.opt_str("eq")?,
        ne: f.opt_str("ne")?,
        any_of: f.opt("in", string_array)?,
        none_of: f.opt("notIn", string_array)?,
    })
}

/// Mutation (PROTOCOL.md §3.10): `{id, document: TrustReq | TrustRes | Invoice}` (the first
/// schema that matches).
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `id` of the record to change.
    pub id: &'a str,
    /// The new document.
    pub document: BusinessDocument<'a>,
}

impl<'a> Mutation<'a> {
    /// Validates a Mutation document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            id: f.req_str("id")?,
            document: f.req("document", BusinessDocument::first_match)?,
        })
    }
}

/// Create (PROTOCOL.md §3.10): `{type, document}`, the document validated against the schema
/// named by `type`.
#[derive(Clone, Debug, PartialEq)]
pub struct Create<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `type`.
    pub kind: TransporterType,
    /// `document`, valid for `kind`.
    pub document: BusinessDocument<'a>,
}

impl<'a> Create<'a> {
    /// Validates a Create document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        let kind = f.req("type", enumeration)?;
        Ok(Self {
            raw,
            kind,
            document: f.req("document", |v| BusinessDocument::validate(kind, v))?,
        })
    }
}

/// Ids (PROTOCOL.md §3.10): `{ids: string[]}` (empty allowed).
#[derive(Clone, Debug, PartialEq)]
pub struct Ids<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// The `ids` items (all strings).
    pub ids: &'a [Value],
}

impl<'a> Ids<'a> {
    /// Validates an Ids document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        Ok(Self {
            raw,
            ids: Fields(raw).req("ids", string_array)?,
        })
    }

    /// The ids.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.ids.iter().filter_map(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::document::tests::{INVOICE, TRUST_REQ, TRUST_RES, obj};
    use crate::artifact::transporter::tests::{ENC, SIG, transporter_text};
    use crate::json::{parse_str, to_js_string};

    const TO: &str = "finance$buyer.test";

    fn agent_text(action: &str, document: Option<&str>, encryption: &str) -> String {
        let doc = document
            .map(|d| format!(r#""document":{d},"#))
            .unwrap_or_default();
        format!(
            r#"{{"action":"{action}","agentId":"btps_ag_1","to":"{TO}",{doc}"encryption":{encryption},"id":"a-1","issuedAt":"2026-11-22T16:03:46.470Z","version":"1.0.0","signature":{SIG}}}"#
        )
    }

    fn agent(action: &str, document: Option<&str>) -> Result<(), SchemaError> {
        let o = obj(&agent_text(action, document, "null"));
        validate_agent(&o).map(|_| ())
    }

    fn ok_doc(action: &str, document: Option<&str>) -> AgentDocument<'static> {
        let o: &'static Object = Box::leak(Box::new(obj(&agent_text(action, document, "null"))));
        validate_agent(o)
            .unwrap_or_else(|e| panic!("{action}: {e}"))
            .document
    }

    fn err(action: &str, document: Option<&str>) -> SchemaError {
        agent(action, document).expect_err(action)
    }

    fn envelope_text(kind: &str, doc: &str) -> String {
        // A send envelope is a transporter artifact: from the user, to the counterpart.
        let mut o = obj(&transporter_text(kind, doc));
        o.insert("from", "billing$vendorcorp.test");
        o.insert("to", TO);
        to_js_string(&Value::Object(o))
    }

    const AUTH: &str = r#"{"identity":"finance$buyer.test","authToken":"YDVKSEU4CEEW","publicKey":"-----BEGIN PUBLIC KEY-----\nQUJD\n-----END PUBLIC KEY-----\n","agentInfo":{"deviceName":"iPhone 15","tags":["a","b"]}}"#;

    #[test]
    fn catalogue_is_complete() {
        assert_eq!(AgentAction::ALL.len(), 22);
        let send: Vec<_> = AgentAction::ALL
            .iter()
            .filter(|a| a.is_send())
            .map(|a| a.as_str())
            .collect();
        assert_eq!(send, ["trust.request", "trust.respond", "artifact.send"]);
        let optional: Vec<_> = AgentAction::ALL
            .iter()
            .filter(|a| !a.requires_document())
            .map(|a| a.as_str())
            .collect();
        assert_eq!(
            optional,
            [
                "trust.fetch",
                "inbox.fetch",
                "outbox.fetch",
                "sentbox.fetch",
                "draft.fetch",
                "trash.fetch",
                "system.ping"
            ]
        );
        assert!(AgentAction::AuthRefresh.requires_plaintext());
        assert!(!AgentAction::TrustUpdate.requires_plaintext());
        assert_eq!(
            AgentAction::ArtifactSend.send_type(),
            Some(TransporterType::BtpsDoc)
        );
        assert_eq!(AgentAction::from_wire("inbox.Fetch"), None);
    }

    #[test]
    fn unknown_action() {
        let e = err("inbox.archive", Some(r#"{"ids":[]}"#));
        assert_eq!(e.path(), "/action");
        assert!(
            e.reason().contains("unknown action \"inbox.archive\""),
            "{e}"
        );
        assert_eq!(e.code(), crate::ErrorCode::Validation);
    }

    #[test]
    fn required_members() {
        for member in [
            "action",
            "agentId",
            "to",
            "issuedAt",
            "id",
            "encryption",
            "signature",
        ] {
            let mut o = obj(&agent_text("inbox.fetch", None, "null"));
            o.remove(member);
            let e = validate_agent(&o).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"), "{member}: {e}");
        }
        // `version` is optional for readers but must be a string when present.
        let mut o = obj(&agent_text("inbox.fetch", None, "null"));
        o.remove("version");
        validate_agent(&o).unwrap();
        o.insert("version", Value::Null);
        assert_eq!(validate_agent(&o).unwrap_err().path(), "/version");
        let mut o = obj(&agent_text("inbox.fetch", None, "null"));
        o.insert("to", "nobody");
        assert_eq!(validate_agent(&o).unwrap_err().path(), "/to");
    }

    #[test]
    fn documents_per_action() {
        assert!(matches!(ok_doc("inbox.fetch", None), AgentDocument::Absent));
        assert!(matches!(
            ok_doc("inbox.fetch", Some(r#"{"limit":10,"sort":"desc"}"#)),
            AgentDocument::Query(_)
        ));
        for action in [
            "inbox.seen",
            "inbox.delete",
            "outbox.cancel",
            "sentbox.delete",
            "draft.delete",
            "trash.delete",
        ] {
            match ok_doc(action, Some(r#"{"ids":["a","b"]}"#)) {
                AgentDocument::Ids(ids) => assert_eq!(ids.iter().collect::<Vec<_>>(), ["a", "b"]),
                other => panic!("{action}: {other:?}"),
            }
            assert!(matches!(
                ok_doc(action, Some(r#"{"ids":[]}"#)),
                AgentDocument::Ids(_)
            ));
            assert_eq!(err(action, None).path(), "/document");
            assert_eq!(err(action, Some("null")).path(), "/document");
            assert_eq!(
                err(action, Some(r#"{"ids":[1]}"#)).path(),
                "/document/ids/0"
            );
            assert_eq!(err(action, Some(r#"{"id":"x"}"#)).path(), "/document/ids");
        }
        for action in [
            "inbox.fetch",
            "outbox.fetch",
            "sentbox.fetch",
            "draft.fetch",
            "trash.fetch",
        ] {
            assert!(matches!(ok_doc(action, None), AgentDocument::Absent));
            assert_eq!(err(action, Some("{}")).path(), "/document");
            assert_eq!(err(action, Some(r#"{"x":1}"#)).path(), "/document");
            assert_eq!(err(action, Some("null")).path(), "/document");
            assert_eq!(err(action, Some("[]")).path(), "/document");
        }
        // trust.fetch: any object; a Query when it is one.
        assert!(matches!(ok_doc("trust.fetch", None), AgentDocument::Absent));
        assert!(matches!(
            ok_doc("trust.fetch", Some("{}")),
            AgentDocument::Object(_)
        ));
        assert!(matches!(
            ok_doc("trust.fetch", Some(r#"{"limit":1}"#)),
            AgentDocument::Query(_)
        ));
        assert_eq!(err("trust.fetch", Some(r#""x""#)).path(), "/document");
        // system.ping ignores its document.
        assert!(matches!(ok_doc("system.ping", None), AgentDocument::Absent));
        assert!(matches!(
            ok_doc("system.ping", Some("null")),
            AgentDocument::Ignored(_)
        ));
        assert!(matches!(
            ok_doc("system.ping", Some("[1]")),
            AgentDocument::Ignored(_)
        ));
        // draft.update: Mutation; draft.create: Create.
        let m = format!(r#"{{"id":"d1","document":{INVOICE}}}"#);
        assert!(matches!(
            ok_doc("draft.update", Some(&m)),
            AgentDocument::Mutation(_)
        ));
        assert_eq!(
            err("draft.update", Some(r#"{"id":"d1"}"#)).path(),
            "/document/document"
        );
        assert_eq!(
            err("draft.update", Some(r#"{"document":{}}"#)).path(),
            "/document/id"
        );
        let c = format!(r#"{{"type":"BTPS_DOC","document":{INVOICE}}}"#);
        match ok_doc("draft.create", Some(&c)) {
            AgentDocument::Create(c) => assert_eq!(c.kind, TransporterType::BtpsDoc),
            other => panic!("{other:?}"),
        }
        let c = format!(r#"{{"type":"TRUST_RES","document":{INVOICE}}}"#);
        assert_eq!(
            err("draft.create", Some(&c)).path(),
            "/document/document/decision"
        );
        let c = format!(r#"{{"type":"INVOICE","document":{INVOICE}}}"#);
        assert_eq!(err("draft.create", Some(&c)).path(), "/document/type");
        assert_eq!(
            err("draft.create", Some(r#"{"type":"BTPS_DOC"}"#)).path(),
            "/document/document"
        );
        assert_eq!(
            err(
                "draft.create",
                Some(&format!(r#"{{"document":{INVOICE}}}"#))
            )
            .path(),
            "/document/type"
        );
    }

    #[test]
    fn queries() {
        let q = r#"{"since":"2025-06-01T00:00:00.000Z","until":"2025-07-01T00:00Z","limit":10,"cursor":"c","sort":"asc","query":{"title":{"like":"Inv","notLike":"x","eq":"a","ne":"b","in":["x"],"notIn":[]},"from":{"eq":"billing$vendorcorp.test"},"to":{}}}"#;
        match ok_doc("inbox.fetch", Some(q)) {
            AgentDocument::Query(q) => {
                assert_eq!(q.sort, Some(SortOrder::Asc));
                assert_eq!(q.limit, Some(10.0));
                let title = q.query.unwrap().title.unwrap();
                assert_eq!(
                    (title.like, title.any_of.map(<[_]>::len)),
                    (Some("Inv"), Some(1))
                );
            }
            other => panic!("{other:?}"),
        }
        for (doc, path) in [
            (r#"{"since":"2025-06-01"}"#, "/document/since"),
            (r#"{"limit":"10"}"#, "/document/limit"),
            (r#"{"sort":"up"}"#, "/document/sort"),
            (r#"{"cursor":null}"#, "/document/cursor"),
            (r#"{"query":{"title":"Inv"}}"#, "/document/query/title"),
            (
                r#"{"query":{"title":{"in":"x"}}}"#,
                "/document/query/title/in",
            ),
            (r#"{"query":{"from":{"eq":1}}}"#, "/document/query/from/eq"),
        ] {
            assert_eq!(err("outbox.fetch", Some(doc)).path(), path, "{doc}");
        }
        for doc in [
            r#"{"query":{}}"#,
            r#"{"cursor":""}"#,
            r#"{"until":"2025-06-01T00:00Z","extra":1}"#,
        ] {
            agent("draft.fetch", Some(doc)).unwrap();
        }
        let e = err("trash.fetch", Some("{}"));
        assert!(e.reason().contains("at least one of"), "{e}");
    }

    #[test]
    fn auth_documents() {
        match ok_doc("auth.request", Some(AUTH)) {
            AgentDocument::AuthReq(a) => {
                assert_eq!(a.identity.as_str(), TO);
                assert!(a.agent_info.is_some());
            }
            other => panic!("{other:?}"),
        }
        agent("auth.refresh", Some(AUTH)).unwrap();
        for member in ["identity", "authToken", "publicKey"] {
            let mut d = obj(AUTH);
            d.remove(member);
            let e = err("auth.request", Some(&to_js_string(&Value::Object(d))));
            assert_eq!(e.path(), format!("/document/{member}"));
        }
        for (info, path) in [
            (r#"{"a":1}"#, "/document/agentInfo/a"),
            (r#"{"a":["x",2]}"#, "/document/agentInfo/a"),
            (r#"{"a":null}"#, "/document/agentInfo/a"),
            ("[]", "/document/agentInfo"),
            ("null", "/document/agentInfo"),
        ] {
            let mut d = obj(AUTH);
            d.insert("agentInfo", parse_str(info).unwrap().value);
            let e = err("auth.refresh", Some(&to_js_string(&Value::Object(d))));
            assert_eq!(e.path(), path, "{info}");
        }
        let mut d = obj(AUTH);
        d.insert("identity", "finance@buyer.test");
        assert_eq!(
            err("auth.request", Some(&to_js_string(&Value::Object(d)))).path(),
            "/document/identity"
        );
        assert_eq!(err("auth.request", None).path(), "/document");
        // auth.* must be plaintext.
        let o = obj(&agent_text("auth.request", Some(r#""QUJD""#), ENC));
        assert_eq!(validate_agent(&o).unwrap_err().path(), "/encryption");
    }

    #[test]
    fn send_envelopes() {
        for (action, kind, doc) in [
            ("trust.request", "TRUST_REQ", TRUST_REQ),
            ("trust.respond", "TRUST_RES", TRUST_RES),
            ("artifact.send", "BTPS_DOC", INVOICE),
        ] {
            let env = envelope_text(kind, doc);
            let o = obj(&agent_text(action, Some(&env), "null"));
            let a = validate_agent(&o).unwrap_or_else(|e| panic!("{action}: {e}"));
            assert!(a.is_send() && !a.is_immediate());
            assert_eq!(a.owner().unwrap().as_str(), "billing$vendorcorp.test");
            assert!(a.envelope().is_some());
            match &a.document {
                AgentDocument::Send(t) => assert_eq!(t.kind.as_str(), kind),
                other => panic!("{other:?}"),
            }
            // Wrong envelope type.
            let other = if kind == "BTPS_DOC" {
                "TRUST_REQ"
            } else {
                "BTPS_DOC"
            };
            let bad = env.replacen(
                &format!(r#""type":"{kind}""#),
                &format!(r#""type":"{other}""#),
                1,
            );
            let e = err(action, Some(&bad));
            assert!(e.path().starts_with("/document/"), "{e}");
            // A bare document instead of an envelope.
            assert_eq!(err(action, Some(doc)).path(), "/document/type");
            assert_eq!(err(action, None).path(), "/document");
            // Outer encryption must be null for send actions.
            let o = obj(&agent_text(action, Some(r#""QUJD""#), ENC));
            assert_eq!(validate_agent(&o).unwrap_err().path(), "/encryption");
        }
        // The envelope's `to` must equal the outer `to` (case-insensitive).
        let env = envelope_text("BTPS_DOC", INVOICE).replace(TO, "other$buyer.test");
        let mut o = obj(&agent_text("artifact.send", Some(&env), "null"));
        let e = validate_agent(&o).unwrap_err();
        assert_eq!(e.path(), "/document/to");
        assert!(e.reason().contains("must equal the artifact's `to`"), "{e}");
        o.insert("to", "Other$Buyer.test");
        validate_agent(&o).unwrap();
        // No delegation inside an envelope.
        let mut env = obj(&envelope_text("BTPS_DOC", INVOICE));
        env.insert("delegation", Object::new());
        let e = err("artifact.send", Some(&to_js_string(&Value::Object(env))));
        assert_eq!(e.path(), "/document/delegation");
        // An encrypted envelope document.
        let mut env = obj(&envelope_text("BTPS_DOC", INVOICE));
        env.insert("document", "QUJDREVG");
        env.insert("encryption", parse_str(ENC).unwrap().value);
        match ok_doc("artifact.send", Some(&to_js_string(&Value::Object(env)))) {
            AgentDocument::Send(t) => assert!(t.is_encrypted()),
            other => panic!("{other:?}"),
        }
        // Missing envelope members.
        for member in [
            "id",
            "issuedAt",
            "version",
            "from",
            "selector",
            "signature",
            "encryption",
        ] {
            let mut env = obj(&envelope_text("TRUST_REQ", TRUST_REQ));
            env.remove(member);
            let e = err("trust.request", Some(&to_js_string(&Value::Object(env))));
            assert_eq!(e.path(), format!("/document/{member}"));
        }
    }

    #[test]
    fn update_and_delete_forms() {
        // Bare forms: owner is `to`.
        let m = format!(r#"{{"id":"trust-rec-1","document":{TRUST_RES}}}"#);
        let o = obj(&agent_text("trust.update", Some(&m), "null"));
        let a = validate_agent(&o).unwrap();
        assert!(matches!(a.document, AgentDocument::Mutation(_)));
        assert_eq!(a.owner().unwrap().as_str(), TO);
        assert!(a.envelope().is_none() && a.is_immediate());
        let o = obj(&agent_text(
            "trust.delete",
            Some(r#"{"ids":["t1"]}"#),
            "null",
        ));
        assert!(matches!(
            validate_agent(&o).unwrap().document,
            AgentDocument::Ids(_)
        ));
        // Envelope forms: inner Mutation/Ids, envelope type ignored, owner `document.from`.
        for kind in ["TRUST_RES", "TRUST_REQ", "ANYTHING"] {
            let env = envelope_text("TRUST_RES", &m)
                .replace(r#""type":"TRUST_RES""#, &format!(r#""type":"{kind}""#));
            let o = obj(&agent_text("trust.update", Some(&env), "null"));
            let a = validate_agent(&o).unwrap_or_else(|e| panic!("{kind}: {e}"));
            match &a.document {
                AgentDocument::EnvelopedMutation(e, m) => {
                    assert_eq!(e.kind, kind);
                    assert_eq!(m.id, "trust-rec-1");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(a.owner().unwrap().as_str(), "billing$vendorcorp.test");
            assert!(a.envelope().is_some());
        }
        let env = envelope_text("TRUST_RES", r#"{"ids":["trust-rec-1"]}"#);
        let o = obj(&agent_text("trust.delete", Some(&env), "null"));
        assert!(matches!(
            validate_agent(&o).unwrap().document,
            AgentDocument::EnvelopedIds(..)
        ));
        // Envelope form with an invalid inner document.
        let env = envelope_text("TRUST_RES", r#"{"ids":"x"}"#);
        assert_eq!(
            err("trust.delete", Some(&env)).path(),
            "/document/document/ids"
        );
        let env = envelope_text("TRUST_RES", r#"{"id":"x","document":{}}"#);
        assert!(
            err("trust.update", Some(&env))
                .path()
                .starts_with("/document/document/document")
        );
        // Envelope form must be plaintext.
        let mut env = obj(&envelope_text("TRUST_RES", r#"{"ids":[]}"#));
        env.insert("encryption", parse_str(ENC).unwrap().value);
        let e = err("trust.delete", Some(&to_js_string(&Value::Object(env))));
        assert_eq!(e.path(), "/document/encryption");
    }

    #[test]
    fn encrypted_agent_documents() {
        // Non-send, non-auth actions may carry an encrypted string document.
        let o = obj(&agent_text("draft.update", Some(r#""QUJDREVG""#), ENC));
        let a = validate_agent(&o).unwrap();
        assert_eq!(a.document, AgentDocument::Encrypted("QUJDREVG"));
        assert!(a.encryption.is_some());
        let o = obj(&agent_text("inbox.fetch", Some(r#""QUJD""#), ENC));
        validate_agent(&o).unwrap();
        // Non-null encryption requires a string document.
        for doc in [
            None,
            Some(r#"{"ids":[]}"#),
            Some("null"),
            Some(r#""not base64""#),
        ] {
            let o = obj(&agent_text("inbox.delete", doc, ENC));
            assert_eq!(
                validate_agent(&o).unwrap_err().path(),
                "/document",
                "{doc:?}"
            );
        }
        let o = obj(&agent_text("system.ping", None, ENC));
        assert_eq!(validate_agent(&o).unwrap_err().path(), "/document");
        let o = obj(&agent_text(
            "inbox.delete",
            Some(r#""QUJD""#),
            r#"{"algorithm":"x"}"#,
        ));
        assert_eq!(
            validate_agent(&o).unwrap_err().path(),
            "/encryption/algorithm"
        );
        // A string document without encryption fails the action's schema.
        assert_eq!(err("inbox.delete", Some(r#""QUJD""#)).path(), "/document");
    }

    #[test]
    fn owner_and_replay() {
        let o = obj(&agent_text("auth.request", Some(AUTH), "null"));
        let a = validate_agent(&o).unwrap();
        assert_eq!(a.owner(), None);
        assert!(
            matches!(a.replay_key().scope, ReplayScope::AgentKey(pem) if pem.starts_with("-----BEGIN"))
        );
        let o = obj(&agent_text("auth.refresh", Some(AUTH), "null"));
        let a = validate_agent(&o).unwrap();
        assert_eq!(a.owner().unwrap().as_str(), TO);
        assert_eq!(
            a.replay_key(),
            ReplayKey {
                scope: ReplayScope::Agent("btps_ag_1"),
                id: "a-1"
            }
        );
        assert_eq!(a.freshness_reference(), a.issued_at_ms);
    }
}
