//! [`Agent`]: a device acting for its user at the user's own server (PROTOCOL.md §3.4,
//! §3.5, §8).

mod types;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use btps_crypto::{
    Decrypted, KeyPair, KeyRef, KeyType, ResolvedKeys, VerifyError, decrypt_with_any,
    required_keys, sign_in_place, verify_artifact,
};
use btps_dns::DnsCache;
use btps_types::artifact::{AuthRes, TransporterType, validate_transporter};
use btps_types::json::{Object, Value};
use btps_types::{Artifact, Identity, Selector, signing};

pub use types::{AgentState, Mailbox, Page, PageEntry, Query, Queued, TrustPage};

use crate::ServerAddr;
use crate::client::{Client, RequestOptions};
use crate::delegation::device_signed;
use crate::error::{ClientError, Result};
use crate::response::Response;
use crate::util;
use types::count_in;

/// The `agentId` of `auth.request`, before the server assigns one (PROTOCOL.md §8.2).
const TEMP_AGENT_ID: &str = "temp";

/// A callback told of every new [`AgentState`] (after onboarding and each refresh).
pub type StateHook = Arc<dyn Fn(&AgentState) + Send + Sync>;

/// How a request is repeated after a retryable failure (`auth.*` is never repeated once
/// written and does not go through [`Agent::call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Re-signed with a new `id` and `issuedAt`: reads, and changes that are idempotent
    /// by content (seen, delete, cancel, update). An exact re-send would only get
    /// `already accepted` without the result.
    Resign,
    /// The exact same line: send-type actions and `draft.create`, whose replay check makes
    /// a re-send answer `already accepted` instead of doing it twice.
    Resend,
}

/// The device key and its public PEM as sent in `auth.*` documents.
struct DeviceKey {
    key: KeyPair,
    pem: String,
}

impl DeviceKey {
    fn new(key: KeyPair) -> Arc<Self> {
        let pem = key.public_key().to_pem_with_newline();
        Arc::new(Self { key, pem })
    }
}

/// A registered agent (device) of a user identity, talking to the user's own server.
///
/// * [`onboard`](Self::onboard) registers a new device with a one-time auth token and an
///   RSA-2048 device key (`auth.request`),
///   [`onboard_with_key_type`](Self::onboard_with_key_type) with an Ed25519 one;
///   [`resume`](Self::resume) continues from a saved [`AgentState`].
/// * Before each call, a refresh token that expires within the refresh margin (default
///   10 minutes) is rotated with `auth.refresh` ([`refresh`](Self::refresh)); every new
///   state goes to the [state hook](Self::set_state_hook) so it can be saved — the old
///   refresh token no longer works.
/// * One method per action of §3.5, with typed results. Every artifact is signed by the
///   device key, members in the order `action, agentId, to, document, encryption, id,
///   issuedAt, version, signature` (§3.4).
/// * [`rotate_device_key`](Self::rotate_device_key) replaces the device key through
///   `auth.refresh` (§8.4), keeping its type unless another is asked for.
///
/// Device key types (PROTOCOL.md §6.3): RSA-2048 by default. Ed25519 is opt-in and only for
/// Rust peers: the user's server must accept it (`[keys] accept_ed25519`, on by default),
/// and the artifacts this agent queues are delivered with an Ed25519 device signature
/// (`S_agent`, §9.2) that btps-node receivers cannot verify. The device key only signs:
/// nothing is ever encrypted to it. Documents sent to the user are encrypted to the RSA key
/// of the `decryptBy` identity ([`AgentState::decrypt_by`]), and [`decrypt`](Self::decrypt)
/// takes those identity keys, so an Ed25519 device decrypts exactly as an RSA one.
///
/// Known limit: if the reply to `auth.refresh` is lost, the server has already rotated the
/// token (and, for a key rotation, the key) and the agent must be onboarded again (refresh
/// tokens are single-use by design, §8.4; the request is never re-sent).
pub struct Agent {
    client: Client,
    device: RwLock<Arc<DeviceKey>>,
    state: Mutex<AgentState>,
    refresh_lock: tokio::sync::Mutex<()>,
    refresh_margin: Duration,
    hook: Option<StateHook>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state", &*self.lock())
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Registers a new device for `identity` at `server` with the one-time `auth_token`
    /// (PROTOCOL.md §8.2): generates an RSA-2048 device key and sends `auth.request`
    /// (`agentId` `"temp"`, document `{identity, authToken, publicKey, agentInfo?}`,
    /// self-signed with the new key). Not re-sent once written: the token is single-use.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] (`BTP_ERROR_AUTHENTICATION_INVALID` for a bad, expired or
    /// used token); [`ClientError::Invalid`] for a reply without a valid AuthRes document;
    /// transport errors.
    pub async fn onboard(
        client: Client,
        server: ServerAddr,
        identity: Identity,
        auth_token: &str,
        agent_info: Option<Object>,
    ) -> Result<Self> {
        Self::onboard_with_key_type(
            client,
            server,
            identity,
            auth_token,
            agent_info,
            KeyType::Rsa,
        )
        .await
    }

