//! Resource use of a process from /proc (Linux only; `None` elsewhere): this node's own
//! metrics, and the lab's sampling of every node of a cluster.

pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

pub fn self_usage() -> Option<Usage> {
    usage("self")
}

/// `pid` is a process id, or `self`.
pub fn usage(pid: &str) -> Option<Usage> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux ABI we run on.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_SIZE: u64 = 4096;
    Some(Usage {
        rss_bytes: rss_pages * PAGE_SIZE,
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
    })
}
