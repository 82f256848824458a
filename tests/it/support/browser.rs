//! A real Chromium (Debian's `/usr/bin/chromium`) driven by playwright-core from the npm peers
//! (`tests/peers/browser.js`), one command at a time, for the dashboard's browser tests.
//! Without Chromium the test fails saying how to install it: browser tests never skip.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::peers::{self, NodeScript};

/// Where screenshots go: `target/screenshots/` (kept after the run, as test artifacts).
pub fn screenshots() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_path_buf();
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

pub struct Browser {
    script: NodeScript,
}

impl Browser {
    pub fn start() -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "the dashboard's browser tests need Chromium at {chromium} (Debian: `apt-get install \
             chromium`; ./scripts/test installs it when missing)"
        );
        let peers = peers::installed();
        Browser {
            script: NodeScript::start(&peers, "browser.js", &[("CHROMIUM", chromium)]),
        }
    }

    /// Runs one command (see browser.js) and returns its answer; fails the test on an error
    /// answer or on errors the page reported.
    pub async fn cmd(&mut self, command: Value) -> Value {
        self.script.send(&command.to_string()).await;
        let answer = self.script.next().await;
        if let Some(e) = answer.get("error") {
            panic!(
                "browser: {e} (for {command}); stderr:\n{}",
                self.script.stderr()
            );
        }
        let errors = answer["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors.is_empty(),
            "the page reported errors after {command}: {errors:?}"
        );
        answer
    }

    /// Loads `url` and waits until it rendered `view` (the view name the page reports).
    pub async fn open(&mut self, url: &str, view: &str) {
        self.cmd(json!({"cmd": "open", "url": url, "view": view}))
            .await;
    }

    /// Navigates within the page and waits for `view` to render.
    pub async fn go(&mut self, hash: &str, view: &str) {
        self.cmd(json!({"cmd": "go", "hash": hash, "view": view}))
            .await;
    }

    pub async fn text(&mut self, selector: &str) -> String {
        let a = self.cmd(json!({"cmd": "text", "selector": selector})).await;
        a["text"].as_str().unwrap_or_default().to_string()
    }

    pub async fn texts(&mut self, selector: &str) -> Vec<String> {
        let a = self
            .cmd(json!({"cmd": "texts", "selector": selector}))
            .await;
        serde_json::from_value(a["texts"].clone()).unwrap_or_default()
    }

    /// Waits until the first `selector` contains `text`; returns its text.
    pub async fn wait_text(&mut self, selector: &str, text: &str) -> String {
        let a = self
            .cmd(json!({"cmd": "wait_text", "selector": selector, "text": text}))
            .await;
        a["text"].as_str().unwrap_or_default().to_string()
    }

    /// Presses Tab until `selector` has the focus; how many presses it took.
    pub async fn tab_to(&mut self, selector: &str) -> u64 {
        let a = self
            .cmd(json!({"cmd": "tab_to", "selector": selector, "max": 150}))
            .await;
        a["presses"].as_u64().unwrap_or_default()
    }

    /// Presses `key`; with `view`, waits for that view to render.
    pub async fn press(&mut self, key: &str, view: Option<&str>) {
        self.cmd(json!({"cmd": "press", "key": key, "view": view}))
            .await;
    }

    pub async fn viewport(&mut self, width: u32, height: u32) {
        self.cmd(json!({"cmd": "viewport", "width": width, "height": height}))
            .await;
    }

    /// Writes `target/screenshots/<name>.png`; returns its path.
    pub async fn screenshot(&mut self, name: &str, full: bool) -> PathBuf {
        let path = screenshots().join(format!("{name}.png"));
        self.cmd(json!({"cmd": "screenshot", "path": path, "full": full}))
            .await;
        path
    }

    /// The page's own timings: first render, DOM ready, bytes transferred.
    pub async fn timing(&mut self) -> Value {
        self.cmd(json!({"cmd": "timing"})).await
    }

    /// (page scroll width, viewport width): equal when nothing sticks out sideways.
    pub async fn widths(&mut self) -> (u64, u64) {
        let a = self.cmd(json!({"cmd": "widths"})).await;
        (
            a["scroll"].as_u64().unwrap(),
            a["viewport"].as_u64().unwrap(),
        )
    }

    pub async fn close(self) {
        self.script.finish().await;
    }
}
