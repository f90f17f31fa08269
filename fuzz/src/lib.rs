//! Fuzz harnesses that need the interoperability vectors (`../shared/vectors`, next to the
//! repository): the keys and the delegated lines are compiled in.

use std::sync::LazyLock;

use btps_crypto::{
    CryptoError, PublicKey, check_delegation_rules, verify_delegated, verify_delegation,
};
use btps_types::Identity;
use btps_types::json::{JsString, Object, ParseLimits, Value, parse, parse_str};
use btps_types::signing::{
    DEVICE, attestation_signing_input, delegation_signing_input, signing_input,
};

macro_rules! vector {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/vectors/",
            $path
        ))
    };
}

/// The texts a delegated artifact's three signatures cover (PROTOCOL.md §9.2). Members no
/// signature covers (the signature objects of the last layer, the position of
/// `attestation` inside the delegation) are not part of it.
#[derive(Debug, PartialEq, Eq)]
struct Signed {
    device: Vec<u8>,
    delegation: Option<Vec<u8>>,
    attestation: Option<Vec<u8>>,
}

impl Signed {
    fn of(artifact: &Object) -> Self {
        let delegation = artifact.get_object("delegation");
        Self {
            device: signing_input(artifact, DEVICE),
            delegation: delegation_signing_input(artifact),
            attestation: delegation.and_then(|d| {
                let attestation = d.get("attestation")?.as_object()?;
                Some(attestation_signing_input(d, attestation))
            }),
        }
    }
}

struct Fixture {
    /// Every published vector key that could be resolved for a delegator or attestor.
    keys: Vec<PublicKey>,
    /// The delegated vector artifacts whose signatures their keys' owners made (valid ones,
    /// and ones that break only a §9.3 domain rule), with what they sign and whether they
    /// pass the rules too.
    genuine: Vec<(Object, Signed, bool)>,
}

fn key(pem: &str) -> PublicKey {
    PublicKey::from_pem(pem).expect("vector key")
}

fn case_line(case: &str) -> Object {
    let case = parse_str(case).expect("vector case");
    let line = case
        .value
        .as_object()
        .and_then(|c| c.get_str("line"))
        .expect("case line");
    let parsed = parse_str(line).expect("vector line");
    parsed.value.as_object().expect("an object").clone()
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let admin = key(vector!("keys/admin-vendorcorp-public.pem"));
    let billing = key(vector!("keys/billing-btps1-public.pem"));
    let attestor = key(vector!("keys/attest-trustauthority-public.pem"));
    let evil = key(vector!("keys/evil-admin-public.pem"));
    let cases = [
        (
            vector!("cases/transporter_delegated_saas.json"),
            &admin,
            None,
            true,
        ),
        (
            vector!("cases/transporter_delegated_attested.json"),
            &billing,
            Some(&attestor),
            true,
        ),
        // Correctly signed by admin$evil.test, another domain than `from`: rule 1.
        (
            vector!("cases/neg_delegation_other_domain.json"),
            &evil,
            None,
            false,
        ),
        // Correctly signed by the sender itself, without an attestation: rule 2.
        (
            vector!("cases/neg_delegation_self_without_attestation.json"),
            &billing,
            None,
            false,
        ),
    ];
    let genuine = cases
        .into_iter()
        .map(|(case, delegator, attestor, passes_rules)| {
            let a = case_line(case);
            // The fixture is only useful if the unmutated artifacts verify as their cases say.
            verify_delegation(&a, delegator, attestor).expect("a genuine vector delegation");
            assert_eq!(
                verify_delegated(&a, delegator, attestor).is_ok(),
                passes_rules
            );
            let signed = Signed::of(&a);
            (a, signed, passes_rules)
        })
        .collect();
    Fixture {
        keys: vec![admin, billing, attestor, evil],
        genuine,
    }
});

