//! The backend conformance suite: the behaviour every store backend must show, generic over
//! the store traits, so the file backend and the Postgres backend run the very same tests.
//!
//! A backend test provides a [`Factory`] and calls [`run_all`] (or the suite of each trait it
//! implements) inside a tokio runtime:
//!
//! ```no_run
//! # use btps_trust::conformance::{self, Factory};
//! # use btps_trust::file::{FileStore, FileStoreConfig};
//! # use btps_types::UnixMillis;
//! struct Files(tempfile::TempDir);
//!
//! #[async_trait::async_trait]
//! impl Factory<FileStore> for Files {
//!     async fn fresh(&self) -> FileStore {
//!         let dir = tempfile::tempdir_in(self.0.path()).unwrap().keep();
//!         FileStore::open(&FileStoreConfig::new(dir), UnixMillis::from_millis(0)).unwrap()
//!     }
//! }
//! # async fn t() {
//! conformance::run_all(&Files(tempfile::tempdir().unwrap())).await;
//! # }
//! ```
//!
//! Every case prints its name to stderr before it runs and panics (with the case name) when
//! the backend misbehaves. Cases use fixed times (`now` is an argument everywhere), distinct
//! identities per case, and spawn concurrent tasks with `tokio::spawn` for the atomicity
//! checks (use a multi-thread runtime for real parallelism).

pub mod workload;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use btps_types::UnixMillis;
use btps_types::artifact::{PrivacyType, SortOrder};
use btps_types::json::{Object, Value};

use crate::{
    CasOutcome, DeliveryOutcome, DeliveryStatus, Expected, IdentityKey, IdentityRecord,
    IdentityStore, Mailbox, MessageQuery, MessageStore, NewMessage, PageRequest, ReplayEntry,
    ReplayOutcome, ReplayStore, StoreOutcome, TokenHash, TokenKind, TokenOutcome, TokenRecord,
    TrustError, TrustFilter, TrustRecord, TrustStatus, TrustStore, trust_id,
};

/// Makes stores for the suite.
#[async_trait]
pub trait Factory<S: Send + 'static>: Send + Sync {
    /// A new, empty store.
    async fn fresh(&self) -> S;

    /// Closes `store` and opens the same storage again (durability checks). Backends that
    /// cannot return `None` and those cases are skipped.
    async fn reopen(&self, store: S) -> Option<S> {
        drop(store);
        None
    }
}

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

fn case(name: &str) {
    eprintln!("conformance: {name}");
}

/// Every suite: trust, identity, replay and messages.
pub async fn run_all<S, F>(factory: &F)
where
    S: TrustStore + IdentityStore + ReplayStore + MessageStore + 'static,
    F: Factory<S>,
{
    trust(factory).await;
    identity(factory).await;
    replay(factory).await;
    messages(factory).await;
}

// ---- trust ------------------------------------------------------------------------------

fn record(sender: &str, receiver: &str, status: TrustStatus) -> TrustRecord {
    TrustRecord::new(sender, receiver, status, t(0))
        .with_key("QUJDRA==", "ZnA=")
        .with_privacy(PrivacyType::Mixed)
        .with_decided_by("conformance")
}

