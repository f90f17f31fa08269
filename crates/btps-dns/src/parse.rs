//! From a [`TxtAnswer`] to typed records (PROTOCOL.md §6.2, §6.3, §6.6). Pure functions:
//! [`crate::DnsCache`] and the CLI both use them.
//!
//! Every TXT record at a name is parsed separately; unusable records are skipped. What
//! "several usable records" means depends on the use:
//!
//! | record | several distinct usable records |
//! |---|---|
//! | identity key, device key | all are candidates; the verifier picks by fingerprint |
//! | host | configuration error ([`DnsError::Ambiguous`], `BTP_ERROR_RESOLVE_DNS`) |
//! | delegation list | configuration error, fail closed (`BTP_ERROR_DELEGATION_REVOKED`) |
//!
//! Identical records count once.

use btps_crypto::{KeyPolicy, KeyType, PublicKey};
use btps_types::record::{DelegationListRecord, HostRecord, KeyRecord, KeyType as TagKeyType};

use crate::error::{DnsError, RecordKind};
use crate::resolver::{TxtAnswer, TxtRecord};

/// The usable host record of a `_btps.host.<domain>` answer.
///
/// # Errors
///
/// [`DnsError::NotFound`] for NXDOMAIN / NODATA, [`DnsError::Unusable`] when no record has
/// a usable `u` and `s`, [`DnsError::Ambiguous`] for several distinct usable records.
///
/// # Examples
///
/// ```
/// use btps_dns::{TxtAnswer, TxtRecord, parse_host};
/// let answer = TxtAnswer::Records {
///     records: vec![
///         TxtRecord::from_text("v=1.0.0;u=btps.example.com:4443;s=btps2;future=tag"),
///         TxtRecord::from_text("google-site-verification=abc"),
///     ],
///     ttl: 300,
/// };
/// let host = parse_host("_btps.host.example.com", &answer).unwrap();
/// assert_eq!((host.port, host.selector.as_str()), (4443, "btps2"));
/// ```
pub fn parse_host(name: &str, answer: &TxtAnswer) -> Result<HostRecord, DnsError> {
    let records = records_of(RecordKind::Host, name, answer)?;
    let mut usable: Vec<HostRecord> = Vec::with_capacity(1);
    let mut first_error = None;
    for record in records {
        match record.text().and_then(|text| HostRecord::parse(&text)) {
            Ok(host) => {
                if !usable.iter().any(|u| same_host(u, &host)) {
                    usable.push(host);
                }
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    single(RecordKind::Host, name, usable, first_error)
}

fn same_host(a: &HostRecord, b: &HostRecord) -> bool {
    a.host == b.host && a.port == b.port && a.selector == b.selector
}

/// The usable keys of an identity key or device key answer, in record order, duplicates
/// removed. A record is usable when `p` is a public key accepted by `policy` and its
/// algorithm is the one `k` names (`k` absent means `rsa`; PROTOCOL.md §6.3).
///
/// # Errors
///
/// [`DnsError::NotFound`] for NXDOMAIN / NODATA, [`DnsError::Unusable`] when no record is
/// usable (the reason of the first one is kept).
pub fn parse_keys(
    kind: RecordKind,
    name: &str,
    answer: &TxtAnswer,
    policy: KeyPolicy,
) -> Result<Vec<PublicKey>, DnsError> {
    let records = records_of(kind, name, answer)?;
    let mut keys: Vec<PublicKey> = Vec::with_capacity(records.len());
    let mut first_error = None;
    for record in records {
        match key_of(record, policy) {
            Ok(key) => {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if keys.is_empty() {
        return Err(DnsError::Unusable {
            kind,
            name: name.to_owned(),
            reason: first_error.unwrap_or_else(|| "no records".to_owned()),
        });
    }
    Ok(keys)
}

fn key_of(record: &TxtRecord, policy: KeyPolicy) -> Result<PublicKey, String> {
    let text = record.text().map_err(|e| e.to_string())?;
    let parsed = KeyRecord::parse(&text).map_err(|e| e.to_string())?;
    let key = policy
        .parse_base64_spki(&parsed.public_key)
        .map_err(|e| e.to_string())?;
    let matches = matches!(
        (&parsed.key_type, key.key_type()),
        (TagKeyType::Rsa, KeyType::Rsa) | (TagKeyType::Ed25519, KeyType::Ed25519)
    );
    if !matches {
        return Err(format!(
            "`k={}` does not match the {} key in `p=`",
            parsed.key_type,
            key.key_type()
        ));
    }
    Ok(key)
}

/// The delegation list of a `_btps.delegation.<account>.<domain>` answer: `None` when the
/// name has no TXT record (the identity does not use the extension, PROTOCOL.md §6.6).
///
/// # Errors
///
/// [`DnsError::Unusable`] when records exist but none has a `d=` tag,
/// [`DnsError::Ambiguous`] for several distinct lists. Both mean "no device is authorised"
/// (`BTP_ERROR_DELEGATION_REVOKED`): a list that is there but unreadable fails closed.
pub fn parse_delegation_list(
    name: &str,
    answer: &TxtAnswer,
) -> Result<Option<DelegationListRecord>, DnsError> {
    let records = match answer {
        TxtAnswer::NotFound { .. } => return Ok(None),
        TxtAnswer::Records { records, .. } => records,
    };
    let mut usable: Vec<DelegationListRecord> = Vec::with_capacity(1);
    let mut first_error = None;
    for record in records {
        match record
            .text()
            .and_then(|text| DelegationListRecord::parse(&text))
        {
            Ok(list) => {
                if !usable.iter().any(|u| u.devices == list.devices) {
                    usable.push(list);
                }
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    single(RecordKind::DelegationList, name, usable, first_error).map(Some)
}

fn records_of<'a>(
    kind: RecordKind,
    name: &str,
    answer: &'a TxtAnswer,
) -> Result<&'a [TxtRecord], DnsError> {
    match answer {
        TxtAnswer::Records { records, .. } => Ok(records),
        TxtAnswer::NotFound { absence, .. } => Err(DnsError::NotFound {
            kind,
            name: name.to_owned(),
            absence: *absence,
        }),
    }
}

fn single<T>(
    kind: RecordKind,
    name: &str,
    mut usable: Vec<T>,
    first_error: Option<String>,
) -> Result<T, DnsError> {
    match usable.len() {
        1 => Ok(usable.remove(0)),
        0 => Err(DnsError::Unusable {
            kind,
            name: name.to_owned(),
            reason: first_error.unwrap_or_else(|| "no records".to_owned()),
        }),
        count => Err(DnsError::Ambiguous {
            kind,
            name: name.to_owned(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use btps_crypto::KeyPair;
    use btps_types::ErrorCode;

    use super::*;
    use crate::resolver::Absence;

    fn answer(records: &[&str]) -> TxtAnswer {
        TxtAnswer::Records {
            records: records.iter().map(|r| TxtRecord::from_text(r)).collect(),
            ttl: 60,
        }
    }

    const NX: TxtAnswer = TxtAnswer::NotFound {
        absence: Absence::NxDomain,
        negative_ttl: None,
    };

    #[test]
    fn host_records() {
        let n = "_btps.host.example.com";
        let h = parse_host(n, &answer(&["v=1.0.0;u=a.example.com;s=s1"])).unwrap();
        assert_eq!(h.port, 3443);
        // Identical records count once; junk is skipped.
        let h = parse_host(
            n,
            &answer(&[
                "v=1.0.0;u=a.example.com:3443;s=s1",
                "junk",
                "v=1.0.0;u=a.example.com;s=s1",
            ]),
        )
        .unwrap();
        assert_eq!(h.selector, "s1");
        let e = parse_host(
            n,
            &answer(&[
                "v=1.0.0;u=a.example.com;s=s1",
                "v=1.0.0;u=b.example.com;s=s1",
            ]),
        )
        .unwrap_err();
        assert!(matches!(e, DnsError::Ambiguous { count: 2, .. }));
        assert_eq!(e.error_code(), ErrorCode::ResolveDns);
        let e = parse_host(n, &answer(&["v=1.0.0;s=s1"])).unwrap_err();
        assert!(matches!(&e, DnsError::Unusable { reason, .. } if reason.contains("`u=`")));
        assert_eq!(e.error_code(), ErrorCode::ResolveDns);
        let e = parse_host(n, &NX).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.error_code(), ErrorCode::ResolveDns);
    }

    #[test]
    fn key_records() {
        let ed = KeyPair::generate_ed25519().unwrap();
        let ed_b64 = ed.public_key().to_base64_spki();
        assert!(ed_b64.ends_with('='), "Ed25519 SPKI base64 is padded");
        let n = "s1._btps.identity.a.example.com";
        let p = KeyPolicy::DEFAULT;
        // Padded value survives; unknown tags are ignored.
        let keys = parse_keys(
            RecordKind::IdentityKey,
            n,
            &answer(&[&format!("v=1.0.0;k=ed25519;x=y=z;p={ed_b64}")]),
            p,
        )
        .unwrap();
        assert_eq!(keys, [ed.public_key().clone()]);
        // k mismatch (absent k means rsa) makes the record unusable.
        let e = parse_keys(
            RecordKind::IdentityKey,
            n,
            &answer(&[&format!("v=1.0.0;p={ed_b64}")]),
            p,
        )
        .unwrap_err();
        assert!(matches!(&e, DnsError::Unusable { reason, .. } if reason.contains("k=rsa")));
        assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
        // Several usable records are candidates; duplicates count once.
        let ed2 = KeyPair::generate_ed25519().unwrap();
        let ed2_b64 = ed2.public_key().to_base64_spki();
        let keys = parse_keys(
            RecordKind::DeviceKey,
            n,
            &answer(&[
                &format!("k=ed25519;p={ed_b64}"),
                "v=1.0.0;k=rsa;p=QUJD",
                &format!("k=ed25519;p={ed2_b64}"),
                &format!("v=1.0.0;k=ed25519;p={ed_b64}"),
            ]),
            p,
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        let e = parse_keys(
            RecordKind::IdentityKey,
            n,
            &answer(&["v=1.0.0;k=rsa;p="]),
            p,
        )
        .unwrap_err();
        assert!(matches!(e, DnsError::Unusable { .. }));
        let e = parse_keys(RecordKind::IdentityKey, n, &NX, p).unwrap_err();
        assert!(e.is_not_found());
    }

    #[test]
    fn delegation_lists() {
        let n = "_btps.delegation.a.example.com";
        assert_eq!(parse_delegation_list(n, &NX).unwrap(), None);
        let nodata = TxtAnswer::NotFound {
            absence: Absence::NoData,
            negative_ttl: Some(5),
        };
        assert_eq!(parse_delegation_list(n, &nodata).unwrap(), None);
        let l = parse_delegation_list(n, &answer(&["v=1.0.0;d=a,b", "v=1.0.0;d=a,b"]))
            .unwrap()
            .unwrap();
        assert_eq!(l.devices, ["a", "b"]);
        let e = parse_delegation_list(n, &answer(&["v=1.0.0;d=a", "v=1.0.0;d=b"])).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::DelegationRevoked);
        let e = parse_delegation_list(n, &answer(&["v=1.0.0"])).unwrap_err();
        assert!(matches!(e, DnsError::Unusable { .. }));
        assert_eq!(e.error_code(), ErrorCode::DelegationRevoked);
    }
}
