//! Verification of a whole validated artifact: PROTOCOL.md §2.7 step 7 (key resolution,
//! signature, delegation, attestation, send envelopes) for transporter and agent artifacts,
//! and §2.5 for signed server replies.
//!
//! Sans-IO: [`required_keys`] says which keys an artifact needs; the caller resolves them
//! (DNS, agent store) however it likes — asynchronously, with a cache — and hands them over
//! through a [`KeySource`] (for instance a [`ResolvedKeys`] filled beforehand).

use btps_types::artifact::{Agent, AgentAction, AgentDocument, Response, Transporter};
use btps_types::json::Object;
use btps_types::{Artifact, ErrorCode, Identity, signing};

use crate::{
    CryptoError, PublicKey, check_delegation_rules, select_by_fingerprint, verify,
    verify_delegation,
};

/// A key an artifact needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyRef {
    /// The DNS identity key `<selector>._btps.identity.<account>.<domain>` (§6.1).
    Identity {
        /// Whose key.
        identity: Identity,
        /// Which selector.
        selector: String,
    },
    /// The device key of a registered agent, from the agent record `trustId(agentId, owner)`
    /// (§8.3).
    Agent {
        /// The agent id.
        agent_id: String,
        /// The owner identity (§3.5).
        owner: Identity,
    },
}

/// Where keys come from. Implementations answer from whatever they resolved; errors are the
/// wire codes to report (`BTP_ERROR_RESOLVE_PUBKEY` for "no such key",
/// `BTP_ERROR_DNS_UNAVAILABLE` for a temporary failure, `BTP_ERROR_SIG_VERIFICATION` for an
/// unknown agent, §8.3).
pub trait KeySource {
    /// The usable keys published for `identity` at `selector` (several records may exist,
    /// §6.2; the verifier picks the one whose fingerprint matches).
    ///
    /// # Errors
    ///
    /// The wire code to report.
    fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Vec<PublicKey>, ErrorCode>;

    /// The device key of agent `agent_id` owned by `owner`.
    ///
    /// # Errors
    ///
    /// The wire code to report.
    fn agent_key(&self, agent_id: &str, owner: &Identity) -> Result<PublicKey, ErrorCode>;
}

/// A [`KeySource`] filled ahead of time, e.g. by an async resolver that looked up every
/// [`KeyRef`] of [`required_keys`].
#[derive(Clone, Debug, Default)]
pub struct ResolvedKeys {
    entries: Vec<(KeyRef, Result<Vec<PublicKey>, ErrorCode>)>,
}

impl ResolvedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the answer for `key`.
    pub fn insert(&mut self, key: KeyRef, answer: Result<Vec<PublicKey>, ErrorCode>) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, answer));
    }

    fn get(&self, key: &KeyRef) -> Result<Vec<PublicKey>, ErrorCode> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Err(ErrorCode::ResolvePubkey), |(_, v)| v.clone())
    }
}

impl KeySource for ResolvedKeys {
    fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Vec<PublicKey>, ErrorCode> {
        self.get(&KeyRef::Identity {
            identity: identity.clone(),
            selector: selector.to_owned(),
        })
    }

    fn agent_key(&self, agent_id: &str, owner: &Identity) -> Result<PublicKey, ErrorCode> {
        let key = KeyRef::Agent {
            agent_id: agent_id.to_owned(),
            owner: owner.clone(),
        };
        match self.get(&key) {
            Ok(keys) => keys.into_iter().next().ok_or(ErrorCode::SigVerification),
            Err(ErrorCode::ResolvePubkey) => Err(ErrorCode::SigVerification),
            Err(e) => Err(e),
        }
    }
}

/// Why an artifact did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A key could not be had.
    #[error("key for {what} unavailable: {code}")]
    Key {
        /// The wire code the key source gave.
        code: ErrorCode,
        /// Which key (for logs).
        what: String,
    },
    /// A signature, delegation or attestation check failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl VerifyError {
    /// The wire error code.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Key { code, .. } => *code,
            Self::Crypto(e) => e.error_code(),
        }
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed the artifact itself: the sender's DNS key, the device key of a
    /// delegated artifact, or the agent's device key.
    pub signer: PublicKey,
    /// For delegated artifacts, the delegator's DNS key.
    pub delegator: Option<PublicKey>,
}