/// The [`TrustStore`] cases.
pub async fn trust<S: TrustStore + 'static, F: Factory<S>>(factory: &F) {
    case("trust: get / put / replace / delete");
    {
        let s = factory.fresh().await;
        let mut r = record(
            "billing$vendorcorp.com",
            "pay$client.com",
            TrustStatus::Pending,
        );
        assert_eq!(s.get_trust(&r.id).await.unwrap(), None);
        r.metadata = Some(Object::new().with("agentInfo", Object::new().with("os", "x")));
        r.extra.insert("toIdentity", "pay$client.com");
        r.expires_at = Some(t(5000));
        r.retry_after = Some(t(100));
        s.put_trust(&r).await.unwrap();
        assert_eq!(
            s.get_trust(&r.id).await.unwrap().as_ref(),
            Some(&r),
            "round trip, extras kept"
        );
        let id_other_case = trust_id("Billing$VendorCorp.com", "PAY$client.com");
        assert_eq!(
            s.get_trust(&id_other_case).await.unwrap().as_ref(),
            Some(&r)
        );
        r.status = TrustStatus::Accepted;
        s.put_trust(&r).await.unwrap();
        assert_eq!(
            s.get_trust(&r.id).await.unwrap().unwrap().status,
            TrustStatus::Accepted
        );
        assert!(s.delete_trust(&r.id).await.unwrap());
        assert!(!s.delete_trust(&r.id).await.unwrap());
        assert_eq!(s.get_trust(&r.id).await.unwrap(), None);
    }

    case("trust: compare-and-set transitions");
    {
        let s = factory.fresh().await;
        let r = record("a$vendor.com", "b$client.com", TrustStatus::Pending);
        assert_eq!(
            s.transition(Expected::Absent, &r).await.unwrap(),
            CasOutcome::Applied
        );
        match s.transition(Expected::Absent, &r).await.unwrap() {
            CasOutcome::Conflict(Some(cur)) => assert_eq!(*cur, r),
            other => panic!("insert-if-absent over an existing record: {other:?}"),
        }
        let mut accepted = r.clone();
        accepted.status = TrustStatus::Accepted;
        assert!(matches!(
            s.transition(Expected::Status(TrustStatus::Rejected), &accepted)
                .await
                .unwrap(),
            CasOutcome::Conflict(Some(_))
        ));
        assert_eq!(
            s.transition(Expected::Status(TrustStatus::Pending), &accepted)
                .await
                .unwrap(),
            CasOutcome::Applied
        );
        assert_eq!(
            s.get_trust(&r.id).await.unwrap().unwrap().status,
            TrustStatus::Accepted
        );
        let other = record("c$vendor.com", "b$client.com", TrustStatus::Accepted);
        assert_eq!(
            s.transition(Expected::Status(TrustStatus::Pending), &other)
                .await
                .unwrap(),
            CasOutcome::Conflict(None)
        );
    }

    case("trust: concurrent transitions from the same status: exactly one wins");
    {
        let s = Arc::new(factory.fresh().await);
        let r = record("race$vendor.com", "b$client.com", TrustStatus::Pending);
        s.put_trust(&r).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let s = Arc::clone(&s);
            let mut next = r.clone();
            next.status = if i % 2 == 0 {
                TrustStatus::Accepted
            } else {
                TrustStatus::Rejected
            };
            next.decided_by = format!("worker {i}");
            tasks.spawn(async move {
                s.transition(Expected::Status(TrustStatus::Pending), &next)
                    .await
                    .unwrap()
            });
        }
        let applied = tasks
            .join_all()
            .await
            .into_iter()
            .filter(|o| *o == CasOutcome::Applied)
            .count();
        assert_eq!(applied, 1, "exactly one concurrent transition applies");
    }

    case("trust: list by receiver / sender with pagination");
    {
        let s = factory.fresh().await;
        let mut want = BTreeSet::new();
        for i in 0..7 {
            let r = record(
                &format!("s{i}$vendor.com"),
                "Boss$Client.com",
                TrustStatus::Accepted,
            );
            want.insert(r.id.clone());
            s.put_trust(&r).await.unwrap();
        }
        s.put_trust(&record(
            "s0$vendor.com",
            "other$client.com",
            TrustStatus::Accepted,
        ))
        .await
        .unwrap();
        s.put_trust(&record(
            "btps_ag_1",
            "boss$client.com",
            TrustStatus::Accepted,
        ))
        .await
        .unwrap();
        want.insert(trust_id("btps_ag_1", "boss$client.com"));
        let mut got = Vec::new();
        let mut page = PageRequest::first(3);
        let mut pages = 0;
        loop {
            let p = s
                .list_trust(&TrustFilter::Receiver("boss$client.com".into()), &page)
                .await
                .unwrap();
            assert!(p.items.len() <= 3);
            got.extend(p.items.iter().map(|r| r.id.clone()));
            pages += 1;
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        assert_eq!(got.len(), want.len(), "every record exactly once");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "ordered by id");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
        let by_sender = s
            .list_trust(
                &TrustFilter::Sender("S0$Vendor.com".into()),
                &PageRequest::first(0),
            )
            .await
            .unwrap();
        assert_eq!(by_sender.items.len(), 2);
        assert_eq!(by_sender.next_cursor, None);
        let all = s
            .list_trust(&TrustFilter::All, &PageRequest::first(1000))
            .await
            .unwrap();
        assert_eq!(all.items.len(), 9);
        let bad = PageRequest {
            limit: 2,
            cursor: Some("not a cursor!".into()),
        };
        assert!(matches!(
            s.list_trust(&TrustFilter::All, &bad).await,
            Err(TrustError::InvalidCursor)
        ));
    }

    case("trust: durable across reopen");
    {
        let s = factory.fresh().await;
        let r = record("keep$vendor.com", "b$client.com", TrustStatus::Blocked);
        s.put_trust(&r).await.unwrap();
        if let Some(s) = factory.reopen(s).await {
            assert_eq!(s.get_trust(&r.id).await.unwrap(), Some(r));
        }
    }
}

// ---- identities and tokens ---------------------------------------------------------------

fn token(kind: TokenKind, subject: &str, secret: &str, expires: i64) -> TokenRecord {
    TokenRecord {
        kind,
        hash: TokenHash::of(secret),
        subject: subject.to_owned(),
        user_identity: "pay$client.com".to_owned(),
        decrypt_by: "pay$client.com".to_owned(),
        metadata: Some(Object::new().with("note", "conformance")),
        created_at: t(0),
        expires_at: t(expires),
    }
}

