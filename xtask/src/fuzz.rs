//! `cargo xtask fuzz-smoke`: seed corpora from the vectors, then a short run of every target.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// The fuzz targets, as declared in `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &["json_roundtrip", "artifact_parse", "txt_record", "identity"];

pub(crate) fn smoke(root: &Path, seconds: u64) -> Result<()> {
    let vectors = root.join("../shared/vectors");
    let fuzz = root.join("fuzz");
    write_seeds(&vectors, &fuzz.join("corpus")).context("building the seed corpus")?;
    for target in TARGETS {
        crate::run(
            Command::new("cargo")
                .current_dir(&fuzz)
                .args(["fuzz", "run", "-s", "none", target])
                .arg(format!("corpus/{target}"))
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-print_final_stats=1",
                ]),
        )
        .with_context(|| format!("fuzz target {target} (is cargo-fuzz installed?)"))?;
    }
    println!(
        "fuzz-smoke: {} targets ran {seconds} s each without a crash",
        TARGETS.len()
    );
    Ok(())
}

/// Seeds: every vector line (JSON and artifact targets), every TXT record (txt_record),
/// every identity-like string and record name (identity).
fn write_seeds(vectors: &Path, corpus: &Path) -> Result<()> {
    let seeds = btps_test_support::vectors::seed_corpus(vectors)?;
    for (target, items) in [
        ("json_roundtrip", &seeds.lines),
        ("artifact_parse", &seeds.lines),
        ("txt_record", &seeds.txt_records),
        ("identity", &seeds.identities),
    ] {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, item) in items.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), item)?;
        }
    }
    Ok(())
}
