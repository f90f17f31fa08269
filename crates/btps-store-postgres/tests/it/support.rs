//! Test support: a PostgreSQL server for the tests.
//!
//! With `BTPS_TEST_DATABASE_URL` set (a URL of a role that may `CREATE DATABASE`), the tests
//! use that server. Otherwise they start a throwaway cluster once per test process: `initdb`
//! and `pg_ctl` (as the `postgres` user when running as root; PostgreSQL refuses root) on a
//! free port in a temporary directory. A watchdog shell process stops the cluster and removes
//! the directory when the test process exits, however it exits.
//!
//! When no server can be had the tests fail (in CI and locally); they never skip.
//!
//! A test that stops and restarts the server starts a [`Cluster`] of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use btps_store_postgres::{PgStore, PgStoreConfig};
use btps_trust::conformance::Factory;

/// The admin URL of the server the tests use.
pub(crate) fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("BTPS_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_cluster().unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for these tests and could not be started: {e}\n\
                 Install it (apt-get install -y postgresql) or set BTPS_TEST_DATABASE_URL \
                 to a server where the role may CREATE DATABASE."
            )
        }),
    })
}

fn pg_bin() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .ok_or_else(|| "no initdb/pg_ctl under /usr/lib/postgresql/*/bin".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `cmd args…`, as the `postgres` user when we are root.
fn pg_command(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_cluster() -> Result<String, String> {
    Cluster::start().map(|c| c.url())
}

/// A throwaway PostgreSQL cluster of this test process (stopped and removed when the process
/// exits). Tests that stop and restart a server start one of their own.
#[derive(Debug)]
pub(crate) struct Cluster {
    pg_ctl: PathBuf,
    data: String,
    port: u16,
}

impl Cluster {
    /// `initdb` and `pg_ctl start` on a free port of 127.0.0.1.
    pub(crate) fn start() -> Result<Self, String> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("btps-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let data = dir.to_str().ok_or("temp dir is not UTF-8")?.to_owned();
        let pg_ctl = bin.join("pg_ctl");
        // Stop and remove the cluster when this process exits, whatever way it exits.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
             {stop} \"{ctl}\" -D \"{data}\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"{data}\"",
            pid = std::process::id(),
            stop = if is_root() {
                "runuser -u postgres --"
            } else {
                ""
            },
            ctl = pg_ctl.display(),
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("watchdog: {e}"))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres", &data]);
                    c
                },
                "chown",
            )?;
        }
        run(
            pg_command(
                &bin.join("initdb"),
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "-N",
                ],
            ),
            "initdb",
        )?;
        let mut last = String::new();
        for _ in 0..3 {
            let cluster = Self {
                pg_ctl: pg_ctl.clone(),
                data: data.clone(),
                port: free_port()?,
            };
            match cluster.start_again() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The admin URL (database `postgres`).
    pub(crate) fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start` on the same port, waiting until it accepts connections.
    pub(crate) fn start_again(&self) -> Result<(), String> {
        let (data, port) = (&self.data, self.port);
        let opts = format!(
            "-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=300 \
             -c fsync=on"
        );
        let log = format!("{data}/server.log");
        run(
            pg_command(
                &self.pg_ctl,
                &["-D", data, "-l", &log, "-w", "-o", &opts, "start"],
            ),
            "pg_ctl start",
        )
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server shuts down cleanly.
    #[allow(dead_code, reason = "used by bin/btps-server's fault tests")]
    pub(crate) fn stop(&self) -> Result<(), String> {
        run(
            pg_command(
                &self.pg_ctl,
                &["-D", &self.data, "-m", "fast", "-w", "stop"],
            ),
            "pg_ctl stop",
        )
    }
}

/// Whether the tests use a server of the environment (`BTPS_TEST_DATABASE_URL`) rather than
/// a throwaway cluster of their own.
fn external_server() -> bool {
    std::env::var("BTPS_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// The databases one test makes on the test server. On a server of the environment
/// (`BTPS_TEST_DATABASE_URL`) they are dropped when the scope is dropped, so keep it alive
/// as long as the test uses them; a throwaway cluster is removed as a whole anyway.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    names: Mutex<Vec<String>>,
}

impl Scope {
    /// A new, empty database on the test server; returns its URL.
    pub(crate) async fn fresh(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = server_url();
        let name = format!(
            "btps_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server {admin}: {e}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        drop(client);
        let _ = task.await;
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        url_with_db(admin, &name)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let names = std::mem::take(self.names.get_mut().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() || !external_server() {
            return;
        }
        let admin = server_url().to_owned();
        // On a thread of its own: a scope is often dropped inside a runtime, which must not
        // block.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(drop_databases(&admin, &names))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test databases not dropped: {e}"),
            Err(_) => eprintln!("test databases not dropped: the dropping thread panicked"),
        }
    }
}

/// Drops `names` on the server at `admin`, ending sessions still connected to them. A few at
/// a time, on connections of their own: the server's checkpoints for concurrent drops are
/// shared.
async fn drop_databases(admin: &str, names: &[String]) -> Result<(), String> {
    for chunk in names.chunks(8) {
        let mut drops = tokio::task::JoinSet::new();
        for name in chunk {
            let (admin, name) = (admin.to_owned(), name.clone());
            drops.spawn(async move { drop_database(&admin, &name).await });
        }
        for dropped in drops.join_all().await {
            dropped?;
        }
    }
    Ok(())
}

async fn drop_database(admin: &str, name: &str) -> Result<(), String> {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    // `WITH (FORCE)` needs PostgreSQL 13; older servers get the plain form.
    let forced = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    let dropped = match forced {
        Ok(()) => Ok(()),
        Err(_) => client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .map_err(|e| format!("DROP DATABASE {name}: {e}")),
    };
    drop(client);
    let _ = task.await;
    dropped
}

/// `admin` with its database name replaced by `db` (a URL, or `key=value` pairs).
fn url_with_db(admin: &str, db: &str) -> String {
    match url::Url::parse(admin) {
        Ok(mut u) if admin.contains("://") => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        _ => format!("{admin} dbname={db}"),
    }
}

/// The conformance factory: a new database per store, reopen = a new pool on the same one.
#[derive(Debug)]
pub(crate) struct Databases {
    scope: Scope,
    /// [`PgStoreConfig::writers`] of the stores.
    writers: usize,
}

impl Databases {
    /// Stores with this many group-commit writers.
    pub(crate) fn with_writers(writers: usize) -> Self {
        Self {
            scope: Scope::default(),
            writers,
        }
    }
}

#[async_trait::async_trait]
impl Factory<PgStore> for Databases {
    async fn fresh(&self) -> PgStore {
        let url = self.scope.fresh().await;
        let config = PgStoreConfig::new(url)
            .with_pool_size(8)
            .with_writers(self.writers);
        PgStore::connect(&config).await.expect("open the store")
    }

    async fn reopen(&self, store: PgStore) -> Option<PgStore> {
        let config = store.config().clone();
        store.close();
        drop(store);
        Some(PgStore::connect(&config).await.expect("reopen the store"))
    }
}
