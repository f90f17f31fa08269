//! One module per command group; each function takes the [`Context`] and its parsed
//! arguments, prints its result through `ctx.out`, and returns how to exit.
//!
//! The network commands (`agent`, `send`, `trust`, `inbox`, `outbox`, `sentbox`, `trash`,
//! `draft`) work through btps-client ([`crate::net`]): they read the server, CA, identity,
//! key and agent state through [`Context::profile`] (flags first), show a
//! [`crate::progress::Progress`] bar when they work through many files, and map error
//! replies with [`crate::output::Exit::for_reply`] (exit 3, or 2 for retryable codes).

mod agent;
mod artifact;
mod dns;
mod key;
mod keygen;
mod mailbox;
mod profile;
mod send;
mod trust;

use crate::cli::{ArtifactCommand, Command, DnsCommand};
use crate::context::Context;
use crate::output::{CliError, Exit};

/// Runs `command`.
///
/// # Errors
///
/// The command's failure; `main` prints it and exits with its code.
pub(crate) fn run(ctx: &Context, command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Dns(DnsCommand::Resolve(args)) => dns::resolve(ctx, &args),
        Command::Dns(DnsCommand::Records(args)) => dns::records(ctx, &args),
        Command::Keygen(args) => keygen::run(ctx, &args),
        Command::Key(command) => key::run(ctx, command),
        Command::Artifact(ArtifactCommand::Verify(args)) => artifact::verify(ctx, &args),
        Command::Artifact(ArtifactCommand::Decrypt(args)) => artifact::decrypt(ctx, &args),
        Command::Profile(command) => profile::run(ctx, command),
        Command::Agent(command) => agent::run(ctx, command),
        Command::Send(args) => send::run(ctx, &args),
        Command::Trust(command) => trust::run(ctx, command),
        Command::Inbox(args) => mailbox::inbox(ctx, args),
        Command::Outbox(args) => mailbox::outbox(ctx, args),
        Command::Sentbox(args) => mailbox::sentbox(ctx, args),
        Command::Trash(args) => mailbox::trash(ctx, args),
        Command::Draft(command) => mailbox::draft(ctx, command),
    }
}
