//! Hosted identities and their keys: the identity-store record of PROTOCOL.md §7.5.

use btps_types::json::{Object, Value};
use btps_types::{Identity, UnixMillis};

use crate::codec::{Fields, time};
use crate::{Result, TrustError, compute_id};

/// One published key of a hosted identity: `{selector, publicKey, keyType, version,
/// createdAt}`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityKey {
    /// The selector the key is published under.
    pub selector: String,
    /// PEM SPKI public key.
    pub public_key: String,
    /// `keyType` (`"rsa"`).
    pub key_type: String,
    /// `version` (`"1.0.0"`).
    pub version: String,
    /// `createdAt`.
    pub created_at: UnixMillis,
    /// Members this crate does not know, kept in order.
    pub extra: Object,
}

impl IdentityKey {
    /// An RSA key record with version `1.0.0`.
    pub fn rsa(selector: &str, public_key_pem: &str, created_at: UnixMillis) -> Self {
        Self {
            selector: selector.to_owned(),
            public_key: public_key_pem.to_owned(),
            key_type: "rsa".to_owned(),
            version: "1.0.0".to_owned(),
            created_at,
            extra: Object::new(),
        }
    }
}

/// A hosted identity (PROTOCOL.md §7.5): `{id: computeId(identity), identity,
/// currentSelector, publicKeys: [...], createdAt, metadata?}`.
///
/// # Examples
///
/// ```
/// use btps_trust::{IdentityKey, IdentityRecord};
/// use btps_types::{Identity, UnixMillis};
/// let now = UnixMillis::from_millis(0);
/// let id: Identity = "Pay$Client.com".parse().unwrap();
/// let r = IdentityRecord::new(id, IdentityKey::rsa("btps1", "-----BEGIN PUBLIC KEY-----…", now));
/// assert_eq!(r.id, "0d905f83ae3cf0ea6c2e0103718c6609f91b7920b7797d1422405b9f91325114");
/// assert_eq!(r.current_key().unwrap().selector, "btps1");
/// assert_eq!(IdentityRecord::from_object(&r.to_object()).unwrap(), r);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityRecord {
    /// `id`: [`compute_id`] of the identity.
    pub id: String,
    /// `identity`.
    pub identity: Identity,
    /// `currentSelector`: the key used for signing now.
    pub current_selector: String,
    /// `publicKeys`: every published key (older selectors stay for verification).
    pub public_keys: Vec<IdentityKey>,
    /// `createdAt`.
    pub created_at: UnixMillis,
    /// `metadata`.
    pub metadata: Option<Object>,
    /// Members this crate does not know, kept in order.
    pub extra: Object,
}

impl IdentityRecord {
    /// A record with one key, which is current; `created_at` is the key's.
    pub fn new(identity: Identity, key: IdentityKey) -> Self {
        Self {
            id: compute_id(identity.as_str()),
            current_selector: key.selector.clone(),
            created_at: key.created_at,
            public_keys: vec![key],
            identity,
            metadata: None,
            extra: Object::new(),
        }
    }

    /// The key under `selector`.
    pub fn key(&self, selector: &str) -> Option<&IdentityKey> {
        self.public_keys.iter().find(|k| k.selector == selector)
    }

    /// The key under `currentSelector`.
    pub fn current_key(&self) -> Option<&IdentityKey> {
        self.key(&self.current_selector)
    }

    /// Adds (or replaces) a key and makes it current: key rotation by selector (§6.4).
    pub fn rotate_to(&mut self, key: IdentityKey) {
        self.current_selector.clone_from(&key.selector);
        match self
            .public_keys
            .iter_mut()
            .find(|k| k.selector == key.selector)
        {
            Some(slot) => *slot = key,
            None => self.public_keys.push(key),
        }
    }

    /// The JSON object, `id` first.
    pub fn to_object(&self) -> Object {
        let mut o = Object::with_capacity(7 + self.extra.len());
        o.insert("id", self.id.as_str());
        o.insert("identity", self.identity.as_str());
        o.insert("currentSelector", self.current_selector.as_str());
        o.insert(
            "publicKeys",
            Value::Array(
                self.public_keys
                    .iter()
                    .map(|k| {
                        let mut e = Object::with_capacity(5 + k.extra.len());
                        e.insert("selector", k.selector.as_str());
                        e.insert("publicKey", k.public_key.as_str());
                        e.insert("keyType", k.key_type.as_str());
                        e.insert("version", k.version.as_str());
                        e.insert("createdAt", time(k.created_at));
                        for (key, v) in k.extra.iter() {
                            e.insert(key.clone(), v.clone());
                        }
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        o.insert("createdAt", time(self.created_at));
        if let Some(m) = &self.metadata {
            o.insert("metadata", m.clone());
        }
        for (k, v) in self.extra.iter() {
            o.insert(k.clone(), v.clone());
        }
        o
    }

    /// Reads a record object. A missing `id` is computed.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when a required member is missing or malformed.
    pub fn from_object(obj: &Object) -> Result<Self> {
        let f = Fields::new(obj, "identity record");
        let text = f.req_str("identity")?;
        let identity = Identity::parse(text)
            .map_err(|e| TrustError::InvalidRecord(format!("identity {text:?}: {e}")))?;
        let mut public_keys = Vec::new();
        for (i, k) in f.opt_array("publicKeys")?.unwrap_or(&[]).iter().enumerate() {
            let ko = k.as_object().ok_or_else(|| {
                TrustError::InvalidRecord(format!("identity record publicKeys[{i}]"))
            })?;
            let kf = Fields::new(ko, "identity key");
            public_keys.push(IdentityKey {
                selector: kf.req_str("selector")?.to_owned(),
                public_key: kf.req_str("publicKey")?.to_owned(),
                key_type: kf.opt_str("keyType")?.unwrap_or("rsa").to_owned(),
                version: kf.opt_str("version")?.unwrap_or("1.0.0").to_owned(),
                created_at: kf.req_time("createdAt")?,
                extra: kf.extra(&["selector", "publicKey", "keyType", "version", "createdAt"]),
            });
        }
        Ok(Self {
            id: match f.opt_str("id")? {
                Some(id) => id.to_owned(),
                None => compute_id(identity.as_str()),
            },
            current_selector: f.req_str("currentSelector")?.to_owned(),
            public_keys,
            created_at: f.req_time("createdAt")?,
            metadata: f.opt_object("metadata")?.cloned(),
            extra: f.extra(&[
                "id",
                "identity",
                "currentSelector",
                "publicKeys",
                "createdAt",
                "metadata",
            ]),
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation() {
        let t = UnixMillis::from_millis(5);
        let mut r = IdentityRecord::new(
            "a$b.com".parse().unwrap(),
            IdentityKey::rsa("btps1", "PEM1", t),
        );
        r.rotate_to(IdentityKey::rsa("btps2", "PEM2", t));
        assert_eq!(r.current_key().unwrap().public_key, "PEM2");
        assert_eq!(r.key("btps1").unwrap().public_key, "PEM1");
        r.rotate_to(IdentityKey::rsa("btps1", "PEM3", t));
        assert_eq!(r.public_keys.len(), 2);
        assert_eq!(r.current_key().unwrap().public_key, "PEM3");
    }

    #[test]
    fn invalid_identity_is_an_error() {
        let o = btps_types::json::parse_str(
            r#"{"identity":"a$$b.c","currentSelector":"s","publicKeys":[],"createdAt":"2025-01-01T00:00Z"}"#,
        )
        .unwrap()
        .value;
        assert!(IdentityRecord::from_object(o.as_object().unwrap()).is_err());
    }
}