/// Delegation (PROTOCOL.md §9.3): `check_delegation_rules`, `verify_delegation` and
/// `verify_delegated` with every vector key as delegator and attestor. `data[0]` even: the
/// rest is a whole line; odd: `data[1]` picks a genuinely signed delegated vector artifact
/// and the rest is a list of structural edits (remove, change, retype, reorder, move or copy
/// members). Nothing may panic, and a verification may succeed only when the signed texts
/// are exactly those of a genuinely signed vector artifact (`verify_delegated`: of one that
/// also passes the domain rules): a mutation of anything signed never verifies.
pub fn delegation(data: &[u8]) {
    let fixture = &*FIXTURE;
    let artifact = match data {
        [mode, rest @ ..] if mode % 2 == 0 => {
            let Ok(parsed) = parse(rest, &ParseLimits::DEFAULT) else {
                return;
            };
            if parsed.duplicates.has_conflicting() {
                return;
            }
            let Value::Object(artifact) = parsed.value else {
                return;
            };
            artifact
        }
        [_, pick, edits @ ..] => {
            let pick = usize::from(*pick) % fixture.genuine.len();
            let mut artifact = fixture.genuine[pick].0.clone();
            mutate(&mut artifact, edits);
            artifact
        }
        _ => return,
    };
    check(fixture, &artifact);
}

fn check(fixture: &Fixture, artifact: &Object) {
    let from = artifact
        .get_str("from")
        .and_then(|s| Identity::parse(s).ok());
    let rules = match (&from, artifact.get_object("delegation")) {
        (Some(from), Some(d)) => Some(check_delegation_rules(from, d)),
        _ => None,
    };
    let attestors = std::iter::once(None).chain(fixture.keys.iter().map(Some));
    for attestor in attestors {
        for delegator in &fixture.keys {
            let layers = verify_delegation(artifact, delegator, attestor);
            let whole = verify_delegated(artifact, delegator, attestor);
            for result in [&layers, &whole] {
                if let Err(e) = result {
                    let _ = CryptoError::error_code(e);
                }
            }
            if layers.is_ok() || whole.is_ok() {
                // Every layer present verified: each one's text is one its key's owner
                // signed. Layers are checked one by one: dropping the attestation of an
                // attested delegation leaves two genuine layers (then only rule 2 refuses
                // it, in `verify_delegated`).
                let signed = Signed::of(artifact);
                let genuine = |layer: fn(&Signed) -> Option<&[u8]>| {
                    layer(&signed).is_none_or(|text| {
                        fixture
                            .genuine
                            .iter()
                            .any(|(_, s, _)| layer(s) == Some(text))
                    })
                };
                assert!(
                    genuine(|s| Some(s.device.as_slice()))
                        && genuine(|s| s.delegation.as_deref())
                        && genuine(|s| s.attestation.as_deref()),
                    "a delegation verified over texts no key owner signed"
                );
                if whole.is_ok() {
                    assert!(
                        fixture
                            .genuine
                            .iter()
                            .any(|(_, s, rules_ok)| *s == signed && *rules_ok),
                        "verify_delegated accepted what no valid vector artifact signs"
                    );
                }
            }
            if let Ok(device) = &whole {
                assert!(
                    matches!(rules, Some(Ok(()))),
                    "verify_delegated skipped a rule"
                );
                assert_eq!(
                    layers.as_ref().ok(),
                    Some(device),
                    "the two verifiers disagree"
                );
            }
        }
    }
}