    /// [`onboard`](Self::onboard) with a device key of `key_type`: [`KeyType::Rsa`]
    /// (RSA-2048, the default) or [`KeyType::Ed25519`] (opt-in, between Rust peers only;
    /// see the [type documentation](Self)).
    ///
    /// # Errors
    ///
    /// As [`onboard`](Self::onboard); a server that refuses the key type answers
    /// `BTP_ERROR_RESOLVE_PUBKEY`.
    pub async fn onboard_with_key_type(
        client: Client,
        server: ServerAddr,
        identity: Identity,
        auth_token: &str,
        agent_info: Option<Object>,
        key_type: KeyType,
    ) -> Result<Self> {
        let device = DeviceKey::new(KeyPair::generate(key_type)?);
        let mut document = Object::with_capacity(4)
            .with("identity", identity.as_str())
            .with("authToken", auth_token)
            .with("publicKey", device.pem.as_str());
        if let Some(info) = agent_info {
            document.insert("agentInfo", info);
        }
        let request = agent_artifact(
            &device.key,
            "auth.request",
            TEMP_AGENT_ID,
            &identity,
            Some(Value::Object(document)),
        )?;
        let reply = client
            .request(&server, &request, RequestOptions::default())
            .await?
            .into_result()?;
        let state = auth_state(&reply, server, identity, device.key.to_pkcs8_pem()?)?;
        tracing::info!(agent = %state.agent_id, identity = %state.identity, key_type = %device.key.key_type(), "agent onboarded");
        Ok(Self {
            client,
            device: RwLock::new(device),
            state: Mutex::new(state),
            refresh_lock: tokio::sync::Mutex::new(()),
            refresh_margin: Duration::from_secs(600),
            hook: None,
        })
    }

    /// An agent from a saved state (a CLI profile).
    ///
    /// # Errors
    ///
    /// [`ClientError::Crypto`] when the device key does not load.
    pub fn resume(client: Client, state: AgentState) -> Result<Self> {
        let device = DeviceKey::new(KeyPair::from_pem(&state.device_key_pem)?);
        Ok(Self {
            client,
            device: RwLock::new(device),
            state: Mutex::new(state),
            refresh_lock: tokio::sync::Mutex::new(()),
            refresh_margin: Duration::from_secs(600),
            hook: None,
        })
    }

    /// Refresh the token before a call when it expires within `margin` (default 10
    /// minutes).
    #[must_use]
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Calls `hook` with every new state (after each refresh), to persist the rotated
    /// refresh token.
    pub fn set_state_hook(&mut self, hook: impl Fn(&AgentState) + Send + Sync + 'static) {
        self.hook = Some(Arc::new(hook));
    }

    /// The current state (save it: it holds the current refresh token).
    pub fn state(&self) -> AgentState {
        self.lock().clone()
    }

    /// The user identity.
    pub fn identity(&self) -> Identity {
        self.lock().identity.clone()
    }

