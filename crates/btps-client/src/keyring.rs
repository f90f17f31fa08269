//! Identity keys by selector, and their rotation (docs/keys.md).
//!
//! A key ring is a directory: `keyring.json` lists, per identity, its keys with their state,
//! and the rotation proofs made when it rotated; each private key is a PKCS#8 PEM file (mode
//! 0600) next to it. The `btps` command line and `btps-server` share the format, so an
//! operator rotates a server's key with `btps key rotate … --keyring <data>/keyring` while
//! the server runs.
//!
//! Life of a key: **pending** ([`KeyRing::rotate`]: created, its DNS record printed, a
//! rotation proof signed by the active key) → **active** ([`KeyRing::activate`], once DNS
//! serves it: it signs, and encryption is to it) → **retiring** (the previous active key:
//! still published and still decrypting, until `retireAfter` = activation + grace) →
//! removed ([`KeyRing::retire`]).
//!
//! Every change is a read-modify-write of `keyring.json` under a lock directory
//! (`keyring.json.lock`, as the file stores do), written atomically and fsynced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use btps_crypto::{KeyPair, KeyPolicy, KeyType, RotationProof, RotationTerms};
use btps_trust::file::{DirLock, LockOptions};
use btps_types::json::{Object, Value, object_to_js_string, parse_str};
use btps_types::record::{KeyRecord, identity_record_name};
use btps_types::{Identity, Selector, UnixMillis};

use crate::fsutil::{create_private_dir, write_atomic, write_new};

/// The file that lists the keys.
pub const KEYRING_FILE: &str = "keyring.json";

/// Errors of key-ring operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Reading or writing the key ring failed.
    #[error("key ring {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `keyring.json` or a key file is malformed.
    #[error("key ring {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The operation does not apply in the key ring's current state.
    #[error("{0}")]
    State(String),
    /// Generating or signing failed.
    #[error("crypto: {0}")]
    Crypto(#[from] btps_crypto::CryptoError),
    /// A rotation proof could not be made.
    #[error("rotation proof: {0}")]
    Proof(#[from] btps_crypto::RotationError),
}

type Result<T> = std::result::Result<T, KeyRingError>;

/// The state of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Created; waiting for its DNS record.
    Pending,
    /// Signs and is encrypted to.
    Active,
    /// Replaced; still published and decrypting until `retire_after`.
    Retiring,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "retiring" => Self::Retiring,
            _ => return None,
        })
    }
}

/// One key of an identity.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyEntry {
    /// Its selector.
    pub selector: Selector,
    /// The private key file (relative paths are relative to the key ring).
    pub file: PathBuf,
    /// The public key's fingerprint.
    pub fingerprint: String,
    /// Its state.
    pub state: KeyState,
    /// When it was created or imported.
    pub created_at: UnixMillis,
    /// When it became active.
    pub activated_at: Option<UnixMillis>,
    /// For a retiring key: from when [`KeyRing::retire`] removes it.
    pub retire_after: Option<UnixMillis>,
}

/// The keys and proofs of one identity.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityKeys {
    /// The identity.
    pub identity: Identity,
    /// Its keys, oldest first; at most one active and one pending.
    pub keys: Vec<KeyEntry>,
    /// The rotation proofs it made, oldest first.
    pub proofs: Vec<RotationProof>,
}

impl IdentityKeys {
    /// The active key's entry.
    pub fn active(&self) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }

    /// The pending key's entry.
    pub fn pending(&self) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.state == KeyState::Pending)
    }
}

/// What [`KeyRing::rotate`] made.
#[derive(Clone, Debug)]
pub struct RotationPlan {
    /// The identity.
    pub identity: Identity,
    /// The active key's selector (still signing).
    pub old_selector: Selector,
    /// The new key's selector.
    pub new_selector: Selector,
    /// The new key's private key file.
    pub key_file: PathBuf,
    /// The DNS record to publish: name and TXT value.
    pub record: (String, String),
    /// The rotation proof signed by the active key.
    pub proof: RotationProof,
}

/// A key-ring directory.
#[derive(Clone, Debug)]
pub struct KeyRing {
    dir: PathBuf,
}

