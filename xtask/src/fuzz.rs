//! `cargo xtask fuzz-smoke`: seed corpora from the vectors and the embedded default
//! configuration, then a short run of every target.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The fuzz targets, as declared in `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &[
    "json_roundtrip",
    "artifact_parse",
    "txt_record",
    "identity",
    "line_frame",
    "delegation",
    "server_config",
];

pub(crate) fn smoke(root: &Path, seconds: u64) -> Result<()> {
    let vectors = root.join("../shared/vectors");
    let fuzz = root.join("fuzz");
    let started = Instant::now();
    write_seeds(root, &vectors, &fuzz.join("corpus")).context("building the seed corpus")?;
    // One build of every target first, so that the runs below are timed runs only.
    crate::run(
        Command::new("cargo")
            .current_dir(&fuzz)
            .args(["fuzz", "build", "-s", "none"]),
    )
    .context(
        "building the fuzz targets (is cargo-fuzz installed? `cargo install cargo-fuzz --locked`)",
    )?;
    let built = started.elapsed();
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
        .with_context(|| {
            format!("fuzz target {target}: a crash input is in fuzz/artifacts/{target}/")
        })?;
    }
    println!(
        "fuzz-smoke: {} targets ran {seconds} s each without a crash ({} s build, {} s in all)",
        TARGETS.len(),
        built.as_secs(),
        started.elapsed().as_secs()
    );
    Ok(())
}

/// Seeds: every vector line (JSON and artifact targets), every TXT record (txt_record), every
/// identity-like string and record name (identity), the vector lines as NDJSON streams
/// (line_frame), the delegated lines and unedited delegated artifacts (delegation), and the
/// embedded default configuration with and without environment overrides (server_config).
/// The input layouts are those of the harnesses (`btps_server::internal::fuzzing`,
/// `fuzz/src/lib.rs`).
fn write_seeds(root: &Path, vectors: &Path, corpus: &Path) -> Result<()> {
    let seeds = btps_test_support::vectors::seed_corpus(vectors)?;
    let frames = frame_seeds(&seeds.lines);
    let mut delegation: Vec<Vec<u8>> = seeds
        .delegated_lines
        .iter()
        .map(|line| [&[0u8][..], line].concat())
        .collect();
    // Mode 1: a genuinely signed delegated artifact (0–3) unedited, then with a few edits.
    delegation.extend([
        vec![1, 0],
        vec![1, 1],
        vec![1, 2],
        vec![1, 3],
        vec![1, 0, 4, 9, 3, 0],
        vec![1, 1, 1, 20, 0, 2, 7, 7],
        // Regression: the attested artifact without its attestation (two genuine layers;
        // verify_delegation passes, rule 2 refuses it in verify_delegated).
        vec![1, 1, 0, 0x64, 0x14, 0x01, 0x0b],
    ]);
    let config = server_config_seeds(root)?;
    for (target, items) in [
        ("json_roundtrip", &seeds.lines),
        ("artifact_parse", &seeds.lines),
        ("txt_record", &seeds.txt_records),
        ("identity", &seeds.identities),
        ("line_frame", &frames),
        ("delegation", &delegation),
        ("server_config", &config),
    ] {
        if items.is_empty() {
            bail!("no seeds for fuzz target {target}");
        }
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, item) in items.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), item)?;
        }
    }
    Ok(())
}

/// `[limit, chunk seed, stream…]`: groups of vector lines ending in LF or CR LF with blank
/// lines between, under a limit that admits them (0x80 | n: n × 64 bytes) and under a small
/// one (over-long lines).
fn frame_seeds(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, group) in lines.chunks(3).enumerate() {
        let mut stream = Vec::new();
        for (j, line) in group.iter().enumerate() {
            stream.extend_from_slice(line);
            stream.extend_from_slice(if (i + j) % 2 == 0 { b"\n" } else { b"\r\n" });
            if j == 0 {
                stream.extend_from_slice(b" \t\r\n");
            }
        }
        let longest = group.iter().map(Vec::len).max().unwrap_or(0);
        let fits = u8::try_from(longest.div_ceil(64)).unwrap_or(0x7f).min(0x7f);
        let seed = u8::try_from(i % 256).unwrap_or(0);
        out.push([&[0x80 | fits, seed][..], &stream].concat());
        if i % 4 == 0 {
            out.push([&[0x08, seed][..], &stream[..stream.len().min(64)]].concat());
        }
    }
    out
}

/// The embedded default configuration (`DEFAULT_CONFIG` of bin/btps-server/src/init.rs),
/// alone, with environment overrides after a NUL, and a few other documented forms.
fn server_config_seeds(root: &Path) -> Result<Vec<Vec<u8>>> {
    let path = root.join("bin/btps-server/src/init.rs");
    let source =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let start = "DEFAULT_CONFIG: &str = r#\"";
    let Some(default) = source
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("\"#;"))
        .map(|(text, _)| text)
    else {
        bail!("no DEFAULT_CONFIG raw string in {}", path.display());
    };
    let env = "BTPS_LIMITS__MAX_LINE_BYTES=1048576\nBTPS_DOMAINS=[\"a.test\",\"b.test\"]\n\
               BTPS_STORE__URL=postgres://btps@db/btps\nBTPS_RATE_LIMITS__PER_IP_PER_MINUTE=0\n\
               BTPS_LOG__LEVEL=btps_server=debug\nBTPS_HTTP__LISTEN=0.0.0.0:9443\n";
    let tenant = "domains = [\"a.test\"]\n\n[[tenants]]\ndomain = \"b.test\"\n\
                  server_identity = \"server$b.test\"\nserver_key = \"keys/b.pem\"\n";
    let postgres = "[store]\nurl = \"postgres://btps@db/btps\"\npool_size = 32\n\n\
                    [delivery]\nenabled = false\nca_files = [\"ca.pem\"]\n";
    Ok(vec![
        default.as_bytes().to_vec(),
        format!("{default}\0{env}").into_bytes(),
        tenant.as_bytes().to_vec(),
        postgres.as_bytes().to_vec(),
        format!("{postgres}\0BTPS_STORE__POOL_SIZE=x\nBTPS_DNS__NAMESERVERS=[\"10.0.0.53:53\"]\n")
            .into_bytes(),
        Vec::new(),
    ])
}
