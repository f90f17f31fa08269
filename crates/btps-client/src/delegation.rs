//! Delegation and attestation (PROTOCOL.md §9) for the side that produces them: the
//! [`Delegator`] and [`Attestor`] wrappers over btps-crypto, the [`DeviceSender`] for the
//! SaaS / device send of §9.4, and the §6.6 device-delegation records to publish.

use std::sync::Arc;

use btps_crypto::{KeyPair, PublicKey, SystemRandom, sign_encrypt};
use btps_dns::{
    DEFAULT_RECORD_TTL, DnsCache, ZoneRecord, delegation_list_zone_record, device_zone_record,
};
use btps_types::artifact::{BusinessDocument, TransporterType};
use btps_types::json::{Object, Value};
use btps_types::{Identity, Selector, UnixMillis};

use crate::client::{Client, RequestOptions};
use crate::error::{ClientError, Result};
use crate::transporter::{Delivery, encryption_key};
use crate::util;

/// Checks that `key` is the key `identity` publishes at `selector`: sign and verify the
/// ASCII text `btps-key-validation` (PROTOCOL.md §9.4).
async fn check_key_published(
    identity: &Identity,
    selector: &Selector,
    key: &KeyPair,
    dns: &DnsCache,
) -> Result<()> {
    let published = dns.identity_keys(identity, selector.as_str()).await?;
    if published.iter().any(|p| key.check_matches(p).is_ok()) {
        Ok(())
    } else {
        Err(ClientError::KeyNotPublished {
            identity: identity.to_string(),
            selector: selector.to_string(),
        })
    }
}

/// An identity that vouches for device-signed artifacts with a `delegation`
/// (PROTOCOL.md §9.1, §9.4): usually the service identity of the user's domain
/// (`admin$saas.com`), or a custom-domain user itself (then with an [`Attestor`]).
///
/// It can only be created after its private key was checked against its DNS key
/// ([`new`](Self::new)), so it never signs with a key receivers cannot verify.
#[derive(Clone, Debug)]
pub struct Delegator {
    identity: Identity,
    selector: Selector,
    key: Arc<KeyPair>,
}

impl Delegator {
    /// A delegator, after checking that `key` is the DNS key of `identity` at `selector`
    /// ([`check_published`](Self::check_published)).
    ///
    /// # Errors
    ///
    /// [`ClientError::KeyNotPublished`] when the keys differ; [`ClientError::Dns`] when the
    /// DNS key cannot be had.
    pub async fn new(
        identity: Identity,
        selector: Selector,
        key: impl Into<Arc<KeyPair>>,
        dns: &DnsCache,
    ) -> Result<Self> {
        let d = Self {
            identity,
            selector,
            key: key.into(),
        };
        d.check_published(dns).await?;
        Ok(d)
    }

    /// Checks again that the private key is the identity's DNS key at its selector (for
    /// instance after a key rotation): signs and verifies `btps-key-validation`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub async fn check_published(&self, dns: &DnsCache) -> Result<()> {
        check_key_published(&self.identity, &self.selector, &self.key, dns).await
    }

    /// The delegator identity (`delegation.signedBy`).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The delegator's selector (`delegation.selector`).
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// Appends a fresh `delegation` for device `agent_id` (key `agent_pub_key_pem`, copied
    /// verbatim) to a device-signed artifact, `issuedAt` = `now`; an earlier delegation is
    /// replaced ([`btps_crypto::delegate`]). The device signature is checked first.
    ///
    /// # Errors
    ///
    /// [`ClientError::Crypto`]: an unusable device key, or an artifact the device did not
    /// sign.
    pub fn delegate(
        &self,
        artifact: &mut Object,
        agent_id: &str,
        agent_pub_key_pem: &str,
        now: UnixMillis,
    ) -> Result<()> {
        btps_crypto::delegate(
            artifact,
            agent_id,
            agent_pub_key_pem,
            &self.identity,
            &self.selector,
            &now.to_datetime_string(),
            &self.key,
        )?;
        Ok(())
    }
}

