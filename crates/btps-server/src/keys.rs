//! Key lifecycle on the server (docs/keys.md): rotation proofs for pinned trust, the key
//! ring's rotation of the server's own keys, and the `.well-known` documents.
//!
//! * Receiving: when a pinned sender's key changed ([`KeyCheck::ProofRequired`]), the
//!   pipeline accepts the new key only through a chain of rotation proofs from the pinned
//!   key — carried in-band (`keyRotation`) or fetched from the sender's domain through a
//!   [`ProofSource`] ([`WellKnownProofs`] over HTTPS).
//! * Rotating: [`KeyRotation`] watches the key ring; once a pending key of a signing
//!   identity resolves in DNS, it activates it, switches the pipeline's signer and updates
//!   the identity store, so lookups and delegations use the new selector at once.
//! * Publishing: [`rotation_document`] and [`trust_list`] build the documents the HTTP
//!   listeners serve.
//!
//! [`KeyCheck::ProofRequired`]: btps_trust::KeyCheck::ProofRequired

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use btps_client::{KeyRing, WellKnownClient};
use btps_crypto::{
    IN_BAND_MEMBER, KeyPolicy, PublicKey, RotationDocument, RotationError, RotationProof,
    find_rotation_chain,
};
use btps_trust::{IdentityKey, IdentityRecord, PageRequest, TrustFilter, TrustRecord};
use btps_types::json::{Object, Value, object_to_js_string};
use btps_types::{Identity, UnixMillis};

use crate::pipeline::{Pipeline, Stores};

/// Where rotation proofs of a sender's domain come from.
#[async_trait]
pub trait ProofSource: Send + Sync + 'static {
    /// The proofs `domain` publishes.
    ///
    /// # Errors
    ///
    /// A description of why none could be had (unreachable, malformed, …).
    async fn proofs(&self, domain: &str) -> Result<Arc<[RotationProof]>, String>;
}

/// The outcome of one fetch of a domain's proofs.
type Fetched = Result<Arc<[RotationProof]>, String>;

/// [`ProofSource`] over HTTPS: `https://<domain>/.well-known/btp-key-rotation.json`, with
/// the results cached per domain (successes for `ttl`, failures for `failure_ttl`, so a
/// stream of artifacts from a sender with an unproven key does not fetch for each).
pub struct WellKnownProofs {
    client: WellKnownClient,
    ttl: Duration,
    failure_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Fetched)>>,
}

