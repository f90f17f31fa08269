//! The key policy (PROTOCOL.md §4.2, §6.3; the `[keys]` section): RSA keys under 2048 bits,
//! and Ed25519 keys when `accept_ed25519 = false`, are "no valid public key"
//! (`BTP_ERROR_RESOLVE_PUBKEY`) wherever the key comes from: DNS (the cache parses records
//! under the same policy when the binary builds it), the `publicKey` of `auth.request` /
//! `auth.refresh`, a delegation's `agentPubKey`, or an agent record stored before the policy
//! changed.

use btps_crypto::{CryptoError, PublicKey, Verified};
use btps_types::artifact::AgentDocument;
use btps_types::{Artifact, ErrorCode};

use super::Pipeline;
use crate::error::{Result, ServerError};

impl Pipeline {
    /// The keys an artifact carries itself, checked before any signature work so that a
    /// refused key is reported as such rather than as a signature failure: the
    /// `document.publicKey` of `auth.request` / `auth.refresh` and a delegation's
    /// `agentPubKey`. A malformed key is left to the verification, which reports it with
    /// its layer's code.
    pub(super) fn check_carried_keys(&self, artifact: &Artifact<'_>) -> Result<()> {
        match artifact {
            Artifact::Transporter(t) => match &t.delegation {
                Some(d) => self.check_pem(d.agent_pub_key, "delegation.agentPubKey"),
                None => Ok(()),
            },
            Artifact::Agent(a) => match &a.document {
                AgentDocument::AuthReq(doc) => self.check_pem(doc.public_key, "document.publicKey"),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn check_pem(&self, pem: &str, what: &str) -> Result<()> {
        match self.opts.key_policy.parse_pem(pem) {
            Err(e @ (CryptoError::KeySize { .. } | CryptoError::KeyTypeRefused(_))) => {
                Err(refused(what, &e))
            }
            _ => Ok(()),
        }
    }

    /// The keys a verification used, against the policy: DNS keys resolved by a cache
    /// built with another policy, and stored agent keys.
    pub(super) fn check_verified(&self, verified: &Verified) -> Result<()> {
        self.check_key(&verified.signer, "signing key")?;
        match &verified.delegator {
            Some(key) => self.check_key(key, "delegator key"),
            None => Ok(()),
        }
    }

    /// One key against the policy.
    pub(super) fn check_key(&self, key: &PublicKey, what: &str) -> Result<()> {
        self.opts
            .key_policy
            .check(key)
            .map_err(|e| refused(what, &e))
    }
}

fn refused(what: &str, e: &CryptoError) -> ServerError {
    ServerError::refused(ErrorCode::ResolvePubkey, format!("{what}: {e}"))
}
