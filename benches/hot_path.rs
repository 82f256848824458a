//! Micro-benchmarks of the per-event hot path (criterion): envelope decode, routing, the
//! Laravel message encode, Pusher request signing, and the settle decision. `cargo bench --bench hot_path`.
//! End-to-end numbers come from `herald bench`, not from here.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald::bench::w1_envelope;
use herald::broadcast::pusher::sign::signed_query;
use herald::broadcast::{Message, laravel_message};
use herald::config::Config;
use herald::delivery::{DeliveryError, DeliveryId};
use herald::envelope::{Limits, decode};
use herald::registry::Registry;
use herald::settle::{Clock, decide};

fn hot_path(c: &mut Criterion) {
    let raw = Bytes::from(w1_envelope(42, 330, None));
    let limits = Limits::default();
    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(1));

    g.bench_function("envelope_decode", |b| {
        b.iter(|| decode(black_box(raw.clone()), &limits).unwrap())
    });

    let config = Config::parse(
        "[events.\"App\\\\Events\\\\OrderShipped\"]\nbroadcast_as = \"order.shipped\"\n",
        "bench",
        &|_| None,
    )
    .unwrap();
    let registry = Registry::new(
        &config,
        Vec::new(),
        config.broadcasting.connections.keys().cloned().collect(),
    );
    let env = decode(raw.clone(), &limits).unwrap();
    g.bench_function("registry_plan", |b| {
        b.iter(|| registry.plan(black_box(&env)).unwrap())
    });

    let message = |socket| Message {
        id: &env.id,
        name: "App\\Events\\OrderShipped",
        channels: &env.channels,
        data: &env.data,
        socket,
        final_payload: false,
    };
    g.bench_function("laravel_message_encode", |b| {
        b.iter(|| laravel_message(black_box(&message(None))))
    });
    g.bench_function("laravel_message_encode_with_socket", |b| {
        b.iter(|| laravel_message(black_box(&message(Some("123.456")))))
    });

    // One batch_events request of 10 W1 events (~3 KB body): signed once per request.
    let body = vec![b'x'; 3000];
    g.bench_function("pusher_sign_batch_request", |b| {
        b.iter(|| {
            signed_query(
                "278d425bdf160c739803",
                "7ad3773142a6692b25b8",
                "POST",
                "/apps/3/batch_events",
                black_box(&body),
                1_353_088_179,
            )
        })
    });

    let ok = [(DeliveryId::Broadcast("redis".into()), Ok(()))];
    let policy = config.retry.clone();
    let clock = Clock { now_ms: 1 };
    g.bench_function("settle_decide_ack", |b| {
        b.iter(|| decide("q", black_box(&env), black_box(&ok), &policy, clock))
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
        b.iter(|| decide("q", black_box(&env), black_box(&failed), &policy, clock))
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
