//! The queue's contract with Redis, one operation at a time (what the worker relies on),
//! against a real redis-server of each test's own.

use herald_testkit::RedisServer;

use super::{Queue, QueueKeys, Redis, Settled, Settlement};

fn queue(redis: &RedisServer) -> Queue {
    Queue::new(
        Redis::open_url(&redis.url(), 2).unwrap(),
        QueueKeys::new("", "herald:default"),
        0,
    )
}

async fn push(redis: &RedisServer, n: usize) {
    let mut c = redis.conn().await;
    for i in 0..n {
        let _: () = ::redis::cmd("LPUSH")
            .arg("herald:default")
            .arg(format!("e{i}"))
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

/// Regression: Redis ran a reserve and then died before its reply reached the worker (found by
/// the /readyz outage test: a batch of 10 lost). The worker's next reserve must hand back what
/// the processing list already holds, not add a new batch that the next settle deletes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_a_reserve_whose_reply_was_lost_is_delivered_not_deleted_by_the_next_settle() {
    let redis = RedisServer::start();
    push(&redis, 5).await;
    let q = queue(&redis);
    let p = q.keys.processing("proc", 0);
    let mut c = q.redis.get().await.unwrap();
    let lost = q.reserve(&mut c, &p, 2).await.unwrap();
    assert_eq!(lost, ["e0", "e1"]);
    // The reply above never arrived; the worker reserves again.
    let again = q.reserve(&mut c, &p, 2).await.unwrap();
    assert_eq!(
        again,
        ["e0", "e1"],
        "the held batch comes back first, in order"
    );
    assert_eq!(
        q.settle(&mut c, &p, &Settlement::default(), 0)
            .await
            .unwrap(),
        Settled::Applied { evicted: 0 }
    );
    let next = q.reserve(&mut c, &p, 10).await.unwrap();
    assert_eq!(next, ["e2", "e3", "e4"], "nothing was lost between the two");
}

/// Same for a blocking wait whose reply was lost: the moved envelope comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_a_blocking_wait_whose_reply_was_lost_is_delivered() {
    let redis = RedisServer::start();
    push(&redis, 2).await;
    let q = queue(&redis);
    let p = q.keys.processing("proc", 0);
    let mut blocking = q
        .redis
        .dedicated(std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let lost = q
        .wait(&mut blocking, &p, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(lost.as_deref(), Some(&b"e0"[..]));
    let mut c = q.redis.get().await.unwrap();
    assert_eq!(q.reserve(&mut c, &p, 10).await.unwrap(), ["e0"]);
}

/// Regression: a worker task returning its own list (at start, after a crash of the task)
/// unregistered it, so until the next heartbeat a process crash left that list invisible to
/// every reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_returning_a_live_task_list_keeps_it_registered() {
    let redis = RedisServer::start();
    push(&redis, 3).await;
    let q = queue(&redis);
    let p = q.keys.processing("proc", 0);
    let mut c = redis.conn().await;
    let _: () = ::redis::cmd("SADD")
        .arg(&q.keys.workers)
        .arg(&p)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut pc = q.redis.get().await.unwrap();
    assert_eq!(q.reserve(&mut pc, &p, 2).await.unwrap().len(), 2);
    assert_eq!(q.recover(&p).await.unwrap(), 2);
    let registered: bool = ::redis::cmd("SISMEMBER")
        .arg(&q.keys.workers)
        .arg(&p)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(registered, "the task's list must stay visible to reapers");
    // And they went back to the head of the queue, counted as an attempt (the task died).
    let head: Vec<String> = ::redis::cmd("LRANGE")
        .arg("herald:default")
        .arg(-2)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(head, ["e1", "e0"]);
}

/// The activity counters are written by the settle that applies, in its minute's hash with a
/// TTL, and a settle that applies nothing (its batch was reclaimed) counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_counts_its_batch_in_the_minute_once() {
    use super::Tally;
    let redis = RedisServer::start();
    push(&redis, 3).await;
    let q = queue(&redis);
    let p = q.keys.processing("proc", 0);
    let mut c = q.redis.get().await.unwrap();
    assert_eq!(q.reserve(&mut c, &p, 3).await.unwrap().len(), 3);
    let mut s = Settlement {
        activity: Tally {
            settled: 3,
            retried: 1,
            failed: 1,
            ..Tally::default()
        },
        ..Settlement::default()
    };
    s.activity.ages.insert(("broadcast:redis".into(), 2), 2);
    let now = 1_764_268_800_123;
    q.settle(&mut c, &p, &s, now).await.unwrap();
    assert_eq!(
        q.settle(&mut c, &p, &s, now).await.unwrap(),
        Settled::Reclaimed,
        "a repeat applies nothing"
    );
    let minutes = q.activity(now, 2).await.unwrap();
    assert_eq!(minutes.len(), 2);
    assert_eq!(minutes[0].settled, 0, "the minute before is empty");
    let m = &minutes[1];
    assert_eq!(m.start_ms, now / 60_000 * 60_000);
    assert_eq!((m.settled, m.retried, m.dead, m.failed), (3, 1, 0, 1));
    assert_eq!(m.ages["broadcast:redis"][2], 2);
    let mut raw = redis.conn().await;
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(q.keys.activity(now / 60_000))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= super::activity::TTL.as_millis() as i64,
        "{ttl}"
    );
}

