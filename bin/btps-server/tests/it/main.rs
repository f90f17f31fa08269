//! The btps-server binary: the embedded default, admin subcommands, crash safety, signals and
//! the observability endpoints, each against the real binary as a child process.

mod admin;
mod crash;
mod embedded;
mod observability;
mod signals;
mod support;
