//! Agent onboarding and refresh (§8.2, §8.4): single-use tokens, rotation, and revocation
//! that a refresh cannot undo.

use btps_crypto::{KeyRef, PublicKey, ResolvedKeys, verify_artifact};
use btps_trust::{
    CasOutcome, Expected, KeyHistoryEntry, ReplayOutcome, TokenHash, TokenKind, TokenOutcome,
    TokenRecord, TrustRecord, TrustStatus, generate_agent_id, generate_refresh_token, trust_id,
};
use btps_types::artifact::{Agent, AgentDocument, AuthReq};
use btps_types::json::Object;
use btps_types::{Artifact, ErrorCode, UnixMillis};

use super::Pipeline;
use crate::error::{Result, ServerError};
use crate::reply::Reply;

/// `status.message` of auth replies (btps-node's wording).
const AUTH_OK: &str = "Authentication successful";

fn auth_invalid(detail: impl Into<String>) -> ServerError {
    ServerError::refused(ErrorCode::AuthenticationInvalid, detail)
}

impl Pipeline {
    fn refresh_ms(&self) -> i64 {
        let secs = self.opts.tokens.refresh_token_secs.min(90 * 24 * 3600);
        i64::try_from(secs).unwrap_or(0).saturating_mul(1000)
    }

    fn auth_failure(&self, identity: &str, now: UnixMillis) {
        // Spend a token of the failure budget; over it, further attempts are rate limited.
        let _ = self.limits.auth_failures.check(identity, now);
    }

    fn auth_budget_left(&self, identity: &str, now: UnixMillis) -> Result<()> {
        if self.limits.auth_failures.peek(identity, now) {
            Ok(())
        } else {
            Err(ServerError::refused(
                ErrorCode::RateLimiter,
                format!("too many failed auth attempts for {identity}"),
            ))
        }
    }

