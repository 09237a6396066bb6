//! Reading the Prometheus text format the nodes export: just enough to sum counters and
//! read histogram buckets.

/// One sample line: name, labels (in order of appearance) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let labels = parse_labels(&line[open + 1..close]);
            let value = line[close + 1..].split_whitespace().next()?;
            ((line[..open].to_string(), labels), value)
        }
        None => {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            ((name.to_string(), Vec::new()), parts.next()?)
        }
    };
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: head.0,
        labels: head.1,
        value,
    })
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(body) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = body.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key, value));
        rest = &body[end..];
    }
    out
}

/// Sum of every series of `name` (whatever their labels).
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Sum of the series of `name` whose label `key` is `value`.
pub fn sum_where(samples: &[Sample], name: &str, key: &str, value: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.label(key) == Some(value))
        .map(|s| s.value)
        .sum()
}

/// Cumulative buckets `(le, count)` of histogram `name`, summed over its label sets, in
/// increasing `le`.
pub fn buckets(samples: &[Sample], name: &str) -> Vec<(f64, f64)> {
    buckets_of(samples, name, |_| true)
}

/// [`buckets`] of the series whose label `key` is `value` only.
pub fn buckets_where(samples: &[Sample], name: &str, key: &str, value: &str) -> Vec<(f64, f64)> {
    buckets_of(samples, name, |s| s.label(key) == Some(value))
}

fn buckets_of(samples: &[Sample], name: &str, keep: impl Fn(&Sample) -> bool) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut out: Vec<(f64, f64)> = Vec::new();
    for s in samples.iter().filter(|s| s.name == bucket && keep(s)) {
        let Some(le) = s.label("le").and_then(|v| match v {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse().ok(),
        }) else {
            continue;
        };
        match out.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += s.value,
            None => out.push((le, s.value)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP neverust_block_count Blocks stored.
# TYPE neverust_block_count gauge
neverust_block_count 12
neverust_blocks_received_total{mode="altruistic"} 3
neverust_blocks_received_total{mode="marketplace"} 4
neverust_block_fetch_latency_seconds_bucket{le="0.001"} 5
neverust_block_fetch_latency_seconds_bucket{le="0.01"} 9
neverust_block_fetch_latency_seconds_bucket{le="+Inf"} 10
neverust_api_requests_total{route="/data/{cid}",status="200",odd="a\"b,c=d"} 2
neverust_tier_hits_total{tier="memory0",emulated="false"} 30
neverust_tier_hits_total{tier="hdd1",emulated="true"} 5
neverust_tier_read_latency_seconds_bucket{tier="memory0",emulated="false",le="0.001"} 30
neverust_tier_read_latency_seconds_bucket{tier="memory0",emulated="false",le="+Inf"} 30
neverust_tier_read_latency_seconds_bucket{tier="hdd1",emulated="true",le="0.001"} 0
neverust_tier_read_latency_seconds_bucket{tier="hdd1",emulated="true",le="+Inf"} 5
"#;

    #[test]
    fn sums_labels_and_buckets() {
        let s = parse(TEXT);
        assert_eq!(sum(&s, "neverust_block_count"), 12.0);
        assert_eq!(sum(&s, "neverust_blocks_received_total"), 7.0);
        let b = buckets(&s, "neverust_block_fetch_latency_seconds");
        assert_eq!(b, vec![(0.001, 5.0), (0.01, 9.0), (f64::INFINITY, 10.0)]);
        let api = s
            .iter()
            .find(|x| x.name == "neverust_api_requests_total")
            .unwrap();
        assert_eq!(api.labels[0], ("route".into(), "/data/{cid}".into()));
        assert_eq!(api.labels[2], ("odd".into(), "a\"b,c=d".into()));
        assert_eq!(api.value, 2.0);
        assert_eq!(
            sum_where(&s, "neverust_tier_hits_total", "tier", "hdd1"),
            5.0
        );
        assert_eq!(
            buckets_where(&s, "neverust_tier_read_latency_seconds", "tier", "hdd1"),
            vec![(0.001, 0.0), (f64::INFINITY, 5.0)]
        );
        assert_eq!(
            buckets(&s, "neverust_tier_read_latency_seconds"),
            vec![(0.001, 30.0), (f64::INFINITY, 35.0)]
        );
    }
}
