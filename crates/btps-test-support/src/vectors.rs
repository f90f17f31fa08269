//! The interoperability-vector runner (PROTOCOL.md §13.1, stateless part).
//!
//! A vector directory holds `index.json` (the case list), `dns.json` (the DNS table),
//! `keys/` and `cases/`. Each case's `line` goes through the stateless part of the inbound
//! pipeline (PROTOCOL.md §2.7 steps 1–5 and 7): size, parse with the duplicate-key policy,
//! classify, schema, signature / delegation / attestation with keys from `dns.json` (agent keys
//! from the case's `signerPublicKey`, as the §13.1 harness's agent record), identity lookups
//! against the §13.1 identity table, and decryption where the case has `decrypt`. Trust,
//! freshness and replay are stateful and tested elsewhere.
//!
//! The verdict compared is `expectRust` when present, else `expect`.

use std::path::{Path, PathBuf};

use btps_crypto::{KeyPair, KeySource, PublicKey};
use btps_types::json::{Object, ParseLimits, Value, parse, parse_str};
use btps_types::{Artifact, ErrorCode, Identity, signing};
use serde::Deserialize;

use crate::dns::StaticDns;

/// Why a vector directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(String);

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))
}

/// The expected verdict of a case.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Expect {
    /// `true`/`false`: the signature verdict; `null`: rejected before any signature.
    #[serde(default)]
    pub signature_valid: Option<bool>,
    /// The first error code, `null`/absent when accepted.
    #[serde(default)]
    pub error_code: Option<String>,
}

/// Decryption part of a case.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decrypt {
    /// The receiver's private key file, relative to the directory.
    pub receiver_private_key: String,
    /// Member holding the encrypted artifact inside the line (agent lines), if not the line.
    #[serde(default)]
    pub artifact_path: Option<String>,
    /// The exact plaintext.
    pub document_json: String,
}

/// One case file.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    /// Case name.
    pub name: String,
    /// `transporter`, `agent`, `control`, `identityLookup` or `response`.
    pub kind: String,
    /// Whether the line carries a signature.
    #[serde(default)]
    pub signed: bool,
    /// The artifact as written on the wire.
    pub line: String,
    /// The reference verdict.
    pub expect: Expect,
    /// This implementation's verdict where it differs.
    #[serde(default)]
    pub expect_rust: Option<Expect>,
    /// Key whose private half signed the line.
    #[serde(default)]
    pub signer_public_key: Option<String>,
    /// Decryption check.
    #[serde(default)]
    pub decrypt: Option<Decrypt>,
}

impl Case {
    /// The verdict to compare against: `expectRust` when present, else `expect`.
    pub fn expected(&self) -> &Expect {
        self.expect_rust.as_ref().unwrap_or(&self.expect)
    }
}

#[derive(Deserialize)]
struct IndexEntry {
    file: String,
}

/// A loaded vector directory.
#[derive(Debug)]
pub struct VectorSet {
    /// The directory.
    pub dir: PathBuf,
    /// The DNS table.
    pub dns: StaticDns,
    /// The cases, in index order.
    pub cases: Vec<Case>,
}

impl VectorSet {
    /// Loads `dir` (cases listed by `index.json`, or every `cases/*.json` without an index).
    ///
    /// # Errors
    ///
    /// Missing or malformed files.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let dns = StaticDns::load(&dir.join("dns.json")).map_err(|e| LoadError(e.0))?;
        let files: Vec<PathBuf> = if dir.join("index.json").exists() {
            let index: Vec<IndexEntry> = serde_json::from_str(&read(&dir.join("index.json"))?)
                .map_err(|e| LoadError(format!("index.json: {e}")))?;
            index.into_iter().map(|e| dir.join(e.file)).collect()
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("cases"))
                .map_err(|e| LoadError(format!("{}/cases: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            files
        };
        let mut cases = Vec::with_capacity(files.len());
        for f in files {
            let case: Case = serde_json::from_str(&read(&f)?)
                .map_err(|e| LoadError(format!("{}: {e}", f.display())))?;
            cases.push(case);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            dns,
            cases,
        })
    }

