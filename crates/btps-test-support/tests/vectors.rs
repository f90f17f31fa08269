//! Every interoperability vector case is one named test (PROTOCOL.md §13.1).
//!
//! The directory is `$BTPS_VECTORS`, else `../shared/vectors` next to the repository.

use std::path::PathBuf;

use btps_test_support::vectors::{VectorSet, check, run_case};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let dir = std::env::var_os("BTPS_VECTORS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        PathBuf::from,
    );
    let set = std::sync::Arc::new(
        VectorSet::load(&dir)
            .unwrap_or_else(|e| panic!("loading vectors from {}: {e}", dir.display())),
    );
    assert!(!set.cases.is_empty(), "no cases in {}", dir.display());
    let trials = (0..set.cases.len())
        .map(|i| {
            let set = set.clone();
            let name = set.cases[i].name.clone();
            Trial::test(name, move || {
                let case = &set.cases[i];
                check(case.expected(), &run_case(&set, case)).map_err(Failed::from)
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
