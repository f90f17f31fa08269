//! `btps keygen`: an identity key pair — RSA-2048 by default (PROTOCOL.md §4.2), larger RSA
//! with `--bits`, Ed25519 with `--type ed25519` (§6.3) — and the DNS records that publish it
//! (§6.1).

use std::io::Write as _;
use std::path::Path;

use btps_crypto::{CryptoError, KeyPair, KeyType};
use btps_dns::identity_zone_records;
use btps_types::json::Object;
use btps_types::record::DEFAULT_PORT;

use super::dns::{records_json, zone_text};
use crate::cli::KeygenArgs;
use crate::context::{Context, Source, pick};
use crate::fsutil;
use crate::output::{CliError, Exit};

/// The key file names for `identity` (lower-cased) at `selector`.
fn file_names(account: &str, domain: &str, selector: &str) -> (String, String) {
    let stem = format!(
        "{}@{}-{selector}",
        account.to_lowercase(),
        domain.to_lowercase()
    );
    (format!("{stem}-private.pem"), format!("{stem}-public.pem"))
}

/// Printed on standard error for an Ed25519 identity key.
const ED25519_WARNING: &str = "btps: warning: Ed25519 is for device and delegation keys \
between Rust peers (PROTOCOL.md §6.3). As an identity key it cannot be verified by btps-node \
peers, and documents cannot be encrypted to it (encryption needs RSA); use --type rsa for \
identity keys other servers must verify.";

/// The key `args` ask for: RSA of `--bits` (2048 by default; under 2048 refused) or Ed25519.
fn generate(args: &KeygenArgs) -> Result<KeyPair, CliError> {
    match args.key_type {
        KeyType::Rsa => {
            let bits = args.bits.unwrap_or(2048);
            KeyPair::generate_rsa(bits).map_err(|e| match e {
                CryptoError::KeySize { .. } if bits < 2048 => CliError::usage(format!(
                    "--bits {bits}: RSA keys under 2048 bits are refused (PROTOCOL.md §4.2)"
                )),
                CryptoError::KeySize { .. } => {
                    CliError::usage(format!("--bits {bits}: use 2048, 3072, 4096 or 8192"))
                }
                e => CliError::failed(format!("generating the key: {e}")),
            })
        }
        _ if args.bits.is_some() => Err(CliError::usage("--bits applies to RSA keys only")),
        other => KeyPair::generate(other)
            .map_err(|e| CliError::failed(format!("generating the key: {e}"))),
    }
}

/// Runs `btps keygen`.
pub(super) fn run(ctx: &Context, args: &KeygenArgs) -> Result<Exit, CliError> {
    let identity = ctx.identity(args.identity.as_deref())?;
    let selector = ctx.selector(args.selector.as_deref())?;
    let (_, profile) = ctx.profile()?;
    let default_host = format!("btps.{}:{DEFAULT_PORT}", identity.domain().to_lowercase());
    let (host, host_source) = pick(
        args.host.clone(),
        profile.server.clone(),
        default_host.clone(),
    );
    let (private_name, public_name) = file_names(identity.account(), identity.domain(), &selector);
    let private_path = args.out.join(private_name);
    let public_path = args.out.join(public_name);
    if !args.force {
        for path in [&private_path, &public_path] {
            if path.exists() {
                return Err(CliError::usage(format!(
                    "{} exists; pass --force to replace it",
                    path.display()
                )));
            }
        }
    }
    let key = generate(args)?;
    if key.key_type() == KeyType::Ed25519 {
        let _ = writeln!(std::io::stderr().lock(), "{ED25519_WARNING}");
    }
    let public = key.public_key();
    let records = identity_zone_records(&identity, public, &selector, &host, args.ttl)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| CliError::failed(format!("encoding the key: {e}")))?;
    let fail =
        |path: &Path, e: std::io::Error| CliError::cant_write(format!("{}: {e}", path.display()));
    fsutil::create_private_dir(&args.out).map_err(|e| fail(&args.out, e))?;
    let write = |path: &Path, contents: &[u8], mode: u32| {
        if args.force {
            fsutil::write_atomic(path, contents, mode)
        } else {
            fsutil::write_new(path, contents, mode)
        }
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CliError::usage(format!(
                    "{} exists; pass --force to replace it",
                    path.display()
                ))
            } else {
                fail(path, e)
            }
        })
    };
    write(&private_path, pem.as_bytes(), 0o600)?;
    write(&public_path, public.to_pem_with_newline().as_bytes(), 0o644)?;

    let saved = if args.save {
        // The located profile (not an empty stand-in when no configuration directory exists).
        let profile_ref = ctx.profile_ref()?;
        let mut updated = profile.clone();
        updated.identity = Some(identity.as_str().to_owned());
        updated.selector = Some(selector.clone());
        updated.key = Some(fsutil::absolute(&private_path));
        profile_ref.save(&updated)?;
        Some(profile_ref)
    } else {
        None
    };

    ctx.out.emit(
        || {
            let mut text = format!(
                "private key  {} (PKCS#8, mode 0600)\npublic key   {}\nfingerprint  {}\n",
                private_path.display(),
                public_path.display(),
                public.fingerprint()
            );
            if let Some(r) = &saved {
                text.push_str(&format!(
                    "profile      {} updated: identity, selector, key ({})\n",
                    r.name,
                    r.path.display()
                ));
            }
            text.push_str(&format!(
                "\n; Publish these TXT records. s={selector} in the host record makes {selector} the \
                 current selector of {}.\n",
                identity.domain()
            ));
            if host_source == Source::Default {
                text.push_str(&format!(
                    "; Server address assumed: {default_host} (pass --host or set `server` in the profile).\n"
                ));
            }
            text + &zone_text(&identity, public, &records)
        },
        || {
            Object::new()
                .with("identity", identity.as_str())
                .with("selector", selector.as_str())
                .with("privateKey", private_path.display().to_string())
                .with("publicKey", public_path.display().to_string())
                .with("keyType", public.key_type().as_str())
                .with("bits", public.bits())
                .with("fingerprint", public.fingerprint())
                .with("host", host.as_str())
                .with("records", records_json(&records))
                .with("profile", saved.as_ref().map(|r| r.name.clone()))
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            file_names("Billing", "VendorCorp.test", "btps2"),
            (
                "billing@vendorcorp.test-btps2-private.pem".to_owned(),
                "billing@vendorcorp.test-btps2-public.pem".to_owned()
            )
        );
    }
}
