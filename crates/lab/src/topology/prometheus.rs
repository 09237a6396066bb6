//! Prometheus's scrape configuration as the lab writes it, whichever cluster it scrapes: one
//! job, every node every 5 s (as in the seed), and on every series the labels the
//! dashboards and the visualizer group by: `node` (the index), `role` (`bootstrap` or
//! `node`) and `mode` (`altruistic` or `marketplace`). How targets are found (a file, a
//! static list, pod discovery) is each cluster's own choice, made in `cluster::prometheus`
//! and `deploy::prometheus`.

use serde::Serialize;

use super::Member;

pub const JOB: &str = "neverust";
/// The seed's interval; the dashboards' rate windows assume it.
pub const SCRAPE_INTERVAL: &str = "5s";
/// Below the interval, so a slow node never has two scrapes in flight.
pub const SCRAPE_TIMEOUT: &str = "4s";

#[derive(Serialize, Debug)]
pub struct Config {
    pub global: Global,
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Serialize, Debug)]
pub struct Global {
    pub scrape_interval: &'static str,
    pub evaluation_interval: &'static str,
}

#[derive(Serialize, Debug)]
pub struct ScrapeConfig {
    pub job_name: &'static str,
    pub metrics_path: &'static str,
    pub scrape_timeout: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<Relabel>,
}

#[derive(Serialize, Debug)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: Labels,
}

/// The labels every node's series carry.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Labels {
    pub node: String,
    pub role: &'static str,
    pub mode: &'static str,
}

impl Labels {
    pub fn of(member: &Member) -> Labels {
        Labels {
            node: member.index.to_string(),
            role: member.role(),
            mode: member.mode,
        }
    }
}

/// A file of `StaticConfig`s (as JSON) that Prometheus re-reads when it changes.
#[derive(Serialize, Debug)]
pub struct FileSd {
    pub files: Vec<String>,
    pub refresh_interval: &'static str,
}

#[derive(Serialize, Debug)]
pub struct KubernetesSd {
    pub role: &'static str,
    pub namespaces: Namespaces,
}

#[derive(Serialize, Debug)]
pub struct Namespaces {
    pub names: Vec<String>,
}

/// One relabeling step; Prometheus anchors `regex` at both ends.
#[derive(Serialize, Debug, Default)]
pub struct Relabel {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_label: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// The whole configuration around one scrape job.
pub fn config(scrape: ScrapeConfig) -> Config {
    Config {
        global: Global {
            scrape_interval: SCRAPE_INTERVAL,
            evaluation_interval: SCRAPE_INTERVAL,
        },
        scrape_configs: vec![scrape],
    }
}

/// The lab's job, with no targets yet.
pub fn job() -> ScrapeConfig {
    ScrapeConfig {
        job_name: JOB,
        metrics_path: "/metrics",
        scrape_timeout: SCRAPE_TIMEOUT,
        static_configs: Vec::new(),
        kubernetes_sd_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
    }
}
