//! Every interoperability vector (`shared/vectors/cases/*.json`) through the stateless front
//! of the inbound pipeline (PROTOCOL.md §2.7 steps 2–4): parse with the duplicate-key policy
//! (§4.6), classify (§3.1) and validate the schema of the classified kind only; lines of kind
//! `response` go through the client-side response-envelope schema (§2.5).
//!
//! The expected verdict is `expectRust` when present, else `expect` (§13.1). Cases whose first
//! error is `BTP_ERROR_VALIDATION` must fail here with that code; every other case must pass
//! these steps (its error, if any, comes later: signatures, trust, DNS, decryption).
//!
//! The vectors live in the sibling checkout `shared/` (`../../../shared/vectors/cases` from this
//! crate's manifest directory), as in CI.

use std::path::{Path, PathBuf};

use btps_types::artifact::classify_object;
use btps_types::json::{ParseLimits, Value, parse};
use btps_types::{Artifact, ArtifactKind, ErrorCode, validate, validate_response};

/// One case file: only the members this test reads.
struct Case {
    name: String,
    kind: String,
    line: String,
    /// The effective first error code (`expectRust` over `expect`), `None` when accepted.
    error_code: Option<String>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/cases")
}

fn load_cases() -> Vec<Case> {
    let dir = cases_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (shared/ must be checked out beside the repository)",
                dir.display()
            )
        })
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in {}", dir.display());
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let field = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{}: no string `{k}`", f.display()))
                    .to_owned()
            };
            let expect = match v.get("expectRust") {
                Some(e) if !e.is_null() => e,
                _ => &v["expect"],
            };
            Case {
                name: field("name"),
                kind: field("kind"),
                line: field("line"),
                error_code: expect["errorCode"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

fn expected_kind(case: &Case) -> ArtifactKind {
    match case.kind.as_str() {
        "transporter" => ArtifactKind::Transporter,
        "agent" => ArtifactKind::Agent,
        "control" => ArtifactKind::Control,
        "identityLookup" => ArtifactKind::IdentityLookup,
        other => panic!("{}: unexpected kind {other:?}", case.name),
    }
}

/// What the stateless front of the pipeline made of a line: `Ok(kind)` for an accepted
/// artifact (`None` for a valid response envelope), or the first error code.
fn front(case: &Case) -> Result<Option<ArtifactKind>, (ErrorCode, String)> {
    let parsed = parse(case.line.as_bytes(), &ParseLimits::DEFAULT)
        .map_err(|e| (e.error_code(), e.to_string()))?;
    if parsed.duplicates.has_conflicting() {
        return Err((ErrorCode::Validation, "conflicting duplicate keys".into()));
    }
    if case.kind == "response" {
        let obj = parsed
            .value
            .as_object()
            .ok_or_else(|| (ErrorCode::Validation, "not an object".to_owned()))?;
        return validate_response(obj)
            .map(|_| None)
            .map_err(|e| (e.code(), e.to_string()));
    }
    let artifact = validate(&parsed.value).map_err(|e| (e.code(), e.to_string()))?;
    Ok(Some(artifact.kind()))
}

#[test]
fn every_vector_case() {
    let cases = load_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let got = front(case);
        let expects_validation = case.error_code.as_deref() == Some("BTP_ERROR_VALIDATION");
        let verdict = match (&got, case.name.as_str()) {
            (Err((code, _)), "neg_truncated_json") if *code == ErrorCode::InvalidJson => Ok(()),
            (_, "neg_truncated_json") => {
                Err(format!("expected BTP_ERROR_INVALID_JSON, got {got:?}"))
            }
            (Err((ErrorCode::Validation, _)), _) if expects_validation => Ok(()),
            (_, _) if expects_validation => {
                Err(format!("expected BTP_ERROR_VALIDATION, got {got:?}"))
            }
            (Ok(None), _) if case.kind == "response" => Ok(()),
            (Ok(Some(kind)), _) if *kind == expected_kind(case) => Ok(()),
            (Ok(kind), _) => Err(format!(
                "classified as {kind:?}, case kind is {:?}",
                case.kind
            )),
            (Err(e), _) => Err(format!(
                "must pass parse/classify/schema (expected error {:?} comes later), got {e:?}",
                case.error_code
            )),
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn classification_of_every_parseable_case_matches_its_kind() {
    for case in load_cases() {
        if case.kind == "response" {
            continue;
        }
        let Ok(parsed) = parse(case.line.as_bytes(), &ParseLimits::DEFAULT) else {
            assert_eq!(
                case.name, "neg_truncated_json",
                "{}: does not parse",
                case.name
            );
            continue;
        };
        let obj = parsed
            .value
            .as_object()
            .unwrap_or_else(|| panic!("{}: not an object", case.name));
        assert_eq!(
            classify_object(obj),
            Some(expected_kind(&case)),
            "{}",
            case.name
        );
    }
}

#[test]
fn conflicting_duplicate_is_the_only_conflict() {
    for case in load_cases() {
        let Ok(parsed) = parse(case.line.as_bytes(), &ParseLimits::DEFAULT) else {
            continue;
        };
        assert_eq!(
            parsed.duplicates.has_conflicting(),
            case.name == "neg_duplicate_key_different_value",
            "{}",
            case.name
        );
        if case.name == "reencoded_duplicate_key_same_value" {
            assert!(parsed.duplicates.count() > 0, "{}", case.name);
        }
    }
}

fn case_value(name: &str) -> Value {
    let case = load_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    parse(case.line.as_bytes(), &ParseLimits::DEFAULT)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .value
}

#[test]
fn send_type_agent_cases_expose_their_envelope_and_owner() {
    for name in [
        "agent_trust_request",
        "agent_trust_respond",
        "agent_artifact_send",
        "agent_artifact_send_encrypted",
        "agent_trust_update",
        "agent_trust_delete",
    ] {
        let v = case_value(name);
        let Ok(Artifact::Agent(agent)) = validate(&v) else {
            panic!("{name}: not a valid agent artifact");
        };
        let owner = agent.owner().unwrap_or_else(|| panic!("{name}: no owner"));
        assert_eq!(
            owner.as_str(),
            "billing$vendorcorp.test",
            "{name}: owner is document.from"
        );
        assert!(agent.envelope().is_some(), "{name}: envelope not exposed");
    }
    for name in [
        "agent_inbox_fetch",
        "agent_draft_create",
        "agent_system_ping",
        "agent_auth_refresh",
    ] {
        let v = case_value(name);
        let Ok(Artifact::Agent(agent)) = validate(&v) else {
            panic!("{name}: not a valid agent artifact");
        };
        assert_eq!(
            agent.owner().map(|o| o.as_str()),
            Some("finance$buyer.test"),
            "{name}: owner is `to`"
        );
        assert!(agent.envelope().is_none(), "{name}");
    }
    let v = case_value("agent_auth_request");
    let Ok(Artifact::Agent(agent)) = validate(&v) else {
        panic!("agent_auth_request: not a valid agent artifact");
    };
    assert!(
        agent.owner().is_none(),
        "auth.request has no owner (onboarding)"
    );
}

#[test]
fn schema_errors_name_the_member() {
    let v = case_value("neg_document_missing_required_field");
    let e = validate(&v).expect_err("must fail");
    assert_eq!(e.code(), ErrorCode::Validation);
    assert!(e.path().starts_with("/document"), "path {:?}", e.path());
    assert!(e.to_string().contains("totalAmount"), "{e}");

    let v = case_value("neg_missing_selector");
    let e = validate(&v).expect_err("must fail");
    assert!(e.to_string().contains("selector"), "{e}");

    let v = case_value("neg_missing_signature");
    let e = validate(&v).expect_err("must fail");
    assert!(e.to_string().contains("signature"), "{e}");
}
