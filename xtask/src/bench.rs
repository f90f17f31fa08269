//! `cargo xtask bench <group>`: runs the benchmark binaries in the optimized bench profile.

use std::path::Path;

use anyhow::{Result, bail};

pub(crate) fn run(root: &Path, group: &str, millis: u64) -> Result<()> {
    let targets: &[(&str, &str)] = match group {
        "crypto" => &[("btps-crypto", "crypto")],
        "dns" => &[("btps-dns", "dns")],
        // Both store backends: the file backend, then PostgreSQL (a throwaway cluster, or
        // BTPS_TEST_DATABASE_URL).
        "store" => &[("btps-trust", "store"), ("btps-store-postgres", "store")],
        other => bail!("unknown benchmark group {other:?} (known: crypto, dns, store)"),
    };
    for (package, bench) in targets {
        crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["bench", "-p", package, "--bench", bench])
                .env("BTPS_BENCH_MILLIS", millis.to_string()),
        )?;
    }
    Ok(())
}
