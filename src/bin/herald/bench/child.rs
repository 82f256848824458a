//! The `herald run` child process under test: private queues, a config file of its own that
//! is the whole truth (every environment override herald reads is removed, the data nodes'
//! credentials alone are passed in its environment, never written to disk). Does not own:
//! which Redis that is (`target`).

use std::time::Duration;

use super::target::{Endpoint, Mode};
use super::{BenchError, Options};

/// A `herald run` child process on a private queue.
pub(super) struct Child {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    pub(super) async fn start(
        o: &Options,
        queues: &[String],
        connections: &str,
        extra: &str,
    ) -> Result<Child, BenchError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            format!(
                "{redis}[worker]\nqueues = {queues}\nconcurrency = {c}\nbatch_size = {b}\n[metrics]\naddr = \"\"\n[broadcasting]\ndefault = [{connections}]\n{extra}",
                redis = redis_section(&o.endpoint),
                queues = toml_list(queues.iter().map(String::as_str)),
                c = o.concurrency,
                b = o.batch_size,
            ),
        )?;
        let mut cmd = tokio::process::Command::new(&o.exe);
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .env("HERALD_LOG_FORMAT", "json");
        for o in herald::config::ENV_OVERRIDES {
            cmd.env_remove(o.var);
        }
        let e = &o.endpoint;
        if !e.username.is_empty() {
            cmd.env("REDIS_USERNAME", &e.username);
        }
        if !e.password.is_empty() {
            cmd.env("REDIS_PASSWORD", e.password.expose());
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Child { child, _dir: dir })
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// (current RSS, peak RSS) in MB, from /proc.
    pub(super) fn rss_mb(&self) -> (f64, f64) {
        let Some(pid) = self.pid() else {
            return (0.0, 0.0);
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.pid() {
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The child's `[redis]` section (credentials go in its environment).
fn redis_section(e: &Endpoint) -> String {
    let mut s = match e.mode {
        Mode::Standalone => format!("[redis]\nurl = {}\n", toml_str(e.urls[0].expose())),
        Mode::Cluster => format!(
            "[redis]\nmode = \"cluster\"\nnodes = {}\n",
            toml_list(e.urls.iter().map(|u| u.expose()))
        ),
    };
    if e.wait_replicas > 0 {
        s.push_str(&format!(
            "wait_replicas = {}\nwait_timeout = \"{}ms\"\n",
            e.wait_replicas,
            e.wait_timeout.as_millis()
        ));
    }
    s
}

/// A TOML string, quoted as TOML quotes it.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML array of strings.
fn toml_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(toml_str).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_childs_redis_section_is_valid_toml_for_each_mode() {
        let parse = |e: &Endpoint| -> herald::config::RedisConfig {
            let t: toml::Table = toml::from_str(&redis_section(e)).unwrap();
            t["redis"].clone().try_into().unwrap()
        };
        let url = r#"redis://:p"w\@127.0.0.1:7"#;
        let one = parse(&Endpoint::local(Mode::Standalone, &[url.into()], 0));
        assert_eq!(one.url.expose(), url);
        assert_eq!(one.wait_replicas, 0);
        let seeds = [
            "redis://127.0.0.1:7000".to_string(),
            "redis://127.0.0.1:7001".into(),
        ];
        let cluster = parse(&Endpoint::local(Mode::Cluster, &seeds, 1));
        assert_eq!(cluster.mode, herald::config::RedisMode::Cluster);
        assert_eq!(
            cluster.nodes.iter().map(|u| u.expose()).collect::<Vec<_>>(),
            seeds
        );
        assert_eq!(cluster.wait_replicas, 1);
        assert_eq!(
            cluster.wait_timeout,
            herald::config::RedisConfig::default().wait_timeout
        );
    }
}
