//! Integration tests of btps-dns: a real authoritative DNS server (hickory-server) runs in
//! process on 127.0.0.1 with random ports; time in the cache is a stepped `ManualClock`.

mod cache;
mod common;
mod delegation;
mod resolve;

mod vectors;
