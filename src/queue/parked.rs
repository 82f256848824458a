//! Envelopes parked until a circuit closes.
//!
//! Owns: the parked zsets of a queue (one per circuit, scored by the envelope's age stamp), their
//! index and ready sets, and the two moves out of them that are not a reserve: `unpark`
//! (`lua/unpark.lua`) and counting. Parking itself is part of the settle script, and handing
//! parked envelopes out oldest first is part of the reserve script. Does not own: when a circuit
//! lets requests through (`broadcast::pusher::circuit::states`, asked by `worker::maintenance`).
//!
//! Why not the delayed set: an envelope deferred by an open circuit would come back every time
//! the circuit might close, go round the queue again behind newer envelopes, and after the
//! outage drain in no particular order. Parked, it is reserved once during the outage and,
//! once the circuit closes, before anything still in the queue, oldest first.

use super::{Queue, QueueError, scripts};

/// The most parked envelopes one `unpark` moves onto an empty queue at once: one script call
/// that holds Redis about 1.7 ms for 330-byte envelopes (median of 20 here, 1.4–3.2 ms); a larger
/// backlog is handed out by reserve.
const MOVE_AT_ONCE: usize = 1000;

/// How a circuit lets parked envelopes come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unpark {
    /// Closed: all of them, oldest first, ahead of the queue (onto an empty queue when few).
    Closed,
    /// Half-open: the oldest alone, to carry the probe, when the queue has nothing else.
    Probe,
}

impl Queue {
    /// The circuits this queue holds parked envelopes for.
    pub(crate) async fn parked_circuits(&self) -> Result<Vec<String>, QueueError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(self.keys.parked_index());
        self.run("parked", &cmd).await
    }

    /// Lets the envelopes parked for `circuit` come back as `how` says. Returns the envelopes
    /// moved onto the queue (the rest are handed out by reserve).
    pub(crate) async fn unpark(&self, circuit: &str, how: Unpark) -> Result<u64, QueueError> {
        let mut inv = scripts().unpark.prepare_invoke();
        inv.key(self.keys.parked(circuit))
            .key(self.keys.parked_index())
            .key(self.keys.parked_ready())
            .key(&self.keys.list)
            .arg(circuit)
            .arg(match how {
                Unpark::Closed => "closed",
                Unpark::Probe => "probe",
            })
            .arg(MOVE_AT_ONCE);
        self.run("unpark", &inv).await
    }

    /// Envelopes parked for any circuit.
    pub(crate) async fn parked_count(&self) -> Result<u64, QueueError> {
        let circuits = self.parked_circuits().await?;
        if circuits.is_empty() {
            return Ok(0);
        }
        let mut pipe = ::redis::pipe();
        for c in &circuits {
            pipe.zcard(self.keys.parked(c));
        }
        let counts: Vec<u64> = self.run("parked", &pipe).await?;
        Ok(counts.iter().sum())
    }
}
