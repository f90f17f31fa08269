//! `cargo xtask bench <group>`: runs the benchmark binaries in the optimized bench profile.

use std::path::Path;

use anyhow::{Result, bail};

pub(crate) fn run(root: &Path, group: &str, millis: u64) -> Result<()> {
    let (package, bench) = match group {
        "crypto" => ("btps-crypto", "crypto"),
        "dns" => ("btps-dns", "dns"),
        "store" => ("btps-trust", "store"),
        other => bail!("unknown benchmark group {other:?} (known: crypto, dns, store)"),
    };
    crate::run(
        crate::cargo()
            .current_dir(root)
            .args(["bench", "-p", package, "--bench", bench])
            .env("BTPS_BENCH_MILLIS", millis.to_string()),
    )
}
