//! What the tool prints and how it ends: exit codes ([`Exit`]), errors ([`CliError`]),
//! standard output in human or JSON form ([`Output`]), and a `JSON.stringify(v, null, 2)`
//! pretty-printer for the order-preserving JSON value ([`pretty`]).
//!
//! Conventions, the same for every command:
//!
//! * results go to standard output: text by default, one JSON document with `--json`;
//! * an error is one line `btps: <message>` on standard error (with ` (BTP_ERROR_…)` when a
//!   protocol error code applies); with `--json` standard output also gets
//!   `{"error": {"code", "status", "temporary", "message"}}` unless the command already
//!   printed a report that carries it;
//! * the exit code says what kind of failure it was ([`Exit`]).

use std::fmt;
use std::io::{self, Write};

use btps_client::ClientError;
use btps_dns::DnsError;
use btps_types::ErrorCode;
use btps_types::json::{Object, Value};

/// How the process ends. The numbers are part of the interface (documented in
/// `btps --help` and the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: success.
    Ok,
    /// 1: not found, unusable, or verification failed: a permanent answer.
    Failed,
    /// 2: temporary failure (DNS or server unavailable, timeout): retry later.
    Temporary,
    /// 3: the server refused the request with a permanent error reply (network commands).
    Refused,
    /// 64: bad arguments or unreadable input (EX_USAGE).
    Usage,
    /// 74: an output file could not be written (EX_IOERR).
    CantWrite,
}

impl Exit {
    /// The process exit status.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Temporary => 2,
            Self::Refused => 3,
            Self::Usage => 64,
            Self::CantWrite => 74,
        }
    }

    /// The exit for a protocol error code: retryable codes (PROTOCOL.md §2.6: 408, 429,
    /// 500, 503) are temporary, every other one a permanent failure.
    pub(crate) const fn for_code(code: ErrorCode) -> Self {
        if code.is_retryable() {
            Self::Temporary
        } else {
            Self::Failed
        }
    }

    /// The exit for an error reply of a server: retryable codes are temporary, the others
    /// a refusal.
    pub(crate) const fn for_reply(code: ErrorCode) -> Self {
        if code.is_retryable() {
            Self::Temporary
        } else {
            Self::Refused
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// A failure of a command: how to exit, what to say, and the protocol error code if one
/// applies.
#[derive(Clone, Debug)]
pub(crate) struct CliError {
    /// The exit code.
    pub(crate) exit: Exit,
    /// One line, without the `btps: ` prefix.
    pub(crate) message: String,
    /// The BTP error code, when the failure is a protocol verdict.
    pub(crate) code: Option<ErrorCode>,
    /// Whether the command already printed a JSON report holding this error.
    pub(crate) reported: bool,
}

impl CliError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: one_line(message.into()),
            code: None,
            reported: false,
        }
    }

    /// Bad arguments or unreadable input (64).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// A permanent failure (1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }

    /// An output file that could not be written (74).
    pub(crate) fn cant_write(message: impl Into<String>) -> Self {
        Self::new(Exit::CantWrite, message)
    }

    /// A protocol verdict: exit 1, or 2 for retryable codes.
    pub(crate) fn protocol(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            ..Self::new(Exit::for_code(code), message)
        }
    }

    /// Marks the error as already printed inside a JSON report.
    pub(crate) fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// Whether retrying later may help.
    pub(crate) fn is_temporary(&self) -> bool {
        self.exit == Exit::Temporary
    }

    /// `{"error": {"code", "status", "temporary", "message"}}`, the shape `btps dns resolve`
    /// has always printed.
    pub(crate) fn to_json(&self) -> Value {
        Object::new().with("error", self.json_member()).into()
    }

    /// The inner `{"code", "status", "temporary", "message"}` object.
    pub(crate) fn json_member(&self) -> Object {
        Object::new()
            .with("code", self.code.map(ErrorCode::as_str))
            .with("status", self.code.map(|c| u32::from(c.status())))
            .with("temporary", self.is_temporary())
            .with("message", self.message.as_str())
    }
}

impl From<&DnsError> for CliError {
    /// Temporary DNS failures exit 2, resolver set-up problems (bad table, bad nameserver)
    /// 64, every other DNS answer 1.
    fn from(e: &DnsError) -> Self {
        let exit = match e {
            DnsError::Config(_) => Exit::Usage,
            e if e.is_temporary() => Exit::Temporary,
            _ => Exit::Failed,
        };
        Self {
            code: Some(e.error_code()).filter(|_| exit != Exit::Usage),
            ..Self::new(exit, e.to_string())
        }
    }
}

