//! `btps profile`: set/show round trip, file mode, selection, errors.

use std::os::unix::fs::PermissionsExt;

use crate::{Env, assert_exit, json, stderr, stdout};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn set_show_round_trip() {
    let env = Env::new();
    let path = env.config_dir().join("profiles/default.toml");

    let out = env.run(&["profile", "path"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim_end(), path.to_string_lossy());
    let out = env.run(&["profile", "show"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("no such file yet"),
        "{}",
        stdout(&out)
    );

    for (key, value) in [
        ("identity", "billing$vendorcorp.test"),
        ("selector", "btps2"),
        ("server", "127.0.0.1:3443"),
        ("insecure", "true"),
        ("nameservers", "127.0.0.1:53,127.0.0.2:53"),
        ("dns-file", "tables/dns.json"),
        (
            "agent.agent_id",
            "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60",
        ),
        ("agent.expires_at", "2025-08-01T09:30:00.000Z"),
    ] {
        assert_exit(&env.run(&["profile", "set", key, value]), 0);
    }
    // A secret from standard input stays out of the argument list and the output.
    let out = env.run_with_input(&["profile", "set", "agent.refresh_token", "-"], b"s3cr3t\n");
    assert_exit(&out, 0);
    assert!(!stdout(&out).contains("s3cr3t"));

    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["default.toml"], "no temporary files left");

    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains("identity = \"billing$vendorcorp.test\""),
        "{file}"
    );
    assert!(file.contains("[agent]"), "{file}");
    assert!(file.contains("refresh_token = \"s3cr3t\""), "{file}");
    // Relative paths are made absolute.
    let dns = env.path().join("tables/dns.json");
    assert!(
        file.contains(&format!("dns_file = \"{}\"", dns.display())),
        "{file}"
    );

    let out = env.run(&["profile", "show"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("refresh_token = \"(hidden)\""), "{text}");
    assert!(!text.contains("s3cr3t"));

    let out = env.run(&["--json", "profile", "show"]);
    let shown = json(&out);
    assert_eq!(shown["exists"], true);
    let settings = &shown["settings"];
    assert_eq!(settings["identity"], "billing$vendorcorp.test");
    assert_eq!(settings["selector"], "btps2");
    assert_eq!(settings["insecure"], true);
    assert_eq!(settings["nameservers"][1], "127.0.0.2:53");
    assert_eq!(settings["agent"]["refresh_token"], "(hidden)");
    let out = env.run(&["--json", "profile", "show", "--show-secrets"]);
    assert_eq!(json(&out)["settings"]["agent"]["refresh_token"], "s3cr3t");

    // Hand edits survive a rewrite, including unknown members of the agent table.
    std::fs::write(&path, format!("{file}future_member = 1\n")).unwrap();
    assert_exit(&env.run(&["profile", "unset", "insecure"]), 0);
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.contains("future_member = 1"), "{file}");
    assert!(!file.contains("insecure"), "{file}");
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn selection_and_errors() {
    let env = Env::new();
    assert_exit(
        &env.run(&["--profile", "work", "profile", "set", "selector", "w1"]),
        0,
    );
    assert_exit(&env.run(&["profile", "set", "selector", "d1"]), 0);
    let out = env.run(&["--json", "profile", "list"]);
    assert_eq!(
        json(&out)["profiles"],
        serde_json::json!(["default", "work"])
    );

    // BTPS_PROFILE selects too; --profile wins over it.
    let out = env
        .command(&["--json", "profile", "show"])
        .env("BTPS_PROFILE", "work")
        .output()
        .unwrap();
    assert_eq!(json(&out)["settings"]["selector"], "w1");
    let out = env
        .command(&["--json", "--profile", "default", "profile", "show"])
        .env("BTPS_PROFILE", "work")
        .output()
        .unwrap();
    assert_eq!(json(&out)["settings"]["selector"], "d1");

    // A profile asked for by name must exist for commands that read it.
    let out = env.run(&["--profile", "nope", "keygen", "--identity", "a$b.test"]);
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("\"nope\" does not exist"),
        "{}",
        stderr(&out)
    );

    for args in [
        &["--profile", "../x", "profile", "show"][..],
        &["profile", "set", "nonsense", "1"],
        &["profile", "set", "identity", "not-an-identity"],
        &["profile", "set", "selector", "a.b"],
        &["profile", "set", "insecure", "maybe"],
        &["profile", "set", "nameservers", "localhost:53"],
        &["profile", "set", "decrypt_keys", "old.pem"],
        &["profile", "unset", "nonsense"],
    ] {
        assert_exit(&env.run(args), 64);
    }

    // A malformed profile is a usage error naming the file.
    let path = env.config_dir().join("profiles/default.toml");
    std::fs::write(&path, "identitty = \"a$b.test\"\n").unwrap();
    let out = env.run(&["keygen"]);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("default.toml"), "{}", stderr(&out));
    assert!(stderr(&out).contains("identitty"), "{}", stderr(&out));
}
