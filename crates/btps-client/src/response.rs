//! [`Response`]: a server reply as received (PROTOCOL.md §2.5), and its verification.

use btps_crypto::{CryptoError, KeyRef, PublicKey, ResolvedKeys, VerifyError, verify_response};
use btps_dns::DnsCache;
use btps_types::artifact::ResponseType;
use btps_types::json::{Object, ParseLimits, Value, parse};
use btps_types::{ErrorCode, Identity, Selector, validate_response};

use crate::error::{ClientError, Result};

/// A server reply: the received [`Object`] kept exactly as parsed, with its envelope
/// members read out.
///
/// A well-formed error reply is a `Response` too (`ok()` false); use
/// [`into_result`](Self::into_result) to turn it into [`ClientError::Rejected`].
/// Signed replies are checked with [`verify`](Self::verify) over the reply minus
/// `signature` exactly as received — no `"encryption": null` is added, unlike btps-node's
/// client (PROTOCOL.md §2.5, vectors `response_auth_signed`,
/// `response_identity_lookup_signed`).
///
/// # Examples
///
/// ```
/// use btps_client::Response;
/// let r = Response::from_line(br#"{"version":"1.0.0","status":{"ok":false,"code":409,"message":"Artifact already received","errorCode":"BTP_ERROR_DUPLICATE"},"id":"r1","issuedAt":"2025-07-01T09:30:00.000Z","reqId":"a1","type":"btps_error"}"#, 1 << 20).unwrap();
/// assert!(!r.ok());
/// assert_eq!((r.code(), r.req_id()), (409, Some("a1")));
/// assert_eq!(r.error_code(), Some(btps_types::ErrorCode::Duplicate));
/// assert!(r.into_result().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    raw: Object,
    ok: bool,
    code: u16,
    message: String,
    error_code: Option<ErrorCode>,
    error_code_text: Option<String>,
    req_id: Option<String>,
    kind: ResponseType,
    signed_by: Option<Identity>,
    selector: Option<Selector>,
}

impl Response {
    /// Parses one reply line (without its LF) of at most `max_bytes` bytes and validates
    /// the envelope (PROTOCOL.md §2.5).
    ///
    /// # Errors
    ///
    /// [`ClientError::ReplyTooLong`] over the limit; [`ClientError::Protocol`] for a line
    /// that is not a JSON object or not a valid response envelope.
    pub fn from_line(line: &[u8], max_bytes: usize) -> Result<Self> {
        let limits = ParseLimits {
            max_bytes,
            ..ParseLimits::DEFAULT
        };
        let parsed = parse(line, &limits).map_err(|e| {
            if e.error_code() == ErrorCode::LineTooLong {
                ClientError::ReplyTooLong { limit: max_bytes }
            } else {
                ClientError::Protocol(format!("reply is not JSON: {e}"))
            }
        })?;
        if parsed.duplicates.has_conflicting() {
            return Err(ClientError::Protocol(
                "reply has duplicate members with different values".into(),
            ));
        }
        match parsed.value {
            Value::Object(obj) => Self::from_object(obj),
            other => Err(ClientError::Protocol(format!(
                "reply is a JSON {}, not an object",
                other.type_name()
            ))),
        }
    }

    /// Validates a parsed reply.
    ///
    /// # Errors
    ///
    /// [`ClientError::Protocol`] naming the offending member.
    pub fn from_object(raw: Object) -> Result<Self> {
        let v = validate_response(&raw)
            .map_err(|e| ClientError::Protocol(format!("invalid reply envelope: {e}")))?;
        let code = v.status.code_u16().ok_or_else(|| {
            ClientError::Protocol(format!(
                "status.code {} is not a status number",
                v.status.code
            ))
        })?;
        let selector = match v.selector {
            Some(s) => Some(Selector::parse(s)?),
            None => None,
        };
        let fields = (
            v.status.ok,
            v.status.message.to_owned(),
            v.status.parsed_error_code(),
            v.status.error_code.map(str::to_owned),
            v.req_id.map(str::to_owned),
            v.kind,
            v.signed_by,
        );
        let (ok, message, error_code, error_code_text, req_id, kind, signed_by) = fields;
        Ok(Self {
            raw,
            ok,
            code,
            message,
            error_code,
            error_code_text,
            req_id,
            kind,
            signed_by,
            selector,
        })
    }

