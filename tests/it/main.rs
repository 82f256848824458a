//! herald's integration tests: one binary, each test with a redis-server of its own.

mod support;

/// Bad input is dead-lettered with a reason; the worker keeps serving (also on a cluster).
mod bad_input;
/// `herald bench` runs and reports.
mod bench;
/// Redis broadcast: Laravel's wire format, FIFO order, prefixes, idle pickup.
mod broadcast;
/// The command line: enqueue, stats, failed, migrate, check-config.
mod cli;
/// Redis Cluster and Sentinel: failover, slot migration, `wait_replicas`, passwords, nothing lost.
mod cluster;
/// The admin API behind the dashboard: numbers, actions, pages, who may call it.
mod dashboard;
/// Who may use the dashboard: the token, loopback, same origin.
mod dashboard_access;
/// The dashboard in a real Chromium (playwright-core from the npm peers).
mod dashboard_browser;
/// The Laravel driver (clients/laravel) with a real Laravel app, laravel-echo-server, soketi,
/// Laravel Echo; the README's Python and Node producers.
mod laravel;
/// Metrics, health endpoints, and a real Prometheus.
mod operations;
/// The Pusher broadcaster: signing, batching, limits, retries, circuit, real server end to end.
mod pusher;
/// Multi-app Pusher connections: per-app credentials, apps added at run time, bounded labels,
/// two apps on one soketi.
mod pusher_apps;
/// The Pusher broadcaster at production scale: request-size budgets, servers that close after
/// every answer, byte-identical encrypted retries.
mod pusher_scale;
/// kill -9 and SIGTERM (also on a cluster), two processes, poison messages, Redis restarts.
mod reliability;
/// Per-delivery retries, dead letters and `herald failed retry`.
mod retries;
/// The envelope JSON Schema and the README's examples.
mod schema;
/// sockudo (when `scripts/test` could build it) with pusher-js: every event once, a retry after
/// a lost answer dropped by its idempotency, the documented limits at their edges.
mod sockudo;
/// `rediss://` in every mode against TLS-only servers; a wrong trust root fails clearly.
mod tls;
