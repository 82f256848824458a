//! The cluster harness against real servers: creation, routing, failover, slot migration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_testkit::RedisCluster;
use redis::{Connection, ErrorKind, ServerErrorKind, Value};

fn conn(port: u16) -> Connection {
    conn_url(&format!("redis://127.0.0.1:{port}"))
}

fn conn_url(url: &str) -> Connection {
    let c = redis::Client::open(url).unwrap();
    let c = c
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// `args` sent as `redis-cli -c` would: from `port`, following `MOVED` and `ASK`. Returns the
/// port that answered and its reply.
fn routed(mut port: u16, args: &[&str]) -> (u16, Value) {
    let mut asking = false;
    for _ in 0..10 {
        let mut c = conn(port);
        if asking {
            redis::cmd("ASKING").query::<()>(&mut c).unwrap();
        }
        let mut cmd = redis::cmd(args[0]);
        cmd.arg(&args[1..]);
        match cmd.query::<Value>(&mut c) {
            Ok(v) => return (port, v),
            Err(e) => {
                let (addr, _) = e.redirect_node().unwrap_or_else(|| panic!("{args:?}: {e}"));
                port = addr.rsplit(':').next().unwrap().parse().unwrap();
                asking = e.kind() == ErrorKind::Server(ServerErrorKind::Ask);
            }
        }
    }
    panic!("{args:?}: too many redirects");
}

fn get(port: u16, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut conn(port)).unwrap()
}

#[test]
fn starts_and_routes_keys_to_master_of_key() {
    let t = Instant::now();
    let c = RedisCluster::start();
    eprintln!("cluster up in {:?}", t.elapsed());
    assert_eq!(c.masters().len(), 3);
    assert_eq!(c.seed_urls().len(), 6);
    assert_eq!(c.seed_env().split(',').count(), 6);
    for m in c.masters() {
        assert!(!c.masters().contains(&c.replica_of(m)));
    }
    for key in c.keys_on_distinct_masters("herald:q:", 3) {
        let (port, _) = routed(c.ports()[0], &["SET", &key, "v"]);
        assert_eq!(port, c.master_of_key(&key), "{key}");
        assert_eq!(get(port, &key).as_deref(), Some("v"));
    }
    let keys = c.keys_on_distinct_masters("q", 3);
    let mut owners: Vec<u16> = keys.iter().map(|k| c.master_of_key(k)).collect();
    owners.sort();
    assert_eq!(owners, c.masters());
    assert_eq!(c.cpu_seconds().len(), 6);
    assert_eq!(c.node_pids().len(), 6);
}

#[test]
fn kill_master_then_the_replica_serves_the_key() {
    let c = RedisCluster::start();
    let key = "herald:failover";
    let old = c.master_of_key(key);
    let replica = c.replica_of(old);
    let mut m = conn(old);
    redis::cmd("SET")
        .arg(key)
        .arg("kept")
        .query::<()>(&mut m)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut m).unwrap();
    assert_eq!(acked, 1, "the write reached the replica");
    let t = Instant::now();
    c.kill_master(old);
    assert_eq!(c.wait_failover(old), replica);
    eprintln!("failover in {:?}", t.elapsed());
    assert_eq!(c.master_of_key(key), replica);
    assert_eq!(get(replica, key).as_deref(), Some("kept"));
    assert_eq!(c.masters().len(), 3);
    assert_eq!(c.seed_urls().len(), 5);
    let (port, _) = routed(c.masters()[0], &["SET", key, "after"]);
    assert_eq!(port, replica);
}

#[test]
fn migrate_slot_moves_the_keys_while_a_client_writes() {
    let c = RedisCluster::start();
    let key = "herald:busy";
    let slot = c.keyslot(key);
    let from = c.master_of_key(key);
    let to = *c.masters().iter().find(|&&m| m != from).unwrap();
    routed(from, &["SET", key, "v"]);
    for i in 0..300 {
        routed(from, &["SET", &format!("{{{key}}}:old{i}"), "v"]);
    }
    let stop = AtomicBool::new(false);
    let written = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                routed(from, &["SET", &format!("{{{key}}}:new{n}"), "v"]);
                n += 1;
            }
            n
        });
        let t = Instant::now();
        c.migrate_slot(slot, to);
        eprintln!("slot {slot} migrated in {:?}", t.elapsed());
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap()
    });
    assert!(written > 0);
    assert_eq!(c.master_of_key(key), to);
    assert_eq!(get(to, key).as_deref(), Some("v"));
    let count: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut conn(to))
        .unwrap();
    assert_eq!(count, 1 + 300 + written, "every key of the slot is on {to}");
}

#[test]
fn with_a_password_migration_and_failover_still_work() {
    let c = RedisCluster::start_with_password("clusterpw");
    assert_eq!(c.password(), Some("clusterpw"));
    let prefix = "redis://:clusterpw@127.0.0.1:";
    assert!(c.seed_urls().iter().all(|u| u.starts_with(prefix)));
    let key = "herald:pw";
    let from = c.master_of_key(key);
    let denied = redis::cmd("PING").query::<String>(&mut conn(from));
    assert!(denied.is_err(), "a node wants its password");
    let set = |port, v: &str| {
        let mut m = conn_url(&c.node_url(port));
        redis::cmd("SET")
            .arg(key)
            .arg(v)
            .query::<()>(&mut m)
            .unwrap();
        redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query::<i64>(&mut m)
            .unwrap()
    };
    assert_eq!(set(from, "v"), 1);
    let to = *c.masters().iter().find(|&&m| m != from).unwrap();
    c.migrate_slot(c.keyslot(key), to);
    assert_eq!(c.master_of_key(key), to);
    assert_eq!(set(to, "v2"), 1, "the new owner's replica has it");
    c.kill_master(to);
    let promoted = c.wait_failover(to);
    let v: String = redis::cmd("GET")
        .arg(key)
        .query(&mut conn_url(&c.node_url(promoted)))
        .unwrap();
    assert_eq!(v, "v2");
}

#[test]
fn is_send_and_sync_for_spawn_blocking() {
    fn check<T: Send + Sync + 'static>() {}
    check::<RedisCluster>();
}
