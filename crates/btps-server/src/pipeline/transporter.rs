//! Transporter artifacts (§3.2): `BTPS_DOC`, `TRUST_REQ`, `TRUST_RES` from other servers
//! (or from this server's own delivery of a local recipient).

use btps_crypto::{ResolvedKeys, Verified, required_keys, verify_artifact};
use btps_dns::DeviceCheck;
use btps_trust::{
    CasOutcome, Decision, Expected, Incoming, IncomingKind, KeyCheck, Mailbox, NewMessage,
    RequestTerms, SenderKey, StoreOutcome, TrustRecord, Verdict, apply_response, check_sender_key,
    receive_request,
};
use btps_types::artifact::{BusinessDocument, TransporterDocument, TransporterType, TrustDecision};
use btps_types::{Artifact, ErrorCode, UnixMillis, artifact::Transporter};

use super::{Pipeline, artifact_text};
use crate::error::{Result, ServerError};
use crate::handler::Peer;
use crate::reply::Reply;

/// The reply of an exact re-send (§10.2).
pub(super) const ALREADY_ACCEPTED: &str = "already accepted";

impl Pipeline {
    pub(super) async fn transporter(
        &self,
        artifact: &Artifact<'_>,
        t: &Transporter<'_>,
        text: Option<&str>,
        peer: &Peer,
    ) -> Result<Reply> {
        let now = self.now();
        self.rate_limit_peer(peer, now)?;
        self.require_hosted(&t.to).await?;

        // (6) Freshness: T = delegation.issuedAt for delegated artifacts (§10.1).
        let reference = t.freshness_reference();
        self.check_fresh(reference, now, "issuedAt")?;
        if let Some(d) = &t.delegation {
            if let Some(a) = &d.attestation {
                self.check_fresh(a.issued_at_ms, now, "attestation.issuedAt")?;
            }
            // §9.3 step 2: a delegation signed by the sender itself rests on its
            // attestation, so its attestor must be allowed (before any key lookup).
            if let Some(a) = &d.attestation
                && d.signed_by.eq_ignore_case(&t.from)
                && !self.opts.attestors.allows(&a.signed_by)
            {
                return Err(ServerError::refused(
                    ErrorCode::DelegationInvalid,
                    format!("attestor {} is not allowed", a.signed_by),
                ));
            }
            let w = self.opts.freshness_ms;
            if t.issued_at_ms > reference.saturating_add_millis(w) {
                return Err(ServerError::refused(
                    ErrorCode::StaleArtifact,
                    "issuedAt later than delegation.issuedAt + W",
                ));
            }
        }

        // (7) Keys, signature, delegation, attestation; the DNS device check (§6.6).
        let verified = self.verify(artifact).await?;
        if let Some(d) = &t.delegation {
            match self
                .dns
                .check_device(&t.from, d.agent_id, &verified.signer)
                .await
            {
                Ok(DeviceCheck::Authorized | DeviceCheck::NotPublished) => {}
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }

        // Per-sender limits, charged to the sender the signature proves (§11).
        self.rate_limit_sender(t.from.as_str(), now)?;
        if t.kind == TransporterType::TrustReq {
            if !self
                .limits
                .trust_requests
                .check(&t.from.to_lowercase(), now)
            {
                return Err(ServerError::refused(
                    ErrorCode::RateLimiter,
                    format!("trust requests from {}", t.from),
                ));
            }
            if !self
                .limits
                .trust_request_domains
                .check(&t.from.domain().to_lowercase(), now)
            {
                return Err(ServerError::refused(
                    ErrorCode::RateLimiter,
                    format!("trust requests from {}", t.from.domain()),
                ));
            }
        }

        // An exact re-send of an accepted artifact: answer as before (§10.2).
        let key = t.replay_key();
        let scope_entry = self.replay_entry(&key, t.signature.value, reference, now);
        if let Some(sig) = self
            .stores
            .replay
            .get_replay(&scope_entry.scope, &scope_entry.id, now)
            .await?
            && sig == t.signature.value
        {
            self.repair_trust_effects(t, &verified, now).await?;
            self.count_already_accepted();
            return Ok(Reply::ok_with(None, ALREADY_ACCEPTED));
        }

        // (8) Trust and privacy.
        let mut incoming = Incoming::from_transporter(t);
        let record_id = incoming.record_id();
        let record = self.stores.trust.get_trust(&record_id).await?;
        // Local delivery of a request whose outgoing record this server created itself (both
        // identities hosted here, §7.4): the record is `pending` and has not received a
        // request yet (no sender key), so the `pending` check does not apply to it.
        if t.kind == TransporterType::TrustReq
            && record.as_ref().is_some_and(|r| {
                r.status == btps_trust::TrustStatus::Pending && r.public_key_fingerprint.is_empty()
            })
        {
            incoming.local_request = self.is_hosted(&t.from).await?;
        }
        if let Verdict::Refuse(refusal) = btps_trust::evaluate(&incoming, record.as_ref(), now) {
            return Err(ServerError::refused(
                refusal.code,
                format!("trust {record_id}: {refusal:?}"),
            ));
        }
        let key_update = match (&t.kind, &t.delegation, &record) {
            // The record already holds this key (the usual case): `check_sender_key` would
            // answer `Unchanged`; the key is encoded only when it is needed.
            (TransporterType::BtpsDoc, None, Some(r))
                if r.public_key_fingerprint != verified.signer.fingerprint() =>
            {
                let b64 = verified.signer.to_base64_spki();
                let sender = SenderKey {
                    public_key_base64: &b64,
                    fingerprint: verified.signer.fingerprint(),
                };
                match check_sender_key(r, sender, now, self.opts.pin_keys) {
                    Ok(KeyCheck::Updated(updated)) => Some(updated),
                    Ok(KeyCheck::Unchanged) => None,
                    // Signed with the key this record rotated away from, before the
                    // rotation was accepted: in flight during the rotation.
                    Ok(KeyCheck::ProofRequired)
                        if btps_trust::signed_before_rotation(
                            r,
                            verified.signer.fingerprint(),
                            t.issued_at_ms,
                        ) =>
                    {
                        None
                    }
                    Ok(KeyCheck::ProofRequired) => {
                        match crate::keys::prove_rotation(
                            t.raw,
                            r,
                            &t.from,
                            &verified.signer,
                            self.proof_source(),
                            now,
                        )
                        .await
                        {
                            Ok(source) => {
                                tracing::info!(
                                    from = %t.from, trust_id = %record_id, source,
                                    "pinned key rotated on a signed proof"
                                );
                                Some(Box::new(btps_trust::apply_rotation(r, sender, now, source)))
                            }
                            Err(why) => {
                                return Err(ServerError::refused(
                                    btps_trust::key_pinned().code,
                                    format!(
                                        "pinned key changed without a valid rotation proof: {why}"
                                    ),
                                ));
                            }
                        }
                    }
                    Err(refusal) => {
                        return Err(ServerError::refused(refusal.code, "pinned key changed"));
                    }
                }
            }
            _ => None,
        };

        // (9) + (10) Replay and the durable inbox in one step.
        let text = artifact_text(t.raw, text);
        let message = NewMessage::with_text(t.to.as_str(), Mailbox::Inbox, t.raw, text, now)?;
        match self
            .stores
            .messages
            .store(&message, Some(&scope_entry), now)
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
                    format!("{} from {} reuses an id", t.id, t.from),
                ));
            }
        }
        tracing::info!(
            id = t.id, from = %t.from, to = %t.to, kind = t.kind.as_str(), trust_id = %record_id,
            "accepted"
        );

        // Effects on the trust records.
        match t.kind {
            TransporterType::TrustReq => {
                self.record_trust_request(t, &verified, record.as_ref(), now)
                    .await?;
            }
            TransporterType::TrustRes => {
                if let Some(r) = &record {
                    self.record_trust_response(t, r, now).await?;
                }
            }
            TransporterType::BtpsDoc => {
                if let Some(updated) = key_update {
                    // Best effort: the artifact is stored; a lost key update is redone by
                    // the next artifact signed with the new key.
                    if let Err(e) = self.stores.trust.put_trust(&updated).await {
                        tracing::warn!(error = %e, trust_id = %record_id, "key update not saved");
                    }
                }
            }
        }
        if let Some(log) = &self.delivery_log {
            log.append(t.raw).await?;
        }
        Ok(Reply::success(None))
    }

    /// Resolves the keys `artifact` needs (DNS identity keys; agent keys are added by the
    /// agent path) and verifies every signature over the received value.
    pub(super) async fn verify(&self, artifact: &Artifact<'_>) -> Result<Verified> {
        self.check_carried_keys(artifact)?;
        let refs = required_keys(artifact);
        let keys: ResolvedKeys = self.dns.resolve_keys(&refs).await;
        let verified = verify_artifact(artifact, &keys)?;
        self.check_verified(&verified)?;
        Ok(verified)
    }

    /// §7.4 step 2: the responder's record becomes `pending` with the verified key and the
    /// requested terms.
    async fn record_trust_request(
        &self,
        t: &Transporter<'_>,
        verified: &Verified,
        existing: Option<&TrustRecord>,
        now: UnixMillis,
    ) -> Result<()> {
        let terms = match &t.document {
            TransporterDocument::Plain(BusinessDocument::TrustReq(doc)) => {
                RequestTerms::from_trust_req(doc)
            }
            _ => RequestTerms::default(),
        };
        // The sender's own key; a delegated request keeps what the record knew.
        let (b64, fp) = if t.delegation.is_none() {
            (
                verified.signer.to_base64_spki(),
                verified.signer.fingerprint().to_owned(),
            )
        } else {
            existing.map_or_else(Default::default, |r| {
                (
                    r.public_key_base64.clone(),
                    r.public_key_fingerprint.clone(),
                )
            })
        };
        let record = receive_request(
            existing,
            t.from.as_str(),
            t.to.as_str(),
            SenderKey {
                public_key_base64: &b64,
                fingerprint: &fp,
            },
            terms,
            &self.opts.service_name,
            now,
        );
        let expected = existing.map_or(Expected::Absent, |r| Expected::Status(r.status));
        if let CasOutcome::Conflict(_) = self.stores.trust.transition(expected, &record).await? {
            tracing::warn!(trust_id = %record.id, "trust record changed concurrently; request kept in the inbox");
        }
        Ok(())
    }

    /// §7.4 step 4: the requester's outgoing record takes the decision.
    async fn record_trust_response(
        &self,
        t: &Transporter<'_>,
        record: &TrustRecord,
        now: UnixMillis,
    ) -> Result<()> {
        let decision = match &t.document {
            TransporterDocument::Plain(BusinessDocument::TrustRes(doc)) => {
                Decision::from_trust_res(doc)
            }
            // An encrypted response the server cannot read counts as `accepted` (§7.3).
            _ => Decision::new(TrustDecision::Accepted, t.from.as_str()),
        };
        let updated = apply_response(record, &decision, now);
        if let CasOutcome::Conflict(_) = self
            .stores
            .trust
            .transition(Expected::Status(record.status), &updated)
            .await?
        {
            tracing::warn!(trust_id = %record.id, "trust record changed concurrently");
        }
        Ok(())
    }

    /// After a crash between storing a trust artifact and updating the record, an exact
    /// re-send completes the update.
    async fn repair_trust_effects(
        &self,
        t: &Transporter<'_>,
        verified: &Verified,
        now: UnixMillis,
    ) -> Result<()> {
        let incoming = Incoming::from_transporter(t);
        let record = self.stores.trust.get_trust(&incoming.record_id()).await?;
        match (incoming.kind, &record) {
            (IncomingKind::TrustReq, None) => {
                self.record_trust_request(t, verified, None, now).await
            }
            (IncomingKind::TrustRes(_), Some(r))
                if r.status == btps_trust::TrustStatus::Pending =>
            {
                self.record_trust_response(t, r, now).await
            }
            _ => Ok(()),
        }
    }
}
