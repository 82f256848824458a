//! Micro-benchmarks of the per-event hot path (criterion): envelope decode, routing, the
//! Laravel message encode, Pusher request signing, the settle decision, and the whole per-batch
//! path for 100 envelopes. `cargo bench --bench hot_path`. End-to-end numbers come from
//! `herald bench`, not from here.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald::config::Config;
use herald::delivery::{DeliveryError, DeliveryId};
use herald::internals::{HotPath, pusher_signed_query};
use herald_testkit::w1::w1_envelope;

fn hot_path(c: &mut Criterion) {
    let raw = Bytes::from(w1_envelope(42, 330, None));
    let config = Config::parse(
        "[events.\"App\\\\Events\\\\OrderShipped\"]\nbroadcast_as = \"order.shipped\"\n",
        "bench",
        &|_| None,
    )
    .unwrap();
    let path = HotPath::new(&config);
    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(1));

    g.bench_function("envelope_decode", |b| {
        b.iter(|| path.decode(black_box(raw.clone())))
    });
    let env = path.decode(raw.clone());
    g.bench_function("registry_plan", |b| b.iter(|| path.plan(black_box(&env))));
    g.bench_function("laravel_message_encode", |b| {
        b.iter(|| path.redis_message(black_box(&env), "App\\Events\\OrderShipped", None))
    });
    g.bench_function("laravel_message_encode_with_socket", |b| {
        b.iter(|| path.redis_message(black_box(&env), "E", Some("123.456")))
    });

    // One batch_events request of 10 W1 events (~3 KB body): signed once per request.
    let body = vec![b'x'; 3000];
    g.bench_function("pusher_sign_batch_request", |b| {
        b.iter(|| {
            pusher_signed_query(
                "278d425bdf160c739803",
                "7ad3773142a6692b25b8",
                "/apps/3/batch_events",
                black_box(&body),
                1_353_088_179,
            )
        })
    });

    let ok = [(DeliveryId::Broadcast("redis".into()), Ok(()))];
    g.bench_function("settle_decide_ack", |b| {
        b.iter(|| path.decide(black_box(&env), black_box(&ok)))
    });
    let failed = [(
        DeliveryId::Broadcast("pusher".into()),
        Err(DeliveryError::Http {
            status: 503,
            body: String::new(),
            retry_after: None,
        }),
    )];
    g.bench_function("settle_decide_retry", |b| {
        b.iter(|| path.decide(black_box(&env), black_box(&failed)))
    });
    g.finish();

    // decode → plan → encode → decide for a reserved batch of 100 W1 envelopes.
    let batch: Vec<Bytes> = (0..100)
        .map(|k| Bytes::from(w1_envelope(k, 330, None)))
        .collect();
    let mut g = c.benchmark_group("per_batch");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("w1_batch_of_100", |b| {
        b.iter(|| path.batch(black_box(&batch)))
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
