//! The sentinel harness against real servers: start-up and a failover, with and without
//! passwords.

use std::time::{Duration, Instant};

use herald_testkit::RedisSentinel;
use redis::Connection;

fn conn(url: &str) -> Connection {
    let c = redis::Client::open(url).unwrap();
    let c = c
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Writes a key on the primary (replicated before it returns), kills the primary, waits for
/// the failover, and checks the promoted replica has the key and takes writes.
fn fail_over(s: &RedisSentinel) {
    let old = s.primary_port();
    let replica = s.replica_port();
    assert_ne!(old, replica);
    let mut p = conn(&s.data_url(old));
    redis::cmd("SET")
        .arg("k")
        .arg("kept")
        .query::<()>(&mut p)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut p).unwrap();
    assert_eq!(acked, 1, "the write reached the replica");
    let t = Instant::now();
    assert_eq!(s.kill_primary(), old);
    assert_eq!(s.wait_failover(old), replica);
    eprintln!("sentinel failover in {:?}", t.elapsed());
    assert_eq!(s.primary_port(), replica);
    let mut n = conn(&s.data_url(replica));
    let v: String = redis::cmd("GET").arg("k").query(&mut n).unwrap();
    assert_eq!(v, "kept");
    redis::cmd("SET")
        .arg("k")
        .arg("new")
        .query::<()>(&mut n)
        .unwrap();
}

#[test]
fn sentinels_promote_the_replica() {
    let t = Instant::now();
    let s = RedisSentinel::start("herald-test");
    eprintln!("sentinels up in {:?}", t.elapsed());
    assert_eq!(s.master_name(), "herald-test");
    assert_eq!(s.sentinel_urls().len(), 3);
    assert_eq!(s.sentinel_env().split(',').count(), 3);
    fail_over(&s);
}

#[test]
fn passwords_on_both_tiers() {
    let s = RedisSentinel::start_with_password("herald-pw", "datapw", "sentpw");
    let bare = format!("redis://127.0.0.1:{}", s.primary_port());
    let denied = redis::cmd("PING").query::<String>(&mut conn(&bare));
    assert!(denied.is_err(), "the primary wants its password");
    let url = &s.sentinel_urls()[0];
    assert!(url.starts_with("redis://:sentpw@"), "{url}");
    let bare = format!("redis://127.0.0.1:{}", s.sentinel_ports()[0]);
    let denied = redis::cmd("PING").query::<String>(&mut conn(&bare));
    assert!(denied.is_err(), "a sentinel wants its password");
    fail_over(&s);
}

#[test]
fn is_send_and_sync_for_spawn_blocking() {
    fn check<T: Send + Sync + 'static>() {}
    check::<RedisSentinel>();
}
