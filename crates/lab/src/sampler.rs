//! CPU and RSS of every node, sampled from /proc while a run goes on.
//!
//! Samples are keyed by node index, not pid: a node restarted by chaos keeps one series.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::results::{NodeResources, ResourceSummary};

/// CPU seconds and resident bytes of one process.
pub fn usage(pid: u32) -> Option<(f64, u64)> {
    neverust_node::procfs::usage(pid).map(|u| (u.cpu_seconds, u.rss_bytes))
}

/// CPU seconds the processes have used together; None unless every one is a readable
/// process of this machine (a deployed cluster's nodes have pid 0).
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.contains(&0) {
        return None;
    }
    pids.iter().map(|&p| usage(p).map(|u| u.0)).sum()
}

/// Waits until the processes together use less than `percent_each` % of a core per
/// process over half a second (a cluster that just started is still meeting its peers),
/// or until `limit`. Returns how long it waited.
pub async fn settle(pids: &[u32], percent_each: f64, limit: Duration) -> Duration {
    let start = Instant::now();
    // Without readings (a deployed cluster, a node gone) there is nothing to wait for.
    let total = || cpu_seconds(pids).unwrap_or(0.0);
    let mut before = (Instant::now(), total());
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (Instant::now(), total());
        let dt = now.0.duration_since(before.0).as_secs_f64().max(1e-3);
        let percent = (now.1 - before.1) / dt * 100.0;
        if percent < percent_each * pids.len() as f64 {
            break;
        }
        before = now;
    }
    start.elapsed()
}

#[derive(Default)]
struct Series {
    last: Option<(u32, Instant, f64)>,
    res: NodeResources,
}

/// Shared sample store; `sample` is called by a background task.
#[derive(Clone)]
pub struct Sampler {
    t0: Instant,
    series: Arc<Mutex<HashMap<usize, Series>>>,
}

impl Sampler {
    pub fn new(t0: Instant) -> Sampler {
        Sampler {
            t0,
            series: Arc::default(),
        }
    }

    /// Records one sample of each `(index, pid, mode)`.
    pub fn sample(&self, nodes: &[(usize, u32, String)]) {
        let now = Instant::now();
        let t = now.duration_since(self.t0).as_secs_f64();
        let mut series = self.series.lock().expect("sampler lock");
        for (index, pid, mode) in nodes {
            let Some((cpu, rss)) = usage(*pid) else {
                continue;
            };
            let s = series.entry(*index).or_default();
            s.res.index = *index;
            s.res.mode = mode.clone();
            // The first sample of a (re)started process has no interval to divide by.
            if let Some((last_pid, at, last_cpu)) = s.last {
                if last_pid == *pid {
                    let dt = now.duration_since(at).as_secs_f64().max(1e-3);
                    s.res.t_s.push(t);
                    s.res.rss_bytes.push(rss);
                    s.res
                        .cpu_percent
                        .push(((cpu - last_cpu) / dt * 100.0).max(0.0));
                }
            }
            s.last = Some((*pid, now, cpu));
        }
    }

    /// Runs `sample` every `every` on the nodes `nodes()` returns, until the handle is dropped.
    pub fn spawn(
        &self,
        every: Duration,
        nodes: impl Fn() -> Vec<(usize, u32, String)> + Send + 'static,
    ) -> SamplerTask {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.sample(&nodes());
            }
        });
        SamplerTask(task)
    }

    pub fn series(&self) -> Vec<NodeResources> {
        let series = self.series.lock().expect("sampler lock");
        let mut out: Vec<NodeResources> = series.values().map(|s| s.res.clone()).collect();
        out.sort_by_key(|r| r.index);
        out
    }

    /// Summary of the samples taken in `[from, to]` seconds.
    pub fn summary(&self, from: f64, to: f64) -> ResourceSummary {
        summarize(&self.series(), from, to)
    }
}

pub struct SamplerTask(tokio::task::JoinHandle<()>);

impl Drop for SamplerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Mean over nodes of each node's mean RSS and CPU in the window, and the maxima.
pub fn summarize(series: &[NodeResources], from: f64, to: f64) -> ResourceSummary {
    let mut rss_means = Vec::new();
    let mut cpu_means = Vec::new();
    let mut out = ResourceSummary::default();
    for r in series {
        let idx: Vec<usize> = (0..r.t_s.len())
            .filter(|&i| r.t_s[i] >= from && r.t_s[i] <= to)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let n = idx.len() as f64;
        rss_means.push(idx.iter().map(|&i| r.rss_bytes[i] as f64).sum::<f64>() / n);
        let cpu_mean = idx.iter().map(|&i| r.cpu_percent[i]).sum::<f64>() / n;
        cpu_means.push(cpu_mean);
        out.rss_max_bytes = out
            .rss_max_bytes
            .max(idx.iter().map(|&i| r.rss_bytes[i]).max().unwrap_or(0));
        out.cpu_max_percent = out.cpu_max_percent.max(cpu_mean);
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    out.rss_mean_bytes = mean(&rss_means);
    out.cpu_mean_percent = mean(&cpu_means);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let (cpu, rss) = usage(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "rss {rss}");
        assert!(cpu >= 0.0);
        let s = Sampler::new(Instant::now());
        let me = vec![(0, std::process::id(), "altruistic".to_string())];
        s.sample(&me);
        // Burn some CPU so the second sample has something to show.
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        s.sample(&me);
        let series = s.series();
        assert_eq!(series.len(), 1);
        assert_eq!(
            series[0].t_s.len(),
            1,
            "the first sample only sets the baseline"
        );
        assert!(series[0].cpu_percent[0] > 0.0);
        let sum = s.summary(0.0, 1e9);
        assert!(sum.rss_mean_bytes > 0.0 && sum.rss_max_bytes > 0);
        assert_eq!(summarize(&series, 1e8, 1e9).rss_max_bytes, 0);
    }
}