/// A third identity that countersigns a delegation whose delegator is the sender itself
/// (custom-domain users, PROTOCOL.md §9.1, §9.4). Like the [`Delegator`] it is created only
/// after its key was checked against DNS.
///
/// Interoperability: a btps-node receiver includes `attestation` in the delegation's signed
/// text and so refuses every correctly attested delegation; prefer a service-identity
/// delegator when the receiver may run btps-node.
#[derive(Clone, Debug)]
pub struct Attestor {
    identity: Identity,
    selector: Selector,
    key: Arc<KeyPair>,
}

impl Attestor {
    /// An attestor, after checking that `key` is the DNS key of `identity` at `selector`.
    ///
    /// # Errors
    ///
    /// As [`Delegator::new`].
    pub async fn new(
        identity: Identity,
        selector: Selector,
        key: impl Into<Arc<KeyPair>>,
        dns: &DnsCache,
    ) -> Result<Self> {
        let a = Self {
            identity,
            selector,
            key: key.into(),
        };
        check_key_published(&a.identity, &a.selector, &a.key, dns).await?;
        Ok(a)
    }

    /// The attestor identity (`attestation.signedBy`).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Adds an `attestation` (the attestor's own selector, `issuedAt` = `now`) to the
    /// artifact's signed delegation ([`btps_crypto::attest`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::Crypto`] when the artifact has no signed delegation.
    pub fn attest(&self, artifact: &mut Object, now: UnixMillis) -> Result<()> {
        btps_crypto::attest(
            artifact,
            &self.identity,
            &self.selector,
            &now.to_datetime_string(),
            &self.key,
        )?;
        Ok(())
    }
}

/// The DNS records of the device-delegation extension (PROTOCOL.md §6.6) that the server
/// of `identity` publishes for its `devices` (agent id and device key each): the list
/// `_btps.delegation.<account>.<domain>` naming every device, then one
/// `<deviceId>._btps.device.<account>.<domain>` key record per device. `ttl` 0 means the
/// default ([`DEFAULT_RECORD_TTL`]).
///
/// # Errors
///
/// [`ClientError::Dns`] when a device id is not one DNS label.
pub fn device_delegation_records(
    identity: &Identity,
    devices: &[(&str, &PublicKey)],
    ttl: u32,
) -> Result<Vec<ZoneRecord>> {
    let ttl = if ttl == 0 { DEFAULT_RECORD_TTL } else { ttl };
    let ids: Vec<&str> = devices.iter().map(|(id, _)| *id).collect();
    let mut records = vec![delegation_list_zone_record(identity, &ids, ttl)?];
    for (id, key) in devices {
        records.push(device_zone_record(identity, id, key, ttl)?);
    }
    Ok(records)
}

/// Builds and signs a device-signed transporter artifact (no `delegation` yet) from `from`
/// to `to`: members `version, type, from, to, selector, id, issuedAt, document,
/// encryption, signature`. The device has no DNS key of its own, so `selector` only names
/// the receiver's key (PROTOCOL.md §3.2, §5.4): the `s` of the receiver's host record, and
/// the key there encrypts the document when `encrypt`.
#[allow(clippy::too_many_arguments, reason = "all members of one artifact")]
pub(crate) async fn device_signed(
    dns: &DnsCache,
    from: &Identity,
    to: &Identity,
    kind: TransporterType,
    document: Object,
    id: Option<String>,
    encrypt: bool,
    device_key: &KeyPair,
) -> Result<Object> {
    let document = Value::Object(document);
    BusinessDocument::validate(kind, &document)?;
    let host = dns.host(to.domain()).await?;
    let selector = Selector::parse(&host.selector)?;
    let receiver = if encrypt {
        Some(encryption_key(dns, to, Some(&selector)).await?)
    } else {
        None
    };
    let id = match id {
        Some(id) => id,
        None => util::new_id()?,
    };
    let mut artifact = Object::with_capacity(10)
        .with("version", "1.0.0")
        .with("type", kind.as_str())
        .with("from", from.as_str())
        .with("to", to.as_str())
        .with("selector", selector.as_str())
        .with("id", id)
        .with("issuedAt", util::now().to_datetime_string());
    sign_encrypt(
        &mut artifact,
        &document,
        receiver.as_ref(),
        device_key,
        &SystemRandom,
    )?;
    Ok(artifact)
}

