//! Control artifacts (`PING`, `QUIT`, §2.4) and identity lookups (§3.6).

use btps_types::artifact::{Control, ControlAction, IdentityLookup};
use btps_types::json::Object;
use btps_types::{ErrorCode, UnixMillis};

use super::{Outcome, Pipeline};
use crate::handler::Peer;
use crate::reply::{Reply, SignedLayout};

impl Pipeline {
    /// `PING` → `pong`, the connection stays open; `QUIT` → `bye`, then close.
    pub(super) fn control(&self, c: &Control<'_>) -> Outcome {
        let req_id = Some(c.id.to_owned());
        match c.action {
            ControlAction::Ping => Outcome::plain(Reply::ok_with(req_id, "pong"), "control"),
            ControlAction::Quit => Outcome {
                close: true,
                ..Outcome::plain(Reply::ok_with(req_id, "bye"), "control")
            },
        }
    }

    /// Answers from the identity store with a signed reply (§3.6): the key record at
    /// `identitySelector` (default: the identity's current selector).
    pub(super) async fn identity_lookup(&self, l: &IdentityLookup<'_>, peer: &Peer) -> Outcome {
        let req_id = Some(l.id.to_owned());
        let now: UnixMillis = self.now();
        let refuse = |code| Outcome::plain(Reply::error(code, req_id.clone()), "identity_lookup");
        if !self.limits.lookups.check(&peer.addr.ip().to_string(), now) {
            return refuse(ErrorCode::RateLimiter);
        }
        let Some(signer) = self.signer_for(Some(l.identity.domain())) else {
            tracing::warn!("identity lookup without a server key: configure server_key");
            return refuse(ErrorCode::IdentityNotFound);
        };
        let record = match self
            .stores
            .identities
            .get_identity(l.identity.as_str())
            .await
        {
            Ok(Some(r)) => r,
            Ok(None) => return refuse(ErrorCode::IdentityNotFound),
            Err(e) => {
                tracing::error!(error = %e, "identity store");
                return refuse(ErrorCode::ServerBusy);
            }
        };
        let key = match l.identity_selector {
            Some(s) => record.key(s),
            None => record.current_key(),
        };
        let Some(key) = key else {
            return refuse(ErrorCode::IdentityNotFound);
        };
        if signer.selector != l.host_selector {
            tracing::debug!(
                requested = l.host_selector,
                used = %signer.selector,
                "identity lookup signed with the current server selector"
            );
        }
        let document = Object::with_capacity(4)
            .with("selector", key.selector.as_str())
            .with("publicKey", key.public_key.as_str())
            .with("keyType", key.key_type.as_str())
            .with("version", key.version.as_str());
        Outcome {
            signed: Some(SignedLayout::IdentityLookup),
            sign_for: Some(l.identity.domain().to_owned()),
            ..Outcome::plain(
                Reply::success(req_id).with_document(document),
                "identity_lookup",
            )
        }
    }
}