    /// The agent id.
    pub fn agent_id(&self) -> String {
        self.lock().agent_id.clone()
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The type of the device key.
    pub fn device_key_type(&self) -> KeyType {
        self.device().key.key_type()
    }

    fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current device key.
    fn device(&self) -> Arc<DeviceKey> {
        self.device
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rotates the refresh token now (`auth.refresh`, PROTOCOL.md §8.4): the server answers
    /// with a new token and expiry, and the old token stops working. Returns (and hands the
    /// hook) the new state.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] with `BTP_ERROR_AUTHENTICATION_INVALID` when the token is
    /// expired, used or the agent revoked (onboard again); transport errors.
    pub async fn refresh(&self) -> Result<AgentState> {
        let _guard = self.refresh_lock.lock().await;
        self.refresh_locked(None).await
    }

    /// Replaces the device key (PROTOCOL.md §8.4): generates a new key — of the current
    /// type, or `key_type` when given — and sends `auth.refresh` with it as
    /// `document.publicKey`, signed by the new key (proof of possession). The server moves
    /// the old key to the record's `keyHistory`; the refresh token is rotated as with
    /// [`refresh`](Self::refresh). The new state, with the new `device_key_pem`, goes to the
    /// state hook: save it, the old key no longer works.
    ///
    /// # Errors
    ///
    /// As [`refresh`](Self::refresh); a server that refuses the key type answers
    /// `BTP_ERROR_RESOLVE_PUBKEY` and the agent keeps its key and token.
    pub async fn rotate_device_key(&self, key_type: Option<KeyType>) -> Result<AgentState> {
        let key_type = key_type.unwrap_or_else(|| self.device_key_type());
        let next = DeviceKey::new(KeyPair::generate(key_type)?);
        let _guard = self.refresh_lock.lock().await;
        self.refresh_locked(Some(next)).await
    }

    /// `auth.refresh` with the current device key, or with `new_key` (a key rotation).
    async fn refresh_locked(&self, new_key: Option<Arc<DeviceKey>>) -> Result<AgentState> {
        let state = self.state();
        let device = new_key.clone().unwrap_or_else(|| self.device());
        let document = Object::with_capacity(3)
            .with("identity", state.identity.as_str())
            .with("authToken", state.refresh_token.as_str())
            .with("publicKey", device.pem.as_str());
        let request = agent_artifact(
            &device.key,
            "auth.refresh",
            &state.agent_id,
            &state.identity,
            Some(Value::Object(document)),
        )?;
        let reply = self
            .client
            .request(&state.server, &request, RequestOptions::default())
            .await?
            .into_result()?;
        let device_key_pem = match &new_key {
            Some(k) => k.key.to_pkcs8_pem()?,
            None => state.device_key_pem.clone(),
        };
        let next = auth_state(
            &reply,
            state.server.clone(),
            state.identity.clone(),
            device_key_pem,
        )?;
        if next.agent_id != state.agent_id {
            return Err(ClientError::Invalid(format!(
                "auth.refresh answered agent {}, asked for {}",
                next.agent_id, state.agent_id
            )));
        }
        if let Some(k) = new_key {
            *self
                .device
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = k;
            tracing::info!(agent = %next.agent_id, fingerprint = device.key.public_key().fingerprint(), "device key rotated");
        }
        *self.lock() = next.clone();
        tracing::debug!(agent = %next.agent_id, expires_at = %next.expires_at, "refresh token rotated");
        if let Some(hook) = &self.hook {
            hook(&next);
        }
        Ok(next)
    }

    /// Refreshes first when the token expires within the margin.
    async fn ensure_fresh(&self) -> Result<()> {
        let margin = i64::try_from(self.refresh_margin.as_millis()).unwrap_or(i64::MAX);
        let due = |s: &AgentState| util::now().saturating_add_millis(margin) >= s.expires_at;
        if !due(&self.lock()) {
            return Ok(());
        }
        let _guard = self.refresh_lock.lock().await;
        // Another call may have refreshed while this one waited.
        if due(&self.lock()) {
            self.refresh_locked(None).await?;
        }
        Ok(())
    }

    /// Sends one agent action and returns the success reply.
    async fn call(
        &self,
        action: &str,
        to: Option<&Identity>,
        document: Option<Value>,
        repeat: Repeat,
    ) -> Result<Response> {
        self.ensure_fresh().await?;
        let (server, agent_id, identity) = {
            let s = self.lock();
            (s.server.clone(), s.agent_id.clone(), s.identity.clone())
        };
        let to = to.unwrap_or(&identity);
        let device = self.device();
        let make = |_| agent_artifact(&device.key, action, &agent_id, to, document.clone());
        let reply = match repeat {
            Repeat::Resign => {
                self.client
                    .request_with(&server, RequestOptions::idempotent(), make)
                    .await?
            }
            Repeat::Resend => {
                let artifact = make(1)?;
                self.client
                    .request(&server, &artifact, RequestOptions::idempotent())
                    .await?
            }
        };
        reply.into_result()
    }

    /// `system.ping`: checks that the server accepts this agent.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] when it does not; transport errors.
    pub async fn ping(&self) -> Result<()> {
        self.call("system.ping", None, None, Repeat::Resign).await?;
        Ok(())
    }

    /// `<mailbox>.fetch` with `query`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`], [`ClientError::Invalid`] for a malformed result,
    /// transport errors.
    pub async fn fetch(&self, mailbox: Mailbox, query: &Query) -> Result<Page> {
        let reply = self
            .call(
                mailbox.fetch_action(),
                None,
                query.to_document().map(Value::Object),
                Repeat::Resign,
            )
            .await?;
        Page::from_document(reply.document())
    }

    /// `inbox.fetch`: received artifacts.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn inbox(&self, query: &Query) -> Result<Page> {
        self.fetch(Mailbox::Inbox, query).await
    }

    /// `outbox.fetch`: artifacts waiting for delivery, with their delivery state in `meta`.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn outbox(&self, query: &Query) -> Result<Page> {
        self.fetch(Mailbox::Outbox, query).await
    }

