//! The `herald run` child process under test: a private queue, a config file of its own.

use std::time::Duration;

use super::{BenchError, Options};

/// A `herald run` child process on a private queue.
pub(super) struct Child {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    pub(super) async fn start(
        o: &Options,
        queue: &str,
        connections: &str,
        extra: &str,
    ) -> Result<Child, BenchError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            format!(
                "[redis]\nurl = \"{url}\"\n[worker]\nqueues = [\"{queue}\"]\nconcurrency = {c}\nbatch_size = {b}\n[metrics]\naddr = \"\"\n[broadcasting]\ndefault = [{connections}]\n{extra}",
                url = o.redis_url,
                c = o.concurrency,
                b = o.batch_size,
            ),
        )?;
        let child = tokio::process::Command::new(&o.exe)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .env("HERALD_LOG_FORMAT", "json")
            .env_remove("REDIS_URL")
            .env_remove("HERALD_QUEUE")
            .env_remove("BROADCAST_CONNECTION")
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