impl KeyRing {
    /// The key ring in `dir` (created on the first change).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join(KEYRING_FILE)
    }

    /// Every identity in the key ring (empty when it does not exist yet).
    ///
    /// # Errors
    ///
    /// [`KeyRingError::Io`] / [`KeyRingError::Corrupt`].
    pub fn load(&self) -> Result<Vec<IdentityKeys>> {
        let path = self.file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KeyRingError::Io { path, source }),
        };
        decode(&text).map_err(|reason| KeyRingError::Corrupt { path, reason })
    }

    /// The keys of `identity`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load); [`KeyRingError::State`] when the identity has no keys here.
    pub fn identity(&self, identity: &Identity) -> Result<IdentityKeys> {
        self.load()?
            .into_iter()
            .find(|i| i.identity.eq_ignore_case(identity))
            .ok_or_else(|| KeyRingError::State(format!("{identity} has no keys in this key ring")))
    }

    /// Loads the private key of `entry`.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::Io`], or [`KeyRingError::Corrupt`] when the file is not a usable
    /// private key or not the key the entry names.
    pub fn private_key(&self, entry: &KeyEntry) -> Result<KeyPair> {
        let path = self.dir.join(&entry.file);
        let pem = std::fs::read_to_string(&path).map_err(|source| KeyRingError::Io {
            path: path.clone(),
            source,
        })?;
        let key = KeyPair::from_pem(&pem).map_err(|e| KeyRingError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if key.public_key().fingerprint() != entry.fingerprint {
            return Err(KeyRingError::Corrupt {
                path,
                reason: "the key file does not hold the listed key".into(),
            });
        }
        Ok(key)
    }

    /// The active selector and key of `identity`.
    ///
    /// # Errors
    ///
    /// As [`identity`](Self::identity) and [`private_key`](Self::private_key).
    pub fn active_key(&self, identity: &Identity) -> Result<(Selector, KeyPair)> {
        let keys = self.identity(identity)?;
        let entry = keys
            .active()
            .ok_or_else(|| KeyRingError::State(format!("{identity} has no active key")))?;
        Ok((entry.selector.clone(), self.private_key(entry)?))
    }

    /// Every key of `identity` that may still decrypt (active, retiring and pending), with
    /// its selector, the active one first.
    ///
    /// # Errors
    ///
    /// As [`identity`](Self::identity) and [`private_key`](Self::private_key).
    pub fn decryption_keys(&self, identity: &Identity) -> Result<Vec<(Selector, KeyPair)>> {
        let keys = self.identity(identity)?;
        let mut entries: Vec<&KeyEntry> = keys.keys.iter().collect();
        entries.sort_by_key(|k| k.state != KeyState::Active);
        entries
            .into_iter()
            .map(|e| Ok((e.selector.clone(), self.private_key(e)?)))
            .collect()
    }

    /// The newest proof whose new key is `identity`'s active key and that is valid at `now`:
    /// the proof a sender carries in-band while receivers catch up.
    ///
    /// # Errors
    ///
    /// As [`identity`](Self::identity).
    pub fn current_proof(
        &self,
        identity: &Identity,
        now: UnixMillis,
    ) -> Result<Option<RotationProof>> {
        let keys = self.identity(identity)?;
        let Some(active) = keys.active() else {
            return Ok(None);
        };
        Ok(keys
            .proofs
            .iter()
            .rev()
            .find(|p| {
                p.new_key().fingerprint() == active.fingerprint
                    && p.valid_from() <= now
                    && now <= p.valid_until()
            })
            .cloned())
    }

    /// Every proof of every identity still valid at `now` (for
    /// `/.well-known/btp-key-rotation.json`).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn published_proofs(&self, now: UnixMillis) -> Result<Vec<RotationProof>> {
        Ok(self
            .load()?
            .into_iter()
            .flat_map(|i| i.proofs)
            .filter(|p| now <= p.valid_until())
            .collect())
    }

    /// Adds `key` as the active key of `identity` at `selector`, writing its file (an
    /// identity's first key). With `file`, the entry points at that existing file instead
    /// (a server adopting its configured key). Nothing changes when the identity already
    /// has this key active.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::State`] when the identity already has an active key that is another
    /// one; I/O errors.
    pub fn import(
        &self,
        identity: &Identity,
        selector: &Selector,
        key: &KeyPair,
        file: Option<&Path>,
        now: UnixMillis,
    ) -> Result<()> {
        self.update(|ring| {
            let fingerprint = key.public_key().fingerprint().to_owned();
            if let Some(existing) = find(ring, identity).and_then(IdentityKeys::active) {
                if existing.fingerprint == fingerprint {
                    return Ok(false);
                }
                return Err(KeyRingError::State(format!(
                    "{identity} already has an active key (selector {}); rotate instead",
                    existing.selector
                )));
            }
            let file = match file {
                Some(f) => f.to_path_buf(),
                None => self.write_key(identity, selector, key)?,
            };
            entry_mut(ring, identity).keys.push(KeyEntry {
                selector: selector.clone(),
                file,
                fingerprint,
                state: KeyState::Active,
                created_at: now,
                activated_at: Some(now),
                retire_after: None,
            });
            Ok(true)
        })
    }

    /// Starts a rotation: creates the next selector's key (`key_type`), signs a rotation
    /// proof with the active key valid from `now` for `proof_validity`, and records both.
    /// The new key is pending until [`activate`](Self::activate).
    ///
    /// # Errors
    ///
    /// [`KeyRingError::State`] without an active key, with a rotation already pending, or
    /// when `selector` is taken.
    pub fn rotate(
        &self,
        identity: &Identity,
        selector: Option<&Selector>,
        key_type: KeyType,
        proof_validity: Duration,
        now: UnixMillis,
    ) -> Result<RotationPlan> {
        let mut plan = None;
        self.update(|ring| {
            let keys = find(ring, identity)
                .ok_or_else(|| KeyRingError::State(format!("{identity} has no keys")))?;
            if let Some(p) = keys.pending() {
                return Err(KeyRingError::State(format!(
                    "a rotation to selector {} is already pending; activate it first",
                    p.selector
                )));
            }
            let active = keys
                .active()
                .ok_or_else(|| KeyRingError::State(format!("{identity} has no active key")))?
                .clone();
            let new_selector = match selector {
                Some(s) => s.clone(),
                None => next_selector(&active.selector, keys),
            };
            if keys.keys.iter().any(|k| k.selector == new_selector) {
                return Err(KeyRingError::State(format!(
                    "selector {new_selector} is already used by {identity}"
                )));
            }
            let old_key = self.private_key(&active)?;
            let new_key = match key_type {
                KeyType::Ed25519 => KeyPair::generate_ed25519()?,
                _ => KeyPair::generate_rsa2048()?,
            };
            let valid_until = now.saturating_add_millis(
                i64::try_from(proof_validity.as_millis()).unwrap_or(i64::MAX),
            );
            let proof = RotationProof::create(
                RotationTerms {
                    identity,
                    old_selector: &active.selector,
                    new_selector: &new_selector,
                    new_key: new_key.public_key(),
                    issued_at: now,
                    valid_from: now,
                    valid_until,
                },
                &old_key,
            )?;
            let file = self.write_key(identity, &new_selector, &new_key)?;
            let keys = entry_mut(ring, identity);
            keys.keys.push(KeyEntry {
                selector: new_selector.clone(),
                file: file.clone(),
                fingerprint: new_key.public_key().fingerprint().to_owned(),
                state: KeyState::Pending,
                created_at: now,
                activated_at: None,
                retire_after: None,
            });
            keys.proofs.push(proof.clone());
            plan = Some(RotationPlan {
                identity: identity.clone(),
                old_selector: active.selector.clone(),
                new_selector: new_selector.clone(),
                key_file: self.dir.join(file),
                record: publish_record(identity, &new_selector, new_key.public_key()),
                proof,
            });
            Ok(true)
        })?;
        plan.ok_or_else(|| KeyRingError::State("rotation not recorded".into()))
    }

    /// Makes the pending key active; the active key becomes retiring until `now + grace`.
    /// Returns the new active selector.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::State`] when nothing is pending.
    pub fn activate(
        &self,
        identity: &Identity,
        grace: Duration,
        now: UnixMillis,
    ) -> Result<Selector> {
        let mut selector = None;
        self.update(|ring| {
            let keys = find_mut(ring, identity)
                .ok_or_else(|| KeyRingError::State(format!("{identity} has no keys")))?;
            if keys.pending().is_none() {
                return Err(KeyRingError::State(format!(
                    "{identity} has no pending key to activate"
                )));
            }
            let retire_after =
                now.saturating_add_millis(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
            for k in &mut keys.keys {
                match k.state {
                    KeyState::Active => {
                        k.state = KeyState::Retiring;
                        k.retire_after = Some(retire_after);
                    }
                    KeyState::Pending => {
                        k.state = KeyState::Active;
                        k.activated_at = Some(now);
                        selector = Some(k.selector.clone());
                    }
                    KeyState::Retiring => {}
                }
            }
            Ok(true)
        })?;
        selector.ok_or_else(|| KeyRingError::State("activation not recorded".into()))
    }

    /// Removes the retiring keys of `identity` whose grace period ended (all retiring keys
    /// with `force`), deleting their files. Returns the removed entries, whose DNS records
    /// may now be deleted.
    ///
    /// # Errors
    ///
    /// [`KeyRingError::State`] when a retiring key is still in its grace period and `force`
    /// is not set (nothing is removed then).
    pub fn retire(
        &self,
        identity: &Identity,
        force: bool,
        now: UnixMillis,
    ) -> Result<Vec<KeyEntry>> {
        let mut removed = Vec::new();
        self.update(|ring| {
            let keys = find_mut(ring, identity)
                .ok_or_else(|| KeyRingError::State(format!("{identity} has no keys")))?;
            if !force
                && let Some(k) = keys.keys.iter().find(|k| {
                    k.state == KeyState::Retiring && k.retire_after.is_some_and(|t| now < t)
                })
            {
                return Err(KeyRingError::State(format!(
                    "selector {} is in its grace period until {}; artifacts signed or \
                     encrypted with it may still arrive (use --force to retire it anyway)",
                    k.selector,
                    k.retire_after
                        .map(UnixMillis::to_datetime_string)
                        .unwrap_or_default()
                )));
            }
            let (gone, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = std::mem::take(&mut keys.keys)
                .into_iter()
                .partition(|k| k.state == KeyState::Retiring);
            keys.keys = kept;
            removed = gone;
            Ok(!removed.is_empty())
        })?;
        for k in &removed {
            let path = self.dir.join(&k.file);
            if path.starts_with(&self.dir) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(removed)
    }

    /// Adds a proof made elsewhere (a user's rotation, published by the server that hosts
    /// the identity). Proofs already present are not added twice.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn add_proof(&self, proof: RotationProof) -> Result<()> {
        self.update(|ring| {
            let keys = entry_mut(ring, proof.identity());
            if keys.proofs.contains(&proof) {
                return Ok(false);
            }
            keys.proofs.push(proof);
            Ok(true)
        })
    }

    fn write_key(
        &self,
        identity: &Identity,
        selector: &Selector,
        key: &KeyPair,
    ) -> Result<PathBuf> {
        let rel = PathBuf::from(identity.to_lowercase()).join(format!("{selector}.pem"));
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            create_private_dir(parent).map_err(|source| KeyRingError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let pem = key.to_pkcs8_pem()?;
        write_new(&path, pem.as_bytes(), 0o600).map_err(|source| KeyRingError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(rel)
    }

    /// Read-modify-write under the lock; `change` returns whether to write.
    fn update(&self, change: impl FnOnce(&mut Vec<IdentityKeys>) -> Result<bool>) -> Result<()> {
        create_private_dir(&self.dir).map_err(|source| KeyRingError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let _lock = DirLock::acquire(&self.dir.join(KEYRING_FILE), &LockOptions::default())
            .map_err(|e| KeyRingError::State(format!("key ring: {e}")))?;
        let mut ring = self.load()?;
        if change(&mut ring)? {
            let path = self.file();
            write_atomic(&path, encode(&ring).as_bytes(), 0o600)
                .map_err(|source| KeyRingError::Io { path, source })?;
        }
        Ok(())
    }
}

/// The DNS record that publishes `key` for `identity` at `selector`: name and TXT value.
pub fn publish_record(
    identity: &Identity,
    selector: &Selector,
    key: &btps_crypto::PublicKey,
) -> (String, String) {
    let record = KeyRecord::new(
        match key.key_type() {
            KeyType::Ed25519 => btps_types::record::KeyType::Ed25519,
            _ => btps_types::record::KeyType::Rsa,
        },
        key.to_base64_spki(),
    );
    (
        identity_record_name(selector.as_str(), identity),
        record.to_txt(),
    )
}

/// `btps1` → `btps2`, `key` → `key2`; skips selectors the identity already used.
fn next_selector(current: &Selector, keys: &IdentityKeys) -> Selector {
    let text = current.as_str();
    let digits = text.len() - text.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = text.split_at(text.len() - digits);
    let mut n: u64 = number.parse().unwrap_or(1);
    loop {
        n += 1;
        if let Ok(s) = Selector::parse(&format!("{stem}{n}"))
            && !keys.keys.iter().any(|k| k.selector == s)
        {
            return s;
        }
    }
}

fn find<'a>(ring: &'a [IdentityKeys], identity: &Identity) -> Option<&'a IdentityKeys> {
    ring.iter().find(|i| i.identity.eq_ignore_case(identity))
}

fn find_mut<'a>(ring: &'a mut [IdentityKeys], identity: &Identity) -> Option<&'a mut IdentityKeys> {
    ring.iter_mut()
        .find(|i| i.identity.eq_ignore_case(identity))
}

