//! Device-speed emulation for the lab: a tier given `latency=…,bw=…` makes every read it
//! serves take as long as that device would. Each read waits the latency, and reads share
//! the bandwidth: the device transfers one read's bytes after another, so ten concurrent
//! reads of a 150 MB/s disk see 150 MB/s between them, not each. Nothing here runs unless
//! a spec asked for it. The wait is a sleep, which overshoots by the scheduler's tick
//! (tens of microseconds): emulated latencies far below that are not faithful.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::spec::Emulation;

pub(crate) struct Emulator {
    settings: Emulation,
    /// When the emulated device finishes the transfers already scheduled.
    busy_until: Mutex<Option<Instant>>,
}

/// When a read of `len` bytes asked for at `now` is done, and when the device is free
/// again after it (pure, for tests).
pub(crate) fn schedule(
    settings: &Emulation,
    busy_until: Option<Instant>,
    now: Instant,
    len: u64,
) -> (Instant, Option<Instant>) {
    let mut done = now;
    let mut busy = busy_until;
    if let Some(bw) = settings.emulated_read_bandwidth {
        let transfer = Duration::from_secs_f64(len as f64 / bw as f64);
        let start = busy_until.map_or(now, |b| b.max(now));
        done = start + transfer;
        busy = Some(done);
    }
    if let Some(latency) = settings.emulated_read_latency {
        done += latency;
    }
    (done, busy)
}

impl Emulator {
    pub(crate) fn new(settings: Emulation) -> Option<Self> {
        (!settings.is_none()).then(|| Emulator {
            settings,
            busy_until: Mutex::new(None),
        })
    }

    /// Waits as long as the emulated device would take to read `len` bytes.
    pub(crate) fn wait(&self, len: u64) {
        let now = Instant::now();
        let done = {
            let mut busy = self.busy_until.lock().unwrap_or_else(|p| p.into_inner());
            let (done, next) = schedule(&self.settings, *busy, now, len);
            *busy = next;
            done
        };
        std::thread::sleep(done.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_share_the_bandwidth_and_each_waits_the_latency() {
        let hdd = Emulation {
            emulated_read_latency: Some(Duration::from_millis(8)),
            emulated_read_bandwidth: Some(100_000_000),
        };
        let t0 = Instant::now();
        let (done1, busy) = schedule(&hdd, None, t0, 1_000_000);
        assert_eq!(done1 - t0, Duration::from_millis(18));
        let (done2, busy) = schedule(&hdd, busy, t0, 1_000_000);
        assert_eq!(
            done2 - t0,
            Duration::from_millis(28),
            "queued behind the first"
        );
        assert_eq!(busy.unwrap() - t0, Duration::from_millis(20));
        let latency_only = Emulation {
            emulated_read_latency: Some(Duration::from_micros(80)),
            emulated_read_bandwidth: None,
        };
        let (done, busy) = schedule(&latency_only, None, t0, 1 << 30);
        assert_eq!((done - t0, busy), (Duration::from_micros(80), None));
        assert!(Emulator::new(Emulation::default()).is_none());
    }

    #[test]
    fn a_read_waits_at_least_the_emulated_time() {
        let e = Emulator::new(Emulation {
            emulated_read_latency: Some(Duration::from_millis(3)),
            emulated_read_bandwidth: Some(1_000_000),
        })
        .unwrap();
        let t0 = Instant::now();
        e.wait(2000);
        assert!(t0.elapsed() >= Duration::from_millis(5));
    }
}
