//! Shapes shared by several artifacts: the signature object (§4.2), the encryption object
//! (§5.1) and the delegation with its attestation (§9.1).

use super::SchemaError;
use super::rules::{Fields, artifact_id, base64, literal, object, selector, string, wire_enum};
use crate::json::{Object, Value};
use crate::{Identity, UnixMillis};

/// The only `algorithmHash` (PROTOCOL.md §4.2).
pub const SHA256: &str = "sha256";
/// The only encryption `algorithm` (PROTOCOL.md §5.1).
pub const AES_256_GCM: &str = "aes-256-gcm";

/// A signature object `{algorithmHash: "sha256", value: base64, fingerprint: base64}`
/// (PROTOCOL.md §4.2), all three required.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignatureRef<'a> {
    /// The signature object as received.
    pub raw: &'a Object,
    /// Always `"sha256"`.
    pub algorithm_hash: &'a str,
    /// Base64 of the signature bytes.
    pub value: &'a str,
    /// Base64 of SHA-256 over the signer's SPKI DER.
    pub fingerprint: &'a str,
}

impl<'a> SignatureRef<'a> {
    /// Validates a signature object.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path of the offending member.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            algorithm_hash: f.req("algorithmHash", literal(SHA256))?,
            value: f.req("value", base64)?,
            fingerprint: f.req("fingerprint", base64)?,
        })
    }
}

wire_enum! {
    /// The informational `encryption.type` (PROTOCOL.md §5.1).
    pub enum EncryptionType {
        /// `standardEncrypt`, what Rust writers emit.
        Standard = "standardEncrypt",
        /// `2faEncrypt`.
        TwoFactor = "2faEncrypt",
        /// `none`.
        None = "none",
    }
}

/// An encryption object (PROTOCOL.md §5.1): `{algorithm: "aes-256-gcm", encryptedKey, iv,
/// authTag, type}`, binary values in base64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Encryption<'a> {
    /// The encryption object as received.
    pub raw: &'a Object,
    /// Always `"aes-256-gcm"`.
    pub algorithm: &'a str,
    /// Base64 of the RSA-OAEP-wrapped AES key.
    pub encrypted_key: &'a str,
    /// Base64 of the 12-byte nonce (length checked at decryption).
    pub iv: &'a str,
    /// Base64 of the 16-byte GCM tag (length checked at decryption).
    pub auth_tag: &'a str,
    /// The informational `type`.
    pub kind: EncryptionType,
}

impl<'a> Encryption<'a> {
    /// Validates an encryption object (an `algorithm` other than `aes-256-gcm` is a schema
    /// violation here; decryptors report `BTP_ERROR_UNSUPPORTED_ENCRYPT`).
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path of the offending member.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            algorithm: f.req("algorithm", literal(AES_256_GCM))?,
            encrypted_key: f.req("encryptedKey", base64)?,
            iv: f.req("iv", base64)?,
            auth_tag: f.req("authTag", base64)?,
            kind: f.req("type", super::rules::enumeration)?,
        })
    }
}

/// A delegation (PROTOCOL.md §9.1): binds a device key to one transporter artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct Delegation<'a> {
    /// The delegation object as received.
    pub raw: &'a Object,
    /// The agent (device) id.
    pub agent_id: &'a str,
    /// PEM SPKI of the device key (parsed by the crypto crate).
    pub agent_pub_key: &'a str,
    /// The delegator.
    pub signed_by: Identity,
    /// When the delegation was issued (datetime text).
    pub issued_at: &'a str,
    /// `issued_at` in Unix milliseconds (the freshness reference time, §10.1).
    pub issued_at_ms: UnixMillis,
    /// Selector of the **delegator's** key.
    pub selector: &'a str,
    /// `S_del`.
    pub signature: SignatureRef<'a>,
    /// The optional attestation.
    pub attestation: Option<Attestation<'a>>,
}