impl WellKnownProofs {
    /// Fetches with `client`; caches successes for 5 minutes and failures for 30 seconds.
    pub fn new(client: WellKnownClient) -> Self {
        Self {
            client,
            ttl: Duration::from_secs(300),
            failure_ttl: Duration::from_secs(30),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl ProofSource for WellKnownProofs {
    async fn proofs(&self, domain: &str) -> Result<Arc<[RotationProof]>, String> {
        let domain = domain.to_ascii_lowercase();
        if let Some((at, cached)) = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&domain)
        {
            let ttl = if cached.is_ok() {
                self.ttl
            } else {
                self.failure_ttl
            };
            if at.elapsed() < ttl {
                return cached.clone();
            }
        }
        let result: Result<Arc<[RotationProof]>, String> = self
            .client
            .rotation_proofs(&domain, KeyPolicy::DEFAULT)
            .await
            .map(|doc| doc.proofs.into())
            .map_err(|e| e.to_string());
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(domain, (Instant::now(), result.clone()));
        result
    }
}

/// How a rotation was proven, for `rotationHistory[].proofSource`.
pub(crate) const IN_BAND: &str = "in-band";
/// See [`IN_BAND`].
pub(crate) const WELL_KNOWN: &str = "well-known";

/// Looks for a chain of proofs from `record`'s pinned key to `signer` for `sender`: first in
/// `artifact`'s `keyRotation` member, then at `source`. Returns where the proof came from.
///
/// # Errors
///
/// The most telling [`RotationError`] (expired, bad signature, none).
pub(crate) async fn prove_rotation(
    artifact: &Object,
    record: &TrustRecord,
    sender: &Identity,
    signer: &PublicKey,
    source: Option<&Arc<dyn ProofSource>>,
    now: UnixMillis,
) -> Result<&'static str, RotationError> {
    let pinned = KeyPolicy::DEFAULT
        .parse_base64_spki(&record.public_key_base64)
        .map_err(|_| RotationError::Malformed("the pinned key"))?;
    let mut worst = RotationError::NoChain;
    if let Some(carried) = artifact.get(IN_BAND_MEMBER) {
        let items: Vec<&Object> = match carried {
            Value::Object(o) => vec![o],
            Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
            _ => Vec::new(),
        };
        let proofs: Vec<RotationProof> = items
            .into_iter()
            .take(btps_crypto::MAX_CHAIN)
            .filter_map(|o| RotationProof::from_object(o.clone(), KeyPolicy::DEFAULT).ok())
            .collect();
        match find_rotation_chain(&proofs, sender, &pinned, signer.fingerprint(), now) {
            Ok(_) => return Ok(IN_BAND),
            Err(e) => worst = e,
        }
    }
    if let Some(source) = source {
        match source.proofs(sender.domain()).await {
            Ok(proofs) => {
                match find_rotation_chain(&proofs, sender, &pinned, signer.fingerprint(), now) {
                    Ok(_) => return Ok(WELL_KNOWN),
                    Err(e) if worst == RotationError::NoChain => worst = e,
                    Err(_) => {}
                }
            }
            Err(why) => {
                tracing::info!(domain = sender.domain(), error = %why, "no rotation proofs");
            }
        }
    }
    Err(worst)
}

/// `/.well-known/btp-key-rotation.json` for `keyring`: every proof still valid at `now`.
///
/// # Errors
///
/// The key ring cannot be read.
pub fn rotation_document(keyring: &KeyRing, now: UnixMillis) -> Result<String, String> {
    let proofs = keyring.published_proofs(now).map_err(|e| e.to_string())?;
    Ok(RotationDocument { proofs }.to_json())
}

/// The most records [`trust_list`] publishes.
pub const TRUST_LIST_MAX: usize = 10_000;

/// `/.well-known/btps-trust.json` (PROTOCOL.md §7.7): the **active** identity-to-identity
/// records (agent records excluded), with only `senderId`, `receiverId`, `status`,
/// `expiresAt`, `publicKeyFingerprint` and `privacyType`, as `{"version":"1.0.0",
/// "trustedSenders":[…]}`. At most [`TRUST_LIST_MAX`] records.
///
/// # Errors
///
/// The trust store failed.
pub async fn trust_list(pipeline: &Pipeline, now: UnixMillis) -> Result<String, String> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(1000);
    loop {
        let p = pipeline
            .stores()
            .trust
            .list_trust(&TrustFilter::All, &page)
            .await
            .map_err(|e| e.to_string())?;
        for r in p.items {
            if !r.is_active(now) || r.sender_id.parse::<Identity>().is_err() {
                continue;
            }
            let mut o = Object::with_capacity(6)
                .with("senderId", r.sender_id.as_str())
                .with("receiverId", r.receiver_id.as_str())
                .with("status", r.status.as_str());
            if let Some(e) = r.expires_at {
                o.insert("expiresAt", e.to_datetime_string());
            }
            o.insert("publicKeyFingerprint", r.public_key_fingerprint.as_str());
            o.insert("privacyType", r.privacy_type.as_str());
            out.push(Value::Object(o));
            if out.len() >= TRUST_LIST_MAX {
                break;
            }
        }
        match p.next_cursor {
            Some(c) if out.len() < TRUST_LIST_MAX => page.cursor = Some(c),
            _ => break,
        }
    }
    Ok(object_to_js_string(
        &Object::new()
            .with("version", "1.0.0")
            .with("trustedSenders", out),
    ))
}

/// Settings of [`KeyRotation`].
#[derive(Clone, Debug)]
pub struct KeyRotationOptions {
    /// How long a replaced key keeps decrypting and stays published (at least the
    /// freshness window plus the longest delivery retry).
    pub grace: Duration,
    /// How often the key ring and DNS are checked.
    pub interval: Duration,
}