    fn key_file(&self, rel: &str) -> Result<String, String> {
        std::fs::read_to_string(self.dir.join(rel)).map_err(|e| format!("{rel}: {e}"))
    }
}

/// What the pipeline made of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `Some(valid)` once signatures were evaluated (unsigned kinds that pass their schema
    /// count as `Some(true)`); `None` when rejected before.
    pub signature_valid: Option<bool>,
    /// The first error, if any.
    pub error: Option<ErrorCode>,
    /// What happened, for the report.
    pub detail: String,
}

impl Outcome {
    fn rejected(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            signature_valid: None,
            error: Some(code),
            detail: detail.into(),
        }
    }
    fn sig(valid: bool, error: Option<ErrorCode>, detail: impl Into<String>) -> Self {
        Self {
            signature_valid: Some(valid),
            error,
            detail: detail.into(),
        }
    }
}

/// Keys for one case: DNS from the table, the agent key from the case (§13.1 step 3).
struct CaseKeys<'a> {
    dns: &'a StaticDns,
    agent: Option<PublicKey>,
}

impl KeySource for CaseKeys<'_> {
    fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Vec<PublicKey>, ErrorCode> {
        self.dns.identity_keys(identity, selector)
    }
    fn agent_key(&self, _agent_id: &str, _owner: &Identity) -> Result<PublicKey, ErrorCode> {
        // No agent record: the key is unknown, which PROTOCOL.md §8.3 reports as a
        // signature failure.
        self.agent.clone().ok_or(ErrorCode::SigVerification)
    }
}

/// The identity hosted by the §13.1 harness server, and the selector its key is under.
const HOSTED_IDENTITY: (&str, &str) = ("finance$buyer.test", "btps1");
/// The §13.1 server identity that signs identity-lookup replies, its selector and key file.
const SERVER_IDENTITY: (&str, &str, &str) = (
    "server$buyer.test",
    "btps1",
    "keys/server-buyer-private.pem",
);

/// Runs one case through the stateless pipeline.
pub fn run_case(set: &VectorSet, case: &Case) -> Outcome {
    // Steps 1–2: size, UTF-8 + JSON, duplicate-key policy.
    let parsed = match parse(case.line.as_bytes(), &ParseLimits::DEFAULT) {
        Ok(p) => p,
        Err(e) => return Outcome::rejected(e.error_code(), e.to_string()),
    };
    if parsed.duplicates.has_conflicting() {
        return Outcome::rejected(ErrorCode::Validation, "conflicting duplicate keys");
    }
    let Some(obj) = parsed.value.as_object() else {
        return Outcome::rejected(ErrorCode::Validation, "not a JSON object");
    };
    if case.kind == "response" {
        return run_response(set, obj);
    }
    // Steps 3–4: classify, schema of that kind only.
    let artifact = match btps_types::validate(&parsed.value) {
        Ok(a) => a,
        Err(e) => return Outcome::rejected(e.code(), e.to_string()),
    };
    match &artifact {
        Artifact::Control(c) => Outcome::sig(true, None, format!("control {:?}", c.action)),
        Artifact::IdentityLookup(_) => run_identity_lookup(set, obj),
        Artifact::Transporter(_) | Artifact::Agent(_) => {
            let agent = match case.signer_public_key.as_deref().map(|f| set.key_file(f)) {
                Some(Ok(pem)) => PublicKey::from_pem(&pem).ok(),
                _ => None,
            };
            let keys = CaseKeys {
                dns: &set.dns,
                agent,
            };
            if let Err(e) = btps_crypto::verify_artifact(&artifact, &keys) {
                return Outcome::sig(false, Some(e.error_code()), e.to_string());
            }
            match &case.decrypt {
                Some(d) => run_decrypt(set, obj, d),
                None => Outcome::sig(true, None, "accepted"),
            }
        }
        _ => Outcome::rejected(ErrorCode::Validation, "not an inbound artifact kind"),
    }
}

