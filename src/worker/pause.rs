//! Pausing a queue: what a worker task does while an operator has paused its queue.
//!
//! Owns: [`Pause`], this process's view of one queue's pause key (`QueueKeys::paused`, set by
//! `ops`), which the maintenance loop refreshes on every promote tick, and the parking of the
//! queue's tasks while it is set. Does not own: the key (`queue`).
//!
//! A paused queue's tasks finish the batch in hand, then wait without reserving. A task blocked
//! on the empty queue (`BLMOVE`) finishes that wait first (at most `block_timeout`) and processes
//! what it brought: dropping the wait would leave the command blocked in Redis, still taking the
//! next envelope pushed. So once every task parked, nothing is taken until the pause ends, and
//! the heartbeat says so ([`Pause::all_parked`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One queue's pause state in this process.
pub(crate) struct Pause {
    paused: watch::Sender<bool>,
    /// Tasks of the queue waiting for the pause to end.
    parked: AtomicUsize,
    /// Tasks the queue has in this process.
    tasks: usize,
}

impl Pause {
    pub(crate) fn new(tasks: usize) -> Pause {
        Pause {
            paused: watch::Sender::new(false),
            parked: AtomicUsize::new(0),
            tasks,
        }
    }

    /// What the pause key says now.
    pub(crate) fn set(&self, paused: bool) {
        self.paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused);
    }

    pub(crate) fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Whether every task of the queue has stopped for the pause (reported in the heartbeat).
    pub(crate) fn all_parked(&self) -> bool {
        self.is_paused() && self.parked.load(Ordering::Relaxed) == self.tasks
    }

    /// Waits until the pause ends or `token` is cancelled.
    pub(crate) async fn park(&self, token: &CancellationToken) {
        let mut rx = self.paused.subscribe();
        self.parked.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = token.cancelled() => {}
            _ = rx.wait_for(|p| !*p) => {}
        }
        self.parked.fetch_sub(1, Ordering::Relaxed);
    }
}
