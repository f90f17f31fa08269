//! Control artifacts and identity lookup requests (§3.6): unsigned, no freshness or replay
//! checks.

use super::SchemaError;
use super::rules::{Fields, enumeration, selector, string, wire_enum};
use crate::json::Object;
use crate::{Identity, UnixMillis};

wire_enum! {
    /// A control action (PROTOCOL.md §3.6, §2.4).
    pub enum ControlAction {
        /// `QUIT`: finish in-flight requests, reply `bye`, close.
        Quit = "QUIT",
        /// `PING`: reply `pong`, stay open (**deviation**: the reference errors and closes).
        Ping = "PING",
    }
}

/// A control artifact `{version, id, issuedAt, action: "QUIT" | "PING"}` (PROTOCOL.md §3.6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Control<'a> {
    /// The artifact as received.
    pub raw: &'a Object,
    /// `version`.
    pub version: &'a str,
    /// `id` (echoed as `reqId`).
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `action`.
    pub action: ControlAction,
}

/// Validates a control artifact. An action other than `QUIT`/`PING` is
/// `BTP_ERROR_VALIDATION`, as in the reference.
///
/// # Errors
///
/// [`SchemaError`] with the path of the first offending member.
pub fn validate_control(obj: &Object) -> Result<Control<'_>, SchemaError> {
    let f = Fields(obj);
    let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
    Ok(Control {
        raw: obj,
        action: f.req("action", enumeration)?,
        version: f.req("version", string)?,
        id: f.req_str("id")?,
        issued_at,
        issued_at_ms,
    })
}

impl<'a> Control<'a> {
    /// Same as [`validate_control`].
    ///
    /// # Errors
    ///
    /// [`SchemaError`].
    pub fn validate(obj: &'a Object) -> Result<Self, SchemaError> {
        validate_control(obj)
    }
}

/// An identity lookup request (PROTOCOL.md §3.6): `{identity, from, hostSelector, version, id,
/// issuedAt, identitySelector?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityLookup<'a> {
    /// The request as received.
    pub raw: &'a Object,
    /// `identity`: whose key is wanted.
    pub identity: Identity,
    /// `from`: the requester (unauthenticated, informational).
    pub from: Identity,
    /// `hostSelector`: the selector the requester believes the server identity uses.
    pub host_selector: &'a str,
    /// `version` (any string).
    pub version: &'a str,
    /// `id` (echoed as `reqId`).
    pub id: &'a str,
    /// `issuedAt` (datetime text).
    pub issued_at: &'a str,
    /// `issuedAt` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// `identitySelector`: which key (default: the identity's current selector).
    pub identity_selector: Option<&'a str>,
}

/// Validates an identity lookup request.
///
/// # Errors
///
/// [`SchemaError`] with the path of the first offending member.
pub fn validate_identity_lookup(obj: &Object) -> Result<IdentityLookup<'_>, SchemaError> {
    let f = Fields(obj);
    let identity = f.req_identity("identity")?;
    let from = f.req_identity("from")?;
    let host_selector = f.req("hostSelector", selector)?;
    let version = f.req("version", string)?;
    let id = f.req_str("id")?;
    let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
    Ok(IdentityLookup {
        raw: obj,
        identity,
        from,
        host_selector,
        version,
        id,
        issued_at,
        issued_at_ms,
        identity_selector: f.opt("identitySelector", selector)?,
    })
}

impl<'a> IdentityLookup<'a> {
    /// Same as [`validate_identity_lookup`].
    ///
    /// # Errors
    ///
    /// [`SchemaError`].
    pub fn validate(obj: &'a Object) -> Result<Self, SchemaError> {
        validate_identity_lookup(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::document::tests::obj;
    use crate::json::Value;

    const QUIT: &str = r#"{"version":"1.0.0","id":"ctl-0001","issuedAt":"2025-07-01T09:30:00.000Z","action":"QUIT"}"#;
    const LOOKUP: &str = r#"{"identity":"finance$buyer.test","from":"billing$vendorcorp.test","hostSelector":"btps1","version":"1.0.0","id":"idl-0001","issuedAt":"2025-07-01T09:30:00.000Z"}"#;

    #[test]
    fn control() {
        let o = obj(QUIT);
        let c = validate_control(&o).unwrap();
        assert_eq!((c.action, c.id), (ControlAction::Quit, "ctl-0001"));
        let o = obj(&QUIT.replace("QUIT", "PING"));
        assert_eq!(validate_control(&o).unwrap().action, ControlAction::Ping);
        for action in ["NOOP", "quit", "Ping", ""] {
            let o = obj(&QUIT.replace("QUIT", action));
            assert_eq!(
                validate_control(&o).unwrap_err().path(),
                "/action",
                "{action}"
            );
        }
        for member in ["version", "id", "issuedAt", "action"] {
            let mut o = obj(QUIT);
            o.remove(member);
            assert_eq!(
                validate_control(&o).unwrap_err().path(),
                format!("/{member}")
            );
        }
        let mut o = obj(QUIT);
        o.insert("issuedAt", "2025-07-01T09:30:00.000+00:00");
        assert_eq!(validate_control(&o).unwrap_err().path(), "/issuedAt");
    }

    #[test]
    fn identity_lookup() {
        let o = obj(LOOKUP);
        let l = validate_identity_lookup(&o).unwrap();
        assert_eq!(l.identity.as_str(), "finance$buyer.test");
        assert_eq!(l.identity_selector, None);
        let mut o = obj(LOOKUP);
        o.insert("identitySelector", "btps2");
        assert_eq!(
            validate_identity_lookup(&o).unwrap().identity_selector,
            Some("btps2")
        );
        for member in [
            "identity",
            "from",
            "hostSelector",
            "version",
            "id",
            "issuedAt",
        ] {
            let mut o = obj(LOOKUP);
            o.remove(member);
            assert_eq!(
                validate_identity_lookup(&o).unwrap_err().path(),
                format!("/{member}")
            );
        }
        for (member, value) in [
            ("identity", Value::from("nobody")),
            ("from", Value::from("a$$b.c")),
            ("hostSelector", Value::from("a b")),
            ("identitySelector", Value::Null),
            ("identitySelector", Value::from("")),
            ("issuedAt", Value::from("2025-07-01")),
        ] {
            let mut o = obj(LOOKUP);
            o.insert(member, value);
            assert_eq!(
                validate_identity_lookup(&o).unwrap_err().path(),
                format!("/{member}")
            );
        }
    }
}