    /// `sentbox.fetch`: delivered artifacts.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn sentbox(&self, query: &Query) -> Result<Page> {
        self.fetch(Mailbox::Sentbox, query).await
    }

    /// `draft.fetch`: drafts.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn drafts(&self, query: &Query) -> Result<Page> {
        self.fetch(Mailbox::Drafts, query).await
    }

    /// `trash.fetch`: deleted artifacts.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn trash(&self, query: &Query) -> Result<Page> {
        self.fetch(Mailbox::Trash, query).await
    }

    /// `trust.fetch`: the user's trust records (incoming, a page at a time, and outgoing).
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn trust(&self, query: &Query) -> Result<TrustPage> {
        let reply = self
            .call(
                "trust.fetch",
                None,
                query.to_document().map(Value::Object),
                Repeat::Resign,
            )
            .await?;
        TrustPage::from_document(reply.document())
    }

    async fn ids_action(&self, action: &str, ids: &[&str], member: &str) -> Result<u64> {
        let reply = self
            .call(action, None, Some(ids_document(ids)), Repeat::Resign)
            .await?;
        count_in(reply.document(), member)
    }

    /// `inbox.seen`: marks inbox artifacts seen; returns how many changed.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn inbox_seen(&self, ids: &[&str]) -> Result<u64> {
        self.ids_action("inbox.seen", ids, "updated").await
    }

    /// `<mailbox>.delete` (inbox, sentbox, drafts to the trash; trash for good); returns
    /// how many were deleted. The outbox has [`outbox_cancel`](Self::outbox_cancel).
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for the outbox; otherwise as [`fetch`](Self::fetch).
    pub async fn delete(&self, mailbox: Mailbox, ids: &[&str]) -> Result<u64> {
        let action = mailbox.delete_action().ok_or_else(|| {
            ClientError::Invalid("the outbox has no delete: use outbox_cancel".into())
        })?;
        self.ids_action(action, ids, "deleted").await
    }

    /// `inbox.delete`.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn inbox_delete(&self, ids: &[&str]) -> Result<u64> {
        self.delete(Mailbox::Inbox, ids).await
    }

    /// `sentbox.delete`.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn sentbox_delete(&self, ids: &[&str]) -> Result<u64> {
        self.delete(Mailbox::Sentbox, ids).await
    }

    /// `draft.delete`.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn draft_delete(&self, ids: &[&str]) -> Result<u64> {
        self.delete(Mailbox::Drafts, ids).await
    }

    /// `trash.delete`: removes artifacts from the trash for good.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn trash_delete(&self, ids: &[&str]) -> Result<u64> {
        self.delete(Mailbox::Trash, ids).await
    }

    /// `outbox.cancel`: stops delivery of queued artifacts; returns the ids cancelled.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn outbox_cancel(&self, ids: &[&str]) -> Result<Vec<String>> {
        let reply = self
            .call(
                "outbox.cancel",
                None,
                Some(ids_document(ids)),
                Repeat::Resign,
            )
            .await?;
        reply
            .document_object()
            .and_then(|d| d.get("cancelled"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .ok_or_else(|| ClientError::Invalid("reply document: no cancelled list".into()))
    }

    /// `draft.create`: a draft of `kind` with `document`; returns the draft's id.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] when the reply has no id — which happens when a lost reply
    /// made the client re-send and the server answered `already accepted` (the draft
    /// exists once); otherwise as [`fetch`](Self::fetch).
    pub async fn draft_create(&self, kind: TransporterType, document: Object) -> Result<String> {
        let create = Object::with_capacity(2)
            .with("type", kind.as_str())
            .with("document", document);
        let reply = self
            .call(
                "draft.create",
                None,
                Some(Value::Object(create)),
                Repeat::Resend,
            )
            .await?;
        reply
            .document_object()
            .and_then(|d| d.get_str("id"))
            .map(str::to_owned)
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "draft.create reply without an id ({})",
                    reply.message()
                ))
            })
    }

    /// `draft.update`: replaces the document of draft `id`; returns 1 if it exists.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn draft_update(&self, id: &str, document: Object) -> Result<u64> {
        let reply = self
            .call(
                "draft.update",
                None,
                Some(mutation(id, document)),
                Repeat::Resign,
            )
            .await?;
        count_in(reply.document(), "updated")
    }

    /// `trust.update`: applies a `TRUST_RES` decision (or `TRUST_REQ` terms) to the user's
    /// trust record `id` (its trust id, §7.2); returns 1 if it changed.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] with `BTP_ERROR_TRUST_NOT_ALLOWED` when the decision does
    /// not apply; otherwise as [`fetch`](Self::fetch).
    pub async fn trust_update(&self, id: &str, document: Object) -> Result<u64> {
        let reply = self
            .call(
                "trust.update",
                None,
                Some(mutation(id, document)),
                Repeat::Resign,
            )
            .await?;
        count_in(reply.document(), "updated")
    }

    /// `trust.delete`: removes the user's trust records `ids`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn trust_delete(&self, ids: &[&str]) -> Result<u64> {
        self.ids_action("trust.delete", ids, "deleted").await
    }

    /// Builds Env(`kind`) — a transporter artifact from the user to `to`, signed by the
    /// device key — and sends it with a send-type action.
    async fn send_envelope(
        &self,
        action: &str,
        kind: TransporterType,
        to: &Identity,
        document: Object,
        encrypt: bool,
    ) -> Result<Queued> {
        let identity = self.identity();
        let device = self.device();
        let envelope = device_signed(
            self.client.dns(),
            &identity,
            to,
            kind,
            document,
            None,
            encrypt,
            &device.key,
        )
        .await?;
        let artifact_id = envelope.get_str("id").unwrap_or_default().to_owned();
        let reply = self
            .call(
                action,
                Some(to),
                Some(Value::Object(envelope)),
                Repeat::Resend,
            )
            .await?;
        Ok(Queued {
            artifact_id,
            already_accepted: reply.message() == "already accepted",
        })
    }

    /// `artifact.send`: queues an invoice (`BTPS_DOC`) from the user to `to` in the user's
    /// outbox; the server delegates and delivers it. With `encrypt`, the document is
    /// encrypted to `to`'s DNS key at the `s` of its host record (PROTOCOL.md §5.4).
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for a document that is not an invoice;
    /// [`ClientError::Dns`] for the receiver's records; as [`fetch`](Self::fetch).
    pub async fn send(&self, to: &Identity, document: Object, encrypt: bool) -> Result<Queued> {
        self.send_envelope(
            "artifact.send",
            TransporterType::BtpsDoc,
            to,
            document,
            encrypt,
        )
        .await
    }

    /// `trust.request`: asks `to` for trust with a `TRUST_REQ` document (PROTOCOL.md §7.4);
    /// the server records the outgoing request as pending and delivers it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn trust_request(&self, to: &Identity, document: Object) -> Result<Queued> {
        self.send_envelope(
            "trust.request",
            TransporterType::TrustReq,
            to,
            document,
            false,
        )
        .await
    }

    /// `trust.respond`: answers `to`'s trust request with a `TRUST_RES` document; the
    /// server applies the decision to its record and delivers it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn trust_respond(&self, to: &Identity, document: Object) -> Result<Queued> {
        self.send_envelope(
            "trust.respond",
            TransporterType::TrustRes,
            to,
            document,
            false,
        )
        .await
    }

    /// Verifies a received transporter artifact (plain or delegated, keys from DNS) and
    /// decrypts its document with the user's keys; see [`decrypt_artifact`].
    ///
    /// # Errors
    ///
    /// As [`decrypt_artifact`].
    pub async fn decrypt(
        &self,
        artifact: &Object,
        keys: &[(Selector, KeyPair)],
    ) -> Result<Decrypted> {
        decrypt_artifact(self.client.dns(), artifact, keys).await
    }
}