/// The [`IdentityStore`] cases (identities and tokens).
pub async fn identity<S: IdentityStore + 'static, F: Factory<S>>(factory: &F) {
    case("identity: put / get (case-insensitive) / list / delete");
    {
        let s = factory.fresh().await;
        for i in 0..5 {
            let id = format!("user{i}$Client.com").parse().unwrap();
            let mut r = IdentityRecord::new(id, IdentityKey::rsa("btps1", "PEM", t(0)));
            r.rotate_to(IdentityKey::rsa("btps2", "PEM2", t(10)));
            s.put_identity(&r).await.unwrap();
        }
        let r = s.get_identity("USER3$client.com").await.unwrap().unwrap();
        assert_eq!(r.identity.as_str(), "user3$Client.com");
        assert_eq!(r.current_selector, "btps2");
        assert_eq!(r.public_keys.len(), 2);
        let mut seen = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let p = s.list_identities(&page).await.unwrap();
            seen.extend(p.items.into_iter().map(|r| r.id));
            match p.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert!(s.delete_identity("user3$client.com").await.unwrap());
        assert!(!s.delete_identity("user3$client.com").await.unwrap());
        assert_eq!(s.get_identity("user3$client.com").await.unwrap(), None);
    }

    case("tokens: consume is single-use, case-sensitive, subject-bound, expiring");
    {
        let s = factory.fresh().await;
        let auth = token(TokenKind::Auth, "Pay$Client.com", "ABCD2345EFGH", 1000);
        s.create_token(&auth).await.unwrap();
        let h = TokenHash::of("ABCD2345EFGH");
        let now = t(10);
        assert_eq!(
            s.consume_token(
                TokenKind::Auth,
                "pay$client.com",
                &TokenHash::of("abcd2345efgh"),
                now
            )
            .await
            .unwrap(),
            TokenOutcome::Invalid,
            "tokens match case-sensitively"
        );
        assert_eq!(
            s.consume_token(TokenKind::Auth, "other$client.com", &h, now)
                .await
                .unwrap(),
            TokenOutcome::Invalid
        );
        assert_eq!(
            s.consume_token(TokenKind::Refresh, "pay$client.com", &h, now)
                .await
                .unwrap(),
            TokenOutcome::Invalid
        );
        match s
            .consume_token(TokenKind::Auth, "PAY$client.com", &h, now)
            .await
            .unwrap()
        {
            TokenOutcome::Consumed(r) => assert_eq!(*r, auth),
            other => panic!("expected Consumed, got {other:?}"),
        }
        assert!(matches!(
            s.consume_token(TokenKind::Auth, "pay$client.com", &h, now)
                .await
                .unwrap(),
            TokenOutcome::AlreadyUsed(_)
        ));
        let late = token(TokenKind::Auth, "pay$client.com", "LATE2345EFGH", 5);
        s.create_token(&late).await.unwrap();
        assert_eq!(
            s.consume_token(TokenKind::Auth, "pay$client.com", &late.hash, t(6))
                .await
                .unwrap(),
            TokenOutcome::Invalid,
            "expired tokens are invisible"
        );
    }

    case("tokens: concurrent consumers: exactly one wins");
    {
        let s = Arc::new(factory.fresh().await);
        let tok = token(TokenKind::Auth, "race$client.com", "RACE2345EFGH", 1000);
        s.create_token(&tok).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let s = Arc::clone(&s);
            let h = tok.hash;
            tasks.spawn(async move {
                s.consume_token(TokenKind::Auth, "race$client.com", &h, t(1))
                    .await
                    .unwrap()
            });
        }
        let wins = tasks
            .join_all()
            .await
            .iter()
            .filter(|o| matches!(o, TokenOutcome::Consumed(_)))
            .count();
        assert_eq!(wins, 1);
    }

    case("tokens: refresh rotation, reuse detection, revocation, purge");
    {
        let s = factory.fresh().await;
        let agent = "btps_ag_0b6c1e2a-9d7e-4f7a-8a51-3f8c7e9b1d20";
        let r1 = token(TokenKind::Refresh, agent, "refresh-one", 1000);
        let r2 = token(TokenKind::Refresh, agent, "refresh-two", 2000);
        let r3 = token(TokenKind::Refresh, agent, "refresh-three", 3000);
        s.create_token(&r1).await.unwrap();
        assert!(matches!(
            s.rotate_token(&r1.hash, &r2, t(1)).await.unwrap(),
            TokenOutcome::Consumed(_)
        ));
        assert!(matches!(
            s.rotate_token(&r1.hash, &r3, t(2)).await.unwrap(),
            TokenOutcome::AlreadyUsed(_)
        ));
        assert_eq!(
            s.consume_token(TokenKind::Refresh, agent, &r3.hash, t(3))
                .await
                .unwrap(),
            TokenOutcome::Invalid,
            "a failed rotation stores nothing"
        );
        assert_eq!(
            s.revoke_tokens(TokenKind::Refresh, agent, t(4))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.consume_token(TokenKind::Refresh, agent, &r2.hash, t(5))
                .await
                .unwrap(),
            TokenOutcome::Invalid
        );
        assert_eq!(
            s.revoke_tokens(TokenKind::Refresh, agent, t(6))
                .await
                .unwrap(),
            0
        );
        s.create_token(&token(TokenKind::Auth, "p$client.com", "old-1", 10))
            .await
            .unwrap();
        s.create_token(&token(TokenKind::Auth, "p$client.com", "old-2", 10))
            .await
            .unwrap();
        s.create_token(&token(TokenKind::Auth, "p$client.com", "fresh", 100))
            .await
            .unwrap();
        assert_eq!(s.purge_expired_tokens(t(11)).await.unwrap(), 2);
        assert!(matches!(
            s.consume_token(
                TokenKind::Auth,
                "p$client.com",
                &TokenHash::of("fresh"),
                t(12)
            )
            .await
            .unwrap(),
            TokenOutcome::Consumed(_)
        ));
    }

    case("identity and tokens: durable across reopen");
    {
        let s = factory.fresh().await;
        let id = "keep$client.com".parse().unwrap();
        let r = IdentityRecord::new(id, IdentityKey::rsa("btps1", "PEM", t(0)));
        s.put_identity(&r).await.unwrap();
        let used = token(TokenKind::Auth, "keep$client.com", "USED2345EFGH", 1000);
        let unused = token(TokenKind::Auth, "keep$client.com", "OPEN2345EFGH", 1000);
        s.create_token(&used).await.unwrap();
        s.create_token(&unused).await.unwrap();
        assert!(matches!(
            s.consume_token(TokenKind::Auth, "keep$client.com", &used.hash, t(1))
                .await
                .unwrap(),
            TokenOutcome::Consumed(_)
        ));
        if let Some(s) = factory.reopen(s).await {
            assert_eq!(s.get_identity("keep$client.com").await.unwrap(), Some(r));
            assert!(matches!(
                s.consume_token(TokenKind::Auth, "keep$client.com", &used.hash, t(2))
                    .await
                    .unwrap(),
                TokenOutcome::AlreadyUsed(_)
            ));
            assert!(matches!(
                s.consume_token(TokenKind::Auth, "keep$client.com", &unused.hash, t(2))
                    .await
                    .unwrap(),
                TokenOutcome::Consumed(_)
            ));
        }
    }
}

