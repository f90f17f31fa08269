//! Verification of one artifact as a receiving client does it: PROTOCOL.md §2.7 steps 1–4
//! (size, JSON with the duplicate-key policy, classification, schema), optionally step 6
//! (freshness, §10.1), and step 7 (keys from DNS, signature, delegation, attestation, §4.4,
//! §9.3) plus the device check of §6.6 — without the server's trust, replay and store
//! steps. Signed server replies (§2.5) verify too.
//!
//! Every signed text is built by `btps_types::signing` from the value parsed out of the
//! received bytes; nothing is re-serialized from a typed view.
//!
//! The result is a [`Report`]: what the artifact is, who signed it, and the verdict.

use std::cell::RefCell;

use btps_crypto::{KeyRef, KeySource, PublicKey, Verified, VerifyError};
use btps_dns::{DeviceCheck, DnsCache, DnsError};
use btps_types::artifact::{AgentAction, Response, Transporter};
use btps_types::json::{Object, ParseLimits, Value, parse};
use btps_types::{Artifact, ErrorCode, Identity, UnixMillis};

use crate::output::{CliError, Exit};

/// How to verify.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Freshness window in milliseconds; `None`: freshness is not checked.
    pub(crate) max_age_ms: Option<i64>,
    /// The verify instant for the freshness check.
    pub(crate) now: UnixMillis,
    /// The device key for agent artifacts (agent keys are not in DNS).
    pub(crate) agent_key: Option<PublicKey>,
}

/// A key that signed (or should have signed) a layer of the artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyInfo {
    /// The identity whose DNS key it is, or that the agent acts for.
    pub(crate) identity: Option<String>,
    /// The DNS selector.
    pub(crate) selector: Option<String>,
    /// The agent (device) id.
    pub(crate) agent_id: Option<String>,
    /// The fingerprint: of the verified key, else the one the signature names.
    pub(crate) fingerprint: String,
}

/// The freshness check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// The window in milliseconds.
    pub(crate) max_age_ms: i64,
    /// now − T in milliseconds (negative: T is in the future).
    pub(crate) age_ms: i64,
}

/// What the verification established.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    /// `transporter`, `agent`, `control`, `identityLookup` or `response`; `None` when the
    /// text is not an artifact.
    pub(crate) kind: Option<&'static str>,
    /// Descriptive members in display order (`type`, `action`, `id`, `from`, `to`, …).
    pub(crate) members: Vec<(&'static str, String)>,
    /// Whether the document is encrypted (kinds that carry one).
    pub(crate) encrypted: Option<bool>,
    /// The key that signed the artifact itself.
    pub(crate) signer: Option<KeyInfo>,
    /// For delegated artifacts, the delegator.
    pub(crate) delegator: Option<KeyInfo>,
    /// For attested delegations, the attestor.
    pub(crate) attestor: Option<KeyInfo>,
    /// The §6.6 device check, for delegated artifacts that verified.
    pub(crate) device_check: Option<&'static str>,
    /// The freshness check, when asked for and reached.
    pub(crate) freshness: Option<Freshness>,
    /// `Ok` when valid.
    pub(crate) outcome: Result<(), CliError>,
}

/// The verdict word of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every check passed.
    Valid,
    /// A check failed for good.
    Invalid,
    /// It could not be decided now (DNS unavailable): retry.
    Unverified,
    /// The artifact carries no signature.
    Unsigned,
    /// Verification needs something that was not given (an agent key).
    NotChecked,
}

impl Verdict {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unverified => "unverified",
            Self::Unsigned => "unsigned",
            Self::NotChecked => "not checked",
        }
    }
}

impl Report {
    fn new() -> Self {
        Self {
            kind: None,
            members: Vec::new(),
            encrypted: None,
            signer: None,
            delegator: None,
            attestor: None,
            device_check: None,
            freshness: None,
            outcome: Ok(()),
        }
    }

    fn fail(mut self, e: CliError) -> Self {
        self.outcome = Err(e);
        self
    }