/// Verifies a received transporter artifact, then decrypts it (PROTOCOL.md §5.3, §5.4):
///
/// 1. the signature — DNS(`from`, `selector`), or for a delegated artifact the
///    attestation, delegation and device signatures with the delegator's and attestor's
///    DNS keys, plus the §6.6 DNS device check — never decrypting unverified input;
/// 2. the document, trying the private key whose selector is the artifact's `selector`
///    first, then the others in the order given (put the newest first).
///
/// A plain artifact returns its document as it is. Attribute the document only to the
/// identity that signed the artifact (§5.3).
///
/// # Errors
///
/// [`ClientError::Invalid`] for an artifact that is not a transporter artifact;
/// [`ClientError::Dns`] when a key cannot be resolved; [`ClientError::BadSignature`];
/// [`ClientError::Crypto`] with `BTP_ERROR_DECRYPTION_UNINTENDED` (no key fits) or
/// `BTP_ERROR_DECRYPTION_FAILED`.
pub async fn decrypt_artifact(
    dns: &DnsCache,
    artifact: &Object,
    keys: &[(Selector, KeyPair)],
) -> Result<Decrypted> {
    let transporter = validate_transporter(artifact)?;
    let device_id = transporter
        .delegation
        .as_ref()
        .map(|d| d.agent_id.to_owned());
    let from = transporter.from.clone();
    let view = Artifact::Transporter(transporter);
    let mut resolved = ResolvedKeys::new();
    for key in required_keys(&view) {
        if let KeyRef::Identity { identity, selector } = &key {
            let found = dns.identity_keys(identity, selector).await?;
            resolved.insert(key.clone(), Ok(found.to_vec()));
        }
    }
    let verified = verify_artifact(&view, &resolved).map_err(|e| match e {
        VerifyError::Crypto(e) => ClientError::BadSignature(e),
        other => ClientError::BadSignature(btps_crypto::CryptoError::InvalidKey(
            if other.error_code() == btps_types::ErrorCode::SigVerification {
                "unknown signing key"
            } else {
                "no usable key"
            },
        )),
    })?;
    if let Some(agent_id) = device_id {
        dns.check_device(&from, &agent_id, &verified.signer).await?;
    }
    let pairs: Vec<(&str, &KeyPair)> = keys.iter().map(|(s, k)| (s.as_str(), k)).collect();
    Ok(decrypt_with_any(artifact, &pairs)?)
}

