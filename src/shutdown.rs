//! Shutdown signals: SIGTERM (Kubernetes, systemd, docker stop) and SIGINT (Ctrl-C).
//!
//! Owns: turning either signal into a future. Does not own: the drain itself (`lib::Herald::run`
//! cancels the workers, waits up to `shutdown_timeout`, then returns unsettled work).

/// Completes on the first SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