    /// `status.ok`.
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// `status.code`, the numeric status (PROTOCOL.md §2.6).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// `status.message`: for people, never to be parsed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `status.errorCode` when it is a known code (Rust servers send it on errors).
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error_code
    }

    /// `status.errorCode` as received, known or not.
    pub fn error_code_text(&self) -> Option<&str> {
        self.error_code_text.as_deref()
    }

    /// `reqId`: the `id` of the request this answers (absent on connection-level errors).
    pub fn req_id(&self) -> Option<&str> {
        self.req_id.as_deref()
    }

    /// `type`: `btps_response` or `btps_error`.
    pub fn kind(&self) -> ResponseType {
        self.kind
    }

    /// `id` of the reply.
    pub fn id(&self) -> &str {
        self.raw.get_str("id").unwrap_or_default()
    }

    /// `document`, when present (any JSON value).
    pub fn document(&self) -> Option<&Value> {
        self.raw.get("document")
    }

    /// `document` when it is an object.
    pub fn document_object(&self) -> Option<&Object> {
        self.raw.get_object("document")
    }

    /// `signedBy`: the identity whose key signed the reply.
    pub fn signed_by(&self) -> Option<&Identity> {
        self.signed_by.as_ref()
    }

    /// `selector` of the signing key.
    pub fn selector(&self) -> Option<&Selector> {
        self.selector.as_ref()
    }

    /// Whether the reply carries a `signature`.
    pub fn is_signed(&self) -> bool {
        self.raw.contains_key("signature")
    }

    /// The reply exactly as parsed.
    pub fn as_object(&self) -> &Object {
        &self.raw
    }

    /// The reply exactly as parsed, by value.
    pub fn into_object(self) -> Object {
        self.raw
    }

    /// `Ok(self)` for a success reply, [`ClientError::Rejected`] for an error reply.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] with `status.code`, `status.errorCode`, `status.message`.
    pub fn into_result(self) -> Result<Self> {
        if self.ok {
            Ok(self)
        } else {
            Err(self.rejection())
        }
    }

    /// The [`ClientError::Rejected`] this reply stands for (whether or not it is an error).
    pub fn rejection(&self) -> ClientError {
        ClientError::Rejected {
            code: self.code,
            error_code: self.error_code,
            message: self.message.clone(),
        }
    }

    /// Verifies a signed reply with the DNS key (`signedBy`, `selector`) over the reply
    /// minus `signature`, exactly as received (PROTOCOL.md §2.5, §4.3). Returns the key that
    /// signed.
    ///
    /// # Errors
    ///
    /// * [`ClientError::Unsigned`]: no `signature`;
    /// * [`ClientError::Dns`]: the key could not be resolved (temporary or permanent);
    /// * [`ClientError::BadSignature`]: fingerprint mismatch or invalid signature.
    pub async fn verify(&self, dns: &DnsCache) -> Result<PublicKey> {
        let (Some(signed_by), Some(selector)) = (&self.signed_by, &self.selector) else {
            return Err(ClientError::Unsigned);
        };
        if !self.is_signed() {
            return Err(ClientError::Unsigned);
        }
        // The reply was validated when it was made; the view borrows the received object.
        let view = validate_response(&self.raw)
            .map_err(|e| ClientError::Protocol(format!("invalid reply envelope: {e}")))?;
        let keys = dns.identity_keys(signed_by, selector.as_str()).await?;
        let mut resolved = ResolvedKeys::new();
        resolved.insert(
            KeyRef::Identity {
                identity: signed_by.clone(),
                selector: selector.as_str().to_owned(),
            },
            Ok(keys.to_vec()),
        );
        verify_response(&view, &resolved).map_err(|e| match e {
            VerifyError::Crypto(e) => ClientError::BadSignature(e),
            other => ClientError::BadSignature(CryptoError::InvalidKey(
                if other.error_code() == ErrorCode::SigMismatch {
                    "fingerprint mis-match"
                } else {
                    "no usable reply key"
                },
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"version":"1.0.0","status":{"ok":true,"code":200,"message":"pong"},"id":"r1","issuedAt":"2025-07-01T09:30:00.000Z","reqId":"ctl-0002","type":"btps_response"}"#;

    #[test]
    fn parses_and_keeps_the_object() {
        let r = Response::from_line(OK.as_bytes(), 1024).unwrap();
        assert!(r.ok() && !r.is_signed());
        assert_eq!(r.code(), 200);
        assert_eq!(r.message(), "pong");
        assert_eq!(r.req_id(), Some("ctl-0002"));
        assert_eq!(r.kind(), ResponseType::Response);
        assert_eq!(r.id(), "r1");
        assert_eq!(r.document(), None);
        assert_eq!(btps_types::json::object_to_js_string(r.as_object()), OK);
        assert!(r.clone().into_result().is_ok());
    }

    #[test]
    fn refuses_bad_lines() {
        assert_eq!(
            Response::from_line(OK.as_bytes(), 20),
            Err(ClientError::ReplyTooLong { limit: 20 })
        );
        for bad in [
            "not json",
            "[1]",
            r#"{"version":"1.0.0"}"#,
            &OK.replace("200", "200.5"),
            &OK.replace(r#""reqId":"ctl-0002""#, r#""reqId":"a","reqId":"b""#),
        ] {
            assert!(
                matches!(
                    Response::from_line(bad.as_bytes(), 1024),
                    Err(ClientError::Protocol(_))
                ),
                "{bad}"
            );
        }
    }
}