/// An agent artifact signed by `key` (PROTOCOL.md §3.4 member order).
fn agent_artifact(
    key: &KeyPair,
    action: &str,
    agent_id: &str,
    to: &Identity,
    document: Option<Value>,
) -> Result<Object> {
    let mut a = Object::with_capacity(9)
        .with("action", action)
        .with("agentId", agent_id)
        .with("to", to.as_str());
    if let Some(d) = document {
        a.insert("document", d);
    }
    a.insert("encryption", Value::Null);
    a.insert("id", util::new_id()?);
    a.insert("issuedAt", util::now().to_datetime_string());
    a.insert("version", "1.0.0");
    sign_in_place(&mut a, signing::AGENT, key)?;
    Ok(a)
}

fn ids_document(ids: &[&str]) -> Value {
    let list: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    Value::Object(Object::new().with("ids", list))
}

fn mutation(id: &str, document: Object) -> Value {
    Value::Object(
        Object::with_capacity(2)
            .with("id", id)
            .with("document", document),
    )
}

/// The state an AuthRes reply establishes.
fn auth_state(
    reply: &Response,
    server: ServerAddr,
    identity: Identity,
    device_key_pem: String,
) -> Result<AgentState> {
    let document = reply
        .document()
        .ok_or_else(|| ClientError::Invalid("auth reply without document".into()))?;
    let res = AuthRes::validate(document)?;
    Ok(AgentState {
        server,
        identity,
        agent_id: res.agent_id.to_owned(),
        device_key_pem,
        refresh_token: res.refresh_token.to_owned(),
        expires_at: btps_types::UnixMillis::parse(res.expires_at)
            .map_err(|e| ClientError::Invalid(format!("AuthRes expiresAt: {e}")))?,
        decrypt_by: res.decrypt_by,
    })
}

