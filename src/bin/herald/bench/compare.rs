//! `herald bench --local-cluster`: the cost of cluster mode as a measured ratio on one machine.
//!
//! Owns: starting a local six-node Redis Cluster and a local `redis-server` (testkit, free
//! ports, killed at the end), running W1 on the server, on the cluster, and on the cluster
//! with `wait_replicas`, interleaved run by run so drift on a shared machine spreads over every
//! column, and the [`Comparison`]: medians and ranges of throughput, CPU per event per party
//! and per node, commands per event, with each column's ratio to the server's. Does not own:
//! the W1 run itself (`super::throughput`).

use herald_testkit::{RedisCluster, RedisServer};
use serde::Serialize;

use super::measure::load_average;
use super::report::W1Figures;
use super::target::{Endpoint, Mode, Target};
use super::{BenchError, Options, throughput};

/// W1 on each local deployment, `runs` times.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    cores: usize,
    redis_version: String,
    /// 1-, 5- and 15-minute load averages before the first run and after the last.
    load_average_at_start: String,
    load_average_at_end: String,
    events: usize,
    concurrency: usize,
    batch_size: usize,
    runs: usize,
    columns: Vec<Column>,
}

/// One deployment's runs and their summary.
#[derive(Debug, Serialize)]
struct Column {
    label: String,
    median: Summary,
    runs: Vec<W1Figures>,
}

/// Median, lowest and highest of one figure over the runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let Some((&min, &max)) = v.first().zip(v.last()) else {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        };
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Stat { median, min, max }
    }
}

/// Every figure of the side-by-side, over a column's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Summary {
    events_per_sec: Stat,
    herald_cpu_us_per_event: Stat,
    redis_cpu_us_per_event: Stat,
    subscriber_cpu_us_per_event: Stat,
    redis_commands_per_event: Stat,
    redis_master_commands_per_event: Stat,
    /// Per node (by address, in the first run's order): its CPU µs per event.
    nodes: Vec<NodeStat>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeStat {
    node: String,
    addr: String,
    /// What it serves: `; queue …; the subscriber`.
    serves: String,
    cpu_us_per_event: Stat,
}

impl Summary {
    fn of(runs: &[W1Figures]) -> Summary {
        let stat = |f: fn(&W1Figures) -> f64| Stat::of(runs.iter().map(f));
        let nodes = runs.first().map_or(&[][..], |r| &r.nodes[..]);
        Summary {
            events_per_sec: stat(|r| r.events_per_sec),
            herald_cpu_us_per_event: stat(|r| r.cpu_us_per_event.herald),
            redis_cpu_us_per_event: stat(|r| r.cpu_us_per_event.redis),
            subscriber_cpu_us_per_event: stat(|r| r.cpu_us_per_event.subscriber),
            redis_commands_per_event: stat(|r| r.redis_commands_per_event),
            redis_master_commands_per_event: stat(|r| r.redis_master_commands_per_event),
            nodes: nodes
                .iter()
                .map(|n| NodeStat {
                    node: n.meta.node.clone(),
                    addr: n.meta.addr.clone(),
                    serves: n.serves(),
                    cpu_us_per_event: Stat::of(runs.iter().filter_map(|r| {
                        let same = r.nodes.iter().find(|m| m.meta.addr == n.meta.addr)?;
                        Some(same.cpu_us_per_event)
                    })),
                })
                .collect(),
        }
    }
}

/// Starts the local deployments, runs W1 `runs` times on each (interleaved), and compares.
pub(super) async fn local_cluster(
    o: &Options,
    waited: u32,
    runs: usize,
) -> Result<Comparison, BenchError> {
    let load_average_at_start = load_average();
    let cluster = blocking(RedisCluster::start).await?;
    let server = blocking(RedisServer::start).await?;
    let seeds = cluster.seed_urls();
    let columns = [
        (
            "standalone".to_string(),
            Endpoint::local(Mode::Standalone, &[server.url()], 0),
        ),
        (
            "cluster".to_string(),
            Endpoint::local(Mode::Cluster, &seeds, 0),
        ),
        (
            format!("cluster, wait_replicas {waited}"),
            Endpoint::local(Mode::Cluster, &seeds, waited),
        ),
    ];
    // The same queues everywhere, one per master, so the ratio is that of the deployment.
    let queues = o.queues.unwrap_or(cluster.masters().len());
    let mut results: Vec<Vec<W1Figures>> = columns.iter().map(|_| Vec::new()).collect();
    let mut redis_version = String::new();
    for _ in 0..runs {
        for ((_, endpoint), runs) in columns.iter().zip(&mut results) {
            let o = Options {
                endpoint: endpoint.clone(),
                queues: Some(queues),
                ..o.clone()
            };
            let mut target = Target::connect(endpoint).await?;
            redis_version = super::redis_version(&mut target.subscriber().conn.clone()).await?;
            let tag = format!("{:08x}", fastrand::u32(..));
            runs.push(throughput(&o, &mut target, &tag).await?);
            target.cleanup(&tag).await?;
        }
    }
    drop((cluster, server));
    Ok(Comparison {
        cores: super::cores(),
        redis_version,
        load_average_at_start,
        load_average_at_end: load_average(),
        events: o.events,
        concurrency: o.concurrency,
        batch_size: o.batch_size,
        runs,
        columns: columns
            .into_iter()
            .zip(results)
            .map(|((label, _), runs)| Column {
                label,
                median: Summary::of(&runs),
                runs,
            })
            .collect(),
    })
}

