//! `interop`: a mixed cluster's Archivist nodes measured beside its Neverust nodes, in the
//! same run on the same machine, so the two can be compared as ratios.
//!
//! For each dataset size, fresh files are uploaded to a node of each kind, and each is read
//! through a node of each kind that does not hold it (`/data/{cid}/network/stream`): all
//! four directions (Neverust → Neverust, Neverust → Archivist, Archivist → Neverust,
//! Archivist → Archivist), every byte checked against the uploaded file's sha256. Idle CPU
//! and RSS per kind come from the idle window every run starts with. A cluster without
//! Archivist nodes skips the scenario and says so.

use std::time::Duration;

use super::stats::{mib_s, quantiles};
use super::upload::human;
use super::{short_error, upload_new, BenchError, Ctx};
use crate::results::{InteropKind, InteropResult, InteropSize, InteropTransfer};
use crate::sampler::summarize;
use crate::topology::cluster_file::Implementation;

const LIMIT: Duration = Duration::from_secs(600);
const KINDS: [Implementation; 2] = [Implementation::Neverust, Implementation::Archivist];

pub async fn run(ctx: &mut Ctx) -> Result<InteropResult, BenchError> {
    let neverust = ctx.cluster.indices_of(Implementation::Neverust);
    let archivist = ctx.cluster.indices_of(Implementation::Archivist);
    let of = |kind| match kind {
        Implementation::Neverust => neverust.clone(),
        Implementation::Archivist => archivist.clone(),
    };
    if archivist.is_empty() {
        let why = "the cluster has no Archivist nodes (start it with --archivist-bin PATH)";
        ctx.ui.say(format!("interop: skipped: {why}"));
        return Ok(InteropResult {
            skipped: Some(why.into()),
            ..Default::default()
        });
    }
    // A reader of its own kind must not be the uploader.
    if neverust.len() < 2 || archivist.len() < 2 {
        return Err(BenchError::TooFewOfAKind {
            neverust: neverust.len(),
            archivist: archivist.len(),
        });
    }
    let mut out = InteropResult::default();
    let series = ctx.sampler.series();
    for kind in KINDS {
        let nodes = of(kind);
        let mine: Vec<_> = series
            .iter()
            .filter(|s| nodes.contains(&s.index))
            .cloned()
            .collect();
        out.kinds.push(InteropKind {
            implementation: kind.as_str().into(),
            nodes: nodes.len(),
            idle: summarize(&mine, ctx.idle_span.0, ctx.idle_span.1),
        });
    }
    let sizes = ctx.profile.interop_sizes.clone();
    let rounds = ctx.profile.interop_rounds;
    let steps = sizes.len() * rounds * KINDS.len() * KINDS.len();
    let bar = ctx.ui.bar(steps as u64, "interop");
    for size in sizes {
        let mut fig = InteropSize {
            size_bytes: size,
            ..Default::default()
        };
        for from in KINDS {
            let mut upload_ms = Vec::new();
            let mut uploaded = 0u64;
            for to in KINDS {
                let mut t = InteropTransfer {
                    from: from.as_str().into(),
                    to: to.as_str().into(),
                    ..Default::default()
                };
                let mut moved = 0u64;
                let mut busy = 0.0;
                for _ in 0..rounds {
                    let sources = of(from);
                    let origin = sources[ctx.pick(sources.len())];
                    let readers: Vec<usize> = of(to).into_iter().filter(|&i| i != origin).collect();
                    let reader = readers[ctx.pick(readers.len())];
                    bar.set_message(format!(
                        "{} from {} node {origin} to {} node {reader}",
                        human(size),
                        from.as_str(),
                        to.as_str()
                    ));
                    let client = ctx.cluster.client(origin).clone();
                    let stored = match upload_new(&client, origin, ctx.seed(), size, LIMIT).await {
                        Ok((stored, took)) => {
                            ctx.checks.uploads_acknowledged += 1;
                            upload_ms.push(took.as_secs_f64() * 1000.0);
                            uploaded += size;
                            stored
                        }
                        Err(e) => {
                            ctx.checks.errors += 1;
                            out.errors.push(short_error(&e));
                            bar.inc(1);
                            continue;
                        }
                    };
                    t.count += 1;
                    match ctx
                        .cluster
                        .client(reader)
                        .get_network(&stored.cid, LIMIT)
                        .await
                    {
                        Ok(f) if f.sha256 == stored.sha256 && f.bytes == size => {
                            t.verified += 1;
                            ctx.checks.downloads_verified += 1;
                            t.latencies_ms.push(f.total.as_secs_f64() * 1000.0);
                            moved += size;
                            busy += f.total.as_secs_f64();
                        }
                        Ok(f) => {
                            ctx.checks.errors += 1;
                            out.errors.push(format!(
                                "{} through node {reader}: {} bytes that differ from the upload",
                                stored.cid, f.bytes
                            ));
                        }
                        Err(e) => {
                            ctx.checks.errors += 1;
                            out.errors.push(format!(
                                "{} through node {reader}: {}",
                                stored.cid,
                                short_error(&e)
                            ));
                        }
                    }
                    bar.inc(1);
                }
                t.latency = quantiles(&t.latencies_ms);
                t.throughput_mib_s = mib_s(moved, busy);
                ctx.ui.say(format!(
                    "interop {:>8} {:>9} -> {:<9}: p50 {:.1} ms, {:.0} MiB/s, {}/{} byte-identical",
                    human(size),
                    t.from,
                    t.to,
                    t.latency.p50,
                    t.throughput_mib_s,
                    t.verified,
                    t.count
                ));
                fig.transfers.push(t);
            }
            fig.uploads.push(crate::results::InteropUpload {
                implementation: from.as_str().into(),
                throughput_mib_s: mib_s(uploaded, upload_ms.iter().sum::<f64>() / 1000.0),
                latency: quantiles(&upload_ms),
            });
        }
        out.sizes.push(fig);
    }
    bar.finish_and_clear();
    Ok(out)
}