#[cfg(test)]
mod tests {
    use btps_crypto::verify;
    use btps_types::{ArtifactKind, validate};

    use super::*;

    #[test]
    fn agent_artifacts_in_section_3_4_order() {
        let key = KeyPair::generate_ed25519().unwrap();
        let to: Identity = "finance$buyer.test".parse().unwrap();
        let query = Query::new().limit(5).to_document().map(Value::Object);
        let a = agent_artifact(&key, "inbox.fetch", "btps_ag_1", &to, query).unwrap();
        let members: Vec<String> = a.keys().map(ToString::to_string).collect();
        assert_eq!(
            members,
            [
                "action",
                "agentId",
                "to",
                "document",
                "encryption",
                "id",
                "issuedAt",
                "version",
                "signature"
            ]
        );
        assert_eq!(a.get("encryption"), Some(&Value::Null));
        verify(&a, signing::AGENT, key.public_key()).unwrap();
        let value = Value::Object(a);
        assert_eq!(validate(&value).unwrap().kind(), ArtifactKind::Agent);

        let ping = agent_artifact(&key, "system.ping", "btps_ag_1", &to, None).unwrap();
        assert!(!ping.contains_key("document"));
        assert_eq!(
            validate(&Value::Object(ping)).unwrap().kind(),
            ArtifactKind::Agent
        );

        let ids = ids_document(&["a", "b"]);
        assert_eq!(btps_types::json::to_js_string(&ids), r#"{"ids":["a","b"]}"#);
        let m = mutation("x", Object::new().with("k", 1_u32));
        assert_eq!(
            btps_types::json::to_js_string(&m),
            r#"{"id":"x","document":{"k":1}}"#
        );
    }
}