// ---- replay ------------------------------------------------------------------------------

fn replay_entry(id: &str, sig: &str, expires: i64) -> ReplayEntry {
    ReplayEntry {
        scope: "from:billing$vendorcorp.com".to_owned(),
        id: id.to_owned(),
        signature: sig.to_owned(),
        expires_at: t(expires),
    }
}

/// The [`ReplayStore`] cases.
pub async fn replay<S: ReplayStore + 'static, F: Factory<S>>(factory: &F) {
    case("replay: insert if absent, same vs different signature");
    {
        let s = factory.fresh().await;
        let e = replay_entry("a-1", "c2lnMQ==", 600_000);
        assert_eq!(
            s.insert_replay(&e, t(0)).await.unwrap(),
            ReplayOutcome::Inserted
        );
        assert_eq!(
            s.insert_replay(&e, t(1)).await.unwrap(),
            ReplayOutcome::SameSignature
        );
        let other = replay_entry("a-1", "c2lnMg==", 600_000);
        assert_eq!(
            s.insert_replay(&other, t(2)).await.unwrap(),
            ReplayOutcome::DifferentSignature
        );
        assert_eq!(
            s.get_replay(&e.scope, "a-1", t(3))
                .await
                .unwrap()
                .as_deref(),
            Some("c2lnMQ==")
        );
        let mut scoped = e.clone();
        scoped.scope = "agent:btps_ag_x".into();
        assert_eq!(
            s.insert_replay(&scoped, t(4)).await.unwrap(),
            ReplayOutcome::Inserted
        );
    }

    case("replay: expired entries are absent; purge");
    {
        let s = factory.fresh().await;
        let e = replay_entry("b-1", "c2lnMQ==", 100);
        assert_eq!(
            s.insert_replay(&e, t(0)).await.unwrap(),
            ReplayOutcome::Inserted
        );
        assert_eq!(
            s.insert_replay(&e, t(100)).await.unwrap(),
            ReplayOutcome::SameSignature
        );
        let again = replay_entry("b-1", "c2lnMg==", 1000);
        assert_eq!(
            s.insert_replay(&again, t(101)).await.unwrap(),
            ReplayOutcome::Inserted
        );
        s.insert_replay(&replay_entry("b-2", "eA==", 50), t(0))
            .await
            .unwrap();
        s.insert_replay(&replay_entry("b-3", "eA==", 60), t(0))
            .await
            .unwrap();
        assert!(s.purge_replay(t(200)).await.unwrap() >= 2);
        assert_eq!(s.get_replay(&e.scope, "b-2", t(0)).await.unwrap(), None);
        assert_eq!(
            s.get_replay(&e.scope, "b-1", t(200))
                .await
                .unwrap()
                .as_deref(),
            Some("c2lnMg==")
        );
    }

    case("replay: concurrent inserts of one key: exactly one Inserted");
    {
        let s = Arc::new(factory.fresh().await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                let e = replay_entry("race", &format!("sig{i}"), 600_000);
                s.insert_replay(&e, t(0)).await.unwrap()
            });
        }
        let out = tasks.join_all().await;
        assert_eq!(
            out.iter()
                .filter(|o| **o == ReplayOutcome::Inserted)
                .count(),
            1
        );
        assert_eq!(
            out.iter()
                .filter(|o| **o == ReplayOutcome::DifferentSignature)
                .count(),
            15
        );
    }

    case("replay: durable across reopen");
    {
        let s = factory.fresh().await;
        let e = replay_entry("keep", "c2ln", 600_000);
        s.insert_replay(&e, t(0)).await.unwrap();
        if let Some(s) = factory.reopen(s).await {
            assert_eq!(
                s.insert_replay(&e, t(1)).await.unwrap(),
                ReplayOutcome::SameSignature
            );
        }
    }
}