impl<'a> Delegation<'a> {
    /// Validates a delegation object.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path of the offending member.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
        Ok(Self {
            raw,
            agent_id: f.req_str("agentId")?,
            agent_pub_key: f.req_str("agentPubKey")?,
            signed_by: f.req_identity("signedBy")?,
            issued_at,
            issued_at_ms,
            selector: f.req("selector", selector)?,
            signature: f.req("signature", SignatureRef::validate)?,
            attestation: f.opt("attestation", Attestation::validate)?,
        })
    }
}

/// An attestation inside a delegation (PROTOCOL.md §9.1): `{signedBy, issuedAt, selector,
/// signature}`, `selector` being the attestor's own.
#[derive(Clone, Debug, PartialEq)]
pub struct Attestation<'a> {
    /// The attestation object as received.
    pub raw: &'a Object,
    /// The attestor.
    pub signed_by: Identity,
    /// When the attestation was issued (datetime text).
    pub issued_at: &'a str,
    /// `issued_at` in Unix milliseconds.
    pub issued_at_ms: UnixMillis,
    /// Selector of the attestor's key.
    pub selector: &'a str,
    /// `S_att`.
    pub signature: SignatureRef<'a>,
}

impl<'a> Attestation<'a> {
    /// Validates an attestation object.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path of the offending member.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
        Ok(Self {
            raw,
            signed_by: f.req_identity("signedBy")?,
            issued_at,
            issued_at_ms,
            selector: f.req("selector", selector)?,
            signature: f.req("signature", SignatureRef::validate)?,
        })
    }
}

/// The members every signed artifact header shares (transporter and send envelope).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Header<'a> {
    pub(crate) version: &'a str,
    pub(crate) id: &'a str,
    pub(crate) issued_at: &'a str,
    pub(crate) issued_at_ms: UnixMillis,
    pub(crate) from: Identity,
    pub(crate) to: Identity,
    pub(crate) selector: &'a str,
}

impl<'a> Header<'a> {
    pub(crate) fn validate(f: Fields<'a>) -> Result<Self, SchemaError> {
        let version = f.req("version", string)?;
        let (issued_at, issued_at_ms) = f.req_datetime("issuedAt")?;
        Ok(Self {
            version,
            issued_at,
            issued_at_ms,
            id: f.req("id", artifact_id)?,
            from: f.req_identity("from")?,
            to: f.req_identity("to")?,
            selector: f.req("selector", selector)?,
        })
    }
}

/// The parts of the replay key of an artifact (PROTOCOL.md §10.2): the scope and the
/// artifact `id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplayKey<'a> {
    /// Whose ids these are.
    pub scope: ReplayScope<'a>,
    /// The artifact `id`.
    pub id: &'a str,
}

