//! Profiles: the user's settings and agent state, one TOML file per profile.
//!
//! Location: `profiles/<name>.toml` in the configuration directory, which is `--config-dir`,
//! else `$BTPS_CONFIG_DIR`, else `$XDG_CONFIG_HOME/btps`, else `~/.config/btps`. The profile
//! is `--profile`, else `$BTPS_PROFILE`, else `default`.
//!
//! Every field is optional; command-line flags override them and they override the
//! defaults. Files are written atomically with mode 0600 (the agent table holds a refresh
//! token). Unknown top-level keys are refused (a typo would otherwise be ignored silently);
//! unknown keys in the `agent` table are kept, because that table is the agent's state.
//!
//! ```toml
//! identity = "billing$vendorcorp.com"
//! selector = "btps1"
//! key = "/home/me/.config/btps/keys/billing@vendorcorp.com-btps1-private.pem"
//! server = "btps.vendorcorp.com:3443"
//! nameservers = ["127.0.0.1:53"]
//!
//! [[decrypt_keys]]
//! selector = "btps0"
//! path = "keys/billing-old.pem"
//!
//! [agent]
//! server = "btps.vendorcorp.com:3443"
//! identity = "billing$vendorcorp.com"
//! agent_id = "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60"
//! device_key = "keys/device.pem"
//! refresh_token = "…"
//! expires_at = "2025-08-01T09:30:00.000Z"
//! decrypt_by = "billing$vendorcorp.com"
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use btps_client::{AgentState, ServerAddr};
use btps_types::json::{Object, Value};
use btps_types::record::parse_server_address;
use btps_types::{Identity, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::output::CliError;

/// The profile used when none is named.
pub(crate) const DEFAULT_PROFILE: &str = "default";

/// What the refresh token is shown as unless asked for.
pub(crate) const HIDDEN: &str = "(hidden)";

/// A profile file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// The user's identity, `account$domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
    /// The selector of the identity key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) selector: Option<String>,
    /// Path of the identity's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<PathBuf>,
    /// BTPS server `host:port`, overriding the host record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    /// CA certificates (PEM) to trust for the server's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
    /// Skip TLS certificate verification. For tests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) insecure: Option<bool>,
    /// Nameservers `ip:port` instead of the system configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) nameservers: Vec<SocketAddr>,
    /// A DNS table in the `vectors/dns.json` format instead of DNS (wins over
    /// `nameservers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dns_file: Option<PathBuf>,
    /// More private keys for decryption (older selectors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) decrypt_keys: Vec<DecryptKey>,
    /// The agent state (`btps agent login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<AgentProfile>,
}

/// A private key for decryption and the selector it is published under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecryptKey {
    /// The selector.
    pub(crate) selector: String,
    /// The private key PEM.
    pub(crate) path: PathBuf,
}

/// The agent state kept in a profile: the device registered with the user's server
/// (PROTOCOL.md §8), as the file form of btps-client's [`AgentState`]
/// ([`from_state`](Self::from_state), [`to_state`](Self::to_state)): the same members in
/// snake case, the device private key as the path of a PEM file instead of inline. Unknown
/// members are kept as they are.
///
/// The members stay text here and are checked when the state is used, so that a profile
/// with a damaged agent table still loads (and `btps profile unset` or `btps agent logout`
/// can repair it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentProfile {
    /// The user's BTPS server `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    /// The identity the agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
    /// The agent id the server assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent_id: Option<String>,
    /// Path of the device private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device_key: Option<PathBuf>,
    /// The refresh token (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// When the refresh token expires (datetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<String>,
    /// The identity whose key decrypts documents for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) decrypt_by: Option<String>,
    /// Members this version does not know.
    #[serde(flatten)]
    pub(crate) extra: toml::Table,
}