// ---- messages ----------------------------------------------------------------------------

fn artifact(id: &str, from: &str, n: u32) -> Object {
    Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", from)
        .with("to", "pay$client.com")
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", "2025-07-01T09:30:00.000Z")
        .with(
            "document",
            Object::new()
                .with("title", format!("Invoice {n}"))
                .with("n", n),
        )
        .with("encryption", Value::Null)
        .with(
            "signature",
            Object::new()
                .with("algorithmHash", "sha256")
                .with("value", format!("c2ln{n}"))
                .with("fingerprint", "ZnA="),
        )
}

fn msg(owner: &str, mailbox: Mailbox, id: &str, n: u32, at: i64) -> NewMessage {
    NewMessage::new(
        owner,
        mailbox,
        artifact(id, "billing$vendorcorp.com", n),
        t(at),
    )
    .unwrap()
}

async fn ids_of<S: MessageStore>(s: &S, owner: &str, mailbox: Mailbox) -> Vec<String> {
    let q = MessageQuery {
        limit: 1000,
        ..MessageQuery::default()
    };
    s.fetch(owner, mailbox, &q)
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// The [`MessageStore`] cases (with the replay set shared with [`ReplayStore`]).
pub async fn messages<S, F>(factory: &F)
where
    S: MessageStore + ReplayStore + 'static,
    F: Factory<S>,
{
    case("messages: store and get; owner case-insensitive");
    {
        let s = factory.fresh().await;
        let m = msg("Pay$Client.com", Mailbox::Inbox, "m-1", 1, 0);
        assert_eq!(s.store(&m, None, t(0)).await.unwrap(), StoreOutcome::Stored);
        let got = s
            .get_message("pay$client.com", Mailbox::Inbox, "m-1")
            .await
            .unwrap()
            .expect("stored message");
        assert_eq!(got.artifact, m.artifact().unwrap());
        assert_eq!(got.owner, "pay$client.com");
        assert_eq!(got.stored_at, t(0));
        assert!(!got.seen && got.delivery.is_none());
        assert_eq!(
            s.get_message("pay$client.com", Mailbox::Outbox, "m-1")
                .await
                .unwrap(),
            None
        );
        assert!(NewMessage::new("a$b.com", Mailbox::Inbox, Object::new(), t(0)).is_err());
    }

    case("messages: store and record the replay id in one step");
    {
        let s = factory.fresh().await;
        let m = msg("pay$client.com", Mailbox::Inbox, "r-1", 1, 0);
        let e = replay_entry("r-1", "c2ln1", 600_000);
        assert_eq!(
            s.store(&m, Some(&e), t(0)).await.unwrap(),
            StoreOutcome::Stored
        );
        assert_eq!(
            s.insert_replay(&e, t(1)).await.unwrap(),
            ReplayOutcome::SameSignature
        );
        assert_eq!(
            s.store(&m, Some(&e), t(1)).await.unwrap(),
            StoreOutcome::AlreadyAccepted
        );
        let resigned = replay_entry("r-1", "c2lnX", 600_000);
        let m2 = msg("pay$client.com", Mailbox::Inbox, "r-1", 2, 1);
        assert_eq!(
            s.store(&m2, Some(&resigned), t(1)).await.unwrap(),
            StoreOutcome::Duplicate
        );
        // Seen by the replay set first (e.g. another inbox): nothing is stored.
        let e3 = replay_entry("r-3", "c2ln3", 600_000);
        assert_eq!(
            s.insert_replay(&e3, t(1)).await.unwrap(),
            ReplayOutcome::Inserted
        );
        let m3 = msg("pay$client.com", Mailbox::Inbox, "r-3", 3, 1);
        assert_eq!(
            s.store(&m3, Some(&e3), t(2)).await.unwrap(),
            StoreOutcome::AlreadyAccepted
        );
        assert_eq!(ids_of(&s, "pay$client.com", Mailbox::Inbox).await, ["r-1"]);
        // Without a replay entry, the (owner, mailbox, id) key decides.
        let d = msg("pay$client.com", Mailbox::Drafts, "d-1", 1, 0);
        assert_eq!(s.store(&d, None, t(0)).await.unwrap(), StoreOutcome::Stored);
        assert_eq!(
            s.store(&d, None, t(1)).await.unwrap(),
            StoreOutcome::AlreadyAccepted
        );
        let d2 = msg("pay$client.com", Mailbox::Drafts, "d-1", 2, 1);
        assert_eq!(
            s.store(&d2, None, t(1)).await.unwrap(),
            StoreOutcome::Duplicate
        );
    }

    case("messages: concurrent stores of one replay key: exactly one Stored");
    {
        let s = Arc::new(factory.fresh().await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                let m = msg("pay$client.com", Mailbox::Inbox, "same", i, 0);
                let e = replay_entry("same", &format!("sig{i}"), 600_000);
                s.store(&m, Some(&e), t(0)).await.unwrap()
            });
        }
        let out = tasks.join_all().await;
        assert_eq!(
            out.iter().filter(|o| **o == StoreOutcome::Stored).count(),
            1
        );
        assert_eq!(ids_of(&*s, "pay$client.com", Mailbox::Inbox).await.len(), 1);
    }

    case("messages: fetch order, since / until, limit clamp, cursor pagination");
    {
        let s = factory.fresh().await;
        let owner = "pay$client.com";
        // 25 messages; several share a storage time (insertion order breaks ties).
        for i in 0..25u32 {
            let m = msg(
                owner,
                Mailbox::Inbox,
                &format!("p-{i:02}"),
                i,
                i64::from(i / 3),
            );
            s.store(&m, None, t(0)).await.unwrap();
        }
        s.store(
            &msg("someone$else.com", Mailbox::Inbox, "x", 0, 0),
            None,
            t(0),
        )
        .await
        .unwrap();
        let all: Vec<String> = (0..25).map(|i| format!("p-{i:02}")).collect();
        for (sort, expect) in [
            (None, all.clone()),
            (Some(SortOrder::Asc), all.clone()),
            (Some(SortOrder::Desc), all.iter().rev().cloned().collect()),
        ] {
            let mut q = MessageQuery {
                limit: 10,
                sort,
                ..MessageQuery::default()
            };
            let mut got = Vec::new();
            let mut pages = 0;
            loop {
                let page = s.fetch(owner, Mailbox::Inbox, &q).await.unwrap();
                assert!(page.results.len() <= 10);
                if let Some(total) = page.total {
                    assert_eq!(total, 25);
                }
                got.extend(page.results.iter().map(|m| m.id.clone()));
                pages += 1;
                if pages == 1 {
                    // A message stored while paging shows up at the end (ascending) and
                    // does not disturb the pages.
                    let late = msg(owner, Mailbox::Inbox, "late", 99, 1000);
                    s.store(&late, None, t(1000)).await.unwrap();
                    s.delete_messages(owner, Mailbox::Inbox, &["late"], t(1000))
                        .await
                        .unwrap();
                }
                if !page.has_next {
                    break;
                }
                q.cursor = page.cursor.clone();
                assert!(q.cursor.is_some(), "a page with more has a cursor");
                assert!(pages < 10);
            }
            assert_eq!(got, expect, "sort {sort:?}");
            assert_eq!(pages, 3);
        }
        let q = MessageQuery {
            since: Some(t(2)),
            until: Some(t(4)),
            ..MessageQuery::default()
        };
        let page = s.fetch(owner, Mailbox::Inbox, &q).await.unwrap();
        let ids: Vec<_> = page.results.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "p-06", "p-07", "p-08", "p-09", "p-10", "p-11", "p-12", "p-13", "p-14"
            ]
        );
        assert!(!page.has_next);
        let one = MessageQuery {
            limit: 1,
            sort: Some(SortOrder::Desc),
            ..MessageQuery::default()
        };
        let page = s.fetch(owner, Mailbox::Inbox, &one).await.unwrap();
        assert_eq!(page.results.len(), 1);
        assert_eq!(page.results[0].id, "p-24");
        assert!(page.has_next);
        let huge = MessageQuery {
            limit: 50_000,
            ..MessageQuery::default()
        };
        assert_eq!(huge.effective_limit(), 1000);
        assert_eq!(
            s.fetch(owner, Mailbox::Inbox, &huge)
                .await
                .unwrap()
                .results
                .len(),
            25
        );
        let empty = s
            .fetch("nobody$x.com", Mailbox::Inbox, &MessageQuery::default())
            .await
            .unwrap();
        assert!(empty.results.is_empty() && !empty.has_next && empty.cursor.is_none());
        let bad = MessageQuery {
            cursor: Some("no such cursor".into()),
            ..MessageQuery::default()
        };
        assert!(matches!(
            s.fetch(owner, Mailbox::Inbox, &bad).await,
            Err(TrustError::InvalidCursor)
        ));
        let doc = s
            .fetch(owner, Mailbox::Inbox, &one)
            .await
            .unwrap()
            .to_query_result();
        assert_eq!(
            doc.get("results")
                .and_then(Value::as_array)
                .map(<[Value]>::len),
            Some(1)
        );
        assert_eq!(doc.get("hasNext"), Some(&Value::Bool(true)));
        let entry = doc.get("results").and_then(Value::as_array).unwrap()[0].clone();
        let meta = entry
            .as_object()
            .unwrap()
            .get_object("meta")
            .unwrap()
            .clone();
        assert_eq!(meta.get("seen"), Some(&Value::Bool(false)));
    }

    case("messages: seen, delete to trash, delete from trash, replace");
    {
        let s = factory.fresh().await;
        let owner = "pay$client.com";
        for i in 0..3 {
            s.store(
                &msg(owner, Mailbox::Inbox, &format!("s-{i}"), i, 0),
                None,
                t(0),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            s.mark_seen(owner, Mailbox::Inbox, &["s-0", "s-1", "nope"], t(5))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            s.mark_seen(owner, Mailbox::Inbox, &["s-0"], t(6))
                .await
                .unwrap(),
            0
        );
        let m = s
            .get_message(owner, Mailbox::Inbox, "s-0")
            .await
            .unwrap()
            .unwrap();
        assert!(m.seen);
        assert_eq!(m.seen_at, Some(t(5)));
        assert_eq!(
            s.delete_messages(owner, Mailbox::Inbox, &["s-0", "nope"], t(7))
                .await
                .unwrap(),
            1
        );
        assert_eq!(ids_of(&s, owner, Mailbox::Inbox).await, ["s-1", "s-2"]);
        let trashed = s
            .get_message(owner, Mailbox::Trash, "s-0")
            .await
            .unwrap()
            .unwrap();
        assert!(trashed.seen, "state travels with the message");
        assert_eq!(
            trashed.artifact,
            artifact("s-0", "billing$vendorcorp.com", 0)
        );
        assert_eq!(
            s.delete_messages(owner, Mailbox::Trash, &["s-0"], t(8))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            ids_of(&s, owner, Mailbox::Trash).await,
            Vec::<String>::new()
        );
        let d = msg(owner, Mailbox::Drafts, "draft", 1, 0);
        s.store(&d, None, t(0)).await.unwrap();
        let edited = artifact("draft", "billing$vendorcorp.com", 42);
        assert!(
            s.replace_message(owner, Mailbox::Drafts, "draft", &edited, t(9))
                .await
                .unwrap()
        );
        assert!(
            !s.replace_message(owner, Mailbox::Drafts, "none", &edited, t(9))
                .await
                .unwrap()
        );
        let got = s
            .get_message(owner, Mailbox::Drafts, "draft")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.artifact, edited);
    }

    case("messages: outbox delivery state, claims with leases, cancel");
    {
        let s = factory.fresh().await;
        let owner = "billing$vendorcorp.com";
        for i in 0..4 {
            let m = msg(owner, Mailbox::Outbox, &format!("o-{i}"), i, i64::from(i));
            assert_eq!(s.store(&m, None, t(0)).await.unwrap(), StoreOutcome::Stored);
        }
        let o0 = s
            .get_message(owner, Mailbox::Outbox, "o-0")
            .await
            .unwrap()
            .unwrap();
        let d = o0.delivery.expect("outbox entries carry a delivery state");
        assert_eq!(
            (d.attempts, d.status, d.next_attempt_at),
            (0, DeliveryStatus::Pending, t(0))
        );
        // Due at t(1): o-0 and o-1, oldest first.
        let claimed = s.claim_due(t(1), t(60_000), 10).await.unwrap();
        let ids: Vec<_> = claimed.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["o-0", "o-1"]);
        assert_eq!(
            claimed[0].artifact,
            artifact("o-0", "billing$vendorcorp.com", 0)
        );
        assert!(
            s.claim_due(t(2), t(60_000), 10).await.unwrap().len() == 1,
            "o-2 only"
        );
        assert!(
            s.claim_due(t(2), t(60_000), 10).await.unwrap().is_empty(),
            "leased"
        );
        assert!(
            s.record_delivery(owner, "o-0", &DeliveryOutcome::Delivered, t(3))
                .await
                .unwrap()
        );
        assert_eq!(
            s.get_message(owner, Mailbox::Outbox, "o-0").await.unwrap(),
            None
        );
        let sent = s
            .get_message(owner, Mailbox::Sentbox, "o-0")
            .await
            .unwrap()
            .unwrap();
        let d = sent.delivery.unwrap();
        assert_eq!((d.attempts, d.status), (1, DeliveryStatus::Delivered));
        assert!(
            !s.record_delivery(owner, "o-0", &DeliveryOutcome::Delivered, t(3))
                .await
                .unwrap(),
            "only pending outbox entries"
        );
        let retry = DeliveryOutcome::Retry {
            next_attempt_at: t(100),
            error: "BTP_ERROR_SERVER_BUSY".into(),
        };
        assert!(s.record_delivery(owner, "o-1", &retry, t(4)).await.unwrap());
        let o1 = s
            .get_message(owner, Mailbox::Outbox, "o-1")
            .await
            .unwrap()
            .unwrap();
        let d = o1.delivery.unwrap();
        assert_eq!((d.attempts, d.next_attempt_at), (1, t(100)));
        assert_eq!(d.last_error.as_deref(), Some("BTP_ERROR_SERVER_BUSY"));
        assert!(
            s.claim_due(t(99), t(60_000), 10)
                .await
                .unwrap()
                .iter()
                .all(|m| m.id != "o-1")
        );
        let fail = DeliveryOutcome::Failed {
            reason: "BTP_ERROR_TRUST_NOT_ALLOWED".into(),
        };
        assert!(s.record_delivery(owner, "o-2", &fail, t(5)).await.unwrap());
        let o2 = s
            .get_message(owner, Mailbox::Outbox, "o-2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o2.delivery.unwrap().status, DeliveryStatus::Failed);
        let cancelled = s
            .cancel_outbox(owner, &["o-3", "o-2", "o-0", "none"], t(6))
            .await
            .unwrap();
        assert_eq!(cancelled, ["o-3"], "only pending entries are cancelled");
        let o3 = s
            .get_message(owner, Mailbox::Trash, "o-3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o3.delivery.unwrap().status, DeliveryStatus::Cancelled);
        assert!(
            !s.record_delivery(owner, "o-3", &DeliveryOutcome::Delivered, t(7))
                .await
                .unwrap()
        );
        assert!(
            s.claim_due(t(1_000_000), t(1_060_000), 10)
                .await
                .unwrap()
                .iter()
                .all(|m| m.id == "o-1")
        );
    }

    case("messages: durable across reopen, state included");
    {
        let s = factory.fresh().await;
        let owner = "pay$client.com";
        for i in 0..50 {
            let m = msg(owner, Mailbox::Inbox, &format!("k-{i:02}"), i, i64::from(i));
            let e = replay_entry(&format!("k-{i:02}"), &format!("c2ln{i}"), 600_000);
            s.store(&m, Some(&e), t(0)).await.unwrap();
        }
        s.mark_seen(owner, Mailbox::Inbox, &["k-01"], t(60))
            .await
            .unwrap();
        s.delete_messages(owner, Mailbox::Inbox, &["k-02"], t(61))
            .await
            .unwrap();
        s.store(&msg(owner, Mailbox::Outbox, "out", 1, 0), None, t(0))
            .await
            .unwrap();
        s.claim_due(t(0), t(500), 1).await.unwrap();
        if let Some(s) = factory.reopen(s).await {
            let ids = ids_of(&s, owner, Mailbox::Inbox).await;
            assert_eq!(ids.len(), 49);
            assert!(!ids.contains(&"k-02".to_owned()));
            let m = s
                .get_message(owner, Mailbox::Inbox, "k-01")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m.seen_at, Some(t(60)));
            assert!(
                s.get_message(owner, Mailbox::Trash, "k-02")
                    .await
                    .unwrap()
                    .is_some()
            );
            let e = replay_entry("k-07", "c2ln7", 600_000);
            assert_eq!(
                s.insert_replay(&e, t(1)).await.unwrap(),
                ReplayOutcome::SameSignature
            );
            let out = s
                .get_message(owner, Mailbox::Outbox, "out")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(out.delivery.unwrap().next_attempt_at, t(500), "lease kept");
        }
    }
}
