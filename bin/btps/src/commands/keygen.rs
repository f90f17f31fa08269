//! `btps keygen`: an RSA-2048 identity key pair (PROTOCOL.md §4.2) and the DNS records that
//! publish it (§6.1).

use std::path::Path;

use btps_crypto::KeyPair;
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
    let key = KeyPair::generate_rsa2048()
        .map_err(|e| CliError::failed(format!("generating the key: {e}")))?;
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