/// The scope of a replay key (PROTOCOL.md §10.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplayScope<'a> {
    /// Transporter artifacts: the **lower-cased** `from`.
    Sender(String),
    /// Agent artifacts except `auth.request`: the `agentId`.
    Agent(&'a str),
    /// `auth.request`: the fingerprint of this PEM public key (`document.publicKey`); the
    /// caller computes it with the crypto crate.
    AgentKey(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_str;

    fn v(text: &str) -> Value {
        parse_str(text).unwrap().value
    }

    const SIG: &str = r#"{"algorithmHash":"sha256","value":"QUJD","fingerprint":"QUI="}"#;

    #[test]
    fn signature_object() {
        let s = v(SIG);
        let sig = SignatureRef::validate(&s).unwrap();
        assert_eq!((sig.value, sig.fingerprint), ("QUJD", "QUI="));
        for (bad, path) in [
            (r#"{"value":"QUJD","fingerprint":"QUI="}"#, "/algorithmHash"),
            (
                r#"{"algorithmHash":"sha512","value":"QUJD","fingerprint":"QUI="}"#,
                "/algorithmHash",
            ),
            (
                r#"{"algorithmHash":"sha256","fingerprint":"QUI="}"#,
                "/value",
            ),
            (
                r#"{"algorithmHash":"sha256","value":"QUJ","fingerprint":"QUI="}"#,
                "/value",
            ),
            (
                r#"{"algorithmHash":"sha256","value":"QUJD"}"#,
                "/fingerprint",
            ),
            (
                r#"{"algorithmHash":"sha256","value":"QUJD","fingerprint":null}"#,
                "/fingerprint",
            ),
            ("[]", ""),
        ] {
            assert_eq!(
                SignatureRef::validate(&v(bad)).unwrap_err().path(),
                path,
                "{bad}"
            );
        }
    }

    #[test]
    fn encryption_object() {
        let ok = v(
            r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI=","type":"standardEncrypt"}"#,
        );
        let e = Encryption::validate(&ok).unwrap();
        assert_eq!(e.kind, EncryptionType::Standard);
        for (bad, path) in [
            (
                r#"{"algorithm":"aes-256-cbc","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI=","type":"none"}"#,
                "/algorithm",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","iv":"QUJD","authTag":"QUI=","type":"none"}"#,
                "/encryptedKey",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","authTag":"QUI=","type":"none"}"#,
                "/iv",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","type":"none"}"#,
                "/authTag",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI="}"#,
                "/type",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI=","type":"x"}"#,
                "/type",
            ),
            (
                r#"{"algorithm":"aes-256-gcm","encryptedKey":"Q","iv":"QUJD","authTag":"QUI=","type":"none"}"#,
                "/encryptedKey",
            ),
        ] {
            assert_eq!(
                Encryption::validate(&v(bad)).unwrap_err().path(),
                path,
                "{bad}"
            );
        }
        assert!(Encryption::validate(&v(r#"{"algorithm":"aes-256-gcm","encryptedKey":"QUJD","iv":"QUJD","authTag":"QUI=","type":"2faEncrypt"}"#)).is_ok());
    }

    #[test]
    fn delegation_object() {
        let text = format!(
            r#"{{"agentId":"dev","agentPubKey":"PEM","signedBy":"admin$saas.com","issuedAt":"2025-07-01T09:30:00.000Z","selector":"btps1","signature":{SIG},"attestation":{{"signedBy":"att$auth.com","issuedAt":"2025-07-01T09:30:01.000Z","selector":"a1","signature":{SIG}}}}}"#
        );
        let d = v(&text);
        let del = Delegation::validate(&d).unwrap();
        assert_eq!(del.signed_by.as_str(), "admin$saas.com");
        assert_eq!(del.attestation.as_ref().unwrap().selector, "a1");
        assert_eq!(del.issued_at_ms.to_string(), "2025-07-01T09:30:00.000Z");
        for (member, path) in [
            ("agentId", "/agentId"),
            ("agentPubKey", "/agentPubKey"),
            ("signedBy", "/signedBy"),
            ("issuedAt", "/issuedAt"),
            ("selector", "/selector"),
            ("signature", "/signature"),
        ] {
            let mut o = d.as_object().unwrap().clone();
            o.remove(member);
            assert_eq!(
                Delegation::validate(&Value::Object(o)).unwrap_err().path(),
                path
            );
        }
        let mut o = d.as_object().unwrap().clone();
        o.insert("signedBy", "not-an-identity");
        assert!(
            Delegation::validate(&Value::Object(o))
                .unwrap_err()
                .reason()
                .contains("identity")
        );
        let mut o = d.as_object().unwrap().clone();
        o.insert("attestation", Value::Null);
        assert_eq!(
            Delegation::validate(&Value::Object(o)).unwrap_err().path(),
            "/attestation"
        );
        for member in ["signedBy", "issuedAt", "selector", "signature"] {
            let mut o = d.as_object().unwrap().clone();
            o.get_mut("attestation")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(member);
            assert_eq!(
                Delegation::validate(&Value::Object(o)).unwrap_err().path(),
                format!("/attestation/{member}")
            );
        }
    }
}
