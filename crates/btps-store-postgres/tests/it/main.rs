//! Integration tests of btps-store-postgres against a real PostgreSQL server (see
//! `support`): the btps-trust conformance suite, migrations, and several stores (standing in
//! for several server processes) sharing one database.

mod conformance;
mod shared;
mod support;
