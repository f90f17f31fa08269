//! `btps`: the BTPS command-line tool. Thin: parses the arguments, runs the command, prints
//! failures as one line and maps them to exit codes (listed in `btps --help` and the
//! README):
//!
//! 0 success; 1 not found, unusable or verification failed; 2 temporary failure (retry);
//! 3 refused by the server; 64 bad arguments or unreadable input; 74 an output file could
//! not be written.

mod cli;
mod commands;
mod context;
mod fsutil;
mod keys;
mod net;
mod output;
mod profile;
mod progress;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::context::Context;
use crate::output::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let exit = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return exit.into();
        }
    };
    let ctx = Context::new(&cli);
    match commands::run(&ctx, cli.command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            ctx.out.error(&e);
            e.exit.into()
        }
    }
}
