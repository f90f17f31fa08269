//! [`Transporter`]: signing and sending transporter artifacts as one identity
//! (PROTOCOL.md §3.2, §4.5, §5.2, §5.4, §10.2, §11.1).

use std::sync::Arc;

use btps_crypto::{KeyPair, PublicKey, SystemRandom, TransporterSigner};
use btps_dns::DnsCache;
use btps_types::artifact::{BusinessDocument, TransporterType};
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, Selector, UnixMillis};

use crate::client::Client;
use crate::error::Result;
use crate::response::Response;
use crate::util;

/// `status.message` of a reply to an exact re-send (PROTOCOL.md §10.2).
const ALREADY_ACCEPTED: &str = "already accepted";

/// How an artifact was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Accepted now (200).
    Accepted,
    /// Accepted before: this was an exact re-send (200 `already accepted`).
    AlreadyAccepted,
    /// The receiver already holds an artifact with this id from this sender (409
    /// `BTP_ERROR_DUPLICATE`): counted as delivered (PROTOCOL.md §2.6).
    Duplicate,
}

/// A delivered artifact: how, and the receiver's reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// How it was delivered.
    pub status: DeliveryStatus,
    /// The receiver's reply.
    pub response: Response,
}

impl Delivery {
    /// Reads a delivery reply: 200 is delivered, 409 `BTP_ERROR_DUPLICATE` too, anything
    /// else is an error.
    pub(crate) fn from_reply(response: Response) -> Result<Self> {
        let status = if response.ok() {
            if response.message() == ALREADY_ACCEPTED {
                DeliveryStatus::AlreadyAccepted
            } else {
                DeliveryStatus::Accepted
            }
        } else if response.error_code() == Some(ErrorCode::Duplicate) {
            DeliveryStatus::Duplicate
        } else {
            return Err(response.rejection());
        };
        Ok(Self { status, response })
    }
}

/// Typestate marker: the builder has no identity yet.
#[derive(Clone, Copy, Debug)]
pub struct NeedIdentity;
/// Typestate marker: the builder has no selector yet.
#[derive(Clone, Copy, Debug)]
pub struct NeedSelector;
/// Typestate marker: the builder has no key yet.
#[derive(Clone, Copy, Debug)]
pub struct NeedKey;

/// Builds a [`Transporter`]; only the state with an identity, a selector and a key has
/// [`build`](TransporterBuilder::build), so an artifact cannot be signed without them.
///
/// ```compile_fail
/// # fn f(client: btps_client::Client) {
/// let t = btps_client::Transporter::builder(client)
///     .identity("billing$vendorcorp.test".parse().unwrap())
///     .build(); // no selector, no key: does not compile
/// # }
/// ```
#[derive(Debug)]
pub struct TransporterBuilder<I, S, K> {
    client: Client,
    identity: I,
    selector: S,
    key: K,
}

impl<S, K> TransporterBuilder<NeedIdentity, S, K> {
    /// The identity that sends (`from`) and whose DNS key verifies the signature.
    pub fn identity(self, identity: Identity) -> TransporterBuilder<Identity, S, K> {
        TransporterBuilder {
            client: self.client,
            identity,
            selector: self.selector,
            key: self.key,
        }
    }
}

impl<I, K> TransporterBuilder<I, NeedSelector, K> {
    /// The selector the identity's key is published under (the artifacts' `selector`).
    pub fn selector(self, selector: Selector) -> TransporterBuilder<I, Selector, K> {
        TransporterBuilder {
            client: self.client,
            identity: self.identity,
            selector,
            key: self.key,
        }
    }
}

impl<I, S> TransporterBuilder<I, S, NeedKey> {
    /// The identity's private key at that selector.
    pub fn key(self, key: impl Into<Arc<KeyPair>>) -> TransporterBuilder<I, S, Arc<KeyPair>> {
        TransporterBuilder {
            client: self.client,
            identity: self.identity,
            selector: self.selector,
            key: key.into(),
        }
    }
}

impl TransporterBuilder<Identity, Selector, Arc<KeyPair>> {
    /// The transporter.
    pub fn build(self) -> Transporter {
        Transporter {
            client: self.client,
            identity: self.identity,
            selector: self.selector,
            key: self.key,
            rotation_proof: None,
        }
    }
}

/// Signs (and optionally encrypts) transporter artifacts as one identity and delivers them
/// to the receivers' servers.
///
/// Sending is idempotent: a retry re-sends the exact same line, which the receiver's replay
/// check answers with `already accepted` if the first attempt got through
/// (PROTOCOL.md §10.2). Retries stay within seconds, far inside the freshness window, so
/// artifacts are not re-signed for them (§10.1).
#[derive(Clone, Debug)]
pub struct Transporter {
    client: Client,
    identity: Identity,
    selector: Selector,
    key: Arc<KeyPair>,
    rotation_proof: Option<Arc<btps_crypto::RotationProof>>,
}

impl Transporter {
    /// Carries `proof` in every artifact, as the `keyRotation` member (covered by the
    /// signature): receivers that pinned this identity's previous key accept the new one on
    /// it (docs/keys.md). Use the proof whose new key is this transporter's key while
    /// receivers catch up ([`KeyRing::current_proof`](crate::KeyRing::current_proof)).
    #[must_use]
    pub fn with_rotation_proof(mut self, proof: btps_crypto::RotationProof) -> Self {
        self.rotation_proof = Some(Arc::new(proof));
        self
    }

