//! The btps-server binary: the embedded default, admin subcommands, and crash safety.

mod embedded;
