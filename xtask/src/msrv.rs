//! `cargo xtask msrv`: what can be checked of the minimum supported Rust version without
//! installing that toolchain.
//!
//! * Every package of the dependency graph (`cargo metadata`, resolved for the host) that
//!   declares a `rust-version` declares one no newer than the workspace's; a dependency that
//!   needs a newer compiler fails here, not on a user's older toolchain.
//! * Every workspace member declares exactly the workspace's `rust-version`.
//! * Every `clippy.toml` that sets `msrv` sets the same version (a crate's own `clippy.toml`
//!   replaces the workspace's, so each must say it), and clippy's `incompatible_msrv` lint,
//!   which flags uses of standard-library items stabilised after that version, is not
//!   allowed anywhere: not in `[workspace.lints]`, a crate's `[lints]`, nor an
//!   `#[allow]`/`#[expect]` in the sources. `cargo xtask test` runs clippy with
//!   `-D warnings`, so the lint fails the build.
//!
//! Not checked: that the workspace compiles with that compiler (language features, lints of
//! newer compilers, standard-library items the lint does not know). Only a build with the
//! old toolchain shows that.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cargo;

/// A `major.minor.patch` version; a missing part is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u64, u64, u64);

impl Version {
    fn parse(text: &str) -> Result<Self> {
        let mut parts = text.trim().split('.').map(str::parse::<u64>);
        let mut next = || parts.next().transpose();
        let major = next()?.context("empty rust-version")?;
        let v = Self(major, next()?.unwrap_or(0), next()?.unwrap_or(0));
        Ok(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Runs every check; fails listing each violation.
pub(crate) fn check(root: &Path) -> Result<()> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let workspace = workspace_rust_version(&manifest)?;
    let mut problems = Vec::new();

    let host = host_triple()?;
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            &host,
        ])
        .output()
        .context("starting cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let in_graph: std::collections::BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .context("metadata without a resolve graph")?
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let members: std::collections::BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("metadata without workspace members")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let (mut checked, mut undeclared) = (0, 0);
    for package in meta["packages"].as_array().context("no packages")? {
        let id = package["id"].as_str().unwrap_or("");
        if !in_graph.contains(id) {
            continue;
        }
        let name = package["name"].as_str().unwrap_or("?");
        let version = package["version"].as_str().unwrap_or("?");
        let declared = package["rust_version"].as_str().map(Version::parse);
        match declared {
            Some(Ok(v)) if v > workspace => problems.push(format!(
                "{name} {version} needs Rust {v}, newer than the workspace's {workspace}"
            )),
            Some(Ok(v)) if members.contains(id) && v != workspace => problems.push(format!(
                "workspace member {name} declares rust-version {v}, not the workspace's \
                 {workspace}"
            )),
            Some(Ok(_)) => checked += 1,
            Some(Err(e)) => problems.push(format!("{name} {version}: bad rust-version: {e}")),
            None if members.contains(id) => problems.push(format!(
                "workspace member {name} declares no rust-version (use \
                 `rust-version.workspace = true`)"
            )),
            None => undeclared += 1,
        }
    }

    for file in files(root, &|p| {
        p.file_name()
            .is_some_and(|n| n == "clippy.toml" || n == ".clippy.toml")
    })? {
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines() {
            let Some(value) = line
                .split('#')
                .next()
                .and_then(|l| l.trim().strip_prefix("msrv"))
                .and_then(|l| l.trim_start().strip_prefix('='))
            else {
                continue;
            };
            match Version::parse(value.trim().trim_matches('"')) {
                Ok(v) if v == workspace => {}
                Ok(v) => problems.push(format!(
                    "{}: msrv = {v}, the workspace's rust-version is {workspace}",
                    file.display()
                )),
                Err(e) => problems.push(format!("{}: bad msrv: {e}", file.display())),
            }
        }
    }

    for file in files(root, &|p| {
        p.extension().is_some_and(|e| e == "rs") || p.file_name().is_some_and(|n| n == "Cargo.toml")
    })? {
        if file.ends_with("xtask/src/msrv.rs") {
            continue;
        }
        let comment = if file.extension().is_some_and(|e| e == "rs") {
            "//"
        } else {
            "#"
        };
        let text = std::fs::read_to_string(&file)?;
        let allowed = text.lines().any(|l| {
            let code = l.split(comment).next().unwrap_or("");
            code.contains("incompatible_msrv")
                && (code.contains("allow") || code.contains("expect"))
        });
        if allowed {
            problems.push(format!(
                "{}: clippy::incompatible_msrv is allowed; it must stay active",
                file.display()
            ));
        }
    }

    if !problems.is_empty() {
        bail!("MSRV {workspace}:\n  {}", problems.join("\n  "));
    }
    eprintln!(
        "msrv: {checked} packages of the dependency graph for {host} declare a rust-version \
         no newer than {workspace} ({undeclared} declare none); clippy.toml msrv and the \
         incompatible_msrv lint agree. The {workspace} toolchain itself was not run."
    );
    Ok(())
}

/// `rust-version` of `[workspace.package]`.
fn workspace_rust_version(manifest: &str) -> Result<Version> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
            continue;
        }
        if in_package
            && let Some(value) = line
                .strip_prefix("rust-version")
                .and_then(|l| l.trim_start().strip_prefix('='))
        {
            return Version::parse(value.trim().trim_matches('"'));
        }
    }
    bail!("no rust-version in [workspace.package]")
}

fn host_triple() -> Result<String> {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .context("starting rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("no host in rustc -vV")
}

/// Files under `root` (without `target`, `.git` and the fuzz build directory) that `keep`
/// accepts.
fn files(root: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                if name != "target" && name != ".git" && name != "corpus" && name != "artifacts" {
                    dirs.push(path);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_parts() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(v("1.88"), Version(1, 88, 0));
        assert!(v("1.88.1") > v("1.88"));
        assert!(v("1.100") > v("1.88.9"));
        assert!(Version::parse("1.x").is_err());
    }

    #[test]
    fn reads_the_workspace_rust_version() {
        let manifest = "[workspace]\nmembers = []\n[workspace.package]\nedition = \"2024\"\n\
                        rust-version = \"1.88\"\n[workspace.lints.clippy]\n";
        assert_eq!(workspace_rust_version(manifest).unwrap(), Version(1, 88, 0));
    }
}