/// Applies edits `[op, a, b, len, payload…]…` to `root`; `a` and `b` pick members (any
/// depth, objects only) in document order.
fn mutate(root: &mut Object, mut edits: &[u8]) {
    while let [op, a, b, len, rest @ ..] = edits {
        let n = usize::from(len % 16).min(rest.len());
        let (payload, tail) = rest.split_at(n);
        edits = tail;
        let mut paths = Vec::new();
        collect_paths(root, &mut Vec::new(), &mut paths);
        if paths.is_empty() {
            return;
        }
        let pa = paths[usize::from(*a) % paths.len()].clone();
        let pb = paths[usize::from(*b) % paths.len()].clone();
        let text = String::from_utf8_lossy(payload).into_owned();
        match op % 8 {
            // Remove.
            0 => drop(take(root, &pa)),
            // Change bytes of a string.
            1 => {
                if let Some(Value::String(s)) = get_mut(root, &pa) {
                    let mut bytes = s.to_string_lossy().into_bytes();
                    for (i, x) in payload.iter().enumerate() {
                        if !bytes.is_empty() {
                            let at = (usize::from(*x) + i * 31) % bytes.len();
                            bytes[at] ^= 1 << (x % 7);
                        }
                    }
                    *s = JsString::from(String::from_utf8_lossy(&bytes).as_ref());
                }
            }
            // Another type.
            2 => {
                if let Some(v) = get_mut(root, &pa) {
                    *v = match payload.first().map_or(0, |x| x % 6) {
                        0 => Value::Null,
                        1 => Value::Bool(true),
                        2 => Value::Number(f64::from(payload.len() as u8)),
                        3 => Value::Object(Object::new()),
                        4 => Value::Array(Vec::new()),
                        _ => Value::from(text.as_str()),
                    };
                }
            }
            // To the end of its object.
            3 => {
                if let Some((k, v)) = take(root, &pa)
                    && let Some(parent) = parent_mut(root, &pa)
                {
                    parent.insert(k, v);
                }
            }
            // Into another object (the "member moved" attacks).
            4 => {
                if !pb.starts_with(&pa)
                    && matches!(get(root, &pb), Some(Value::Object(_)))
                    && let Some((k, v)) = take(root, &pa)
                    && let Some(Value::Object(target)) = get_mut(root, &pb)
                {
                    target.insert(k, v);
                }
            }
            // Copy one member's value over another's.
            5 => {
                if let Some(v) = get(root, &pa).cloned()
                    && let Some(slot) = get_mut(root, &pb)
                {
                    *slot = v;
                }
            }
            // Case change (identities and ids compare case-insensitively in places).
            6 => {
                if let Some(Value::String(s)) = get_mut(root, &pa) {
                    let flipped: String = s
                        .to_string_lossy()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_lowercase() {
                                c.to_ascii_uppercase()
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect();
                    *s = JsString::from(flipped.as_str());
                }
            }
            // A new member.
            _ => {
                let target = match get_mut(root, &pa) {
                    Some(Value::Object(o)) => Some(o),
                    _ => parent_mut(root, &pa),
                };
                if let Some(o) = target {
                    o.insert(JsString::from(text.as_str()), Value::from("x"));
                }
            }
        }
    }
}

type Path = Vec<JsString>;

fn collect_paths(obj: &Object, prefix: &mut Path, out: &mut Vec<Path>) {
    for (k, v) in obj.iter() {
        prefix.push(k.clone());
        out.push(prefix.clone());
        if let Value::Object(inner) = v {
            collect_paths(inner, prefix, out);
        }
        prefix.pop();
    }
}

fn key_str(k: &JsString) -> String {
    k.to_string_lossy()
}

fn get<'a>(root: &'a Object, path: &[JsString]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut obj = root;
    for k in parents {
        obj = obj.get_object(&key_str(k))?;
    }
    obj.get(&key_str(last))
}

fn parent_mut<'a>(root: &'a mut Object, path: &[JsString]) -> Option<&'a mut Object> {
    let (_, parents) = path.split_last()?;
    let mut obj = root;
    for k in parents {
        obj = obj.get_mut(&key_str(k))?.as_object_mut()?;
    }
    Some(obj)
}

fn get_mut<'a>(root: &'a mut Object, path: &[JsString]) -> Option<&'a mut Value> {
    let last = path.last()?;
    parent_mut(root, path)?.get_mut(&key_str(last))
}

fn take(root: &mut Object, path: &[JsString]) -> Option<(JsString, Value)> {
    let last = path.last()?;
    let v = parent_mut(root, path)?.remove(&key_str(last))?;
    Some((last.clone(), v))
}