/// Activates the key ring's pending keys of the identities this server signs for once DNS
/// serves them, and keeps the pipeline's signers and the identity store on the key ring's
/// active keys.
pub struct KeyRotation {
    pipeline: Arc<Pipeline>,
    keyring: KeyRing,
    options: KeyRotationOptions,
}

impl KeyRotation {
    /// Watches `keyring` for `pipeline`'s signing identities.
    pub fn new(pipeline: Arc<Pipeline>, keyring: KeyRing, options: KeyRotationOptions) -> Self {
        Self {
            pipeline,
            keyring,
            options,
        }
    }

    /// Checks every `interval` until dropped.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "key rotation check failed");
            }
        }
    }

    /// One check: activate what DNS now serves, then follow the key ring's active keys.
    /// Returns the identities whose signing key switched.
    ///
    /// # Errors
    ///
    /// The key ring or the identity store failed.
    pub async fn check(&self) -> Result<Vec<String>, String> {
        let now = self.pipeline.now();
        let ring = self.keyring.clone();
        let identities = tokio::task::spawn_blocking(move || ring.load())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut switched = Vec::new();
        for (identity, current_selector) in self.pipeline.signing_identities() {
            let Ok(id) = identity.parse::<Identity>() else {
                continue;
            };
            let Some(keys) = identities.iter().find(|k| k.identity.eq_ignore_case(&id)) else {
                continue;
            };
            if let Some(pending) = keys.pending()
                && self
                    .published(&id, pending.selector.as_str(), &pending.fingerprint)
                    .await
            {
                let ring = self.keyring.clone();
                let (grace, idc) = (self.options.grace, id.clone());
                let selector = tokio::task::spawn_blocking(move || ring.activate(&idc, grace, now))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                tracing::info!(identity = %id, %selector, "rotated: the new key is published");
            }
            let ring = self.keyring.clone();
            let idc = id.clone();
            let (selector, key) = tokio::task::spawn_blocking(move || ring.active_key(&idc))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if selector.as_str() == current_selector {
                continue;
            }
            let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
            self.pipeline
                .switch_signing_key(&identity, selector.as_str(), || {
                    btps_crypto::KeyPair::from_pem(&pem)
                })
                .map_err(|e| e.to_string())?;
            publish_identity_key(
                self.pipeline.stores(),
                &id,
                selector.as_str(),
                key.public_key(),
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!(identity = %id, %selector, "signing with the new key");
            switched.push(identity);
        }
        Ok(switched)
    }

    async fn published(&self, identity: &Identity, selector: &str, fingerprint: &str) -> bool {
        match self.pipeline.dns().identity_keys(identity, selector).await {
            Ok(keys) => keys.iter().any(|k| k.fingerprint() == fingerprint),
            Err(e) => {
                tracing::debug!(%identity, selector, error = %e, "pending key not resolvable yet");
                false
            }
        }
    }
}

/// Makes `key` at `selector` the current key of `identity` in the identity store, so that
/// lookups answer with it; earlier keys are kept (they still verify what is in flight).
/// Nothing is written when `selector` is already current with this key. Returns whether it
/// wrote.
///
/// # Errors
///
/// The identity store failed.
pub async fn publish_identity_key(
    stores: &Stores,
    identity: &Identity,
    selector: &str,
    key: &PublicKey,
    now: UnixMillis,
) -> btps_trust::Result<bool> {
    let current = stores.identities.get_identity(identity.as_str()).await?;
    let up_to_date = current.as_ref().is_some_and(|r| {
        r.current_selector == selector
            && r.key(selector).is_some_and(|k| {
                PublicKey::from_pem(&k.public_key)
                    .is_ok_and(|p| p.fingerprint() == key.fingerprint())
            })
    });
    if up_to_date {
        return Ok(false);
    }
    let entry = IdentityKey::rsa(selector, &key.to_pem(), now);
    let record = match current {
        Some(mut r) => {
            r.rotate_to(entry);
            r
        }
        None => IdentityRecord::new(identity.clone(), entry),
    };
    stores.identities.put_identity(&record).await?;
    Ok(true)
}
