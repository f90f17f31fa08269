//! `btps dns resolve` and `btps dns records`.

use btps_crypto::{KeyPolicy, PublicKey};
use btps_dns::{ZoneRecord, identity_zone_records, inspect_identity};
use btps_types::Identity;
use btps_types::json::{Object, Value};

use crate::cli::{RecordsArgs, ResolveArgs};
use crate::context::{Context, block_on};
use crate::keys::read_public_key;
use crate::output::{CliError, Exit};

/// Parses an identity argument (exit 64 when it is not one).
pub(super) fn parse_identity(text: &str) -> Result<Identity, CliError> {
    Identity::parse(text)
        .map_err(|e| CliError::usage(format!("{text:?} is not an identity (account$domain): {e}")))
}

/// `btps dns resolve`: the host record and the key at a selector, straight from the
/// source (no cache).
pub(super) fn resolve(ctx: &Context, args: &ResolveArgs) -> Result<Exit, CliError> {
    let identity = parse_identity(&args.identity)?;
    let outcome = block_on(async {
        let resolver = ctx.resolver(&args.dns)?;
        Ok::<_, CliError>(
            inspect_identity(
                &*resolver,
                &identity,
                args.selector.as_deref(),
                KeyPolicy::DEFAULT,
            )
            .await,
        )
    })??;
    let report = outcome.map_err(|e| CliError::from(&e))?;
    if ctx.out.is_json() {
        ctx.out.write(&(report.to_json() + "\n"))?;
    } else {
        ctx.out.write(&report.to_string())?;
    }
    Ok(Exit::Ok)
}

/// `btps dns records`: the records to publish for a key, in zone-file syntax.
pub(super) fn records(ctx: &Context, args: &RecordsArgs) -> Result<Exit, CliError> {
    let identity = parse_identity(&args.identity)?;
    let key = read_public_key(&args.public_key)?;
    let records = identity_zone_records(&identity, &key, &args.selector, &args.host, args.ttl)
        .map_err(|e| CliError::usage(e.to_string()))?;
    ctx.out.emit(
        || zone_text(&identity, &key, &records),
        || {
            Object::new()
                .with("identity", identity.as_str())
                .with("keyType", key.key_type().as_str())
                .with("bits", key.bits())
                .with("fingerprint", key.fingerprint())
                .with("records", records_json(&records))
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// The zone-file text: a comment naming the identity and key, then one line per record.
pub(super) fn zone_text(identity: &Identity, key: &PublicKey, records: &[ZoneRecord]) -> String {
    let mut text = format!(
        "; BTPS records for {identity}: {} key, fingerprint {}\n",
        key.key_type(),
        key.fingerprint()
    );
    for record in records {
        text.push_str(&record.to_string());
        text.push('\n');
    }
    text
}

/// `[{"name", "ttl", "type", "text", "zone"}]`: `text` joined, `zone` the zone-file line.
pub(super) fn records_json(records: &[ZoneRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                Object::new()
                    .with("name", r.name.as_str())
                    .with("ttl", r.ttl)
                    .with("type", "TXT")
                    .with("text", r.text.as_str())
                    .with("zone", r.to_string())
                    .into()
            })
            .collect(),
    )
}
