//! Arguments, help and exit codes.

use crate::{btps, stdout};

#[test]
fn bad_arguments_exit_64() {
    for args in [
        &["frobnicate"][..],
        &["artifact", "verify"],
        &[
            "artifact",
            "verify",
            "a.json",
            "--at",
            "2025-07-01T09:30:00Z",
        ],
        &["artifact", "verify", "a.json", "--max-age", "x"],
        &[
            "artifact",
            "decrypt",
            "a.json",
            "--dns-file",
            "t.json",
            "--nameserver",
            "127.0.0.1:53",
        ],
        &["keygen", "--ttl", "-1"],
        &["profile", "set", "identity"],
    ] {
        let out = btps(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let out = btps(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for needle in [
        "Exit codes:",
        "  0   success",
        "  1   not found",
        "  2   temporary failure",
        "  3   refused by the server",
        "  64  bad arguments",
        "  74  an output file",
        "BTPS_CONFIG_DIR",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert_eq!(btps(&["--version"]).status.code(), Some(0));
    assert_eq!(
        btps(&["artifact", "decrypt", "--help"]).status.code(),
        Some(0)
    );
}
