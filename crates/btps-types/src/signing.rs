//! The one place that produces "the bytes that get signed" ([PROTOCOL.md §4.3], §9.2).
//!
//! Every signed text is the `JSON.stringify` of the *received* value with some members left
//! out or replaced; nothing here re-serializes a typed struct. Signers and verifiers both call
//! these functions, so they cannot disagree.
//!
//! [PROTOCOL.md §4.3]: https://btps.invalid/PROTOCOL.md#43-what-is-excluded-from-the-signed-text

use crate::json::{JsString, Object, ObjectView, ViewValue};

/// A named list of top-level members left out of a signed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripSet(&'static [&'static str]);

impl StripSet {
    /// The member names left out.
    pub const fn members(self) -> &'static [&'static str] {
        self.0
    }
}

/// Transporter artifact without delegation: artifact minus `signature`.
pub const TRANSPORTER: StripSet = StripSet(&["signature"]);
/// The device signature `S_agent` of a delegated artifact: minus `signature` and
/// `delegation` (§9.2).
pub const DEVICE: StripSet = StripSet(&["signature", "delegation"]);
/// Agent artifact: minus `signature` (`version` and `encryption: null` stay in).
pub const AGENT: StripSet = StripSet(&["signature"]);
/// Send envelope inside an agent artifact: minus `signature`.
pub const ENVELOPE: StripSet = StripSet(&["signature"]);
/// Signed server reply: minus `signature`, with no member added (§2.5).
pub const RESPONSE: StripSet = StripSet(&["signature"]);

/// The signed text of `obj` with the members of `strip` left out.
///
/// # Examples
///
/// ```
/// use btps_types::{json::parse_str, signing};
/// let v = parse_str(r#"{"signature":{},"b":1.0,"1":"x"}"#).unwrap().value;
/// let text = signing::signing_input(v.as_object().unwrap(), signing::TRANSPORTER);
/// assert_eq!(text, br#"{"1":"x","b":1}"#);
/// ```
pub fn signing_input(obj: &Object, strip: StripSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_signing_input(&mut out, obj, strip);
    out
}

/// [`signing_input`] into a caller-owned buffer (cleared first), for hot loops.
pub fn write_signing_input(out: &mut Vec<u8>, obj: &Object, strip: StripSet) {
    out.clear();
    ObjectView::new(obj, strip.0).write(out);
}

const DELEGATION_SKIP: &[&str] = &["signature", "attestation"];
const ATTESTATION_SKIP: &[&str] = &["signature"];

/// The text the delegator signs (`S_del`, §9.2): the artifact **including** the device's
/// `signature`, with `delegation` replaced in its wire position by the delegation minus
/// `signature` and minus `attestation`.
///
/// Returns `None` when the artifact has no object `delegation`.
///
/// **Deviation from btps-node**: `attestation` is excluded, so attested delegations verify
/// (btps-node's verifier includes it and rejects every attested delegation it produces).
pub fn delegation_signing_input(artifact: &Object) -> Option<Vec<u8>> {
    let delegation = artifact.get_object("delegation")?;
    let inner = ObjectView::new(delegation, DELEGATION_SKIP);
    let replace = [("delegation", ViewValue::View(&inner))];
    Some(ObjectView::new(artifact, &[]).replacing(&replace).to_vec())
}

/// The text the attestor signs (`S_att`, §9.2): the delegation minus `attestation` (still
/// with `signature: S_del`, members in wire order), followed by `attestation` minus
/// `signature` appended as the last member.
///
/// `attestation` is the attestation object to sign: when producing one it is the new
/// attestation without its signature; when verifying, the received `delegation.attestation`.
pub fn attestation_signing_input(delegation: &Object, attestation: &Object) -> Vec<u8> {
    let key = JsString::from("attestation");
    let att = ObjectView::new(attestation, ATTESTATION_SKIP);
    let append = [(&key, ViewValue::View(&att))];
    ObjectView::new(delegation, &["attestation"])
        .appending(&append)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_str;

    fn obj(text: &str) -> Object {
        parse_str(text).unwrap().value.as_object().unwrap().clone()
    }

    #[test]
    fn strip_sets() {
        let a = obj(r#"{"a":1,"signature":{"v":1},"delegation":{"x":1},"z":2}"#);
        assert_eq!(
            signing_input(&a, TRANSPORTER),
            br#"{"a":1,"delegation":{"x":1},"z":2}"#
        );
        assert_eq!(signing_input(&a, DEVICE), br#"{"a":1,"z":2}"#);
    }

    #[test]
    fn delegation_input_excludes_signature_and_attestation_in_place() {
        let a = obj(
            r#"{"a":1,"signature":{"v":"S"},"delegation":{"agentId":"x","signature":{"v":"D"},"selector":"s","attestation":{"signedBy":"q","signature":{}}},"z":2}"#,
        );
        assert_eq!(
            delegation_signing_input(&a).unwrap(),
            br#"{"a":1,"signature":{"v":"S"},"delegation":{"agentId":"x","selector":"s"},"z":2}"#
        );
        assert!(delegation_signing_input(&obj(r#"{"delegation":"x"}"#)).is_none());
    }

    #[test]
    fn attestation_input_appends_last() {
        let d = obj(
            r#"{"agentId":"x","attestation":{"signedBy":"q","signature":{"v":"A"},"selector":"s"},"signature":{"v":"D"}}"#,
        );
        let att = d.get_object("attestation").unwrap();
        assert_eq!(
            attestation_signing_input(&d, att),
            br#"{"agentId":"x","signature":{"v":"D"},"attestation":{"signedBy":"q","selector":"s"}}"#
        );
    }
}
