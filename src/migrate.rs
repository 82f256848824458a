//! Keyspace migrations: the versions in `migrations/`, recorded in `herald:schema`.
//!
//! Owns: the list of migrations, checking the keyspace's version before `herald run` starts,
//! and applying pending versions (`herald migrate`). Does not own: the keys themselves
//! (`queue::keys`).

use crate::queue::{GlobalKeys, NO_QUEUE, Queue, QueueError};

/// One keyspace version.
pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) name: &'static str,
    /// Lua; see migrations/README.md for its KEYS and ARGV.
    pub(crate) script: &'static str,
}

/// Every migration, oldest first. Keep in step with the files in `migrations/`.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_initial",
    script: include_str!("../migrations/0001_initial.lua"),
}];

/// The keyspace version this build reads and writes.
pub(crate) fn current() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Why the keyspace cannot be used (or migrated) by this herald.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A newer herald migrated it.
    #[error(
        "the Redis keyspace is at schema version {found}, newer than this herald knows ({known}); upgrade herald"
    )]
    Newer {
        /// The recorded version.
        found: u32,
        /// The newest this herald knows.
        known: u32,
    },
    /// Older than this herald, and holding data: `herald migrate` first.
    #[error(
        "the Redis keyspace is at schema version {found}, this herald needs {known}; run `herald migrate` first"
    )]
    Pending {
        /// The recorded version.
        found: u32,
        /// The version this herald needs.
        known: u32,
    },
    /// Herald data without any recorded version.
    #[error(
        "queue {queue} has herald data but the keyspace has no schema version; run `herald migrate` first"
    )]
    Unversioned {
        /// The queue holding it.
        queue: String,
    },
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] QueueError),
}

/// The recorded version, if any.
pub(crate) async fn version(queue: &Queue, global: &GlobalKeys) -> Result<Option<u32>, QueueError> {
    let mut cmd = redis::cmd("HGET");
    cmd.arg(&global.schema).arg("version");
    queue.redis.run(NO_QUEUE, "schema", &cmd).await
}

/// Before `herald run`: accept the current version; record it on a keyspace with no herald data
/// (a fresh Redis, or one where producers pushed before herald first ran); refuse otherwise.
pub(crate) async fn check(queues: &[Queue], global: &GlobalKeys) -> Result<(), SchemaError> {
    let known = current();
    match version(&queues[0], global).await? {
        Some(found) if found == known => Ok(()),
        Some(found) if found > known => Err(SchemaError::Newer { found, known }),
        Some(found) => Err(SchemaError::Pending { found, known }),
        None => {
            for q in queues {
                let mut exists = redis::cmd("EXISTS");
                exists
                    .arg(&q.keys.delayed)
                    .arg(&q.keys.failed)
                    .arg(&q.keys.workers);
                let n: u64 = q.run("schema", &exists).await?;
                if n > 0 {
                    return Err(SchemaError::Unversioned {
                        queue: q.keys.name.clone(),
                    });
                }
            }
            record(&queues[0], global, &MIGRATIONS.iter().collect::<Vec<_>>()).await?;
            Ok(())
        }
    }
}

async fn record(
    queue: &Queue,
    global: &GlobalKeys,
    applied: &[&Migration],
) -> Result<(), QueueError> {
    let Some(last) = applied.last() else {
        return Ok(());
    };
    let now = crate::clock::now_ms();
    let mut pipe = redis::pipe();
    for m in applied {
        pipe.hset(
            &global.schema,
            m.version,
            format!("{} applied_at_ms={now}", m.name),
        )
        .ignore();
    }
    pipe.hset(&global.schema, "version", last.version).ignore();
    queue.redis.run(NO_QUEUE, "schema", &pipe).await
}

/// Applies every pending migration to every queue, in order. Returns the versions applied.
pub(crate) async fn migrate(
    queues: &[Queue],
    global: &GlobalKeys,
    prefix: &str,
) -> Result<Vec<u32>, SchemaError> {
    let known = current();
    let found = version(&queues[0], global).await?.unwrap_or(0);
    if found > known {
        return Err(SchemaError::Newer { found, known });
    }
    let pending: Vec<&Migration> = MIGRATIONS.iter().filter(|m| m.version > found).collect();
    for m in &pending {
        let script = redis::Script::new(m.script);
        for q in queues {
            let mut inv = script.prepare_invoke();
            inv.key(&q.keys.list)
                .key(&q.keys.delayed)
                .key(&q.keys.failed)
                .key(&q.keys.failed_index)
                .key(&q.keys.workers)
                .arg(prefix);
            q.run::<redis::Value>("migrate", &inv).await?;
        }
        record(&queues[0], global, &[m]).await?;
    }
    Ok(pending.iter().map(|m| m.version).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_dir_matches_the_list() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".lua"))
            .map(|f| f.trim_end_matches(".lua").to_string())
            .collect();
        files.sort();
        let listed: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        assert_eq!(files, listed);
        for (i, m) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
