//! The `btps` binary end to end: every test runs the built CLI in a temporary directory
//! with its own configuration directory (`BTPS_CONFIG_DIR`), so no user profile is read.

mod artifact;
mod cli;
mod dns;
mod key;
mod keygen;
mod network;
mod profile;

use std::io::Write;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use btps_crypto::PublicKey;

/// The interoperability vectors, next to the repository.
pub(crate) fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

pub(crate) fn vector_path(rel: &str) -> String {
    vectors().join(rel).to_string_lossy().into_owned()
}

pub(crate) fn dns_file() -> String {
    vector_path("dns.json")
}

/// A vector case file, parsed.
pub(crate) fn case(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(vectors().join(format!("cases/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every vector case, in index order.
pub(crate) fn all_cases() -> Vec<serde_json::Value> {
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("index.json")).unwrap())
            .unwrap();
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = vectors().join(e["file"].as_str().unwrap());
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
        })
        .collect()
}

/// `expectRust` when present, else `expect`.
pub(crate) fn expected(case: &serde_json::Value) -> &serde_json::Value {
    case.get("expectRust").unwrap_or_else(|| &case["expect"])
}

pub(crate) fn fingerprint(key: &str) -> String {
    let pem = std::fs::read_to_string(vectors().join(format!("keys/{key}-public.pem"))).unwrap();
    PublicKey::from_pem(&pem).unwrap().fingerprint().to_owned()
}

/// A temporary working directory with an empty configuration directory.
pub(crate) struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The working directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `BTPS_CONFIG_DIR`.
    pub(crate) fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// A file in the working directory.
    pub(crate) fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_btps"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("BTPS_CONFIG_DIR", self.config_dir())
            .env_remove("BTPS_PROFILE");
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("btps runs")
    }

    /// Runs with `input` on standard input.
    pub(crate) fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("btps runs");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// Runs `btps` in a fresh [`Env`].
pub(crate) fn btps(args: &[&str]) -> Output {
    Env::new().run(args)
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output as JSON.
pub(crate) fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

/// Asserts the exit code and that a failure printed exactly one `btps: ` line.
#[track_caller]
pub(crate) fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    if code != 0 {
        let err = stderr(o);
        assert_eq!(err.lines().count(), 1, "one error line: {err}");
        assert!(err.starts_with("btps: "), "{err}");
    }
}

/// A nameserver on 127.0.0.1 that answers REFUSED to every query.
pub(crate) fn refusing_nameserver() -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR: response
            reply[3] = (reply[3] & 0xf0) | 5; // RCODE: REFUSED
            let _ = socket.send_to(&reply, peer);
        }
    });
    addr.to_string()
}

/// Parses the `name. ttl IN TXT "a" "b"` lines of `text` into (name, ttl,
/// character-strings); other lines are skipped.
pub(crate) fn parse_zone(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter(|l| !l.starts_with(';') && l.contains(" IN TXT \""))
        .map(|l| {
            let mut fields = l.splitn(5, ' ');
            let name = fields.next().unwrap().trim_end_matches('.').to_owned();
            let ttl = fields.next().unwrap().parse().unwrap();
            assert_eq!(fields.next(), Some("IN"), "{l}");
            assert_eq!(fields.next(), Some("TXT"), "{l}");
            let quoted = fields.next().unwrap();
            let strings = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap()
                .split("\" \"")
                .map(str::to_owned)
                .collect();
            (name, ttl, strings)
        })
        .collect()
}