fn entry_mut<'a>(ring: &'a mut Vec<IdentityKeys>, identity: &Identity) -> &'a mut IdentityKeys {
    if let Some(i) = ring
        .iter()
        .position(|i| i.identity.eq_ignore_case(identity))
    {
        return &mut ring[i];
    }
    ring.push(IdentityKeys {
        identity: identity.clone(),
        keys: Vec::new(),
        proofs: Vec::new(),
    });
    ring.last_mut().expect("just pushed")
}

fn encode(ring: &[IdentityKeys]) -> String {
    let time = |t: UnixMillis| Value::from(t.to_datetime_string());
    let identities: Vec<Value> = ring
        .iter()
        .map(|i| {
            let keys: Vec<Value> = i
                .keys
                .iter()
                .map(|k| {
                    let mut o = Object::new()
                        .with("selector", k.selector.as_str())
                        .with("file", k.file.to_string_lossy().into_owned())
                        .with("fingerprint", k.fingerprint.as_str())
                        .with("state", k.state.as_str())
                        .with("createdAt", time(k.created_at));
                    if let Some(t) = k.activated_at {
                        o.insert("activatedAt", time(t));
                    }
                    if let Some(t) = k.retire_after {
                        o.insert("retireAfter", time(t));
                    }
                    Value::Object(o)
                })
                .collect();
            let proofs: Vec<Value> = i
                .proofs
                .iter()
                .map(|p| Value::Object(p.as_object().clone()))
                .collect();
            Value::Object(
                Object::new()
                    .with("identity", i.identity.as_str())
                    .with("keys", keys)
                    .with("proofs", proofs),
            )
        })
        .collect();
    let mut text = object_to_js_string(
        &Object::new()
            .with("version", 1_u32)
            .with("identities", identities),
    );
    text.push('\n');
    text
}

