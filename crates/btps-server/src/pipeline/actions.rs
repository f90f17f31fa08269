//! The immediate agent actions (§3.5) over the message and trust stores.

use btps_trust::{
    CasOutcome, Decision, Expected, Mailbox, MessageQuery, NewMessage, PageRequest, TrustFilter,
    TrustRecord, decide, decision_applies,
};
use btps_types::artifact::{Agent, AgentAction, AgentDocument, BusinessDocument, Ids, Mutation};
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, UnixMillis};

use super::Pipeline;
use crate::error::{Result, ServerError};
use crate::reply::{Reply, VERSION};

fn ids<'a>(ids: &'a Ids<'_>) -> Vec<&'a str> {
    ids.ids.iter().filter_map(Value::as_str).collect()
}

fn count(name: &str, n: u64) -> Object {
    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    Object::new().with(name, n as f64)
}

fn mailbox_of(action: AgentAction) -> Option<Mailbox> {
    use AgentAction as A;
    Some(match action {
        A::InboxFetch | A::InboxSeen | A::InboxDelete => Mailbox::Inbox,
        A::OutboxFetch | A::OutboxCancel => Mailbox::Outbox,
        A::SentboxFetch | A::SentboxDelete => Mailbox::Sentbox,
        A::DraftFetch | A::DraftCreate | A::DraftUpdate | A::DraftDelete => Mailbox::Drafts,
        A::TrashFetch | A::TrashDelete => Mailbox::Trash,
        _ => return None,
    })
}

/// Whether `owner` may see or change `record`: it is the record's receiver or sender.
fn owns(record: &TrustRecord, owner: &Identity) -> bool {
    record.receiver_id.eq_ignore_ascii_case(owner.as_str())
        || record.sender_id.eq_ignore_ascii_case(owner.as_str())
}

impl Pipeline {
    pub(super) async fn immediate_action(
        &self,
        a: &Agent<'_>,
        owner: &Identity,
        now: UnixMillis,
    ) -> Result<Reply> {
        use AgentAction as A;
        let who = owner.as_str();
        let doc = &a.document;
        match (a.action, mailbox_of(a.action)) {
            (A::SystemPing, _) => Ok(Reply::success(None)),
            (
                A::InboxFetch | A::OutboxFetch | A::SentboxFetch | A::DraftFetch | A::TrashFetch,
                Some(mailbox),
            ) => {
                let query = match doc {
                    AgentDocument::Query(q) => MessageQuery::from_query(q),
                    _ => MessageQuery::default(),
                };
                let page = self.stores.messages.fetch(who, mailbox, &query).await?;
                Ok(Reply::success(None).with_document(page.to_query_result()))
            }
            (A::InboxSeen, Some(mailbox)) => {
                let AgentDocument::Ids(list) = doc else {
                    return Err(validation());
                };
                let n = self
                    .stores
                    .messages
                    .mark_seen(who, mailbox, &ids(list), now)
                    .await?;
                Ok(Reply::success(None).with_document(count("updated", n)))
            }
            (
                A::InboxDelete | A::SentboxDelete | A::DraftDelete | A::TrashDelete,
                Some(mailbox),
            ) => {
                let AgentDocument::Ids(list) = doc else {
                    return Err(validation());
                };
                let n = self
                    .stores
                    .messages
                    .delete_messages(who, mailbox, &ids(list), now)
                    .await?;
                Ok(Reply::success(None).with_document(count("deleted", n)))
            }
            (A::OutboxCancel, _) => {
                let AgentDocument::Ids(list) = doc else {
                    return Err(validation());
                };
                let cancelled = self
                    .stores
                    .messages
                    .cancel_outbox(who, &ids(list), now)
                    .await?;
                let list: Vec<Value> = cancelled.into_iter().map(Value::from).collect();
                Ok(Reply::success(None).with_document(Object::new().with("cancelled", list)))
            }
            (A::DraftCreate, _) => self.draft_create(a, owner, now).await,
            (A::DraftUpdate, _) => {
                let AgentDocument::Mutation(m) = doc else {
                    return Err(validation());
                };
                self.draft_update(m, owner, now).await
            }
            (A::TrustFetch, _) => self.trust_fetch(a, owner).await,
            (A::TrustUpdate, _) => match doc {
                AgentDocument::Mutation(m) | AgentDocument::EnvelopedMutation(_, m) => {
                    self.trust_update(m, owner, now).await
                }
                _ => Err(validation()),
            },
            (A::TrustDelete, _) => match doc {
                AgentDocument::Ids(list) | AgentDocument::EnvelopedIds(_, list) => {
                    self.trust_delete(list, owner).await
                }
                _ => Err(validation()),
            },
            _ => Err(ServerError::refused(
                ErrorCode::InvalidAction,
                format!("action {}", a.action.as_str()),
            )),
        }
    }

    /// `draft.create`: a draft transporter artifact (no `to`, no signature yet) in the
    /// owner's drafts; the reply names its id.
    async fn draft_create(
        &self,
        a: &Agent<'_>,
        owner: &Identity,
        now: UnixMillis,
    ) -> Result<Reply> {
        let AgentDocument::Create(create) = &a.document else {
            return Err(validation());
        };
        let id = btps_trust::generate_uuid_v4(&self.rng)?;
        let draft = Object::with_capacity(6)
            .with("version", VERSION)
            .with("type", create.kind.as_str())
            .with("from", owner.as_str())
            .with("id", id.as_str())
            .with("issuedAt", now.to_datetime_string())
            .with("document", document_value(&create.document));
        let message = NewMessage::new(owner.as_str(), Mailbox::Drafts, draft, now)?;
        self.stores.messages.store(&message, None, now).await?;
        Ok(Reply::success(None).with_document(Object::new().with("id", id)))
    }

