//! What every command gets: the output mode, the selected profile (read on first use), and
//! the merge rule "command-line flag, else profile value, else default" for the settings
//! several commands share (DNS source, identity, selector).
//!
//! The network commands read `server`, `ca`, `insecure` and the `agent` table from
//! [`Context::profile`] the same way.

use std::cell::OnceCell;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use btps_dns::{HickoryConfig, HickoryResolver, StaticTable, TxtResolver};
use btps_types::Identity;

use crate::cli::{Cli, DnsArgs};
use crate::output::{CliError, Output};
use crate::profile::{self, DEFAULT_PROFILE, Profile, ProfileRef};

/// The selector used when neither a flag nor the profile names one.
pub(crate) const DEFAULT_SELECTOR: &str = "btps1";

/// Per-invocation state shared by the commands.
#[derive(Debug)]
pub(crate) struct Context {
    /// Where results go.
    pub(crate) out: Output,
    profile_name: Option<String>,
    config_dir_flag: Option<PathBuf>,
    profile: OnceCell<(ProfileRef, Profile)>,
}

/// Where a value came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A command-line flag.
    Flag,
    /// The profile.
    Profile,
    /// The built-in default.
    Default,
}

/// `flag`, else `profile`, else `default`, with where the value came from.
pub(crate) fn pick<T>(flag: Option<T>, profile: Option<T>, default: T) -> (T, Source) {
    match (flag, profile) {
        (Some(v), _) => (v, Source::Flag),
        (None, Some(v)) => (v, Source::Profile),
        (None, None) => (default, Source::Default),
    }
}

impl Context {
    /// The context of one run.
    pub(crate) fn new(cli: &Cli) -> Self {
        let env_profile = std::env::var("BTPS_PROFILE").ok().filter(|v| !v.is_empty());
        Self {
            out: Output::new(cli.json),
            profile_name: cli.profile.clone().or(env_profile),
            config_dir_flag: cli.config_dir.clone(),
            profile: OnceCell::new(),
        }
    }

    /// The selected profile's location.
    ///
    /// # Errors
    ///
    /// No configuration directory can be found, or the name is invalid (exit 64).
    pub(crate) fn profile_ref(&self) -> Result<ProfileRef, CliError> {
        let dir = profile::config_dir(self.config_dir_flag.as_deref(), |name| {
            std::env::var_os(name)
        })?;
        match &self.profile_name {
            Some(name) => ProfileRef::new(name, true, dir),
            None => ProfileRef::new(DEFAULT_PROFILE, false, dir),
        }
    }

    /// The selected profile, read once. Without a configuration directory (no `HOME`) and
    /// with no profile asked for by name, the profile is empty.
    ///
    /// # Errors
    ///
    /// An unreadable or malformed profile, or a named profile that does not exist (64).
    pub(crate) fn profile(&self) -> Result<&(ProfileRef, Profile), CliError> {
        if let Some(loaded) = self.profile.get() {
            return Ok(loaded);
        }
        let loaded = match self.profile_ref() {
            Ok(r) => {
                let p = r.load()?;
                (r, p)
            }
            Err(_) if self.profile_name.is_none() => (
                ProfileRef::new(DEFAULT_PROFILE, false, PathBuf::new())?,
                Profile::default(),
            ),
            Err(e) => return Err(e),
        };
        Ok(self.profile.get_or_init(|| loaded))
    }

    /// The selected profile for a command that writes it: like [`profile`](Self::profile),
    /// but a profile that does not exist yet is empty even when asked for by name (the
    /// command creates it).
    ///
    /// # Errors
    ///
    /// No configuration directory, an invalid name, an unreadable or malformed file (64).
    pub(crate) fn profile_to_write(&self) -> Result<&(ProfileRef, Profile), CliError> {
        if let Some(loaded) = self.profile.get() {
            return Ok(loaded);
        }
        let r = self.profile_ref()?;
        let p = r.read()?.unwrap_or_default();
        Ok(self.profile.get_or_init(|| (r, p)))
    }

    /// The identity: `flag`, else the profile's.
    ///
    /// # Errors
    ///
    /// None given (64), or not an identity (64).
    pub(crate) fn identity(&self, flag: Option<&str>) -> Result<Identity, CliError> {
        let (r, p) = self.profile()?;
        let (text, source) = match pick(flag, p.identity.as_deref(), "") {
            (_, Source::Default) => {
                return Err(CliError::usage(
                    "no identity: pass --identity or set `identity` in the profile",
                ));
            }
            picked => picked,
        };
        Identity::parse(text).map_err(|e| {
            let from = match source {
                Source::Profile => format!(" (profile {}: identity)", r.name),
                _ => String::new(),
            };
            CliError::usage(format!(
                "{text:?} is not an identity (account$domain){from}: {e}"
            ))
        })
    }

    /// The selector: `flag`, else the profile's, else [`DEFAULT_SELECTOR`].
    ///
    /// # Errors
    ///
    /// Not a selector (64).
    pub(crate) fn selector(&self, flag: Option<&str>) -> Result<String, CliError> {
        let (_, p) = self.profile()?;
        let (selector, _) = pick(flag, p.selector.as_deref(), DEFAULT_SELECTOR);
        if btps_types::is_selector(selector) {
            Ok(selector.to_owned())
        } else {
            Err(CliError::usage(format!(
                "{selector:?} is not a selector (one DNS label of letters, digits, '-' and '_')"
            )))
        }
    }

    /// The TXT source for `args`: `--dns-file`, else `--nameserver`s, else the profile's
    /// `dns_file`, else its `nameservers`, else the system configuration. Call inside the
    /// runtime ([`block_on`]): the DNS client needs it.
    ///
    /// # Errors
    ///
    /// An unreadable table or an unusable resolver configuration (64).
    pub(crate) fn resolver(&self, args: &DnsArgs) -> Result<Box<dyn TxtResolver>, CliError> {
        let flags_given = args.dns_file.is_some() || !args.nameservers.is_empty();
        let (dns_file, nameservers) = if flags_given {
            (args.dns_file.clone(), args.nameservers.clone())
        } else {
            let (r, p) = self.profile()?;
            (
                p.dns_file.as_deref().map(|f| r.resolve_path(f)),
                p.nameservers.clone(),
            )
        };
        if let Some(file) = dns_file {
            let table = StaticTable::load(&file).map_err(|e| CliError::from(&e))?;
            return Ok(Box::new(table));
        }
        let mut config = HickoryConfig::with_nameservers(nameservers);
        config.timeout = Duration::from_secs(args.timeout.max(1));
        config.dnssec = args.dnssec;
        let resolver = HickoryResolver::new(&config).map_err(|e| CliError::from(&e))?;
        Ok(Box::new(resolver))
    }
}

/// Runs `future` on a single-threaded runtime (DNS lookups).
///
/// # Errors
///
/// The runtime cannot be started (exit 1).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_profile_then_default() {
        assert_eq!(pick(Some(1), Some(2), 3), (1, Source::Flag));
        assert_eq!(pick(None, Some(2), 3), (2, Source::Profile));
        assert_eq!(pick(None, None, 3), (3, Source::Default));
    }
}
