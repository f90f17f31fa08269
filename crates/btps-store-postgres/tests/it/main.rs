//! Integration tests of btps-store-postgres against a real PostgreSQL server (see
//! `support`): the btps-trust conformance suite, group commit, migrations, several stores
//! (standing in for several server processes) sharing one database, and SIGKILLs in the
//! middle of writes.

mod conformance;
mod crash;
mod group;
mod shared;
mod support;
