//! `cargo xtask demo`: two companies, two servers, one DNS server, and the `btps` CLI
//! walking the whole story.
//!
//! Vendor Corp (`vendorcorp.test`) invoices Buyer (`buyer.test`). Each runs `btps-server`
//! on loopback; an in-process authoritative DNS server for `test.` publishes their host and
//! key records. The walk: keys and DNS records, one agent (device) per company, a trust
//! request and its acceptance (both delivered through the senders' outboxes), an encrypted
//! invoice sent by the vendor's agent through its server to the buyer's server, fetched and
//! decrypted by the buyer's agent, a delegated send by a SaaS platform, and a revoked device
//! refused. Every step checks its outcome, so the demo is also an end-to-end test
//! (`cargo xtask test` runs it).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use btps_test_support::dns_server::TestServer;
use serde_json::Value;

const VENDOR_DOMAIN: &str = "vendorcorp.test";
const BUYER_DOMAIN: &str = "buyer.test";
const BILLING: &str = "billing$vendorcorp.test";
const FINANCE: &str = "finance$buyer.test";
/// The agent id the SaaS platform's device key is delegated under.
const SAAS_AGENT: &str = "btps_ag_saas-billing-platform";
/// How long an asynchronous step (a delivery) may take before the demo fails.
const WAIT: Duration = Duration::from_secs(60);

/// Options of `cargo xtask demo`.
#[derive(Debug)]
pub(crate) struct DemoOptions {
    /// Keep the working directory (servers' data, keys, profiles) afterwards.
    pub(crate) keep: bool,
    /// Print only step titles and failures.
    pub(crate) quiet: bool,
}

