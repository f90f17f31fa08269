//! btps-client integration tests: scripted servers over real TLS (rcgen certificates), a
//! real authoritative DNS server, and the interoperability vectors.

mod delegation;
mod dns;
mod support;
mod tls;
mod transport;
mod transporter;
mod vectors;

/// The public futures can be spawned on a multi-threaded runtime.
#[test]
fn public_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn check(
        client: &btps_client::Client,
        agent: &btps_client::Agent,
        transporter: &btps_client::Transporter,
        sender: &btps_client::DeviceSender,
        addr: &btps_client::ServerAddr,
        artifact: &btps_types::json::Object,
        identity: &btps_types::Identity,
    ) {
        let q = btps_client::Query::new();
        send(&client.request(addr, artifact, btps_client::RequestOptions::default()));
        send(&client.send(artifact));
        send(&client.lookup_identity(identity, None));
        send(&agent.ping());
        send(&agent.inbox(&q));
        send(&agent.refresh());
        send(&agent.send(identity, artifact.clone(), true));
        send(&agent.decrypt(artifact, &[]));
        send(&transporter.send(artifact));
        send(&sender.send(artifact));
        send(&btps_client::Agent::onboard(
            client.clone(),
            addr.clone(),
            identity.clone(),
            "token",
            None,
        ));
    }
    let _: fn(_, _, _, _, _, _, _) = check;
    fn sync<T: Send + Sync>() {}
    sync::<btps_client::Client>();
    sync::<btps_client::Agent>();
    sync::<btps_client::Transporter>();
    sync::<btps_client::DeviceSender>();
}
