//! btps-server integration tests: a real server over TLS with in-process DNS.