    /// The verdict.
    pub(crate) fn verdict(&self) -> Verdict {
        match &self.outcome {
            Ok(()) => Verdict::Valid,
            Err(e) if e.exit == Exit::Temporary => Verdict::Unverified,
            Err(e) if e.exit == Exit::Usage => Verdict::NotChecked,
            Err(e) if e.code.is_none() && self.kind.is_some() && self.signer.is_none() => {
                Verdict::Unsigned
            }
            Err(_) => Verdict::Invalid,
        }
    }
}

/// A failure with a protocol code.
fn refuse(code: ErrorCode, message: impl Into<String>) -> CliError {
    CliError::protocol(code, message)
}

/// Parses `bytes` and verifies the artifact. Returns the parsed value (when the text is
/// JSON) with the report.
pub(crate) async fn verify(
    bytes: &[u8],
    dns: &DnsCache,
    opts: &Options,
) -> (Option<Value>, Report) {
    let report = Report::new();
    // Steps 1–2: size, UTF-8, JSON, duplicate keys (§4.6).
    let parsed = match parse(bytes, &ParseLimits::DEFAULT) {
        Ok(p) => p,
        Err(e) => return (None, report.fail(refuse(e.error_code(), format!("{e}")))),
    };
    if parsed.duplicates.has_conflicting() {
        let sample = parsed
            .duplicates
            .samples()
            .iter()
            .find(|d| d.conflicting)
            .map(|d| format!(": {}/{}", d.path, d.key))
            .unwrap_or_default();
        let e = refuse(
            ErrorCode::Validation,
            format!("duplicate key with different values{sample} (PROTOCOL.md §4.6)"),
        );
        return (Some(parsed.value), report.fail(e));
    }
    let report = match parsed.value.as_object() {
        Some(obj) => verify_object(obj, dns, opts, report).await,
        None => report.fail(refuse(
            ErrorCode::Validation,
            format!("expected a JSON object, found {}", parsed.value.type_name()),
        )),
    };
    (Some(parsed.value), report)
}

/// Whether `obj` looks like a server reply (§2.5) rather than an inbound artifact.
fn is_response(obj: &Object) -> bool {
    btps_types::classify_object(obj).is_none()
        && obj.get("status").is_some_and(|s| s.as_object().is_some())
}

async fn verify_object(obj: &Object, dns: &DnsCache, opts: &Options, report: Report) -> Report {
    if is_response(obj) {
        return verify_reply(obj, dns, opts, report).await;
    }
    // Steps 3–4: classify, schema of that kind only.
    let artifact = match btps_types::validate_object(obj) {
        Ok(a) => a,
        Err(e) => {
            let mut report = report;
            report.kind = btps_types::classify_object(obj).map(|k| k.as_str());
            return report.fail(refuse(e.code(), format!("schema: {e}")));
        }
    };
    let mut report = report;
    report.kind = Some(artifact.kind().as_str());
    describe(&artifact, &mut report);
    let (Artifact::Transporter(_) | Artifact::Agent(_)) = &artifact else {
        let kind = artifact.kind();
        return report.fail(CliError::failed(format!(
            "a {kind} artifact is not signed: nothing to verify"
        )));
    };
    // Step 6, on request.
    if let Some(w) = opts.max_age_ms {
        match check_freshness(&artifact, opts.now, w) {
            Ok(f) => report.freshness = Some(f),
            Err(e) => return report.fail(e),
        }
    }
    // Step 7.
    let refs = btps_crypto::required_keys(&artifact);
    if let Some(KeyRef::Agent { agent_id, owner }) =
        refs.iter().find(|r| matches!(r, KeyRef::Agent { .. }))
        && opts.agent_key.is_none()
    {
        return report.fail(CliError::usage(format!(
            "agent {agent_id} of {owner} signed this artifact; agent keys are not published in \
             DNS: pass its public key with --agent-key"
        )));
    }
    let keys = Keys::resolve(dns, &refs, opts.agent_key.clone()).await;
    let verified = match btps_crypto::verify_artifact(&artifact, &keys) {
        Ok(v) => v,
        Err(e) => return report.fail(keys.explain(&e)),
    };
    if let Some(signer) = &mut report.signer {
        verified
            .signer
            .fingerprint()
            .clone_into(&mut signer.fingerprint);
    }
    if let (Some(d), Some(delegator)) = (&verified.delegator, &mut report.delegator) {
        d.fingerprint().clone_into(&mut delegator.fingerprint);
    }
    // §9.3 step 6 / §6.6: the DNS device check of delegated artifacts.
    if let Artifact::Transporter(t) = &artifact
        && let Some(d) = &t.delegation
    {
        match device_check(dns, t, d.agent_id, &verified).await {
            Ok(text) => report.device_check = Some(text),
            Err(e) => return report.fail(e),
        }
    }
    report
}

