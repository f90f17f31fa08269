//! `--store postgres://…`: two server processes on one database share the replay set and
//! the inbox; a SIGKILLed instance restarts with nothing acknowledged lost.

use crate::pg::Scope;
use crate::support::{BILLING, DataDir, FINANCE, billing_key, doc_line, edit_config, invoice, now};

pub(crate) fn on_postgres(dir: &DataDir, url: &str) {
    edit_config(&dir.path, |section, key| {
        (section == "store" && key == "url").then(|| format!("url = \"{url}\""))
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_one_database() {
    let scope = Scope::default();
    let url = scope.fresh().await;
    let (mut a, mut b) = (DataDir::new(), DataDir::new());
    on_postgres(&a, &url);
    on_postgres(&b, &url);
    // Admin commands work while servers run on Postgres (no file lock).
    let mut server_a = tokio::task::block_in_place(|| a.start());
    tokio::task::block_in_place(|| {
        a.admin_ok(&[
            "trust",
            "set",
            BILLING,
            FINANCE,
            "--status",
            "accepted",
            "--privacy",
            "mixed",
        ]);
    });
    let server_b = tokio::task::block_in_place(|| b.start());

    let key = billing_key();
    let doc = invoice();
    let lines: Vec<String> = (0..20)
        .map(|i| doc_line(&format!("pg-{i}"), now(), &doc, &key))
        .collect();
    tokio::task::block_in_place(|| {
        let mut ca = server_a.connect();
        let mut cb = server_b.connect();
        for (i, line) in lines.iter().enumerate() {
            let r = if i % 2 == 0 {
                ca.request(line)
            } else {
                cb.request(line)
            };
            assert!(r.ok(), "{line}");
            assert_eq!(r.message(), "success");
        }
        // A re-send to the other instance is recognised: one replay set.
        for (i, line) in lines.iter().enumerate() {
            let r = if i % 2 == 0 {
                cb.request(line)
            } else {
                ca.request(line)
            };
            assert_eq!(r.message(), "already accepted", "{line}");
        }
        // Killed hard and restarted: everything acknowledged is still known.
        server_a.kill();
        let restarted = a.start();
        let mut c = restarted.connect();
        for line in &lines {
            assert_eq!(c.request(line).message(), "already accepted");
        }
        restarted.stop();
        server_b.stop();
    });
    // Exactly one inbox entry per artifact.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM btps_message WHERE mailbox = 'inbox'",
            &[],
        )
        .await
        .unwrap();
    let n: i64 = row.get(0);
    assert_eq!(n, 20);
    drop(client);
    let _ = task.await;
    let _ = (&mut a, &mut b);
}