    /// `draft.update`: replaces the document of an existing draft (`updated: 0` when there is
    /// none).
    async fn draft_update(
        &self,
        m: &Mutation<'_>,
        owner: &Identity,
        now: UnixMillis,
    ) -> Result<Reply> {
        let who = owner.as_str();
        let Some(existing) = self
            .stores
            .messages
            .get_message(who, Mailbox::Drafts, m.id)
            .await?
        else {
            return Ok(Reply::success(None).with_document(count("updated", 0)));
        };
        let mut artifact = existing.artifact;
        artifact.insert("document", document_value(&m.document));
        let changed = self
            .stores
            .messages
            .replace_message(who, Mailbox::Drafts, m.id, &artifact, now)
            .await?;
        Ok(Reply::success(None).with_document(count("updated", u64::from(changed))))
    }

    /// `trust.fetch`: the owner's incoming trust records (`receiverId` = owner, agent
    /// records included), a page at a time (`limit`, `cursor`), plus its outgoing records.
    async fn trust_fetch(&self, a: &Agent<'_>, owner: &Identity) -> Result<Reply> {
        let raw = match &a.document {
            AgentDocument::Query(q) => Some(q.raw),
            AgentDocument::Object(o) => Some(*o),
            _ => None,
        };
        let limit = raw
            .and_then(|o| o.get("limit"))
            .and_then(Value::as_f64)
            .map_or(0, |l| l.clamp(1.0, 1000.0) as u32);
        let cursor = raw.and_then(|o| o.get_str("cursor")).map(str::to_owned);
        let page = self
            .stores
            .trust
            .list_trust(
                &TrustFilter::Receiver(owner.to_lowercase()),
                &PageRequest { limit, cursor },
            )
            .await?;
        let outgoing = self
            .stores
            .trust
            .list_trust(
                &TrustFilter::Sender(owner.to_lowercase()),
                &PageRequest::first(1000),
            )
            .await?;
        let to_values = |records: Vec<TrustRecord>| -> Value {
            Value::Array(
                records
                    .iter()
                    .map(|r| Value::Object(r.to_object()))
                    .collect(),
            )
        };
        let mut doc = Object::new().with("results", to_values(page.items));
        if let Some(c) = page.next_cursor {
            doc.insert("cursor", c);
            doc.insert("hasNext", true);
        } else {
            doc.insert("hasNext", false);
        }
        doc.insert("outgoing", to_values(outgoing.items));
        Ok(Reply::success(None).with_document(doc))
    }

    /// `trust.update`: applies a `TRUST_RES` decision (or `TRUST_REQ` terms) to one of the
    /// owner's records. Unknown ids change nothing (`updated: 0`).
    async fn trust_update(
        &self,
        m: &Mutation<'_>,
        owner: &Identity,
        now: UnixMillis,
    ) -> Result<Reply> {
        let Some(record) = self.stores.trust.get_trust(m.id).await? else {
            return Ok(Reply::success(None).with_document(count("updated", 0)));
        };
        if !owns(&record, owner) {
            return Ok(Reply::success(None).with_document(count("updated", 0)));
        }
        let updated = match &m.document {
            BusinessDocument::TrustRes(res) => {
                let decision = Decision::from_trust_res(res);
                if !decision_applies(record.status, decision.decision) {
                    return Err(ServerError::refused(
                        ErrorCode::TrustNotAllowed,
                        format!("{:?} → {:?}", record.status, decision.decision),
                    ));
                }
                decide(&record, &decision, now)?
            }
            BusinessDocument::TrustReq(req) => {
                let mut r = record.clone();
                if let Some(p) = req.privacy_type {
                    r.privacy_type = p;
                }
                if let Some(e) = req.expires_at {
                    r.expires_at = UnixMillis::parse(e).ok();
                }
                r
            }
            BusinessDocument::Invoice(_) => return Err(validation()),
        };
        match self
            .stores
            .trust
            .transition(Expected::Status(record.status), &updated)
            .await?
        {
            CasOutcome::Applied => Ok(Reply::success(None).with_document(count("updated", 1))),
            CasOutcome::Conflict(_) => Err(ServerError::refused(
                ErrorCode::TrustNotAllowed,
                "record changed concurrently",
            )),
        }
    }

    /// `trust.delete`: removes the owner's records among `ids`.
    async fn trust_delete(&self, list: &Ids<'_>, owner: &Identity) -> Result<Reply> {
        let mut n = 0;
        for id in ids(list) {
            if let Some(record) = self.stores.trust.get_trust(id).await?
                && owns(&record, owner)
                && self.stores.trust.delete_trust(id).await?
            {
                n += 1;
            }
        }
        Ok(Reply::success(None).with_document(count("deleted", n)))
    }
}

fn validation() -> ServerError {
    ServerError::refused(ErrorCode::Validation, "document shape")
}

fn document_value(doc: &BusinessDocument<'_>) -> Value {
    let raw = match doc {
        BusinessDocument::TrustReq(d) => d.raw,
        BusinessDocument::TrustRes(d) => d.raw,
        BusinessDocument::Invoice(d) => d.raw,
    };
    Value::Object(raw.clone())
}