impl AgentProfile {
    /// The table for `state`, its device key saved at `device_key`; `extra` keeps members of
    /// the previous table that this version does not know.
    pub(crate) fn from_state(state: &AgentState, device_key: PathBuf, extra: toml::Table) -> Self {
        Self {
            server: Some(state.server.to_string()),
            identity: Some(state.identity.as_str().to_owned()),
            agent_id: Some(state.agent_id.clone()),
            device_key: Some(device_key),
            refresh_token: Some(state.refresh_token.clone()),
            expires_at: Some(state.expires_at.to_datetime_string()),
            decrypt_by: Some(state.decrypt_by.as_str().to_owned()),
            extra,
        }
    }

    /// The agent state this table describes, reading the device key file (relative paths
    /// are relative to the configuration directory of `r`).
    ///
    /// # Errors
    ///
    /// A missing or malformed member, or an unreadable device key file (exit 64), naming the
    /// profile and suggesting a new login.
    pub(crate) fn to_state(&self, r: &ProfileRef) -> Result<AgentState, CliError> {
        let bad = |what: String| {
            CliError::usage(format!(
                "profile {}: agent.{what}; log in again with `btps agent login`",
                r.name
            ))
        };
        let need = |value: &'_ Option<String>, name: &str| -> Result<String, CliError> {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(format!("{name} is missing")))
        };
        let identity_of = |value: &str, name: &str| {
            Identity::parse(value).map_err(|e| bad(format!("{name} {value:?}: {e}")))
        };
        let server = need(&self.server, "server")?;
        let server = ServerAddr::parse(&server).map_err(|e| bad(format!("server: {e}")))?;
        let identity = identity_of(&need(&self.identity, "identity")?, "identity")?;
        let agent_id = need(&self.agent_id, "agent_id")?;
        let refresh_token = need(&self.refresh_token, "refresh_token")?;
        let expires_at = need(&self.expires_at, "expires_at")?;
        let expires_at = UnixMillis::parse(&expires_at)
            .map_err(|e| bad(format!("expires_at {expires_at:?}: {e}")))?;
        let decrypt_by = match self.decrypt_by.as_deref() {
            Some(d) => identity_of(d, "decrypt_by")?,
            None => identity.clone(),
        };
        let key_path = self
            .device_key
            .as_deref()
            .map(|p| r.resolve_path(p))
            .ok_or_else(|| bad("device_key is missing".to_owned()))?;
        let device_key_pem = std::fs::read_to_string(&key_path)
            .map_err(|e| bad(format!("device_key: reading {}: {e}", key_path.display())))?;
        Ok(AgentState {
            server,
            identity,
            agent_id,
            device_key_pem,
            refresh_token,
            expires_at,
            decrypt_by,
        })
    }
}

/// A located profile: its name, the configuration directory and the file.
#[derive(Clone, Debug)]
pub(crate) struct ProfileRef {
    /// The profile name.
    pub(crate) name: String,
    /// Whether the name was chosen (`--profile`, `$BTPS_PROFILE`) rather than defaulted.
    pub(crate) chosen: bool,
    /// The configuration directory.
    pub(crate) config_dir: PathBuf,
    /// `<config_dir>/profiles/<name>.toml`.
    pub(crate) path: PathBuf,
}

/// The configuration directory: `flag`, else `$BTPS_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/btps`, else `$HOME/.config/btps`. Empty variables count as unset, and
/// `XDG_CONFIG_HOME` must be absolute (XDG base directory rule).
pub(crate) fn config_dir(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, CliError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = flag
        .map(Path::to_path_buf)
        .or_else(|| var("BTPS_CONFIG_DIR"))
    {
        return Ok(dir);
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("btps"));
    }
    var("HOME")
        .map(|home| home.join(".config").join("btps"))
        .ok_or_else(|| {
            CliError::usage(
                "no configuration directory: set BTPS_CONFIG_DIR or HOME, or pass --config-dir",
            )
        })
}

/// Checks a profile name: 1–64 letters, digits, `-`, `_` and `.`, not starting with `.`.
pub(crate) fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{name:?} is not a profile name (letters, digits, '-', '_' and '.')"
        )))
    }
}

