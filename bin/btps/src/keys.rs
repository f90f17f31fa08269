//! Reading keys: private and public key files, and the decryption keys of a command (its
//! `--key` flags, else the profile's `key` and `decrypt_keys`).

use std::path::{Path, PathBuf};

use btps_crypto::{KeyPair, PublicKey};

use crate::context::Context;
use crate::output::CliError;
use crate::profile::split_selector;

/// A private key PEM (exit 64 when unreadable or not a key).
pub(crate) fn read_private_key(path: &Path) -> Result<KeyPair, CliError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?;
    KeyPair::from_pem(&pem).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// A public key PEM, or the public half of a private key PEM (exit 64 otherwise).
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey, CliError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?;
    match PublicKey::from_pem(&pem) {
        Ok(key) => Ok(key),
        Err(public_err) => KeyPair::from_pem(&pem)
            .map(|pair| pair.public_key().clone())
            .map_err(|_| CliError::usage(format!("{}: {public_err}", path.display()))),
    }
}

/// `--key` values: `SELECTOR=PATH` or `PATH` (empty selector).
pub(crate) fn key_flags(values: &[String]) -> Vec<(String, PathBuf)> {
    values
        .iter()
        .map(|v| match split_selector(v) {
            Some((selector, path)) => (selector.to_owned(), PathBuf::from(path)),
            None => (String::new(), PathBuf::from(v)),
        })
        .collect()
}

/// The decryption keys: `flags` (from [`key_flags`]) when given, else the profile's `key`
/// (under its `selector`), its `decrypt_keys`, then the profile identity's keys in the key
/// ring (`<config dir>/keyring`: active, pending and retiring, so artifacts encrypted to the
/// old selector still decrypt during a rotation), in that order.
///
/// # Errors
///
/// An unreadable key or profile (exit 64).
pub(crate) fn decryption_keys(
    ctx: &Context,
    flags: &[(String, PathBuf)],
) -> Result<Vec<(String, KeyPair)>, CliError> {
    let specs: Vec<(String, PathBuf)> = if flags.is_empty() {
        let (r, p) = ctx.profile()?;
        let main = p
            .key
            .as_ref()
            .map(|k| (p.selector.clone().unwrap_or_default(), r.resolve_path(k)));
        main.into_iter()
            .chain(
                p.decrypt_keys
                    .iter()
                    .map(|d| (d.selector.clone(), r.resolve_path(&d.path))),
            )
            .collect()
    } else {
        flags.to_vec()
    };
    let mut keys = specs
        .into_iter()
        .map(|(selector, path)| Ok((selector, read_private_key(&path)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    if flags.is_empty() {
        let (r, p) = ctx.profile()?;
        if let Some(identity) = p
            .identity
            .as_deref()
            .and_then(|i| btps_types::Identity::parse(i).ok())
        {
            let ring = btps_client::KeyRing::new(r.config_dir.join("keyring"));
            if let Ok(ring_keys) = ring.decryption_keys(&identity) {
                keys.extend(ring_keys.into_iter().map(|(s, k)| (s.to_string(), k)));
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_flag_forms() {
        let flags = key_flags(&[
            "btps2=/k/new.pem".to_owned(),
            "/k/old.pem".to_owned(),
            "./a=b.pem".to_owned(),
        ]);
        assert_eq!(
            flags,
            [
                ("btps2".to_owned(), PathBuf::from("/k/new.pem")),
                (String::new(), PathBuf::from("/k/old.pem")),
                (String::new(), PathBuf::from("./a=b.pem")),
            ]
        );
    }
}
