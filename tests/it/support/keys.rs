//! Every Redis key the tests read or write, written once. Spelled out here rather than borrowed
//! from herald's own key code, so the tests check herald's keyspace layout instead of agreeing
//! with it.

/// The default queue: its name, and its list key when there is no prefix.
pub const QUEUE: &str = "herald:default";
/// The default queue's set of registered processing lists.
pub const WORKERS: &str = "{herald:default}:workers";
/// The default queue's delayed set (retries).
pub const DELAYED: &str = "{herald:default}:delayed";
/// Live processes by last heartbeat.
pub const PROCESSES: &str = "herald:processes";
/// Applied keyspace migrations.
pub const SCHEMA: &str = "herald:schema";

/// The open-circuit key of broadcast connection `connection`.
pub fn circuit(connection: &str) -> String {
    format!("herald:circuit:{connection}")
}

/// The hash of multi-app Pusher connection `connection`'s apps (field: app name, value: JSON
/// credentials).
pub fn pusher_apps(connection: &str) -> String {
    format!("herald:pusher:apps:{connection}")
}

/// The open-circuit key of app `app` of multi-app connection `connection`.
pub fn app_circuit(connection: &str, app: &str) -> String {
    circuit(&format!("{connection}:app:{app}"))
}

/// The half-open probe claim of broadcast connection `connection`.
pub fn circuit_probe(connection: &str) -> String {
    format!("{}:probe", circuit(connection))
}

/// The default queue's record of the delivered parts of envelope `id`'s split Pusher event.
pub fn pusher_sent(id: &str) -> String {
    format!("{{herald:default}}:pusher:sent:{id}")
}