impl ProfileRef {
    /// The profile `name` in `config_dir`.
    pub(crate) fn new(name: &str, chosen: bool, config_dir: PathBuf) -> Result<Self, CliError> {
        check_name(name)?;
        let path = config_dir.join("profiles").join(format!("{name}.toml"));
        Ok(Self {
            name: name.to_owned(),
            chosen,
            config_dir,
            path,
        })
    }

    /// Reads the profile; `None` when the file does not exist.
    ///
    /// # Errors
    ///
    /// Unreadable or malformed files (exit 64).
    pub(crate) fn read(&self) -> Result<Option<Profile>, CliError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CliError::usage(format!(
                    "reading profile {}: {e}",
                    self.path.display()
                )));
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            CliError::usage(format!("profile {}: {}", self.path.display(), e.message()))
        })
    }

    /// Reads the profile for a command that uses it: a missing `default` profile is empty,
    /// a missing profile that was asked for by name is an error (probably a typo).
    pub(crate) fn load(&self) -> Result<Profile, CliError> {
        match self.read()? {
            Some(p) => Ok(p),
            None if !self.chosen || self.name == DEFAULT_PROFILE => Ok(Profile::default()),
            None => Err(CliError::usage(format!(
                "profile {:?} does not exist ({}); create it with `btps profile set`",
                self.name,
                self.path.display()
            ))),
        }
    }

    /// Writes the profile atomically with mode 0600 (directories 0700).
    pub(crate) fn save(&self, profile: &Profile) -> Result<(), CliError> {
        let text = profile.to_toml(&self.name)?;
        let fail = |e: std::io::Error| {
            CliError::cant_write(format!("writing profile {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            fsutil::create_private_dir(dir).map_err(fail)?;
        }
        fsutil::write_atomic(&self.path, text.as_bytes(), 0o600).map_err(fail)
    }

    /// A path from the profile: relative paths are relative to the configuration directory.
    pub(crate) fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.config_dir.join(path)
        }
    }
}

/// The keys `btps profile set` and `unset` accept.
pub(crate) const KEYS: &[&str] = &[
    "identity",
    "selector",
    "key",
    "server",
    "ca",
    "insecure",
    "nameservers",
    "dns_file",
    "decrypt_keys",
    "agent.server",
    "agent.identity",
    "agent.agent_id",
    "agent.device_key",
    "agent.refresh_token",
    "agent.expires_at",
    "agent.decrypt_by",
];

/// Normalizes a key as typed (`dns-file` → `dns_file`) and checks it.
pub(crate) fn normalize_key(key: &str) -> Result<String, CliError> {
    let key = key.replace('-', "_");
    if KEYS.contains(&key.as_str()) {
        Ok(key)
    } else {
        Err(CliError::usage(format!(
            "unknown profile key {key:?}; keys: {}",
            KEYS.join(", ")
        )))
    }
}

fn identity(value: &str) -> Result<String, String> {
    Identity::parse(value)
        .map(|_| value.to_owned())
        .map_err(|e| format!("{value:?} is not an identity (account$domain): {e}"))
}

fn selector(value: &str) -> Result<String, String> {
    if btps_types::is_selector(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a selector (one DNS label of letters, digits, '-' and '_')"
        ))
    }
}

fn server(value: &str) -> Result<String, String> {
    parse_server_address(value)
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("empty path".to_owned());
    }
    std::path::absolute(value).map_err(|e| format!("{value}: {e}"))
}