    /// A builder: set [`identity`](TransporterBuilder::identity),
    /// [`selector`](TransporterBuilder::selector) and [`key`](TransporterBuilder::key),
    /// then [`build`](TransporterBuilder::build).
    pub fn builder(client: Client) -> TransporterBuilder<NeedIdentity, NeedSelector, NeedKey> {
        TransporterBuilder {
            client,
            identity: NeedIdentity,
            selector: NeedSelector,
            key: NeedKey,
        }
    }

    /// The sending identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The signing key's selector.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts an artifact of `kind` to `to` carrying `document` (validated against the
    /// schema of `kind` when signed).
    pub fn artifact(
        &self,
        kind: TransporterType,
        to: Identity,
        document: Object,
    ) -> ArtifactBuilder<'_> {
        ArtifactBuilder {
            transporter: self,
            kind,
            to,
            document,
            id: None,
            issued_at: None,
            encrypt: false,
        }
    }

    /// Sends a signed artifact to the server of its `to` and reads the delivery verdict:
    /// 200 (also `already accepted`) and 409 `BTP_ERROR_DUPLICATE` are delivered.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`](crate::ClientError::Rejected) for any other reply (e.g.
    /// `BTP_ERROR_TRUST_NON_EXISTENT`,
    /// `BTP_ERROR_SIG_VERIFICATION`), transport and DNS errors after the retries.
    pub async fn send(&self, artifact: &Object) -> Result<Delivery> {
        Delivery::from_reply(self.client.send(artifact).await?)
    }

    /// Signs a new artifact of `kind` to `to` (encrypted when `encrypt`) and sends it.
    ///
    /// # Errors
    ///
    /// As [`ArtifactBuilder::sign`] and [`send`](Self::send).
    pub async fn send_document(
        &self,
        kind: TransporterType,
        to: Identity,
        document: Object,
        encrypt: bool,
    ) -> Result<Delivery> {
        let artifact = self
            .artifact(kind, to, document)
            .encrypt(encrypt)
            .sign()
            .await?;
        self.send(&artifact).await
    }
}

/// One artifact being prepared by a [`Transporter`].
#[derive(Debug)]
#[must_use = "an artifact builder does nothing until signed"]
pub struct ArtifactBuilder<'a> {
    transporter: &'a Transporter,
    kind: TransporterType,
    to: Identity,
    document: Object,
    id: Option<String>,
    issued_at: Option<UnixMillis>,
    encrypt: bool,
}

impl ArtifactBuilder<'_> {
    /// The artifact `id` (default: a fresh UUIDv4).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The `issuedAt` instant (default: now).
    pub fn issued_at(mut self, at: UnixMillis) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// Encrypts the document for the receiver (default: plain).
    pub fn encrypt(mut self, encrypt: bool) -> Self {
        self.encrypt = encrypt;
        self
    }

    /// Builds and signs the artifact, members in writer order `version, type, from, to,
    /// selector, id, issuedAt, document, encryption, signature` (PROTOCOL.md §3.2).
    ///
    /// Encrypted (encrypt-then-sign, §5.2) to the receiver's DNS key at this transporter's
    /// selector when the receiver publishes one there, else at the receiver's current
    /// selector (the `s` of its host record), PROTOCOL.md §5.4.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`](crate::ClientError::Invalid) for a document that does not
    /// fit the schema of its kind; [`ClientError::Dns`](crate::ClientError::Dns) when the
    /// receiver's key cannot be resolved; crypto errors.
    pub async fn sign(self) -> Result<Object> {
        let t = self.transporter;
        let document = Value::Object(self.document);
        BusinessDocument::validate(self.kind, &document)?;
        let id = match self.id {
            Some(id) => id,
            None => util::new_id()?,
        };
        let issued_at = self.issued_at.unwrap_or_else(util::now);
        let receiver = if self.encrypt {
            Some(encryption_key(t.client.dns(), &self.to, Some(&t.selector)).await?)
        } else {
            None
        };
        let mut artifact = Object::with_capacity(10)
            .with("version", "1.0.0")
            .with("type", self.kind.as_str())
            .with("from", t.identity.as_str())
            .with("to", self.to.as_str())
            .with("selector", t.selector.as_str())
            .with("id", id)
            .with("issuedAt", issued_at.to_datetime_string());
        if let Some(proof) = &t.rotation_proof {
            artifact.insert(btps_crypto::IN_BAND_MEMBER, proof.as_object().clone());
        }
        TransporterSigner::new(&t.key)
            .identity(t.identity.clone())
            .selector(t.selector.clone())
            .sign_encrypt(&mut artifact, &document, receiver.as_ref(), &SystemRandom)?;
        Ok(artifact)
    }
}

/// The receiver's encryption key (PROTOCOL.md §5.4): at `preferred` when the receiver
/// publishes a key there, else at its current selector. Temporary DNS failures are
/// returned, never papered over.
pub(crate) async fn encryption_key(
    dns: &DnsCache,
    to: &Identity,
    preferred: Option<&Selector>,
) -> Result<PublicKey> {
    if let Some(selector) = preferred {
        match dns.encryption_key(to, selector.as_str()).await {
            Ok(key) => return Ok(key),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let host = dns.host(to.domain()).await?;
    Ok(dns.encryption_key(to, &host.selector).await?)
}
