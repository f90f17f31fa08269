//! BTPS trust: who may send to whom, and the stores a server keeps
//! ([PROTOCOL.md §7, §8, §10, §11.1]).
//!
//! * **Records and ids**: [`TrustRecord`] (§7.1, the btps-node JSON layout),
//!   [`IdentityRecord`] (§7.5), [`trust_id`] and [`compute_id`] (§7.2), [`TokenHash`] and
//!   token generation (§8.1).
//! * **Trust rules** (pure): [`evaluate`] applies §7.3 in order to the facts of an incoming
//!   artifact ([`Incoming`]) and the consulted record, with every DEVIATION, and returns a
//!   [`Verdict`] with the wire code; [`evaluate_agent`] for agent records;
//!   [`check_sender_key`] for key changes (`keyHistory`, pinned keys with `lockedTrust` /
//!   `allowKeyRotation`, [`apply_rotation`] once a rotation proof verified).
//! * **Consent handshake** (pure, §7.4): [`request_outgoing`], [`receive_request`],
//!   [`decide`], [`apply_response`], [`revoke`], [`can_request`].
//! * **Store traits**, one per concern: [`TrustStore`], [`IdentityStore`] (identities and
//!   token hashes), [`ReplayStore`] (§10.2), [`MessageStore`] (mailboxes, outbox delivery
//!   state; "store and mark seen" in one step).
//! * **The file backend**, [`file`](mod@file): the embedded default, durable and crash-safe.
//! * **The conformance suite** (`conformance` feature): the tests every backend must pass.
//!
//! Nothing here reads the clock for a decision: `now` is an argument ([`UnixMillis`]).
//!
//! This crate does not verify signatures (btps-crypto does), resolve DNS (btps-dns) or speak
//! the wire protocol (btps-server).
//!
//! [PROTOCOL.md §7, §8, §10, §11.1]: https://btps.invalid/PROTOCOL.md#7-trust
//! [`UnixMillis`]: btps_types::UnixMillis
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod file;
mod handshake;
mod id;
mod identity;
mod record;
mod rules;
mod store;

pub use error::{Result, TrustError};
pub use handshake::{
    Decision, OutgoingRequest, RequestTerms, apply_response, can_request, decide, decision_applies,
    receive_request, request_outgoing, revoke,
};
pub use id::{
    AUTH_TOKEN_ALPHABET, AUTH_TOKEN_LEN, TokenHash, compute_id, generate_agent_id,
    generate_auth_token, generate_refresh_token, generate_uuid_v4, trust_id,
};
pub use identity::{IdentityKey, IdentityRecord};
pub use record::{KeyHistoryEntry, RotationEntry, TrustRecord, TrustStatus};
pub use rules::{
    Incoming, IncomingKind, KeyCheck, Refusal, RefusalReason, SenderKey, Verdict, apply_rotation,
    check_sender_key, evaluate, evaluate_agent, key_pinned, signed_before_rotation,
};
pub use store::{
    CasOutcome, DEFAULT_FETCH_LIMIT, DeliveryOutcome, DeliveryState, DeliveryStatus, Expected,
    IdentityStore, MAX_FETCH_LIMIT, Mailbox, MessagePage, MessageQuery, MessageStore, NewMessage,
    Page, PageRequest, ReplayEntry, ReplayOutcome, ReplayStore, SortOrder, StoreOutcome,
    StoredMessage, TokenKind, TokenOutcome, TokenRecord, TrustFilter, TrustStore,
};