    fn auth_document<'a>(a: &'a Agent<'_>) -> Result<&'a AuthReq<'a>> {
        match &a.document {
            AgentDocument::AuthReq(doc) => Ok(doc),
            _ => Err(ServerError::refused(ErrorCode::Validation, "auth document")),
        }
    }

    async fn issue_refresh(
        &self,
        agent_id: &str,
        user: &str,
        decrypt_by: &str,
        now: UnixMillis,
    ) -> Result<(String, TokenRecord)> {
        let token = generate_refresh_token(&self.rng)?;
        let record = TokenRecord {
            kind: TokenKind::Refresh,
            hash: TokenHash::of(&token),
            subject: agent_id.to_owned(),
            user_identity: user.to_owned(),
            decrypt_by: decrypt_by.to_owned(),
            metadata: None,
            created_at: now,
            expires_at: now.saturating_add_millis(self.refresh_ms()),
        };
        Ok((token, record))
    }

    fn auth_reply(agent_id: &str, token: &TokenRecord, refresh: &str) -> Reply {
        Reply::ok_with(None, AUTH_OK).with_document(
            Object::with_capacity(4)
                .with("agentId", agent_id)
                .with("refreshToken", refresh)
                .with("expiresAt", token.expires_at.to_datetime_string())
                .with("decryptBy", token.decrypt_by.as_str()),
        )
    }

    /// §8.2: self-signed with `document.publicKey`; `document.identity` = `to`, hosted; the
    /// auth token consumed atomically; an agent record and a refresh token created.
    pub(super) async fn auth_request(
        &self,
        artifact: &Artifact<'_>,
        a: &Agent<'_>,
        now: UnixMillis,
    ) -> Result<Reply> {
        let doc = Self::auth_document(a)?;
        // Self-signed: the key is the document's (no lookup), under the key policy.
        self.check_carried_keys(artifact)?;
        let verified = verify_artifact(artifact, &ResolvedKeys::new())?;
        let user = a.to.to_lowercase();
        if !doc.identity.eq_ignore_case(&a.to) {
            return Err(auth_invalid("document.identity differs from to"));
        }
        self.require_hosted(&a.to).await?;
        self.auth_budget_left(&user, now)?;
        let replay = self.replay_entry(&a.replay_key(), a.signature.value, a.issued_at_ms, now);
        if self
            .stores
            .replay
            .get_replay(&replay.scope, &replay.id, now)
            .await?
            .is_some()
        {
            // The token of the first request is spent; a second answer cannot carry
            // credentials.
            return Err(ServerError::refused(
                ErrorCode::Duplicate,
                "auth.request re-sent",
            ));
        }
        let token = match self
            .stores
            .identities
            .consume_token(TokenKind::Auth, &user, &TokenHash::of(doc.auth_token), now)
            .await?
        {
            TokenOutcome::Consumed(t) => t,
            TokenOutcome::AlreadyUsed(_) | TokenOutcome::Invalid => {
                self.auth_failure(&user, now);
                return Err(auth_invalid("auth token invalid, expired or used"));
            }
        };
        let agent_id = generate_agent_id(&self.rng)?;
        let key = &verified.signer;
        let record = TrustRecord::new_agent(
            &agent_id,
            &user,
            &key.to_base64_spki(),
            key.fingerprint(),
            &self.opts.service_name,
            doc.agent_info,
            now,
            self.refresh_ms(),
        );
        self.stores.trust.put_trust(&record).await?;
        let decrypt_by = if token.decrypt_by.is_empty() {
            user.clone()
        } else {
            token.decrypt_by.clone()
        };
        let (refresh, refresh_record) = self
            .issue_refresh(&agent_id, &user, &decrypt_by, now)
            .await?;
        self.stores.identities.create_token(&refresh_record).await?;
        self.stores.replay.insert_replay(&replay, now).await?;
        tracing::info!(agent = %agent_id, identity = %user, "agent onboarded");
        Ok(Self::auth_reply(&agent_id, &refresh_record, &refresh))
    }

    /// §8.4: the agent record must be `accepted` and unexpired (never revived); the refresh
    /// token is single-use and rotated; a new device key proves possession by signing; reuse
    /// of a rotated token revokes the agent.
    pub(super) async fn auth_refresh(
        &self,
        artifact: &Artifact<'_>,
        a: &Agent<'_>,
        now: UnixMillis,
    ) -> Result<Reply> {
        let doc = Self::auth_document(a)?;
        let user = a.to.to_lowercase();
        self.auth_budget_left(&user, now)?;
        let record_id = trust_id(a.agent_id, a.to.as_str());
        let Some(record) = self.stores.trust.get_trust(&record_id).await? else {
            self.auth_failure(&user, now);
            return Err(auth_invalid(format!("no agent {}", a.agent_id)));
        };
        if !doc.identity.eq_ignore_case(&a.to) || !record.receiver_id.eq_ignore_ascii_case(&user) {
            return Err(auth_invalid("identity mismatch"));
        }
        self.check_carried_keys(artifact)?;
        let new_key = PublicKey::from_pem(doc.public_key)
            .map_err(|e| ServerError::refused(ErrorCode::SigVerification, e.to_string()))?;
        let rotated_key = new_key.fingerprint() != record.public_key_fingerprint;
        let key = if rotated_key {
            new_key
        } else {
            PublicKey::from_base64_spki(&record.public_key_base64)
                .map_err(|e| ServerError::refused(ErrorCode::SigVerification, e.to_string()))?
        };
        // A stored key the policy no longer accepts (Ed25519 turned off): rotate to one it
        // does, or onboard again.
        self.check_key(&key, "agent key")?;
        let mut keys = ResolvedKeys::new();
        keys.insert(
            KeyRef::Agent {
                agent_id: a.agent_id.to_owned(),
                owner: a.to.clone(),
            },
            Ok(vec![key.clone()]),
        );
        verify_artifact(artifact, &keys)?;
        if record.status != TrustStatus::Accepted || !record.is_active(now) {
            self.auth_failure(&user, now);
            return Err(auth_invalid(format!(
                "agent {} is {:?}",
                a.agent_id, record.status
            )));
        }
        let replay = self.replay_entry(&a.replay_key(), a.signature.value, a.issued_at_ms, now);
        if self.stores.replay.insert_replay(&replay, now).await? != ReplayOutcome::Inserted {
            return Err(ServerError::refused(
                ErrorCode::Duplicate,
                "auth.refresh re-sent",
            ));
        }
        let decrypt_by = record
            .metadata
            .as_ref()
            .and_then(|m| m.get_str("decryptBy"))
            .unwrap_or(&user)
            .to_owned();
        let (refresh, new_token) = self
            .issue_refresh(a.agent_id, &user, &decrypt_by, now)
            .await?;
        let old = TokenHash::of(doc.auth_token);
        let consumed = match self
            .stores
            .identities
            .rotate_token(&old, &new_token, now)
            .await?
        {
            TokenOutcome::Consumed(t) => t,
            TokenOutcome::AlreadyUsed(_) => {
                // A rotated token came back: it was copied. Revoke the agent (§8.4).
                self.revoke_agent(&record, now).await?;
                return Err(auth_invalid(format!(
                    "refresh token reuse: agent {} revoked",
                    a.agent_id
                )));
            }
            TokenOutcome::Invalid => {
                self.auth_failure(&user, now);
                return Err(auth_invalid("refresh token invalid or expired"));
            }
        };
        let mut updated = record.clone();
        if rotated_key {
            updated.key_history.push(KeyHistoryEntry {
                fingerprint: record.public_key_fingerprint.clone(),
                first_seen: record.decided_at,
                last_seen: now,
                extra: Object::new(),
            });
            updated.public_key_base64 = key.to_base64_spki();
            updated.public_key_fingerprint = key.fingerprint().to_owned();
        }
        updated.expires_at = Some(now.saturating_add_millis(self.refresh_ms()));
        updated.decided_at = now;
        if let Some(info) = doc.agent_info {
            let mut meta = updated.metadata.take().unwrap_or_default();
            meta.insert("agentInfo", info.clone());
            updated.metadata = Some(meta);
        }
        if let CasOutcome::Conflict(_) = self
            .stores
            .trust
            .transition(Expected::Status(TrustStatus::Accepted), &updated)
            .await?
        {
            return Err(auth_invalid("agent record changed concurrently"));
        }
        let decrypt_by = if consumed.decrypt_by.is_empty() {
            decrypt_by
        } else {
            consumed.decrypt_by.clone()
        };
        let reply_token = TokenRecord {
            decrypt_by,
            ..new_token
        };
        Ok(Self::auth_reply(a.agent_id, &reply_token, &refresh))
    }

    /// §8.5: the agent record becomes `revoked` and its refresh tokens are deleted.
    pub(crate) async fn revoke_agent(&self, record: &TrustRecord, now: UnixMillis) -> Result<()> {
        let revoked = btps_trust::revoke(record, &self.opts.service_name, None, now)?;
        self.stores
            .trust
            .transition(Expected::Status(record.status), &revoked)
            .await?;
        self.stores
            .identities
            .revoke_tokens(TokenKind::Refresh, &record.sender_id, now)
            .await?;
        tracing::warn!(agent = %record.sender_id, "agent revoked");
        Ok(())
    }
}
