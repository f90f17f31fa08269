//! Device delegation records (PROTOCOL.md §6.6) over the real server.

use std::time::Duration;

use btps_crypto::KeyPair;
use btps_dns::{DeviceCheck, DnsError, RevokedReason};
use btps_types::ErrorCode;

use crate::common::{cache, id, key_txt, no_refresh, vector_key};
use btps_test_support::dns_server::{Mode, TestServer};

const AGENT: &str = "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60";
const OTHER: &str = "btps_ag_00000000-0000-4000-8000-000000000001";
const LIST: &str = "_btps.delegation.alice.example.test";

fn device_name(agent: &str) -> String {
    format!("{agent}._btps.device.alice.example.test")
}

#[tokio::test]
async fn listed_device_with_matching_key_is_authorized_until_removed() {
    let server = TestServer::start().await;
    let device = vector_key("agent-device");
    server
        .add_txt(LIST, 60, &format!("v=1.0.0;d={OTHER},{AGENT}"))
        .await;
    server
        .add_txt(&device_name(AGENT), 60, &key_txt(&device))
        .await;
    let (dns, clock) = cache(server.resolver(), no_refresh());
    let alice = id("alice$example.test");

    assert_eq!(
        dns.check_device(&alice, AGENT, &device).await.unwrap(),
        DeviceCheck::Authorized
    );
    // Revocation: the device disappears from the list and its record is removed.
    server
        .replace_txt(LIST, 60, &format!("v=1.0.0;d={OTHER}"))
        .await;
    server.remove_txt(&device_name(AGENT)).await;
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        dns.check_device(&alice, AGENT, &device).await.unwrap(),
        DeviceCheck::Authorized,
        "within the TTL the cached list still holds"
    );
    clock.advance(Duration::from_secs(31));
    let e = dns.check_device(&alice, AGENT, &device).await.unwrap_err();
    assert_eq!(
        e,
        DnsError::DeviceRevoked {
            identity: "alice$example.test".into(),
            device_id: AGENT.into(),
            reason: RevokedReason::NotListed
        }
    );
    assert_eq!(e.error_code(), ErrorCode::DelegationRevoked);
}

#[tokio::test]
async fn key_mismatch_missing_key_and_unusable_list_are_revoked() {
    let server = TestServer::start().await;
    let device = vector_key("agent-device");
    let other_key = KeyPair::generate_ed25519().unwrap();
    server
        .add_txt(LIST, 60, &format!("v=1.0.0;d={AGENT},{OTHER}"))
        .await;
    // AGENT's record holds another key; OTHER has no record.
    server
        .add_txt(&device_name(AGENT), 60, &key_txt(other_key.public_key()))
        .await;
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    let alice = id("alice$example.test");
    let reason = |e: DnsError| match e {
        DnsError::DeviceRevoked { reason, .. } => reason,
        other => panic!("{other}"),
    };
    assert_eq!(
        reason(dns.check_device(&alice, AGENT, &device).await.unwrap_err()),
        RevokedReason::KeyMismatch
    );
    assert_eq!(
        reason(dns.check_device(&alice, OTHER, &device).await.unwrap_err()),
        RevokedReason::NoDeviceKey
    );
    // An Ed25519 device key matching the delegation passes.
    assert_eq!(
        dns.check_device(&alice, AGENT, other_key.public_key())
            .await
            .unwrap(),
        DeviceCheck::Authorized
    );

    // A list record without `d=` authorises nobody.
    server
        .add_txt("_btps.delegation.bob.example.test", 60, "v=1.0.0;devices=x")
        .await;
    let e = dns
        .check_device(&id("bob$example.test"), AGENT, &device)
        .await
        .unwrap_err();
    assert_eq!(reason(e), RevokedReason::UnusableList);
}

#[tokio::test]
async fn no_list_means_the_extension_is_not_used() {
    let server = TestServer::start().await;
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    let device = vector_key("agent-device");
    assert_eq!(
        dns.check_device(&id("carol$example.test"), AGENT, &device)
            .await
            .unwrap(),
        DeviceCheck::NotPublished
    );
    // NODATA (the name exists with other types) is the same.
    server.add_a("_btps.delegation.dave.example.test", 60).await;
    assert_eq!(
        dns.check_device(&id("dave$example.test"), AGENT, &device)
            .await
            .unwrap(),
        DeviceCheck::NotPublished
    );
}

#[tokio::test]
async fn dns_failure_is_unavailable_never_a_pass() {
    let server = TestServer::start().await;
    let device = vector_key("agent-device");
    server
        .add_txt(LIST, 60, &format!("v=1.0.0;d={AGENT}"))
        .await;
    server
        .add_txt(&device_name(AGENT), 60, &key_txt(&device))
        .await;
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    let alice = id("alice$example.test");
    server.set_mode(Mode::ServFail);
    let e = dns.check_device(&alice, AGENT, &device).await.unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);

    // List cached, device lookup fails temporarily: still unavailable.
    let (dns, _clock) = cache(server.resolver(), no_refresh());
    server.set_mode(Mode::Normal);
    assert!(dns.delegation_list(&alice).await.unwrap().is_some());
    server.set_mode(Mode::Refused);
    let e = dns.check_device(&alice, AGENT, &device).await.unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::DnsUnavailable);
}