fn run_decrypt(set: &VectorSet, line: &Object, d: &Decrypt) -> Outcome {
    let target = match d.artifact_path.as_deref() {
        None | Some("") => Some(line),
        Some(path) => path
            .split('.')
            .try_fold(line, |o, member| o.get_object(member)),
    };
    let Some(target) = target else {
        return Outcome::sig(
            true,
            Some(ErrorCode::DecryptionFailed),
            "artifactPath not found",
        );
    };
    let key = match set
        .key_file(&d.receiver_private_key)
        .and_then(|pem| KeyPair::from_pem(&pem).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(e) => return Outcome::sig(true, Some(ErrorCode::Unknown), e),
    };
    match btps_crypto::decrypt_document(target, &key) {
        Ok(dec) if dec.plaintext == d.document_json => {
            Outcome::sig(true, None, "accepted, decrypted")
        }
        Ok(dec) => Outcome::sig(
            true,
            Some(ErrorCode::DecryptionFailed),
            format!("plaintext differs: {}", dec.plaintext),
        ),
        Err(e) => Outcome::sig(true, Some(e.error_code()), e.to_string()),
    }
}

/// A reply to a client (`kind: "response"`): signed ones are verified with DNS(`signedBy`,
/// `selector`) over the reply minus `signature`, exactly as received (PROTOCOL.md §2.5).
fn run_response(set: &VectorSet, obj: &Object) -> Outcome {
    let reply = match btps_types::validate_response(obj) {
        Ok(r) => r,
        Err(e) => return Outcome::rejected(e.code(), e.to_string()),
    };
    if reply.signature.is_none() {
        return Outcome::sig(true, None, "unsigned reply");
    }
    match btps_crypto::verify_response(&reply, &set.dns) {
        Ok(_) => Outcome::sig(true, None, "signed reply verified"),
        Err(e) => Outcome::sig(false, Some(e.error_code()), e.to_string()),
    }
}

/// An identity lookup answered from the §13.1 identity table: the reply is built, signed by
/// the server identity and verified back through DNS, as a client would.
fn run_identity_lookup(set: &VectorSet, req: &Object) -> Outcome {
    let wanted = req.get_str("identity").unwrap_or_default().to_lowercase();
    let selector = req.get_str("identitySelector").unwrap_or(HOSTED_IDENTITY.1);
    if wanted != HOSTED_IDENTITY.0 || selector != HOSTED_IDENTITY.1 {
        return Outcome::sig(
            true,
            Some(ErrorCode::IdentityNotFound),
            "identity not in the table",
        );
    }
    let Ok(identity) = Identity::parse(HOSTED_IDENTITY.0) else {
        return Outcome::sig(true, Some(ErrorCode::Unknown), "bad table identity");
    };
    let Some(key) = set.dns.keys(&identity, selector).into_iter().next() else {
        return Outcome::sig(
            true,
            Some(ErrorCode::IdentityNotFound),
            "no key in DNS for the table identity",
        );
    };
    let server = match set
        .key_file(SERVER_IDENTITY.2)
        .and_then(|pem| KeyPair::from_pem(&pem).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(e) => return Outcome::sig(true, Some(ErrorCode::Unknown), e),
    };
    let req_id = req.get_str("id").unwrap_or_default();
    let mut reply = Object::new()
        .with("version", "1.0.0")
        .with(
            "status",
            Object::new()
                .with("ok", true)
                .with("code", 200_u32)
                .with("message", "success"),
        )
        .with("id", format!("reply-{req_id}"))
        .with("issuedAt", req.get_str("issuedAt").unwrap_or_default())
        .with("reqId", req_id)
        .with("type", "btps_response")
        .with("selector", SERVER_IDENTITY.1)
        .with(
            "document",
            Object::new()
                .with("selector", selector)
                .with("publicKey", key.to_pem())
                .with("keyType", "rsa")
                .with("version", "1.0.0"),
        )
        .with("signedBy", SERVER_IDENTITY.0);
    if let Err(e) = btps_crypto::sign_in_place(&mut reply, signing::RESPONSE, &server) {
        return Outcome::sig(false, Some(e.error_code()), e.to_string());
    }
    // Round trip through the wire form, then verify as a client.
    let wire = Value::Object(reply).to_string();
    let back = parse_str(&wire).map(|p| p.value);
    match back.as_ref().ok().and_then(Value::as_object) {
        Some(o) => match btps_crypto::verify_response_object(o, &set.dns) {
            Ok(_) => Outcome::sig(true, None, "signed lookup reply verified"),
            Err(e) => Outcome::sig(false, Some(e.error_code()), e.to_string()),
        },
        None => Outcome::sig(true, Some(ErrorCode::Unknown), "reply does not parse"),
    }
}