async fn device_check(
    dns: &DnsCache,
    t: &Transporter<'_>,
    agent_id: &str,
    verified: &Verified,
) -> Result<&'static str, CliError> {
    match dns.check_device(&t.from, agent_id, &verified.signer).await {
        Ok(DeviceCheck::Authorized) => Ok("authorized by the delegation records in DNS"),
        Ok(_) => Ok("no delegation list published (in-band delegation only)"),
        Err(e) => Err(CliError::from(&e)),
    }
}

/// A signed server reply: DNS(`signedBy`, `selector`) over the reply minus `signature`.
async fn verify_reply(obj: &Object, dns: &DnsCache, opts: &Options, report: Report) -> Report {
    let mut report = report;
    report.kind = Some("response");
    let reply = match btps_types::validate_response(obj) {
        Ok(r) => r,
        Err(e) => return report.fail(refuse(e.code(), format!("schema: {e}"))),
    };
    describe_reply(&reply, &mut report);
    let (Some(signed_by), Some(selector)) = (&reply.signed_by, reply.selector) else {
        return report.fail(CliError::failed(
            "the reply is not signed: nothing to verify",
        ));
    };
    if reply.signature.is_none() {
        return report.fail(CliError::failed(
            "the reply is not signed: nothing to verify",
        ));
    }
    if let Some(w) = opts.max_age_ms {
        match fresh(reply.issued_at_ms, opts.now, w, "issuedAt") {
            Ok(f) => report.freshness = Some(f),
            Err(e) => return report.fail(e),
        }
    }
    let refs = [KeyRef::Identity {
        identity: signed_by.clone(),
        selector: selector.to_owned(),
    }];
    let keys = Keys::resolve(dns, &refs, None).await;
    match btps_crypto::verify_response(&reply, &keys) {
        Ok(key) => {
            if let Some(signer) = &mut report.signer {
                key.fingerprint().clone_into(&mut signer.fingerprint);
            }
            report
        }
        Err(e) => report.fail(keys.explain(&e)),
    }
}

fn fresh(t: UnixMillis, now: UnixMillis, w: i64, what: &str) -> Result<Freshness, CliError> {
    let age_ms = now.as_millis().saturating_sub(t.as_millis());
    if now.abs_diff(t) > w.unsigned_abs() {
        let when = if age_ms >= 0 {
            format!("{} s old", age_ms / 1000)
        } else {
            format!("{} s in the future", -age_ms / 1000)
        };
        return Err(refuse(
            ErrorCode::StaleArtifact,
            format!(
                "{what} {} is {when}, outside the window of {} s",
                t.to_datetime_string(),
                w / 1000
            ),
        ));
    }
    Ok(Freshness {
        max_age_ms: w,
        age_ms,
    })
}

/// PROTOCOL.md §10.1: T = `delegation.issuedAt` for delegated artifacts (plus the
/// attestation's `issuedAt`, and the artifact's own `issuedAt` not after T + W), else
/// `issuedAt`.
fn check_freshness(
    artifact: &Artifact<'_>,
    now: UnixMillis,
    w: i64,
) -> Result<Freshness, CliError> {
    match artifact {
        Artifact::Transporter(t) => match &t.delegation {
            None => fresh(t.issued_at_ms, now, w, "issuedAt"),
            Some(d) => {
                let f = fresh(d.issued_at_ms, now, w, "delegation.issuedAt")?;
                if let Some(a) = &d.attestation {
                    fresh(a.issued_at_ms, now, w, "attestation.issuedAt")?;
                }
                if t.issued_at_ms > d.issued_at_ms.saturating_add_millis(w) {
                    return Err(refuse(
                        ErrorCode::StaleArtifact,
                        "issuedAt is later than delegation.issuedAt plus the window",
                    ));
                }
                Ok(f)
            }
        },
        Artifact::Agent(a) => fresh(a.issued_at_ms, now, w, "issuedAt"),
        _ => Err(CliError::failed("unsigned artifacts carry no freshness")),
    }
}

