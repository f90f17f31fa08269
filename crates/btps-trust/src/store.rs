//! The store traits, one per concern, so a backend implements what it holds.
//!
//! | trait | holds | atomic operations |
//! |---|---|---|
//! | [`TrustStore`] | trust and agent records (§7.1, §8.2) | [`transition`](TrustStore::transition): compare-and-set on the status |
//! | [`IdentityStore`] | hosted identities and keys (§7.5), auth and refresh token hashes (§8.1) | [`consume_token`](IdentityStore::consume_token): compare-and-delete |
//! | [`ReplayStore`] | seen artifact ids with expiry (§10.2) | [`insert_replay`](ReplayStore::insert_replay): insert if absent |
//! | [`MessageStore`] | inbox, outbox, sentbox, drafts, trash (§3.5, §11.1) | [`store`](MessageStore::store): store the artifact and record its replay id in one step |
//!
//! Contract for every backend (checked by the conformance suite):
//!
//! * **Durability**: anything acknowledged (an `Ok` return of a mutating call) survives a crash
//!   of the process and of the machine. Backends group concurrent writers into one sync
//!   (group commit) rather than weakening this.
//! * **Atomicity** where a method says so: concurrent callers on any number of server
//!   processes sharing the backend cannot both win a compare-and-set, consume the same token
//!   or insert the same replay key.
//! * **Identities** are compared case-insensitively: owners and trust parties are matched on
//!   their lower-case form.
//! * **Time** is passed in (`now`); backends do not read the clock for decisions.
//! * Failures are [`TrustError`](crate::TrustError)s; the server fails closed
//!   (`BTP_ERROR_SERVER_BUSY`).

mod identity;
mod message;
mod replay;
mod trust;

pub use identity::{IdentityStore, TokenKind, TokenOutcome, TokenRecord};
pub use message::{
    DEFAULT_FETCH_LIMIT, DeliveryOutcome, DeliveryState, DeliveryStatus, MAX_FETCH_LIMIT, Mailbox,
    MessagePage, MessageQuery, MessageStore, NewMessage, SortOrder, StoreOutcome, StoredMessage,
};
pub use replay::{ReplayEntry, ReplayOutcome, ReplayStore};
pub use trust::{CasOutcome, Expected, Page, PageRequest, TrustFilter, TrustStore};