/// Runs the demo.
pub(crate) fn demo(root: &Path, opts: &DemoOptions) -> Result<()> {
    let started = Instant::now();
    crate::run(crate::cargo().current_dir(root).args([
        "build",
        "--quiet",
        "-p",
        "btps",
        "-p",
        "btps-server-bin",
    ]))?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let dir = target_dir.join(format!("tmp/demo-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dns = runtime.block_on(TestServer::start());
    let mut demo = Demo {
        btps: target_dir.join("debug/btps"),
        server_bin: target_dir.join("debug/btps-server"),
        dir: dir.clone(),
        runtime,
        dns,
        servers: Vec::new(),
        published: std::collections::HashSet::new(),
        quiet: opts.quiet,
    };
    let result = demo.story();
    demo.stop_all();
    match &result {
        Ok(()) => {
            println!("\ndemo passed in {:.1} s", started.elapsed().as_secs_f64());
            if opts.keep {
                println!("kept {}", dir.display());
            } else {
                let _ = fs::remove_dir_all(&dir);
            }
        }
        Err(_) => {
            eprintln!("\ndemo FAILED; its files are in {}", dir.display());
            for server in &demo.servers {
                eprintln!(
                    "--- {} log ---\n{}",
                    server.name,
                    fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
        }
    }
    result
}

/// One company's server.
struct Company {
    name: &'static str,
    domain: &'static str,
    data: PathBuf,
    addr: String,
}

struct RunningServer {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

struct Demo {
    btps: PathBuf,
    server_bin: PathBuf,
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    dns: TestServer,
    servers: Vec<RunningServer>,
    /// Records already in the DNS server (`name`, `text`).
    published: std::collections::HashSet<(String, String)>,
    quiet: bool,
}

impl Demo {
    fn story(&mut self) -> Result<()> {
        let nameserver = self.dns.addr.to_string();

        self.step("Two companies set up their servers (btps-server init --domain …)");
        let vendor = self.company("vendor", VENDOR_DOMAIN)?;
        let buyer = self.company("buyer", BUYER_DOMAIN)?;

        self.step("Each user creates a key and publishes its DNS records (btps keygen)");
        let mut private_keys = Vec::new();
        for (company, identity, who) in
            [(&vendor, BILLING, "billing"), (&buyer, FINANCE, "finance")]
        {
            let keys = self.dir.join("keys").join(who);
            let out = self.btps_json(&[
                "keygen",
                "--identity",
                identity,
                "--selector",
                "btps1",
                "--host",
                &company.addr,
                "--out",
                path_str(&keys)?,
            ])?;
            self.publish_records(&out["records"])?;
            let public = out["publicKey"].as_str().context("keygen: publicKey")?;
            self.server(
                company,
                &[
                    "identity",
                    "add",
                    identity,
                    "--public-key",
                    public,
                    "--selector",
                    "btps1",
                ],
            )?;
            private_keys.push(PathBuf::from(
                out["privateKey"].as_str().context("keygen: privateKey")?,
            ));
        }

        self.step(
            "Each company gives its user a one-time onboarding token (btps-server agent token)",
        );
        let vendor_token = self.server(&vendor, &["agent", "token", BILLING])?;
        let buyer_token = self.server(&buyer, &["agent", "token", FINANCE])?;

        self.step(
            "Both servers start; each trusts the other's self-signed certificate for delivery",
        );
        self.start(&vendor, &buyer, &nameserver)?;
        self.start(&buyer, &vendor, &nameserver)?;

        self.step("Each user's device onboards with its token (btps agent login)");
        for (company, identity, token, profile) in [
            (&vendor, BILLING, vendor_token.trim(), "vendor"),
            (&buyer, FINANCE, buyer_token.trim(), "buyer"),
        ] {
            self.btps(&[
                "--profile",
                profile,
                "agent",
                "login",
                "--identity",
                identity,
                "--token",
                token,
                "--server",
                &company.addr,
                "--ca",
                path_str(&company.data.join("tls/cert.pem"))?,
                "--nameserver",
                &nameserver,
            ])?;
        }
        let finance_key = &private_keys[1];
        self.btps(&[
            "--profile",
            "buyer",
            "profile",
            "add-decrypt-key",
            "btps1",
            path_str(finance_key)?,
        ])?;

        self.step(
            "Vendor asks Buyer for trust; its server delivers the request (btps trust request)",
        );
        self.btps(&[
            "--profile",
            "vendor",
            "trust",
            "request",
            "--to",
            FINANCE,
            "--name",
            "Vendor Corp",
            "--email",
            "billing@vendorcorp.test",
            "--reason",
            "Monthly invoices",
            "--phone",
            "+1 555 0100",
        ])?;
        let request = self.wait_for_inbox("buyer", "TRUST_REQ")?;
        let request_id = request["artifact"]["document"]["id"]
            .as_str()
            .context("TRUST_REQ without a document id")?
            .to_owned();
        self.show(&["--profile", "buyer", "inbox"])?;

        self.step("Buyer accepts; its server delivers the response (btps trust respond)");
        self.btps(&[
            "--profile",
            "buyer",
            "trust",
            "respond",
            "--to",
            BILLING,
            "--decision",
            "accepted",
            "--request-id",
            &request_id,
        ])?;
        self.wait_for_delivery("buyer")?;
        self.show(&["--profile", "buyer", "trust", "list"])?;

        self.step("Vendor's agent sends an encrypted invoice through its server's outbox (btps send --encrypt)");
        let invoice = self.dir.join("invoice.json");
        let invoice_text = invoice_json("INV-2026-0042");
        fs::write(&invoice, &invoice_text)?;
        self.btps(&[
            "--profile",
            "vendor",
            "send",
            path_str(&invoice)?,
            "--to",
            FINANCE,
            "--encrypt",
        ])?;
        self.wait_for_delivery("vendor")?;
        let entry = self.wait_for_inbox("buyer", "BTPS_DOC")?;
        let artifact = &entry["artifact"];
        ensure!(
            artifact["encryption"].is_object(),
            "the invoice arrived unencrypted: {artifact}"
        );
        ensure!(
            artifact["delegation"]["signedBy"] == "server$vendorcorp.test",
            "the invoice is not delegated by the vendor's server: {artifact}"
        );
        let id = artifact["id"].as_str().context("artifact id")?.to_owned();

        self.step("Buyer's agent fetches and decrypts it (btps inbox show)");
        let shown = self.btps_json(&["--profile", "buyer", "inbox", "show", &id])?;
        let expected: Value = serde_json::from_str(&invoice_text)?;
        ensure!(
            shown["document"] == expected,
            "decrypted invoice differs: {}",
            shown["document"]
        );
        self.show(&["--profile", "buyer", "inbox", "show", &id])?;

        self.step("A SaaS platform sends on Vendor's behalf with a delegated device key (btps send --delegate)");
        let device = self.dir.join("keys/saas-device");
        let device_key = self.btps_json(&[
            "keygen",
            "--identity",
            "saas$vendorcorp.test",
            "--out",
            path_str(&device)?,
        ])?;
        let device_key = device_key["privateKey"]
            .as_str()
            .context("keygen: privateKey")?
            .to_owned();
        let saas_invoice = self.dir.join("invoice-saas.json");
        fs::write(&saas_invoice, invoice_json("INV-2026-0043"))?;
        let sent = self.btps_json(&[
            "send",
            path_str(&saas_invoice)?,
            "--from",
            BILLING,
            "--to",
            FINANCE,
            "--encrypt",
            "--device-key",
            &device_key,
            "--agent-id",
            SAAS_AGENT,
            "--delegator",
            "server$vendorcorp.test",
            "--delegator-key",
            path_str(&vendor.data.join("keys/server-private.pem"))?,
            "--ca",
            path_str(&buyer.data.join("tls/cert.pem"))?,
            "--nameserver",
            &nameserver,
        ])?;
        ensure!(sent["results"][0]["delivered"] == true, "SaaS send: {sent}");
        self.wait_for_agent("buyer", SAAS_AGENT)?;

        self.step(
            "Vendor revokes the device; its next command is refused (btps-server agent revoke)",
        );
        // The file store belongs to the running server: stop it for the admin commands.
        self.stop(vendor.name)?;
        let agents = self.server(&vendor, &["agent", "list", BILLING])?;
        let agent_id = agents
            .split_whitespace()
            .next()
            .context("no agent listed")?
            .to_owned();
        self.server(&vendor, &["agent", "revoke", BILLING, &agent_id])?;
        self.start(&vendor, &buyer, &nameserver)?;
        let out = self.btps_raw(&[
            "--profile",
            "vendor",
            "send",
            path_str(&invoice)?,
            "--to",
            FINANCE,
        ])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.print_output(&out);
        ensure!(
            !out.status.success() && stderr.contains("BTP_ERROR"),
            "a revoked device was not refused: {} {stderr}",
            out.status
        );
        Ok(())
    }

    fn step(&self, title: &str) {
        println!("\n==> {title}");
    }

    /// `btps-server init --domain` into `<dir>/<name>`, and its records into DNS.
    fn company(&mut self, name: &'static str, domain: &'static str) -> Result<Company> {
        let data = self.dir.join(name);
        let addr = format!("127.0.0.1:{}", free_port()?);
        let http = format!("127.0.0.1:{}", free_port()?);
        let company = Company {
            name,
            domain,
            data,
            addr,
        };
        self.server(
            &company,
            &[
                "init",
                "--domain",
                domain,
                "--listen",
                &company.addr,
                "--http-listen",
                &http,
            ],
        )?;
        let table: Value = serde_json::from_str(
            &fs::read_to_string(company.data.join("dns.json")).context("dns.json of init")?,
        )?;
        let mut records = Vec::new();
        for (name, texts) in table.as_object().context("dns.json is not an object")? {
            for text in texts.as_array().context("dns.json values are arrays")? {
                records.push(serde_json::json!({"name": name, "text": text}));
            }
        }
        self.publish_records(&Value::Array(records))?;
        Ok(company)
    }

    /// Adds `[{name, text}]` records to the DNS server (a record already there is skipped:
    /// `btps keygen` prints the domain's host record too).
    fn publish_records(&mut self, records: &Value) -> Result<()> {
        for record in records.as_array().context("records is not an array")? {
            let name = record["name"].as_str().context("record name")?;
            let text = record["text"].as_str().context("record text")?;
            let name = name.trim_end_matches('.');
            if !self
                .published
                .insert((name.to_ascii_lowercase(), text.to_owned()))
            {
                continue;
            }
            if !self.quiet {
                println!("   DNS  {name}  TXT  \"{text}\"");
            }
            self.runtime.block_on(self.dns.add_txt(name, 30, text));
        }
        Ok(())
    }

    /// A `btps-server --data-dir <company>` subcommand that must succeed; its stdout.
    fn server(&self, company: &Company, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.server_bin);
        cmd.arg("--data-dir").arg(&company.data).args(args);
        let out = self.output(
            cmd,
            &format!("btps-server ({}) {}", company.name, args.join(" ")),
        )?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Starts `company`'s server, trusting `peer`'s certificate for deliveries.
    fn start(&mut self, company: &Company, peer: &Company, nameserver: &str) -> Result<()> {
        let log = self.dir.join(format!("{}.log", company.name));
        let peer_cert = peer.data.join("tls/cert.pem");
        let mut child = Command::new(&self.server_bin)
            .arg("--data-dir")
            .arg(&company.data)
            .args(["--nameserver", nameserver, "serve"])
            .env(
                "BTPS_DELIVERY__CA_FILES",
                format!("[{:?}]", path_str(&peer_cert)?),
            )
            .env("BTPS_LOG__LEVEL", "info")
            // The demo polls mailboxes from one address; the default 10 per minute per IP
            // is meant for the internet, not for a loop on loopback.
            .env("BTPS_RATE_LIMITS__PER_IP_PER_MINUTE", "6000")
            .env("BTPS_RATE_LIMITS__PER_SENDER_PER_MINUTE", "6000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .context("start btps-server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("btps-server: serving BTPS on") {
                    let _ = tx.send(line);
                }
            }
        });
        self.servers.push(RunningServer {
            name: company.name,
            child,
            log,
        });
        let line = rx
            .recv_timeout(WAIT)
            .with_context(|| format!("{}'s server did not start", company.name))?;
        println!("   {} ({}): {line}", company.name, company.domain);
        Ok(())
    }

    /// Stops one server (SIGTERM, then waits).
    fn stop(&mut self, name: &str) -> Result<()> {
        let Some(pos) = self.servers.iter().position(|s| s.name == name) else {
            bail!("{name}'s server is not running");
        };
        let mut server = self.servers.remove(pos);
        terminate(&mut server.child);
        Ok(())
    }

    fn stop_all(&mut self) {
        for mut server in self.servers.drain(..) {
            terminate(&mut server.child);
        }
    }

    /// Runs `btps` with these arguments; must succeed. Prints the command and its output.
    fn btps(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.btps);
        cmd.args(args)
            .env("BTPS_CONFIG_DIR", self.dir.join("config"));
        let out = self.output(cmd, &format!("btps {}", args.join(" ")))?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Like [`Self::btps`], but only printing the output (a step that shows a listing).
    fn show(&self, args: &[&str]) -> Result<()> {
        self.btps(args).map(drop)
    }

    /// `btps --json …`, parsed.
    fn btps_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        println!("$ btps {}", all.join(" "));
        let mut cmd = Command::new(&self.btps);
        cmd.args(&all)
            .env("BTPS_CONFIG_DIR", self.dir.join("config"));
        let out = cmd.output().context("run btps")?;
        if !out.status.success() {
            self.print_output(&out);
            bail!("btps {} failed: {}", all.join(" "), out.status);
        }
        if !self.quiet {
            self.print_output(&out);
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("btps {}: output is not JSON", all.join(" ")))
    }

    /// Runs `btps` and returns its output whatever the exit status.
    fn btps_raw(&self, args: &[&str]) -> Result<Output> {
        println!("$ btps {}", args.join(" "));
        Command::new(&self.btps)
            .args(args)
            .env("BTPS_CONFIG_DIR", self.dir.join("config"))
            .output()
            .context("run btps")
    }

    fn output(&self, mut cmd: Command, shown: &str) -> Result<Output> {
        println!("$ {shown}");
        let out = cmd.output().with_context(|| format!("run {shown}"))?;
        if !out.status.success() {
            self.print_output(&out);
            bail!("{shown} failed: {}", out.status);
        }
        if !self.quiet {
            self.print_output(&out);
        }
        Ok(out)
    }

    fn print_output(&self, out: &Output) {
        for text in [&out.stdout, &out.stderr] {
            for line in String::from_utf8_lossy(text).lines() {
                println!("   {line}");
            }
        }
    }

    /// Polls `profile`'s inbox until an artifact of `kind` is in it; that entry.
    fn wait_for_inbox(&self, profile: &str, kind: &str) -> Result<Value> {
        self.poll(&format!("a {kind} in {profile}'s inbox"), || {
            let page = self.quiet_json(&["--profile", profile, "inbox"])?;
            Ok(page["results"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["artifact"]["type"] == kind)
                .cloned())
        })
    }

    /// Polls `profile`'s inbox until an artifact delegated to `agent_id` is in it.
    fn wait_for_agent(&self, profile: &str, agent_id: &str) -> Result<Value> {
        self.poll(
            &format!("an artifact of {agent_id} in {profile}'s inbox"),
            || {
                let page = self.quiet_json(&["--profile", profile, "inbox"])?;
                Ok(page["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| e["artifact"]["delegation"]["agentId"] == agent_id)
                    .cloned())
            },
        )
    }

    /// Polls `profile`'s outbox until nothing is waiting for delivery.
    fn wait_for_delivery(&self, profile: &str) -> Result<()> {
        self.poll(&format!("{profile}'s outbox to drain"), || {
            let page = self.quiet_json(&["--profile", profile, "outbox"])?;
            let results = page["results"].as_array().cloned().unwrap_or_default();
            if let Some(failed) = results
                .iter()
                .find(|e| e["meta"]["delivery"]["status"] == "failed")
            {
                bail!("delivery failed: {}", failed["meta"]["delivery"]);
            }
            let pending = results
                .iter()
                .any(|e| e["meta"]["delivery"]["status"] == "pending");
            Ok((!pending).then_some(()))
        })?;
        println!("   delivered");
        Ok(())
    }

    fn quiet_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = Command::new(&self.btps)
            .args(&all)
            .env("BTPS_CONFIG_DIR", self.dir.join("config"))
            .output()
            .context("run btps")?;
        if !out.status.success() {
            self.print_output(&out);
            bail!("btps {} failed: {}", all.join(" "), out.status);
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn poll<T>(&self, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f()? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// A valid `BTPS_DOC` invoice (§3.7).
fn invoice_json(id: &str) -> String {
    serde_json::json!({
        "title": format!("Invoice {id}"),
        "id": id,
        "issuedAt": "2026-11-01T09:00:00.000Z",
        "status": "unpaid",
        "dueAt": "2026-12-01T00:00:00.000Z",
        "totalAmount": {"value": 1250.5, "currency": "EUR"},
        "lineItems": {
            "columns": ["Description", "Quantity", "Amount"],
            "rows": [
                {"Description": "Consulting, October", "Quantity": 10, "Amount": 1000},
                {"Description": "Travel", "Quantity": 1, "Amount": 250.5}
            ]
        },
        "issuer": {"name": "Vendor Corp", "email": "billing@vendorcorp.test"}
    })
    .to_string()
}