fn dns_key(identity: &Identity, selector: &str, fingerprint: &str) -> KeyInfo {
    KeyInfo {
        identity: Some(identity.as_str().to_owned()),
        selector: Some(selector.to_owned()),
        agent_id: None,
        fingerprint: fingerprint.to_owned(),
    }
}

fn describe(artifact: &Artifact<'_>, report: &mut Report) {
    let m = &mut report.members;
    match artifact {
        Artifact::Transporter(t) => {
            m.push(("type", t.kind.as_str().to_owned()));
            m.push(("id", t.id.to_owned()));
            m.push(("from", t.from.as_str().to_owned()));
            m.push(("to", t.to.as_str().to_owned()));
            m.push(("issuedAt", t.issued_at.to_owned()));
            m.push(("selector", t.selector.to_owned()));
            report.encrypted = Some(t.is_encrypted());
            match &t.delegation {
                None => report.signer = Some(dns_key(&t.from, t.selector, t.signature.fingerprint)),
                Some(d) => {
                    report.signer = Some(KeyInfo {
                        identity: Some(t.from.as_str().to_owned()),
                        selector: None,
                        agent_id: Some(d.agent_id.to_owned()),
                        fingerprint: t.signature.fingerprint.to_owned(),
                    });
                    report.delegator =
                        Some(dns_key(&d.signed_by, d.selector, d.signature.fingerprint));
                    report.attestor = d
                        .attestation
                        .as_ref()
                        .map(|a| dns_key(&a.signed_by, a.selector, a.signature.fingerprint));
                }
            }
        }
        Artifact::Agent(a) => {
            m.push(("action", a.action.as_str().to_owned()));
            m.push(("id", a.id.to_owned()));
            m.push(("agentId", a.agent_id.to_owned()));
            m.push(("to", a.to.as_str().to_owned()));
            m.push(("issuedAt", a.issued_at.to_owned()));
            report.encrypted = Some(
                a.encryption.is_some()
                    || a.envelope()
                        .is_some_and(|e| e.get("encryption").is_some_and(|v| !v.is_null())),
            );
            let owner = a.owner().map(|o| o.as_str().to_owned());
            report.signer = Some(KeyInfo {
                identity: owner,
                selector: None,
                agent_id: (a.action != AgentAction::AuthRequest).then(|| a.agent_id.to_owned()),
                fingerprint: a.signature.fingerprint.to_owned(),
            });
        }
        Artifact::Control(c) => {
            m.push(("action", c.action.as_str().to_owned()));
            m.push(("id", c.id.to_owned()));
        }
        Artifact::IdentityLookup(l) => {
            m.push(("identity", l.identity.as_str().to_owned()));
            m.push(("id", l.id.to_owned()));
        }
        _ => {}
    }
}

fn describe_reply(reply: &Response<'_>, report: &mut Report) {
    let m = &mut report.members;
    m.push(("type", reply.kind.as_str().to_owned()));
    m.push(("id", reply.id.to_owned()));
    if let Some(req) = reply.req_id {
        m.push(("reqId", req.to_owned()));
    }
    m.push(("issuedAt", reply.issued_at.to_owned()));
    m.push((
        "status",
        format!("{} {}", reply.status.code, reply.status.message),
    ));
    report.encrypted = Some(reply.encryption.is_some());
    if let (Some(by), Some(selector), Some(sig)) =
        (&reply.signed_by, reply.selector, &reply.signature)
    {
        report.signer = Some(dns_key(by, selector, sig.fingerprint));
    }
}

