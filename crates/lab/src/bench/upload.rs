//! `upload`: files of several sizes to random nodes, one at a time; each read back from its
//! node and matched by sha256.

use std::time::Duration;

use super::stats::{mib_s, quantiles, ratio};
use super::{short_error, upload_new, BenchError, Ctx};
use crate::results::{UploadResult, UploadSize};

const LIMIT: Duration = Duration::from_secs(300);

pub async fn run(ctx: &mut Ctx) -> Result<UploadResult, BenchError> {
    let sizes = ctx.profile.upload_sizes.clone();
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    let bar = ctx.ui.bar(total as u64, "upload");
    let mut out = UploadResult::default();
    for (size, count) in sizes {
        let mut r = UploadSize {
            size_bytes: size,
            count,
            ..Default::default()
        };
        let mut busy = 0.0;
        let mut uploaded = 0u64;
        for _ in 0..count {
            let node = ctx.pick(ctx.cluster.len());
            let client = ctx.cluster.client(node).clone();
            bar.set_message(format!("{} on node {node}", human(size)));
            match upload_new(&client, node, ctx.seed(), size, LIMIT).await {
                Ok((stored, took)) => {
                    ctx.checks.uploads_acknowledged += 1;
                    busy += took.as_secs_f64();
                    uploaded += size;
                    r.latencies_ms.push(took.as_secs_f64() * 1000.0);
                    match client.get_local(&stored.cid, LIMIT).await {
                        Ok(f) if f.sha256 == stored.sha256 => {
                            r.verified += 1;
                            ctx.checks.uploads_verified += 1;
                        }
                        Ok(_) => {
                            ctx.checks.errors += 1;
                            out.errors
                                .push(format!("{}: read back different bytes", stored.cid));
                        }
                        Err(e) => {
                            ctx.checks.errors += 1;
                            out.errors.push(short_error(&e));
                        }
                    }
                }
                Err(e) => {
                    ctx.checks.errors += 1;
                    out.errors.push(short_error(&e));
                }
            }
            bar.inc(1);
        }
        r.latency = quantiles(&r.latencies_ms);
        r.throughput_mib_s = mib_s(uploaded, busy);
        r.ratio_to_sha256 = ratio(r.throughput_mib_s, ctx.baseline.sha256_mib_s);
        ctx.ui.say(format!(
            "upload {:>8}: p50 {:.1} ms, {:.0} MiB/s ({:.0} % of sha256), {}/{} verified",
            human(size),
            r.latency.p50,
            r.throughput_mib_s,
            r.ratio_to_sha256 * 100.0,
            r.verified,
            count
        ));
        out.sizes.push(r);
    }
    bar.finish_and_clear();
    Ok(out)
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