fn list<T>(value: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

/// Splits `SELECTOR=PATH`; `None` when the text is a plain path (no `=`, or the part before
/// it is not a selector, like `./a=b.pem`).
pub(crate) fn split_selector(text: &str) -> Option<(&str, &str)> {
    text.split_once('=')
        .filter(|(s, p)| btps_types::is_selector(s) && !p.is_empty())
}

impl Profile {
    /// Sets `key` (see [`normalize_key`]) from its text form, checking it.
    /// Relative paths become absolute against the current directory.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<(), CliError> {
        let key = normalize_key(key)?;
        let bad = |e: String| CliError::usage(format!("{key}: {e}"));
        match key.as_str() {
            "identity" => self.identity = Some(identity(value).map_err(bad)?),
            "selector" => self.selector = Some(selector(value).map_err(bad)?),
            "key" => self.key = Some(path(value).map_err(bad)?),
            "server" => self.server = Some(server(value).map_err(bad)?),
            "ca" => self.ca = Some(path(value).map_err(bad)?),
            "insecure" => {
                self.insecure = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("{value:?} is not true or false"))),
                });
            }
            "nameservers" => {
                self.nameservers = list(value, |s| {
                    s.parse::<SocketAddr>()
                        .map_err(|_| format!("{s:?} is not ip:port"))
                })
                .map_err(bad)?;
            }
            "dns_file" => self.dns_file = Some(path(value).map_err(bad)?),
            "decrypt_keys" => {
                self.decrypt_keys = list(value, |s| {
                    let (sel, p) =
                        split_selector(s).ok_or_else(|| format!("{s:?} is not SELECTOR=PATH"))?;
                    Ok(DecryptKey {
                        selector: sel.to_owned(),
                        path: path(p)?,
                    })
                })
                .map_err(bad)?;
            }
            agent_key => {
                let field = agent_key.strip_prefix("agent.").unwrap_or(agent_key);
                let agent = self.agent.get_or_insert_with(AgentProfile::default);
                let text = |v: &str| {
                    if v.is_empty() {
                        Err("empty value".to_owned())
                    } else {
                        Ok(v.to_owned())
                    }
                };
                match field {
                    "server" => agent.server = Some(server(value).map_err(bad)?),
                    "identity" => agent.identity = Some(identity(value).map_err(bad)?),
                    "decrypt_by" => agent.decrypt_by = Some(identity(value).map_err(bad)?),
                    "agent_id" => agent.agent_id = Some(text(value).map_err(bad)?),
                    "device_key" => agent.device_key = Some(path(value).map_err(bad)?),
                    "refresh_token" => agent.refresh_token = Some(text(value).map_err(bad)?),
                    "expires_at" => {
                        if !btps_types::is_datetime(value) {
                            return Err(bad(format!(
                                "{value:?} is not a datetime (2025-07-01T09:30:00.000Z)"
                            )));
                        }
                        agent.expires_at = Some(value.to_owned());
                    }
                    _ => return Err(bad("unknown agent key".to_owned())),
                }
            }
        }
        Ok(())
    }

    /// Removes `key` (see [`normalize_key`]). An agent table left empty is removed too.
    pub(crate) fn unset(&mut self, key: &str) -> Result<(), CliError> {
        let key = normalize_key(key)?;
        match key.as_str() {
            "identity" => self.identity = None,
            "selector" => self.selector = None,
            "key" => self.key = None,
            "server" => self.server = None,
            "ca" => self.ca = None,
            "insecure" => self.insecure = None,
            "nameservers" => self.nameservers.clear(),
            "dns_file" => self.dns_file = None,
            "decrypt_keys" => self.decrypt_keys.clear(),
            agent_key => {
                if let Some(agent) = &mut self.agent {
                    match agent_key.strip_prefix("agent.").unwrap_or(agent_key) {
                        "server" => agent.server = None,
                        "identity" => agent.identity = None,
                        "agent_id" => agent.agent_id = None,
                        "device_key" => agent.device_key = None,
                        "refresh_token" => agent.refresh_token = None,
                        "expires_at" => agent.expires_at = None,
                        "decrypt_by" => agent.decrypt_by = None,
                        _ => return Err(CliError::usage(format!("{key}: unknown agent key"))),
                    }
                    if *agent == AgentProfile::default() {
                        self.agent = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends a decryption key (`btps profile add-decrypt-key`); the same selector and path
    /// twice is one entry. Returns whether the list changed.
    pub(crate) fn add_decrypt_key(&mut self, selector: &str, path: PathBuf) -> bool {
        let key = DecryptKey {
            selector: selector.to_owned(),
            path,
        };
        if self.decrypt_keys.contains(&key) {
            return false;
        }
        self.decrypt_keys.push(key);
        true
    }

    /// The same profile with the refresh token replaced by [`HIDDEN`].
    pub(crate) fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if let Some(token) = copy.agent.as_mut().and_then(|a| a.refresh_token.as_mut()) {
            HIDDEN.clone_into(token);
        }
        copy
    }

    /// The file text: a header comment, then the TOML.
    pub(crate) fn to_toml(&self, name: &str) -> Result<String, CliError> {
        let body = toml::to_string(self)
            .map_err(|e| CliError::cant_write(format!("profile {name}: {e}")))?;
        Ok(format!(
            "# btps profile {name:?}. Written by `btps`; edits are kept. Mode 0600: it may hold a refresh token.\n{body}"
        ))
    }

    /// The profile as JSON (keys as in the file).
    pub(crate) fn to_json(&self) -> Result<Value, CliError> {
        let table = toml::Table::try_from(self)
            .map_err(|e| CliError::failed(format!("profile as JSON: {e}")))?;
        Ok(toml_to_json(&toml::Value::Table(table)))
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        #[allow(
            clippy::cast_precision_loss,
            reason = "JSON numbers are doubles; profile integers are small"
        )]
        toml::Value::Integer(i) => Value::Number(*i as f64),
        toml::Value::Float(f) => Value::Number(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => {
            let mut object = Object::with_capacity(table.len());
            for (k, v) in table {
                object.insert(k.as_str(), toml_to_json(v));
            }
            Value::Object(object)
        }
    }
}

#[cfg(test)]
mod tests {
    use btps_types::json::to_js_string;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn configuration_directory_order() {
        let all = env(&[
            ("BTPS_CONFIG_DIR", "/c"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            config_dir(Some(Path::new("/f")), &all).unwrap(),
            Path::new("/f")
        );
        assert_eq!(config_dir(None, &all).unwrap(), Path::new("/c"));
        let xdg = env(&[
            ("BTPS_CONFIG_DIR", ""),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(config_dir(None, xdg).unwrap(), Path::new("/x/btps"));
        let relative_xdg = env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]);
        assert_eq!(
            config_dir(None, relative_xdg).unwrap(),
            Path::new("/h/.config/btps")
        );
        assert!(config_dir(None, env(&[])).is_err());
    }

    #[test]
    fn names() {
        for ok in ["default", "work-2", "a.b_c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_unset_and_round_trip() {
        let mut p = Profile::default();
        p.set("identity", "billing$vendorcorp.test").unwrap();
        p.set("selector", "btps2").unwrap();
        p.set("key", "/k/billing.pem").unwrap();
        p.set("server", "127.0.0.1:3443").unwrap();
        p.set("insecure", "true").unwrap();
        p.set("nameservers", "127.0.0.1:53, [::1]:5353").unwrap();
        p.set("decrypt_keys", "btps1=/k/old.pem,btps0=/k/older.pem")
            .unwrap();
        p.set("agent.agent_id", "btps_ag_1").unwrap();
        p.set("agent.refresh_token", "secret").unwrap();
        p.set("agent.expires_at", "2025-08-01T09:30:00.000Z")
            .unwrap();
        p.agent
            .as_mut()
            .unwrap()
            .extra
            .insert("future".into(), toml::Value::Integer(7));

        for (key, value) in [
            ("identity", "nope"),
            ("selector", "a.b"),
            ("server", "a:b:c"),
            ("insecure", "yes"),
            ("nameservers", "localhost"),
            ("decrypt_keys", "/k/old.pem"),
            ("agent.expires_at", "tomorrow"),
            ("agent.identity", "x"),
        ] {
            let e = p.clone().set(key, value).unwrap_err();
            assert_eq!(e.exit, crate::output::Exit::Usage, "{key}");
            assert!(e.message.starts_with(key), "{}", e.message);
        }

        let text = p.to_toml("t").unwrap();
        assert!(text.starts_with("# btps profile \"t\""), "{text}");
        let back: Profile = toml::from_str(&text).unwrap();
        assert_eq!(back, p);
        assert!(text.contains("[[decrypt_keys]]"), "{text}");
        assert!(text.contains("future = 7"), "{text}");

        let shown = to_js_string(&p.redacted().to_json().unwrap());
        assert!(shown.contains(r#""refresh_token":"(hidden)""#), "{shown}");
        assert!(!shown.contains("secret"));
        assert!(shown.contains(r#""nameservers":["127.0.0.1:53","[::1]:5353"]"#));

        for key in [
            "agent.agent_id",
            "agent.refresh_token",
            "agent.expires_at",
            "nameservers",
        ] {
            p.unset(key).unwrap();
        }
        assert!(p.nameservers.is_empty());
        assert!(p.agent.is_some(), "the unknown member keeps the table");
        p.agent.as_mut().unwrap().extra.clear();
        p.unset("agent.server").unwrap();
        assert!(p.agent.is_none());
    }

    #[test]
    fn unknown_top_level_keys_are_refused() {
        let e = toml::from_str::<Profile>("identitty = \"a$b.c\"").unwrap_err();
        assert!(e.message().contains("identitty"), "{}", e.message());
        assert!(normalize_key("dns-file").is_ok());
        assert!(normalize_key("agent.nope").is_err());
    }

    #[test]
    fn agent_table_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let r = ProfileRef::new("t", true, dir.path().to_path_buf()).unwrap();
        let state = AgentState {
            server: "btps.example.test:4443".parse().unwrap(),
            identity: "alice$example.test".parse().unwrap(),
            agent_id: "btps_ag_1".into(),
            device_key_pem: "PEM".into(),
            refresh_token: "secret".into(),
            expires_at: UnixMillis::parse("2030-01-01T00:00:00.000Z").unwrap(),
            decrypt_by: "alice$example.test".parse().unwrap(),
        };
        std::fs::write(dir.path().join("device.pem"), "PEM").unwrap();
        let mut extra = toml::Table::new();
        extra.insert("future".into(), toml::Value::Boolean(true));
        let table = AgentProfile::from_state(&state, PathBuf::from("device.pem"), extra);
        assert_eq!(table.server.as_deref(), Some("btps.example.test:4443"));
        assert_eq!(
            table.expires_at.as_deref(),
            Some("2030-01-01T00:00:00.000Z")
        );
        // The relative key path is read from the configuration directory.
        assert_eq!(table.to_state(&r).unwrap(), state);
        let profile = Profile {
            agent: Some(table.clone()),
            ..Profile::default()
        };
        let back: Profile = toml::from_str(&profile.to_toml("t").unwrap()).unwrap();
        assert_eq!(back.agent.as_ref(), Some(&table));

        for damage in [
            |t: &mut AgentProfile| t.refresh_token = None,
            |t: &mut AgentProfile| t.server = Some("a:b:c".into()),
            |t: &mut AgentProfile| t.expires_at = Some("soon".into()),
            |t: &mut AgentProfile| t.device_key = Some("missing.pem".into()),
        ] {
            let mut t = table.clone();
            damage(&mut t);
            let e = t.to_state(&r).unwrap_err();
            assert_eq!(e.exit, crate::output::Exit::Usage);
            assert!(e.message.contains("btps agent login"), "{}", e.message);
        }
        let mut missing_decrypt_by = table;
        missing_decrypt_by.decrypt_by = None;
        assert_eq!(
            missing_decrypt_by.to_state(&r).unwrap().decrypt_by,
            state.identity
        );

        let mut p = Profile::default();
        assert!(p.add_decrypt_key("btps1", PathBuf::from("/k/a.pem")));
        assert!(!p.add_decrypt_key("btps1", PathBuf::from("/k/a.pem")));
        assert!(p.add_decrypt_key("btps0", PathBuf::from("/k/a.pem")));
        assert_eq!(p.decrypt_keys.len(), 2);
    }

    #[test]
    fn selector_prefixes() {
        assert_eq!(split_selector("btps1=/a.pem"), Some(("btps1", "/a.pem")));
        assert_eq!(split_selector("./a=b.pem"), None);
        assert_eq!(split_selector("/a.pem"), None);
        assert_eq!(split_selector("btps1="), None);
    }
}
