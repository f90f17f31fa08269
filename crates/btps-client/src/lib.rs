//! The BTPS client ([PROTOCOL.md §2, §3, §5, §8, §9, §11.1]): everything that talks to BTPS
//! servers from the outside — a sender server delivering artifacts, a device acting for its
//! user, a command line.
//!
//! * **Transport** — [`Client`]: TLS 1.2+ (rustls on aws-lc-rs) with the host of the
//!   server address as SNI and certificate name ([`TlsTrust`]: system roots, CA PEM,
//!   pinned certificates, or a test-only accept-anything mode); one pool of connections per
//!   server; requests pipelined on a connection and matched to replies by `reqId`;
//!   timeouts, reply size limit, idle TTL with `QUIT`; retries with exponential backoff and
//!   jitter ([`RetryPolicy`], [`Backoff`]). Server discovery from the host record (or
//!   [`ClientConfig::overrides`]), [`ServerAddr`] parsed as §2.2 says.
//! * **Replies** — [`Response`] keeps the received object as it is and verifies signed
//!   replies over exactly that, minus `signature` ([`Response::verify`]); identity lookups
//!   ([`Client::lookup_identity`]) and DNS-first key resolution ([`Client::resolve_key`]).
//! * **Sending** — [`Transporter`] (a typestate builder: no artifact without identity,
//!   selector and key) signs, encrypts to the receiver's DNS key and delivers; [`Delivery`]
//!   says how. [`Delegator`], [`Attestor`] and [`DeviceSender`] produce delegated
//!   artifacts (§9.4); [`device_delegation_records`] gives the §6.6 DNS records.
//! * **Agents** — [`Agent`]: onboarding with an auth token and an RSA-2048 or (opt-in,
//!   between Rust peers) Ed25519 device key, refresh-token rotation (also automatically
//!   before expiry), device key rotation, one typed method per action of §3.5, and
//!   [`decrypt_artifact`] (verify first, then decrypt with the user's keys).
//! * **Keys** — [`KeyRing`]: identity keys by selector with their rotation (pending →
//!   active → retiring), signed rotation proofs; [`WellKnownClient`] fetches
//!   `/.well-known/btp-key-rotation.json` over HTTPS with limits (docs/keys.md).
//!
//! Every failure is a [`ClientError`]; [`ClientError::error_code`] gives the wire code and
//! [`ClientError::is_retryable`] the retry verdict.
//!
//! ```no_run
//! use btps_client::{Client, ClientConfig, Transporter};
//! use btps_crypto::KeyPair;
//! use btps_dns::{DnsCache, HickoryConfig, HickoryResolver};
//! use btps_types::artifact::TransporterType;
//! use btps_types::json::parse_str;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let dns = DnsCache::new(HickoryResolver::new(&HickoryConfig::system())?);
//! let client = Client::new(ClientConfig::default(), dns)?;
//! let key = KeyPair::from_pem(&std::fs::read_to_string("billing-btps1.pem")?)?;
//! let sender = Transporter::builder(client)
//!     .identity("billing$vendorcorp.com".parse()?)
//!     .selector("btps1".parse()?)
//!     .key(key)
//!     .build();
//! let invoice = parse_str(&std::fs::read_to_string("invoice.json")?)?.value;
//! let invoice = invoice.as_object().ok_or("not an object")?.clone();
//! let delivery = sender
//!     .send_document(TransporterType::BtpsDoc, "pay$client.com".parse()?, invoice, true)
//!     .await?;
//! println!("{:?}", delivery.status);
//! # Ok(()) }
//! ```
//!
//! # Decisions
//!
//! Where the protocol leaves room, this crate chooses as follows.
//!
//! * **Replies are routed by `reqId` only.** A reply whose `reqId` matches no request in
//!   flight on its connection (and none the connection gave up on after a timeout) is a
//!   protocol violation: it is logged, the connection is closed and all its requests fail
//!   with [`ClientError::Protocol`] — no reply is ever handed to another request. A reply
//!   without `reqId` that is an error (408, 413) fails every request of the connection with
//!   that error; one that is a success cannot be attributed and is a violation.
//! * **Timeouts.** [`ClientConfig::connect_timeout`] bounds TCP connect plus handshake;
//!   [`ClientConfig::request_timeout`] bounds the wait for a free slot and, separately, the
//!   wait for the reply after writing. A timed-out request is forgotten (its late reply is
//!   dropped quietly) and its connection takes no new requests; it closes (with `QUIT`)
//!   once its other requests are answered (§2.4).
//! * **Retries.** Only idempotent requests are re-sent: signed transporter artifacts (the
//!   receiver's replay check answers an exact re-send `already accepted`), `PING`, identity
//!   lookups, and agent reads and content-idempotent changes (re-signed with a new `id`,
//!   since an exact re-send of those would be answered `already accepted` without the
//!   result). `auth.*` is never re-sent once written. Retried: connect and TLS failures
//!   (not certificate refusals), timeouts, connections closed before the reply, and error
//!   replies whose `errorCode` is of class 408/429/500/503 (429 and 503 also without one;
//!   a 500 without `errorCode` comes from a btps-node peer, which answers 500 for every
//!   refusal, and is final). A request that never left (no connection) is retried even when
//!   not idempotent. A retry never goes out on a connection the request was written to.
//! * **Pool.** Normally one connection per server; another one only when all are at
//!   [`ClientConfig::max_in_flight`]; while one is being opened, other requests wait for it.
//!   After a failed connect the server is in reconnect backoff ([`ClientConfig::reconnect`]);
//!   requests during it fail at once with the last connect error, and the retry loop waits
//!   for its end.
//! * **Signed replies.** With [`RequestOptions::require_signed`], a success reply must be
//!   signed and verify; an unsigned *error* reply is returned as it is (it grants nothing),
//!   a signed one is verified. Identity lookups additionally require `signedBy` in the
//!   looked-up identity's domain.
//! * **Selectors of device-signed artifacts** (agent envelopes, [`DeviceSender`]) name the
//!   receiver's key: the `s` of the receiver's host record (§5.4).
//! * **Delegators and attestors** cannot be created without their key being checked against
//!   DNS (`btps-key-validation`, §9.4).
//! * **Idle connections.** The client closes a connection unused for
//!   [`ClientConfig::idle_ttl`] with `QUIT`. Servers usually close sooner (btps-server: 30 s,
//!   with a 408 reply without `reqId`); such a connection leaves the pool and the next
//!   request opens a new one.
//!
//! # Limits
//!
//! * The inline retries take seconds (four attempts, 1 s doubling). The long delivery
//!   schedule of §11.1 (1 to 16 minutes, then a `BTP_DELIVERY_FAILURE`) needs a durable
//!   outbox and belongs to the sender server's delivery worker, which can call
//!   [`Transporter::send`] per attempt.
//! * If the reply to `auth.refresh` is lost, the server has rotated the token already and
//!   the agent must be onboarded again (single-use tokens, §8.4); the request is never
//!   re-sent; the same holds for a device key rotation.
//!
//! [PROTOCOL.md §2, §3, §5, §8, §9, §11.1]: https://btps.invalid/PROTOCOL.md#2-transport
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addr;
mod agent;
mod client;
mod config;
mod connection;
mod delegation;
mod error;
pub mod fsutil;
pub mod keyring;
mod pool;
mod response;
mod tls;
mod transporter;
mod util;
mod well_known;

pub use addr::ServerAddr;
pub use agent::{
    Agent, AgentState, Mailbox, Page, PageEntry, Query, Queued, StateHook, TrustPage,
    decrypt_artifact,
};
pub use btps_crypto::Decrypted;
pub use client::{Client, ClientStats, RequestOptions};
pub use config::{Backoff, ClientConfig, RetryPolicy, TlsTrust};
pub use delegation::{Attestor, Delegator, DeviceSender, device_delegation_records};
pub use error::{ClientError, Result};
pub use keyring::{KeyEntry, KeyRing, KeyRingError, KeyState, RotationPlan};
pub use response::Response;
pub use tls::{certificate_fingerprint, parse_fingerprint};
pub use transporter::{
    ArtifactBuilder, Delivery, DeliveryStatus, NeedIdentity, NeedKey, NeedSelector, Transporter,
    TransporterBuilder,
};
pub use well_known::{KEY_ROTATION_PATH, TRUST_LIST_PATH, WellKnownClient, WellKnownConfig};
