//! Resource use of a process from /proc, read with the `procfs` crate (Linux only; `None`
//! elsewhere or when the process is gone): this node's own metrics, and the lab's sampling
//! of every node of a cluster.

use procfs::process::Process;

pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

pub fn self_usage() -> Option<Usage> {
    of(Process::myself().ok()?)
}

pub fn usage(pid: u32) -> Option<Usage> {
    of(Process::new(i32::try_from(pid).ok()?).ok()?)
}

fn of(process: Process) -> Option<Usage> {
    let stat = process.stat().ok()?;
    let statm = process.statm().ok()?;
    Some(Usage {
        rss_bytes: statm.resident * procfs::page_size(),
        cpu_seconds: (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
    })
}
