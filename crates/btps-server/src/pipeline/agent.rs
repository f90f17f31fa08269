//! Agent artifacts (§3.4, §8.3): verification with the device key of the agent record,
//! replay, then the send-type actions (durable enqueue in the owner's outbox) or the
//! immediate ones ([`super::actions`]).

use btps_crypto::{KeyRef, PublicKey, ResolvedKeys, verify_artifact};
use btps_trust::{
    CasOutcome, Decision, Expected, Mailbox, NewMessage, OutgoingRequest, ReplayEntry,
    ReplayOutcome, RequestTerms, StoreOutcome, TrustRecord, Verdict, decide, decision_applies,
    evaluate_agent, request_outgoing, trust_id,
};
use btps_types::artifact::{
    Agent, AgentAction, AgentDocument, BusinessDocument, Transporter, TransporterDocument,
};
use btps_types::json::Object;
use btps_types::{Artifact, ErrorCode, Identity, UnixMillis};

use super::Pipeline;
use super::transporter::ALREADY_ACCEPTED;
use crate::delivery::pending_delegation;
use crate::error::{Result, ServerError};
use crate::handler::Peer;
use crate::reply::Reply;

impl Pipeline {
    pub(super) async fn agent(
        &self,
        artifact: &Artifact<'_>,
        a: &Agent<'_>,
        peer: &Peer,
    ) -> Result<Reply> {
        let now = self.now();
        // `auth.*` have their own limit per identity (`to`); other actions are charged to
        // their agent once its signature is verified.
        self.rate_limit_peer(peer, now)?;
        if a.action.is_auth() && !self.limits.auth.check(&a.to.to_lowercase(), now) {
            return Err(ServerError::refused(
                ErrorCode::RateLimiter,
                format!("auth requests for {}", a.to),
            ));
        }
        // (6) Freshness.
        self.check_fresh(a.freshness_reference(), now, "issuedAt")?;
        match a.action {
            AgentAction::AuthRequest => return self.auth_request(artifact, a, now).await,
            AgentAction::AuthRefresh => return self.auth_refresh(artifact, a, now).await,
            _ => {}
        }
        let Some(owner) = a.owner() else {
            return Err(ServerError::refused(ErrorCode::Validation, "no owner"));
        };
        self.require_hosted(owner).await?;

        // (7) The device key from the agent record trustId(agentId, owner) (§8.3).
        let record_id = trust_id(a.agent_id, owner.as_str());
        let record = self.stores.trust.get_trust(&record_id).await?;
        let mut keys = ResolvedKeys::new();
        keys.insert(
            KeyRef::Agent {
                agent_id: a.agent_id.to_owned(),
                owner: owner.clone(),
            },
            agent_key(record.as_ref()),
        );
        let verified = verify_artifact(artifact, &keys)?;
        self.check_verified(&verified)?;
        self.rate_limit_sender(a.agent_id, now)?;

        // (8) The agent record must be active.
        if let Verdict::Refuse(r) = evaluate_agent(record.as_ref(), now) {
            return Err(ServerError::refused(
                r.code,
                format!("agent {} of {owner}: {r:?}", a.agent_id),
            ));
        }
        if a.encryption.is_some() || matches!(a.document, AgentDocument::Encrypted(_)) {
            // §3.4: passed to an application decryptor; this server has none.
            return Err(ServerError::refused(
                ErrorCode::UnsupportedEncrypt,
                "encrypted agent document",
            ));
        }

        // (9) Replay, (10) the action.
        let replay = self.replay_entry(&a.replay_key(), a.signature.value, a.issued_at_ms, now);
        if let AgentDocument::Send(envelope) = &a.document {
            let device = agent_key(record.as_ref())
                .ok()
                .and_then(|k| k.into_iter().next())
                .ok_or_else(|| ServerError::refused(ErrorCode::SigVerification, "agent key"))?;
            let pending = pending_delegation(a.agent_id, &device.to_pem_with_newline());
            return self
                .enqueue(a.action, envelope, owner, pending, &replay, now)
                .await;
        }
        match self.stores.replay.insert_replay(&replay, now).await? {
            ReplayOutcome::Inserted => {}
            ReplayOutcome::SameSignature => {
                self.count_already_accepted();
                return Ok(Reply::ok_with(None, ALREADY_ACCEPTED));
            }
            ReplayOutcome::DifferentSignature => {
                return Err(ServerError::refused(
                    ErrorCode::Duplicate,
                    format!("agent {} reuses id {}", a.agent_id, a.id),
                ));
            }
        }
        tracing::debug!(
            id = a.id,
            agent = a.agent_id,
            action = a.action.as_str(),
            "agent action"
        );
        self.immediate_action(a, owner, now).await
    }