/// Sends transporter artifacts signed by a device key, with a delegation added by the
/// user's [`Delegator`] (and an [`Attestor`] when the delegator is the user itself): the
/// SaaS / device send of PROTOCOL.md §9.4, done by one process that holds both keys.
///
/// Each delivery attempt gets a fresh delegation (new `issuedAt`, new signatures) over the
/// unchanged device-signed artifact (§9.4); the receiver's replay check, keyed on the
/// device signature, makes the re-sends idempotent.
#[derive(Clone, Debug)]
pub struct DeviceSender {
    client: Client,
    identity: Identity,
    agent_id: String,
    device_key: Arc<KeyPair>,
    device_pem: String,
    delegator: Delegator,
    attestor: Option<Attestor>,
}

impl DeviceSender {
    /// A sender for user `identity` (the artifacts' `from`) through device `agent_id`
    /// holding `device_key`, delegated by `delegator`.
    pub fn new(
        client: Client,
        identity: Identity,
        agent_id: impl Into<String>,
        device_key: impl Into<Arc<KeyPair>>,
        delegator: Delegator,
    ) -> Self {
        let device_key = device_key.into();
        let device_pem = device_key.public_key().to_pem_with_newline();
        Self {
            client,
            identity,
            agent_id: agent_id.into(),
            device_key,
            device_pem,
            delegator,
            attestor: None,
        }
    }

    /// Adds an attestation by `attestor` to every delegation (required when the delegator
    /// is the sender itself, §9.3 step 2).
    #[must_use]
    pub fn with_attestor(mut self, attestor: Attestor) -> Self {
        self.attestor = Some(attestor);
        self
    }

    /// The device's agent id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// A device-signed artifact of `kind` to `to` (no delegation yet; see
    /// [`send`](Self::send)). `id` defaults to a fresh UUIDv4.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for a document that does not fit `kind`;
    /// [`ClientError::Dns`] for the receiver's host record or key; crypto errors.
    pub async fn sign(
        &self,
        kind: TransporterType,
        to: &Identity,
        document: Object,
        id: Option<String>,
        encrypt: bool,
    ) -> Result<Object> {
        device_signed(
            self.client.dns(),
            &self.identity,
            to,
            kind,
            document,
            id,
            encrypt,
            &self.device_key,
        )
        .await
    }

    /// The artifact with a fresh delegation (and attestation) as of `now`.
    ///
    /// # Errors
    ///
    /// As [`Delegator::delegate`] and [`Attestor::attest`].
    pub fn delegated(&self, device_signed: &Object, now: UnixMillis) -> Result<Object> {
        let mut artifact = device_signed.clone();
        self.delegator
            .delegate(&mut artifact, &self.agent_id, &self.device_pem, now)?;
        if let Some(attestor) = &self.attestor {
            attestor.attest(&mut artifact, now)?;
        }
        Ok(artifact)
    }

    /// Delegates and sends a device-signed artifact to the server of its `to`, with a fresh
    /// delegation per attempt.
    ///
    /// # Errors
    ///
    /// As [`Transporter::send`](crate::Transporter::send).
    pub async fn send(&self, device_signed: &Object) -> Result<Delivery> {
        let to = device_signed
            .get_str("to")
            .ok_or_else(|| ClientError::Invalid("the artifact has no string `to`".into()))?;
        let addr = self.client.server_for(&Identity::parse(to)?).await?;
        let reply = self
            .client
            .request_with(&addr, RequestOptions::idempotent(), |_| {
                self.delegated(device_signed, util::now())
            })
            .await?;
        Delivery::from_reply(reply)
    }

    /// Signs a new artifact with the device key and sends it with a delegation.
    ///
    /// # Errors
    ///
    /// As [`sign`](Self::sign) and [`send`](Self::send).
    pub async fn send_document(
        &self,
        kind: TransporterType,
        to: Identity,
        document: Object,
        encrypt: bool,
    ) -> Result<Delivery> {
        let artifact = self.sign(kind, &to, document, None, encrypt).await?;
        self.send(&artifact).await
    }

    /// The §6.6 records that publish this device for the user
    /// ([`device_delegation_records`] with this one device).
    ///
    /// # Errors
    ///
    /// As [`device_delegation_records`].
    pub fn device_records(&self, ttl: u32) -> Result<Vec<ZoneRecord>> {
        device_delegation_records(
            &self.identity,
            &[(&self.agent_id, self.device_key.public_key())],
            ttl,
        )
    }
}