impl From<&ClientError> for CliError {
    /// An error reply of the server exits 3 (2 when its code is retryable) with the reply's
    /// BTP error code; connection failures and timeouts exit 2; DNS errors as DNS errors do;
    /// an unusable client setting (CA file, identity) 64; everything else (certificate
    /// refused, bad signature, malformed reply) 1.
    fn from(e: &ClientError) -> Self {
        let code = e.error_code();
        let exit = match e {
            ClientError::Dns(dns) => return Self::from(dns),
            ClientError::Rejected { .. } => Exit::for_reply(code),
            ClientError::Config(_) | ClientError::Identity(_) => Exit::Usage,
            e if e.is_retryable() => Exit::Temporary,
            _ => Exit::Failed,
        };
        // The code is appended once, by `Display`.
        let message = match e {
            ClientError::Rejected {
                code: status,
                message,
                ..
            } => format!("rejected by the server: {status} {message}"),
            e => e.to_string(),
        };
        Self {
            code: Some(code).filter(|_| exit != Exit::Usage),
            ..Self::new(exit, message)
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        Self::from(&e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = self.code {
            write!(f, " ({code})")?;
        }
        Ok(())
    }
}

/// Joins the lines of a message: errors are one line on standard error.
fn one_line(message: String) -> String {
    if message.contains('\n') {
        message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        message
    }
}

/// Where results go: standard output, as text or as JSON (`--json`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    /// Text output unless `json`.
    pub(crate) const fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub(crate) const fn is_json(self) -> bool {
        self.json
    }

    /// Writes `text` to standard output as is.
    ///
    /// A closed pipe (`btps … | head`) is not an error: the reader has what it wanted.
    pub(crate) fn write(self, text: &str) -> Result<(), CliError> {
        let mut stdout = io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CliError::cant_write(format!(
                "writing standard output: {e}"
            ))),
        }
    }

    /// Prints the human form (text mode) or the JSON form (`--json`), each ending in a
    /// newline.
    pub(crate) fn emit(
        self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> Result<(), CliError> {
        if self.json {
            self.write(&(pretty(&json()) + "\n"))
        } else {
            let mut text = human();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            self.write(&text)
        }
    }

    /// Reports a failure: the one-line message on standard error, and with `--json` the
    /// error object on standard output unless a report already carried it.
    pub(crate) fn error(self, e: &CliError) {
        if self.json && !e.reported {
            let _ = self.write(&(pretty(&e.to_json()) + "\n"));
        }
        let _ = writeln!(io::stderr().lock(), "btps: {e}");
    }
}

/// A plain text table: a header row and left-aligned columns separated by two spaces, the
/// last column unpadded.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether only the header is there.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// The text, one line per row.
    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// `JSON.stringify(value, null, 2)` (PROTOCOL.md §4.1 with two-space indentation).
pub(crate) fn pretty(value: &Value) -> String {
    btps_types::json::to_js_string_pretty(value)
}

#[cfg(test)]
mod tests {
    use btps_types::json::to_js_string;

    use super::*;

    #[test]
    fn exits_and_errors() {
        assert_eq!(Exit::Usage.code(), 64);
        assert_eq!(Exit::for_code(ErrorCode::DnsUnavailable), Exit::Temporary);
        assert_eq!(Exit::for_code(ErrorCode::SigVerification), Exit::Failed);
        assert_eq!(Exit::for_reply(ErrorCode::TrustBlocked), Exit::Refused);
        assert_eq!(Exit::for_reply(ErrorCode::ServerBusy), Exit::Temporary);
        assert_eq!(Exit::Refused.code(), 3);

        let e = CliError::protocol(ErrorCode::SigMismatch, "bad\nkey");
        assert_eq!(e.to_string(), "bad; key (BTP_ERROR_SIG_MISMATCH)");
        assert_eq!(
            to_js_string(&e.to_json()),
            r#"{"error":{"code":"BTP_ERROR_SIG_MISMATCH","status":401,"temporary":false,"message":"bad; key"}}"#
        );
        let e = CliError::usage("no");
        assert_eq!(
            to_js_string(&e.to_json()),
            r#"{"error":{"code":null,"status":null,"temporary":false,"message":"no"}}"#
        );
        let dns = DnsError::Config("bad table".into());
        assert_eq!(CliError::from(&dns).exit, Exit::Usage);
    }

    #[test]
    fn client_errors_map_to_exits() {
        let refused = ClientError::Rejected {
            code: 403,
            error_code: Some(ErrorCode::TrustNonExistent),
            message: "no trust".into(),
        };
        let e = CliError::from(&refused);
        assert_eq!(
            (e.exit, e.code),
            (Exit::Refused, Some(ErrorCode::TrustNonExistent))
        );
        assert_eq!(
            e.to_string(),
            "rejected by the server: 403 no trust (BTP_ERROR_TRUST_NON_EXISTENT)"
        );
        let busy = ClientError::Rejected {
            code: 503,
            error_code: Some(ErrorCode::ServerBusy),
            message: "busy".into(),
        };
        assert_eq!(CliError::from(&busy).exit, Exit::Temporary);
        let down = ClientError::Connect {
            addr: "127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        let e = CliError::from(&down);
        assert_eq!(
            (e.exit, e.code),
            (Exit::Temporary, Some(ErrorCode::ConnectionEnded))
        );
        let cert = ClientError::Certificate {
            addr: "h:1".into(),
            reason: "unknown issuer".into(),
        };
        assert_eq!(CliError::from(&cert).exit, Exit::Failed);
        let config = ClientError::Config("no CA".into());
        assert_eq!(CliError::from(&config).exit, Exit::Usage);
        assert_eq!(CliError::from(&config).code, None);
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["ID", "TYPE", "FROM"]);
        assert!(t.is_empty());
        t.row(vec!["a".into(), "BTPS_DOC".into(), "x$y.z".into()]);
        t.row(vec!["long-id".into(), "".into(), "".into()]);
        assert_eq!(
            t.render(),
            "ID       TYPE      FROM\na        BTPS_DOC  x$y.z\nlong-id\n"
        );
    }
}