/// Runs a testkit start (which blocks, and panics when it cannot start) off the runtime.
async fn blocking<T: Send + 'static>(f: fn() -> T) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        let why = e
            .try_into_panic()
            .ok()
            .and_then(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            })
            .unwrap_or_default();
        BenchError::Failed(format!("starting the local Redis failed: {why}"))
    })
}

impl Comparison {
    /// The side-by-side table: one column per deployment, each after the first followed by
    /// its ratio to the first.
    pub(crate) fn table(&self) -> String {
        let queues = self
            .columns
            .first()
            .and_then(|c| c.runs.first())
            .map_or(0, |r| r.queues.len());
        let mut s = format!(
            "W1 side by side: {} cores (load average {} before, {} after), redis {} on the same \
             machine; {} envelopes over {} queues, concurrency {} x batch {} per queue; median \
             of {} runs (min-max)\n\n",
            self.cores,
            self.load_average_at_start,
            self.load_average_at_end,
            self.redis_version,
            self.events,
            queues,
            self.concurrency,
            self.batch_size,
            self.runs
        );
        s.push_str(&grid(&self.rows()));
        s
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let mut header = vec![String::new()];
        for (i, c) in self.columns.iter().enumerate() {
            header.push(c.label.clone());
            if i > 0 {
                header.push("ratio".into());
            }
        }
        let figures: [Figure; 6] = [
            ("throughput, events/s", |m| m.events_per_sec, 0),
            ("herald CPU µs/event", |m| m.herald_cpu_us_per_event, 2),
            (
                "Redis CPU µs/event, all nodes",
                |m| m.redis_cpu_us_per_event,
                2,
            ),
            (
                "subscriber CPU µs/event",
                |m| m.subscriber_cpu_us_per_event,
                2,
            ),
            (
                "Redis commands/event, all nodes",
                |m| m.redis_commands_per_event,
                3,
            ),
            (
                "Redis commands/event, masters",
                |m| m.redis_master_commands_per_event,
                3,
            ),
        ];
        let mut rows = vec![header];
        for (name, f, digits) in figures {
            rows.push(self.row(name, |m| Some(f(m)), digits, true));
        }
        // Per node, from the first deployment that has several.
        let nodes = self
            .columns
            .iter()
            .map(|c| &c.median.nodes)
            .find(|n| n.len() > 1);
        for n in nodes.into_iter().flatten() {
            let name = format!("  {} CPU µs/event{}", n.node, n.serves);
            let find = |m: &Summary| {
                let same = m.nodes.iter().find(|x| x.addr == n.addr)?;
                Some(same.cpu_us_per_event)
            };
            rows.push(self.row(&name, find, 2, false));
        }
        rows
    }

    /// One figure across the columns (empty where a column lacks it), with ratios to the
    /// first column when `ratios`.
    fn row(
        &self,
        name: &str,
        f: impl Fn(&Summary) -> Option<Stat>,
        digits: usize,
        ratios: bool,
    ) -> Vec<String> {
        let base = self.columns.first().and_then(|c| f(&c.median));
        let mut row = vec![name.to_owned()];
        for (i, c) in self.columns.iter().enumerate() {
            let v = f(&c.median);
            row.push(v.map_or(String::new(), |v| cell(v, digits)));
            if i > 0 {
                let ratio = v
                    .zip(base)
                    .filter(|_| ratios)
                    .map(|(v, b)| v.median / b.median);
                row.push(ratio.map_or(String::new(), |r| format!("{r:.2}")));
            }
        }
        row
    }
}

/// A row of the table: its name, where its figure is in a [`Summary`], decimals shown.
type Figure = (&'static str, fn(&Summary) -> Stat, usize);

/// `median (min-max)`.
fn cell(s: Stat, digits: usize) -> String {
    format!("{:.d$} ({:.d$}-{:.d$})", s.median, s.min, s.max, d = digits)
}

/// Rows as columns padded to their widest cell.
fn grid(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|x| x.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let mut s = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(x, w)| format!("{x:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_the_median_and_the_range() {
        assert_eq!(
            Stat::of([3.0, 1.0, 2.0]),
            Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Stat::of([4.0, 1.0]).median, 2.5);
        assert_eq!(Stat::of([]).median, 0.0);
    }

    #[test]
    fn the_grid_pads_every_column_to_its_widest_cell() {
        let rows = vec![
            vec!["".to_string(), "a".into(), "bb".into()],
            vec!["long name".into(), "123".into(), "4".into()],
        ];
        assert_eq!(grid(&rows), "           a    bb\nlong name  123  4\n");
    }
}