/// The keys `artifact` needs, in the order [`verify_artifact`] asks for them. Control and
/// identity-lookup artifacts (unsigned) and `auth.request` (self-signed) need none.
pub fn required_keys(artifact: &Artifact<'_>) -> Vec<KeyRef> {
    let dns = |identity: &Identity, selector: &str| KeyRef::Identity {
        identity: identity.clone(),
        selector: selector.to_owned(),
    };
    match artifact {
        Artifact::Transporter(t) => match &t.delegation {
            Some(d) => {
                let mut keys = Vec::with_capacity(2);
                if let Some(a) = &d.attestation {
                    keys.push(dns(&a.signed_by, a.selector));
                }
                keys.push(dns(&d.signed_by, d.selector));
                keys
            }
            None => vec![dns(&t.from, t.selector)],
        },
        Artifact::Agent(a) => match a.owner() {
            Some(owner) => vec![KeyRef::Agent {
                agent_id: a.agent_id.to_owned(),
                owner: owner.clone(),
            }],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Verifies every signature of a transporter or agent artifact over the **received** value
/// (PROTOCOL.md §4.4, §8.3, §9.3). Unsigned kinds verify trivially with no signer: use
/// [`required_keys`] to tell them apart; this function returns
/// `CryptoError::ArtifactMember` for them.
///
/// # Errors
///
/// [`VerifyError`]; [`VerifyError::error_code`] is the wire code.
pub fn verify_artifact(
    artifact: &Artifact<'_>,
    keys: &dyn KeySource,
) -> Result<Verified, VerifyError> {
    match artifact {
        Artifact::Transporter(t) => verify_transporter(t, keys),
        Artifact::Agent(a) => verify_agent(a, keys),
        _ => Err(CryptoError::ArtifactMember("signature").into()),
    }
}

fn pick(
    keys: &dyn KeySource,
    identity: &Identity,
    selector: &str,
    fingerprint: &str,
) -> Result<PublicKey, VerifyError> {
    let candidates = keys
        .identity_keys(identity, selector)
        .map_err(|code| VerifyError::Key {
            code,
            what: format!("{identity} at selector {selector}"),
        })?;
    // Several usable records: the one whose fingerprint matches (§6.2); else the first, which
    // then fails with the fingerprint mismatch.
    select_by_fingerprint(&candidates, fingerprint)
        .or_else(|| candidates.first())
        .cloned()
        .ok_or_else(|| VerifyError::Key {
            code: ErrorCode::ResolvePubkey,
            what: format!("{identity} at selector {selector}"),
        })
}

fn verify_transporter(t: &Transporter<'_>, keys: &dyn KeySource) -> Result<Verified, VerifyError> {
    let Some(d) = &t.delegation else {
        let key = pick(keys, &t.from, t.selector, t.signature.fingerprint)?;
        verify(t.raw, signing::TRANSPORTER, &key)?;
        return Ok(Verified {
            signer: key,
            delegator: None,
        });
    };
    // §9.3 steps 1–2 before any key lookup.
    check_delegation_rules(&t.from, d.raw)?;
    let attestor = match &d.attestation {
        Some(a) => Some(pick(
            keys,
            &a.signed_by,
            a.selector,
            a.signature.fingerprint,
        )?),
        None => None,
    };
    let delegator = pick(keys, &d.signed_by, d.selector, d.signature.fingerprint)?;
    let device = verify_delegation(t.raw, &delegator, attestor.as_ref())?;
    Ok(Verified {
        signer: device,
        delegator: Some(delegator),
    })
}

fn verify_agent(a: &Agent<'_>, keys: &dyn KeySource) -> Result<Verified, VerifyError> {
    let key = match (a.action, &a.document, a.owner()) {
        // Onboarding is self-signed with the key it registers (§8.2 step 3).
        (AgentAction::AuthRequest, AgentDocument::AuthReq(doc), _) => {
            PublicKey::from_pem(doc.public_key).map_err(|_| VerifyError::Key {
                code: ErrorCode::SigVerification,
                what: "auth.request document.publicKey".to_owned(),
            })?
        }
        (_, _, Some(owner)) => {
            keys.agent_key(a.agent_id, owner)
                .map_err(|code| VerifyError::Key {
                    code,
                    what: format!("agent {} of {owner}", a.agent_id),
                })?
        }
        _ => return Err(CryptoError::ArtifactMember("document").into()),
    };
    verify(a.raw, signing::AGENT, &key)?;
    // The send envelope carries its own device signature (§3.5).
    if let Some(envelope) = a.envelope() {
        verify(envelope, signing::ENVELOPE, &key)?;
    }
    Ok(Verified {
        signer: key,
        delegator: None,
    })
}

/// Verifies a signed server reply with DNS(`signedBy`, `selector`) over the reply minus
/// `signature`, exactly as received — no `encryption: null` is added (PROTOCOL.md §2.5;
/// btps-node's client gets this wrong).
///
/// # Errors
///
/// [`VerifyError`]; an unsigned reply is `CryptoError::ArtifactMember("signature")`.
pub fn verify_response(
    reply: &Response<'_>,
    keys: &dyn KeySource,
) -> Result<PublicKey, VerifyError> {
    let (Some(sig), Some(signed_by), Some(selector)) =
        (&reply.signature, &reply.signed_by, reply.selector)
    else {
        return Err(CryptoError::ArtifactMember("signature").into());
    };
    let key = pick(keys, signed_by, selector, sig.fingerprint)?;
    verify(reply.raw, signing::RESPONSE, &key)?;
    Ok(key)
}

/// [`verify_response`] on a raw reply object (validated first).
///
/// # Errors
///
/// As [`verify_response`]; a reply that fails its schema is
/// `CryptoError::ArtifactMember("reply")`.
pub fn verify_response_object(
    reply: &Object,
    keys: &dyn KeySource,
) -> Result<PublicKey, VerifyError> {
    let reply = btps_types::validate_response(reply)
        .map_err(|_| VerifyError::Crypto(CryptoError::ArtifactMember("reply")))?;
    verify_response(&reply, keys)
}