fn decode(text: &str) -> std::result::Result<Vec<IdentityKeys>, String> {
    let parsed = parse_str(text).map_err(|e| e.to_string())?;
    let root = parsed.value.as_object().ok_or("not a JSON object")?;
    let mut out = Vec::new();
    for (n, item) in root
        .get("identities")
        .and_then(Value::as_array)
        .ok_or("no identities array")?
        .iter()
        .enumerate()
    {
        let o = item.as_object().ok_or_else(|| format!("identities[{n}]"))?;
        let identity = o
            .get_str("identity")
            .and_then(|s| Identity::parse(s).ok())
            .ok_or_else(|| format!("identities[{n}].identity"))?;
        let mut keys = Vec::new();
        for k in o.get("keys").and_then(Value::as_array).unwrap_or(&[]) {
            let k = k.as_object().ok_or("a key is not an object")?;
            let bad = |m: &str| format!("{identity}: key member {m}");
            let time = |m: &str| -> std::result::Result<Option<UnixMillis>, String> {
                k.get_str(m)
                    .map(|t| UnixMillis::parse(t).map_err(|_| bad(m)))
                    .transpose()
            };
            keys.push(KeyEntry {
                selector: k
                    .get_str("selector")
                    .and_then(|s| Selector::parse(s).ok())
                    .ok_or_else(|| bad("selector"))?,
                file: PathBuf::from(k.get_str("file").ok_or_else(|| bad("file"))?),
                fingerprint: k
                    .get_str("fingerprint")
                    .ok_or_else(|| bad("fingerprint"))?
                    .to_owned(),
                state: k
                    .get_str("state")
                    .and_then(KeyState::parse)
                    .ok_or_else(|| bad("state"))?,
                created_at: time("createdAt")?.ok_or_else(|| bad("createdAt"))?,
                activated_at: time("activatedAt")?,
                retire_after: time("retireAfter")?,
            });
        }
        let mut proofs = Vec::new();
        for p in o.get("proofs").and_then(Value::as_array).unwrap_or(&[]) {
            let p = p.as_object().ok_or("a proof is not an object")?;
            proofs.push(
                RotationProof::from_object(p.clone(), KeyPolicy::DEFAULT)
                    .map_err(|e| format!("{identity}: {e}"))?,
            );
        }
        out.push(IdentityKeys {
            identity,
            keys,
            proofs,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ring(name: &str) -> (TempDir, KeyRing) {
        let dir = std::env::temp_dir().join(format!("btps-keyring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (TempDir(dir.clone()), KeyRing::new(dir))
    }

    fn t(s: i64) -> UnixMillis {
        UnixMillis::from_millis(1_750_000_000_000 + s * 1000)
    }

    #[test]
    fn a_full_rotation() {
        let (_tmp, ring) = ring("full");
        let id = Identity::parse("billing$vendorcorp.test").unwrap();
        let k1 = KeyPair::generate_ed25519().unwrap();
        let s1 = Selector::parse("btps1").unwrap();
        ring.import(&id, &s1, &k1, None, t(0)).unwrap();
        ring.import(&id, &s1, &k1, None, t(1)).unwrap(); // idempotent
        let other = KeyPair::generate_ed25519().unwrap();
        assert!(matches!(
            ring.import(&id, &s1, &other, None, t(1)),
            Err(KeyRingError::State(_))
        ));

        let plan = ring
            .rotate(&id, None, KeyType::Ed25519, DAY, t(10))
            .unwrap();
        assert_eq!(plan.new_selector.as_str(), "btps2");
        assert_eq!(
            plan.record.0,
            "btps2._btps.identity.billing.vendorcorp.test"
        );
        assert!(plan.record.1.starts_with("v=1.0.0;k=ed25519;p="));
        plan.proof.verify(k1.public_key(), t(11)).unwrap();
        // Still signing with the old key; both decrypt.
        assert_eq!(ring.active_key(&id).unwrap().0, s1);
        assert_eq!(ring.decryption_keys(&id).unwrap().len(), 2);
        assert!(ring.rotate(&id, None, KeyType::Rsa, DAY, t(11)).is_err());
        assert_eq!(ring.current_proof(&id, t(11)).unwrap(), None);

        let active = ring.activate(&id, Duration::from_secs(100), t(20)).unwrap();
        assert_eq!(active.as_str(), "btps2");
        let (sel, key) = ring.active_key(&id).unwrap();
        assert_eq!(sel.as_str(), "btps2");
        assert_eq!(key.public_key(), plan.proof.new_key());
        assert_eq!(
            ring.current_proof(&id, t(21)).unwrap(),
            Some(plan.proof.clone())
        );
        assert_eq!(
            ring.published_proofs(t(21)).unwrap(),
            std::slice::from_ref(&plan.proof)
        );
        assert!(ring.published_proofs(t(2 * 86_400)).unwrap().is_empty());

        // The old key retires only after its grace period.
        assert!(matches!(
            ring.retire(&id, false, t(50)),
            Err(KeyRingError::State(_))
        ));
        assert_eq!(ring.decryption_keys(&id).unwrap().len(), 2);
        let removed = ring.retire(&id, false, t(121)).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].selector, s1);
        assert!(!ring.dir().join(&removed[0].file).exists());
        assert_eq!(ring.decryption_keys(&id).unwrap().len(), 1);

        // The next rotation goes to btps3 and chains from btps2.
        let plan3 = ring
            .rotate(&id, None, KeyType::Ed25519, DAY, t(200))
            .unwrap();
        assert_eq!(plan3.new_selector.as_str(), "btps3");
        plan3.proof.verify(plan.proof.new_key(), t(201)).unwrap();
    }

    #[test]
    fn corrupt_files_are_reported_not_ignored() {
        let (_tmp, ring) = ring("corrupt");
        std::fs::create_dir_all(ring.dir()).unwrap();
        std::fs::write(
            ring.dir().join(KEYRING_FILE),
            "{\"identities\":[{\"identity\":1}]}",
        )
        .unwrap();
        assert!(matches!(ring.load(), Err(KeyRingError::Corrupt { .. })));
    }

    #[test]
    fn selectors_count_up() {
        let keys = IdentityKeys {
            identity: Identity::parse("a$b.test").unwrap(),
            keys: Vec::new(),
            proofs: Vec::new(),
        };
        for (from, to) in [
            ("btps1", "btps2"),
            ("key", "key2"),
            ("s9", "s10"),
            ("2025", "2026"),
        ] {
            assert_eq!(
                next_selector(&Selector::parse(from).unwrap(), &keys).as_str(),
                to
            );
        }
    }
}