/// A dead letter evicted by the cap takes its Pusher delivery record (`{K}:pusher:sent:<id>`)
/// with it; a kept one keeps its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_dead_letter_takes_its_delivery_record_with_it() {
    let redis = RedisServer::start();
    let q = Queue::new(
        Redis::open_url(&redis.url(), 2).unwrap(),
        QueueKeys::new("", "herald:default"),
        1,
    );
    let mut c = q.redis.get().await.unwrap();
    for (id, at) in [("old", 1), ("new", 2)] {
        let record = q.keys.pusher_sent(id);
        let _: () = ::redis::cmd("SADD")
            .arg(&record)
            .arg("herald-unit")
            .query_async(&mut c)
            .await
            .unwrap();
        push(&redis, 1).await;
        let p = q.keys.processing("proc", 0);
        assert_eq!(q.reserve(&mut c, &p, 1).await.unwrap().len(), 1);
        let s = Settlement {
            dead: vec![(id.to_string(), dead_letter(id, at))],
            ..Settlement::default()
        };
        q.settle(&mut c, &p, &s, at).await.unwrap();
    }
    let records: (i64, i64) = ::redis::pipe()
        .exists(q.keys.pusher_sent("old"))
        .exists(q.keys.pusher_sent("new"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        records,
        (0, 1),
        "the evicted one's record went, the kept one's stayed"
    );
}

fn dead_letter(id: &str, at: u64) -> super::DeadLetter {
    use super::{DeadLetter, FailedDelivery};
    DeadLetter {
        envelope_id: Some(id.into()),
        queue: "herald:default".into(),
        event: Some("E".into()),
        code: "http_4xx".into(),
        reason: "r".into(),
        deliveries: vec![FailedDelivery {
            delivery: "broadcast:pusher".into(),
            code: "http_4xx".into(),
            error: "e".into(),
            retryable: false,
        }],
        attempts: 1,
        failed_at: at,
        payload: DeadLetter::payload_of(b"{}"),
    }
}

/// Regression: the index was scored by the settle's clock, the entry carried the decision's, so
/// two workers whose batches settled in the other order listed a dead letter out of failed_at
/// order (dashboard test, newest first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_settled_out_of_order_are_indexed_by_their_failed_at() {
    let redis = RedisServer::start();
    let q = queue(&redis);
    let mut c = q.redis.get().await.unwrap();
    // Decided at 2000 but settled first (at 3000), then one decided at 1000 settled at 4000.
    for (id, failed_at, settled_at) in [("later", 2000, 3000), ("earlier", 1000, 4000)] {
        push(&redis, 1).await;
        let p = q.keys.processing("proc", 0);
        assert_eq!(q.reserve(&mut c, &p, 1).await.unwrap().len(), 1);
        let s = Settlement {
            dead: vec![(id.to_string(), dead_letter(id, failed_at))],
            ..Settlement::default()
        };
        q.settle(&mut c, &p, &s, settled_at).await.unwrap();
    }
    let newest_first: Vec<(String, u64)> = ::redis::cmd("ZREVRANGE")
        .arg(&q.keys.failed_index)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        newest_first,
        [("later".to_string(), 2000), ("earlier".to_string(), 1000)]
    );
}
