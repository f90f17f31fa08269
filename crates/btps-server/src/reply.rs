//! The response envelope (PROTOCOL.md §2.5): one per request, unsigned by default, signed
//! for identity lookups and optionally for documents.

use btps_crypto::{KeyPair, sign_in_place};
use btps_types::json::{Object, Value, write_value};
use btps_types::{ErrorCode, UnixMillis, signing};

/// The protocol version Rust servers write.
pub const VERSION: &str = "1.0.0";

/// A reply before it gets its `id` and `issuedAt` (and, if signed, its signature).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `status.ok`.
    pub ok: bool,
    /// `status.code`.
    pub code: u16,
    /// `status.message`.
    pub message: String,
    /// `status.errorCode` (error replies only).
    pub error_code: Option<ErrorCode>,
    /// `reqId`: the `id` of the request, when it could be read (§2.4).
    pub req_id: Option<String>,
    /// `document`.
    pub document: Option<Value>,
}

impl Reply {
    /// `{ok:true, code:200, message:"success"}`.
    pub fn success(req_id: Option<String>) -> Self {
        Self::ok_with(req_id, "success")
    }

    /// A 200 reply with another message (`pong`, `bye`, `already accepted`).
    pub fn ok_with(req_id: Option<String>, message: impl Into<String>) -> Self {
        Self {
            ok: true,
            code: 200,
            message: message.into(),
            error_code: None,
            req_id,
            document: None,
        }
    }

    /// The error reply for `code`: catalogue message, numeric class (§2.6, §12).
    pub fn error(code: ErrorCode, req_id: Option<String>) -> Self {
        Self {
            ok: false,
            code: code.status(),
            message: code.message().to_owned(),
            error_code: Some(code),
            req_id,
            document: None,
        }
    }

    /// Adds a `document`.
    #[must_use]
    pub fn with_document(mut self, document: impl Into<Value>) -> Self {
        self.document = Some(document.into());
        self
    }

    /// `btps_response` or `btps_error`.
    pub fn kind(&self) -> &'static str {
        if self.ok {
            "btps_response"
        } else {
            "btps_error"
        }
    }

    fn status(&self) -> Object {
        // btps-node writes `ok, message, code`; `errorCode` is our extension, appended.
        let mut status = Object::with_capacity(4)
            .with("ok", self.ok)
            .with("message", self.message.as_str())
            .with("code", u32::from(self.code));
        if let Some(code) = self.error_code {
            status.insert("errorCode", code.as_str());
        }
        status
    }

    /// The unsigned reply object: `version, status, id, issuedAt, reqId, type, document`.
    pub fn to_object(&self, id: &str, issued_at: UnixMillis) -> Object {
        let mut obj = Object::with_capacity(7)
            .with("version", VERSION)
            .with("status", self.status())
            .with("id", id)
            .with("issuedAt", issued_at.to_datetime_string());
        if let Some(req_id) = &self.req_id {
            obj.insert("reqId", req_id.as_str());
        }
        obj.insert("type", self.kind());
        if let Some(doc) = &self.document {
            obj.insert("document", doc.clone());
        }
        obj
    }

    /// The reply as one wire line (compact JSON and the LF).
    pub fn to_line(&self, id: &str, issued_at: UnixMillis) -> Vec<u8> {
        encode_line(&Value::Object(self.to_object(id, issued_at)))
    }
}

/// Serializes `value` as one NDJSON line (JS-compatible compact JSON, then LF).
pub fn encode_line(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out.push(b'\n');
    out
}

/// Member layout of a signed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedLayout {
    /// §2.5: `version, status, id, issuedAt, reqId, type, document, signedBy, selector,
    /// encryption, signature`.
    Document,
    /// §3.6 (identity lookup, the order of vector `response_identity_lookup_signed`):
    /// `version, status, id, issuedAt, reqId, type, selector, document, signedBy,
    /// encryption, signature`.
    IdentityLookup,
}

/// A server identity's key that signs replies.
#[derive(Debug)]
pub struct ReplySigner {
    /// The identity in `signedBy`.
    pub identity: String,
    /// The selector of `key`.
    pub selector: String,
    /// The private key.
    pub key: KeyPair,
}

impl ReplySigner {
    /// The signed reply object. `"encryption": null` is written before the signature so that
    /// btps-node clients, which verify with `encryption` forced to `null`, accept it (§2.5).
    ///
    /// # Errors
    ///
    /// Signing failures.
    pub fn sign(
        &self,
        reply: &Reply,
        layout: SignedLayout,
        id: &str,
        issued_at: UnixMillis,
    ) -> btps_crypto::Result<Object> {
        let base = reply.to_object(id, issued_at);
        let mut obj = Object::with_capacity(base.len() + 4);
        for (k, v) in base.iter() {
            if layout == SignedLayout::IdentityLookup && k.as_str() == Some("document") {
                continue;
            }
            obj.insert(k.clone(), v.clone());
        }
        match layout {
            SignedLayout::Document => {
                if let Some(doc) = &reply.document {
                    obj.insert("document", doc.clone());
                }
                obj.insert("signedBy", self.identity.as_str());
                obj.insert("selector", self.selector.as_str());
            }
            SignedLayout::IdentityLookup => {
                obj.insert("selector", self.selector.as_str());
                if let Some(doc) = &reply.document {
                    obj.insert("document", doc.clone());
                }
                obj.insert("signedBy", self.identity.as_str());
            }
        }
        obj.insert("encryption", Value::Null);
        sign_in_place(&mut obj, signing::RESPONSE, &self.key)?;
        Ok(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btps_types::json::to_js_string;

    #[test]
    fn error_reply_layout() {
        let r = Reply::error(ErrorCode::Validation, Some("r1".into()));
        let text = to_js_string(&Value::Object(r.to_object("x", UnixMillis::EPOCH)));
        assert_eq!(
            text,
            r#"{"version":"1.0.0","status":{"ok":false,"message":"BTPS artifact validation failed","code":400,"errorCode":"BTP_ERROR_VALIDATION"},"id":"x","issuedAt":"1970-01-01T00:00:00.000Z","reqId":"r1","type":"btps_error"}"#
        );
    }

    #[test]
    fn success_without_req_id() {
        let r = Reply::ok_with(None, "pong");
        let line = r.to_line("x", UnixMillis::EPOCH);
        assert!(line.ends_with(b"}\n"));
        assert!(!String::from_utf8(line).unwrap().contains("reqId"));
    }
}
