//! The pending delegation of an outbox entry, and the `BTP_DELIVERY_FAILURE` artifact
//! (PROTOCOL.md §3.3) stored in the sender's inbox after a final failure.

use btps_trust::trust_id;
use btps_types::UnixMillis;
use btps_types::json::{Object, Value};

/// `type` of a delivery-failure artifact.
pub(crate) const FAILURE_TYPE: &str = "BTP_DELIVERY_FAILURE";

/// The `delegation` member an outbox entry is stored with: who the delegation is for,
/// `{agentId, agentPubKey}`. The device signature does not cover `delegation` (§9.2), and
/// [`btps_crypto::delegate`] replaces it with the signed delegation at each attempt.
pub(crate) fn pending_delegation(agent_id: &str, agent_pub_key_pem: &str) -> Object {
    Object::with_capacity(2)
        .with("agentId", agent_id)
        .with("agentPubKey", agent_pub_key_pem)
}

/// The (agentId, agentPubKey) of an outbox entry's pending delegation.
pub(crate) fn read_pending(artifact: &Object) -> Option<(&str, &str)> {
    let d = artifact.get_object("delegation")?;
    Some((d.get_str("agentId")?, d.get_str("agentPubKey")?))
}

/// The inbox id of the failure artifact for outbox entry `transport_id` of `owner`: the
/// same on every run, so that a crash between storing it and recording the failure cannot
/// store a second one. A UUID (version 8, name-based) of SHA-256 over the lower-cased owner
/// and the hex of the id.
pub(crate) fn failure_id(owner: &str, transport_id: &str) -> String {
    let mut id_hex = String::with_capacity(transport_id.len() * 2);
    for b in transport_id.bytes() {
        id_hex.push_str(&format!("{b:02x}"));
    }
    let h = trust_id(&format!("btps-delivery-failure:{owner}"), &id_hex);
    let variant = u8::from_str_radix(&h[16..17], 16).unwrap_or(0) & 0x3 | 0x8;
    format!(
        "{}-{}-8{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        variant,
        &h[17..20],
        &h[20..32]
    )
}

/// What a final failure reports.
pub(crate) struct Failure<'a> {
    /// The outbox entry's artifact (with its pending delegation).
    pub(crate) artifact: &'a Object,
    /// The failure artifact's `from`: the service identity of the sender's domain, or the
    /// sender when there is none.
    pub(crate) from: &'a str,
    /// The inbox owner, used when the artifact has no `from`.
    pub(crate) owner: &'a str,
    /// Why.
    pub(crate) reason: &'a str,
    /// Attempts recorded before the final one.
    pub(crate) retry_count: u32,
    /// The attempts' errors (`{attempt, at, error}`).
    pub(crate) error_log: Vec<Value>,
    /// Now.
    pub(crate) at: UnixMillis,
}

/// The failure artifact `{id, issuedAt, type, from, to, document}` (§3.3), unsigned:
/// `to` is the sender (the inbox owner), `document` is `{id, reason, failedAt, retryCount,
/// document, errorLog, recipient, transportArtifactId}` with the artifact as the agent
/// sent it (without the pending delegation).
pub(crate) fn failure_artifact(id: &str, f: &Failure<'_>) -> Object {
    let sender = f.artifact.get_str("from").unwrap_or(f.owner);
    let recipient = f.artifact.get_str("to").unwrap_or_default();
    let transport_id = f.artifact.get_str("id").unwrap_or_default();
    let mut failed = f.artifact.clone();
    failed.remove("delegation");
    let at = f.at.to_datetime_string();
    let document = Object::with_capacity(8)
        .with("id", id)
        .with("reason", f.reason)
        .with("failedAt", at.as_str())
        .with("retryCount", f.retry_count)
        .with("document", failed)
        .with("errorLog", Value::Array(f.error_log.clone()))
        .with("recipient", recipient)
        .with("transportArtifactId", transport_id);
    Object::with_capacity(6)
        .with("id", id)
        .with("issuedAt", at)
        .with("type", FAILURE_TYPE)
        .with("from", f.from)
        .with("to", sender)
        .with("document", document)
}

/// The reason of `artifact` when it is the failure artifact of `transport_id`.
pub(crate) fn failure_reason<'a>(artifact: &'a Object, transport_id: &str) -> Option<&'a str> {
    if artifact.get_str("type") != Some(FAILURE_TYPE) {
        return None;
    }
    let doc = artifact.get_object("document")?;
    (doc.get_str("transportArtifactId") == Some(transport_id))
        .then(|| doc.get_str("reason").unwrap_or_default())
}

/// One `errorLog` entry.
pub(crate) fn log_entry(attempt: u32, at: UnixMillis, error: &str) -> Value {
    Object::with_capacity(3)
        .with("attempt", attempt)
        .with("at", at.to_datetime_string())
        .with("error", error)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use btps_types::json::to_js_string;

    #[test]
    fn failure_ids_are_stable_uuids() {
        let a = failure_id("alice$saas.test", "out-1");
        assert_eq!(a, failure_id("alice$saas.test", "out-1"));
        assert_ne!(a, failure_id("alice$saas.test", "out-2"));
        assert_ne!(a, failure_id("bob$saas.test", "out-1"));
        // Ids differing only in case are different artifacts.
        assert_ne!(a, failure_id("alice$saas.test", "OUT-1"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn failure_artifact_shape() {
        let artifact = Object::new()
            .with("version", "1.0.0")
            .with("type", "BTPS_DOC")
            .with("from", "alice$saas.test")
            .with("to", "pay$client.test")
            .with("id", "out-1")
            .with("delegation", pending_delegation("agent-1", "PEM\n"));
        assert_eq!(read_pending(&artifact), Some(("agent-1", "PEM\n")));
        let f = Failure {
            artifact: &artifact,
            from: "server$saas.test",
            owner: "alice$saas.test",
            reason: "refused",
            retry_count: 2,
            error_log: vec![log_entry(1, UnixMillis::from_millis(0), "e1")],
            at: UnixMillis::from_millis(1000),
        };
        let obj = failure_artifact("fid", &f);
        assert_eq!(
            to_js_string(&Value::Object(obj.clone())),
            concat!(
                r#"{"id":"fid","issuedAt":"1970-01-01T00:00:01.000Z","type":"BTP_DELIVERY_FAILURE","#,
                r#""from":"server$saas.test","to":"alice$saas.test","document":{"id":"fid","#,
                r#""reason":"refused","failedAt":"1970-01-01T00:00:01.000Z","retryCount":2,"#,
                r#""document":{"version":"1.0.0","type":"BTPS_DOC","from":"alice$saas.test","#,
                r#""to":"pay$client.test","id":"out-1"},"errorLog":[{"attempt":1,"#,
                r#""at":"1970-01-01T00:00:00.000Z","error":"e1"}],"recipient":"pay$client.test","#,
                r#""transportArtifactId":"out-1"}}"#
            )
        );
        assert_eq!(failure_reason(&obj, "out-1"), Some("refused"));
        assert_eq!(failure_reason(&obj, "out-2"), None);
        assert_eq!(failure_reason(&artifact, "out-1"), None);
    }
}
