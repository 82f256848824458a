//! The TLS harness against real servers: each deployment started TLS-only answers a client
//! that trusts the test's CA, and refuses plain connections and clients that trust another CA.

use std::time::Duration;

use herald_testkit::{Options, RedisCluster, RedisSentinel, RedisServer, Tls};

fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut c = client.get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    redis::cmd("PING").query(&mut c)
}

/// `client` (for `url`, `rediss://`) answers; the same address without TLS, or with TLS that
/// trusts another CA, does not.
fn only_tls_with_its_ca(url: &str, client: &redis::Client) {
    assert!(url.starts_with("rediss://"), "{url}");
    assert_eq!(ping(client).unwrap(), "PONG");

    let plain = url.replacen("rediss://", "redis://", 1);
    let refused = ping(&redis::Client::open(plain).unwrap());
    assert!(refused.is_err(), "a plain connection to {url}");

    let other = tempfile::tempdir().unwrap();
    let stranger = Tls::generate(other.path());
    let untrusted = redis::Client::build_with_tls(url, stranger.certificates()).unwrap();
    let err = ping(&untrusted).unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn a_tls_server_answers_only_clients_that_trust_its_ca() {
    let s = RedisServer::start_with(&Options::default().password("tlspw").tls());
    assert!(
        s.url().starts_with("rediss://:tlspw@127.0.0.1:"),
        "{}",
        s.url()
    );
    only_tls_with_its_ca(&s.url(), &s.client());
    assert!(s.tls().unwrap().ca_file().exists());
}

#[test]
fn a_tls_cluster_forms_over_its_tls_bus() {
    let c = RedisCluster::start_with(&Options::default().tls());
    assert_eq!(c.masters().len(), 3);
    for port in c.ports() {
        only_tls_with_its_ca(&c.node_url(port), &c.node_client(port));
    }
}

#[test]
fn tls_sentinels_monitor_a_tls_primary_and_replica() {
    let s = RedisSentinel::start_with("herald-tls", &Options::default().tls(), Some("sentpw"));
    let primary = s.primary_port();
    only_tls_with_its_ca(&s.data_url(primary), &s.data_client(primary));
    assert!(
        s.sentinel_urls()
            .iter()
            .all(|u| u.starts_with("rediss://:sentpw@"))
    );
}