/// Compares an outcome with the expected verdict. `Err` explains the difference.
///
/// # Errors
///
/// A description of the mismatch.
pub fn check(expected: &Expect, got: &Outcome) -> Result<(), String> {
    let got_code = got.error.map(ErrorCode::as_str);
    let code_ok = expected.error_code.as_deref() == got_code;
    let sig_ok = match (expected.signature_valid, got.signature_valid) {
        (a, b) if a == b => true,
        // The reference reports `false` for lines it rejected before any signature; we
        // report that they were never evaluated.
        (Some(false), None) => matches!(
            got.error,
            Some(ErrorCode::InvalidJson | ErrorCode::Validation | ErrorCode::LineTooLong)
        ),
        _ => false,
    };
    if code_ok && sig_ok {
        Ok(())
    } else {
        Err(format!(
            "expected signatureValid={:?} errorCode={:?}, got signatureValid={:?} errorCode={:?} ({})",
            expected.signature_valid,
            expected.error_code,
            got.signature_valid,
            got_code,
            got.detail
        ))
    }
}

/// The result of a whole directory.
#[derive(Debug, Default)]
pub struct Report {
    /// `ok NAME` or `FAIL NAME: …`, one per case.
    pub lines: Vec<String>,
    /// Cases that matched.
    pub passed: usize,
    /// Cases that did not.
    pub failed: usize,
}

/// Runs every case of `dir`.
///
/// # Errors
///
/// The directory could not be loaded (a failing case is not an error: see [`Report`]).
pub fn run_dir(dir: &Path) -> Result<Report, LoadError> {
    let set = VectorSet::load(dir)?;
    let mut report = Report::default();
    for case in &set.cases {
        let got = run_case(&set, case);
        match check(case.expected(), &got) {
            Ok(()) => {
                report.passed += 1;
                report.lines.push(format!("ok {}", case.name));
            }
            Err(why) => {
                report.failed += 1;
                report.lines.push(format!("FAIL {}: {why}", case.name));
            }
        }
    }
    Ok(report)
}

/// Fuzzing seeds drawn from a vector directory.
#[derive(Debug, Default)]
pub struct Seeds {
    /// Every case line.
    pub lines: Vec<Vec<u8>>,
    /// Every TXT record of the DNS table.
    pub txt_records: Vec<Vec<u8>>,
    /// Every identity-like string (`from`, `to`, `signedBy`, …) and record name.
    pub identities: Vec<Vec<u8>>,
    /// The case lines whose artifact carries a `delegation` (valid and negative cases).
    pub delegated_lines: Vec<Vec<u8>>,
}

/// Builds fuzzing seeds from `dir`.
///
/// # Errors
///
/// The directory could not be loaded.
pub fn seed_corpus(dir: &Path) -> Result<Seeds, LoadError> {
    let set = VectorSet::load(dir)?;
    let mut seeds = Seeds::default();
    for case in &set.cases {
        seeds.lines.push(case.line.clone().into_bytes());
        if let Ok(p) = parse_str(&case.line) {
            collect_identities(&p.value, &mut seeds.identities);
            if p.value
                .as_object()
                .is_some_and(|o| o.contains_key("delegation"))
            {
                seeds.delegated_lines.push(case.line.clone().into_bytes());
            }
        }
    }
    for (name, records) in set.dns.iter() {
        seeds.identities.push(name.as_bytes().to_vec());
        seeds
            .txt_records
            .extend(records.iter().map(|r| r.clone().into_bytes()));
    }
    seeds.identities.sort();
    seeds.identities.dedup();
    Ok(seeds)
}

fn collect_identities(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::String(s) => {
            if let Some(s) = s.as_str().filter(|s| s.contains('$') && s.len() < 400) {
                out.push(s.as_bytes().to_vec());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_identities(i, out)),
        Value::Object(o) => o.iter().for_each(|(_, v)| collect_identities(v, out)),
        _ => {}
    }
}