/// Keys resolved ahead of `verify_artifact` (which is synchronous), remembering the DNS
/// error behind a failed lookup for the message.
struct Keys {
    dns: Vec<(KeyRef, Result<Vec<PublicKey>, DnsError>)>,
    agent: Option<PublicKey>,
    last_failure: RefCell<Option<DnsError>>,
}

impl Keys {
    async fn resolve(dns: &DnsCache, refs: &[KeyRef], agent: Option<PublicKey>) -> Self {
        let mut resolved = Vec::with_capacity(refs.len());
        for r in refs {
            if let KeyRef::Identity { identity, selector } = r {
                let answer = dns
                    .identity_keys(identity, selector)
                    .await
                    .map(|keys| keys.to_vec());
                resolved.push((r.clone(), answer));
            }
        }
        Self {
            dns: resolved,
            agent,
            last_failure: RefCell::new(None),
        }
    }

    /// The error for a failed verification, with the DNS error's text when a key lookup
    /// was the cause.
    fn explain(&self, e: &VerifyError) -> CliError {
        let code = e.error_code();
        match (e, self.last_failure.borrow().as_ref()) {
            (VerifyError::Key { .. }, Some(dns)) => {
                let mut err = CliError::from(dns);
                err.code = Some(code);
                err
            }
            _ => refuse(code, e.to_string()),
        }
    }
}

impl KeySource for Keys {
    fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Vec<PublicKey>, ErrorCode> {
        let found = self.dns.iter().find(|(r, _)| {
            matches!(r, KeyRef::Identity { identity: i, selector: s } if i == identity && s == selector)
        });
        match found {
            Some((_, Ok(keys))) => Ok(keys.clone()),
            Some((_, Err(e))) => {
                *self.last_failure.borrow_mut() = Some(e.clone());
                Err(e.error_code())
            }
            None => Err(ErrorCode::ResolvePubkey),
        }
    }

    fn agent_key(&self, _agent_id: &str, _owner: &Identity) -> Result<PublicKey, ErrorCode> {
        self.agent.clone().ok_or(ErrorCode::SigVerification)
    }
}

#[cfg(test)]
mod tests {
    use btps_dns::StaticTable;

    use super::*;

    fn verdict(bytes: &[u8], opts: &Options) -> Report {
        let dns = DnsCache::new(StaticTable::new());
        crate::context::block_on(async { verify(bytes, &dns, opts).await.1 }).unwrap()
    }

    #[test]
    fn rejected_before_signatures() {
        let r = verdict(b"{\"a\":", &Options::default());
        assert_eq!(r.kind, None);
        assert_eq!(r.outcome.unwrap_err().code, Some(ErrorCode::InvalidJson));
        let r = verdict(b"[1]", &Options::default());
        assert_eq!(r.outcome.unwrap_err().code, Some(ErrorCode::Validation));
        let r = verdict(br#"{"a":1,"a":2}"#, &Options::default());
        let e = r.outcome.unwrap_err();
        assert_eq!(e.code, Some(ErrorCode::Validation));
        assert!(e.message.contains("/a"), "{}", e.message);
    }

    #[test]
    fn unsigned_kinds() {
        let r = verdict(
            br#"{"version":"1.0.0","id":"c1","issuedAt":"2025-07-01T09:30:00.000Z","action":"PING"}"#,
            &Options::default(),
        );
        assert_eq!(r.kind, Some("control"));
        assert_eq!(r.verdict(), Verdict::Unsigned);
        assert_eq!(r.outcome.unwrap_err().exit, Exit::Failed);
    }

    #[test]
    fn freshness_window() {
        let t = UnixMillis::from_millis(1_000_000);
        let f = fresh(t, UnixMillis::from_millis(1_030_000), 60_000, "issuedAt").unwrap();
        assert_eq!(f.age_ms, 30_000);
        let e = fresh(t, UnixMillis::from_millis(1_061_000), 60_000, "issuedAt").unwrap_err();
        assert_eq!(e.code, Some(ErrorCode::StaleArtifact));
        assert!(e.message.contains("61 s old"), "{}", e.message);
        let e = fresh(t, UnixMillis::from_millis(900_000), 60_000, "issuedAt").unwrap_err();
        assert!(e.message.contains("in the future"), "{}", e.message);
    }
}