    /// Send-type actions: the envelope is stored durably in the owner's outbox (with the
    /// replay entry, in one step) before the reply, with `pending` — the pending delegation
    /// `{agentId, agentPubKey}` — appended as its `delegation` member (the device signature
    /// does not cover it, §9.2); the delivery worker replaces it with a signed delegation at
    /// each attempt and is woken at once.
    async fn enqueue(
        &self,
        action: AgentAction,
        envelope: &Transporter<'_>,
        owner: &Identity,
        pending: Object,
        replay: &ReplayEntry,
        now: UnixMillis,
    ) -> Result<Reply> {
        let mut artifact = envelope.raw.clone();
        artifact.insert("delegation", pending);
        let message = NewMessage::new(owner.as_str(), Mailbox::Outbox, artifact, now)?;
        match self
            .stores
            .messages
            .store(&message, Some(replay), now)
            .await?
        {
            StoreOutcome::Stored => {}
            StoreOutcome::AlreadyAccepted => {
                self.count_already_accepted();
                return Ok(Reply::ok_with(None, ALREADY_ACCEPTED));
            }
            StoreOutcome::Duplicate => {
                return Err(ServerError::refused(
                    ErrorCode::Duplicate,
                    format!("outbox id {} of {owner} reused", envelope.id),
                ));
            }
        }
        match action {
            AgentAction::TrustRequest => self.outgoing_request(envelope, now).await?,
            AgentAction::TrustRespond => self.local_decision(envelope, now).await?,
            _ => {}
        }
        self.outbox_wake.notify_one();
        tracing::info!(id = envelope.id, from = %envelope.from, to = %envelope.to, kind = envelope.kind.as_str(), "queued for delivery");
        Ok(Reply::success(None))
    }

    /// §7.4 step 1: store (or reset) the outgoing record as `pending`; an active record is
    /// left as it is (the responder answers `BTP_ERROR_TRUST_ALREADY_ACTIVE` if it agrees).
    async fn outgoing_request(&self, envelope: &Transporter<'_>, now: UnixMillis) -> Result<()> {
        let terms = match &envelope.document {
            TransporterDocument::Plain(BusinessDocument::TrustReq(doc)) => {
                RequestTerms::from_trust_req(doc)
            }
            _ => RequestTerms::default(),
        };
        let id = trust_id(envelope.from.as_str(), envelope.to.as_str());
        let existing = self.stores.trust.get_trust(&id).await?;
        if let OutgoingRequest::Store(record) = request_outgoing(
            existing.as_ref(),
            envelope.from.as_str(),
            envelope.to.as_str(),
            terms,
            &self.opts.service_name,
            now,
        ) {
            let expected = existing
                .as_ref()
                .map_or(Expected::Absent, |r| Expected::Status(r.status));
            if let CasOutcome::Conflict(_) = self.stores.trust.transition(expected, &record).await?
            {
                tracing::warn!(trust_id = %id, "outgoing trust record changed concurrently");
            }
        }
        Ok(())
    }

    /// §7.4 step 3: the responder's record `trustId(requester, responder)` takes the user's
    /// decision when it applies; the `TRUST_RES` is delivered either way.
    async fn local_decision(&self, envelope: &Transporter<'_>, now: UnixMillis) -> Result<()> {
        let TransporterDocument::Plain(BusinessDocument::TrustRes(doc)) = &envelope.document else {
            return Ok(());
        };
        let id = trust_id(envelope.to.as_str(), envelope.from.as_str());
        let Some(record) = self.stores.trust.get_trust(&id).await? else {
            return Ok(());
        };
        let decision = Decision::from_trust_res(doc);
        if !decision_applies(record.status, decision.decision) {
            tracing::info!(trust_id = %id, status = ?record.status, "decision does not change the record");
            return Ok(());
        }
        let updated = decide(&record, &decision, now)?;
        self.stores
            .trust
            .transition(Expected::Status(record.status), &updated)
            .await?;
        Ok(())
    }
}

/// The agent's device key from its record (no record: an unknown key,
/// `BTP_ERROR_SIG_VERIFICATION`, §8.3).
pub(super) fn agent_key(record: Option<&TrustRecord>) -> Result<Vec<PublicKey>, ErrorCode> {
    let record = record.ok_or(ErrorCode::SigVerification)?;
    PublicKey::from_base64_spki(&record.public_key_base64)
        .map(|k| vec![k])
        .map_err(|_| ErrorCode::SigVerification)
}
