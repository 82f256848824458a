//! The TLS harness against a real server: a TLS-only `redis-server` answers a client that
//! trusts the test's CA, and refuses plain connections and clients that trust another CA.

use std::time::Duration;

use herald_testkit::{Options, RedisServer, Tls};

fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut c = client.get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    redis::cmd("PING").query(&mut c)
}

#[test]
fn a_tls_server_answers_only_clients_that_trust_its_ca() {
    let s = RedisServer::start_with(&Options::default().password("tlspw").tls());
    assert!(
        s.url().starts_with("rediss://:tlspw@127.0.0.1:"),
        "{}",
        s.url()
    );
    assert_eq!(ping(&s.client()).unwrap(), "PONG");

    let plain = format!("redis://:tlspw@127.0.0.1:{}", s.port);
    let refused = ping(&redis::Client::open(plain).unwrap());
    assert!(refused.is_err(), "a plain connection to the TLS port");

    let other = tempfile::tempdir().unwrap();
    let stranger = Tls::generate(other.path());
    let untrusted = redis::Client::build_with_tls(s.url(), stranger.certificates()).unwrap();
    let err = ping(&untrusted).unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(s.tls().unwrap().ca_file().exists());
}
