//! The configuration file (TOML): everything the flags hold, plus rule settings.

use std::path::{Path, PathBuf};

use anyhow::Context;
use audithound_analytics::RuleConfig;
use serde::Deserialize;

/// The configuration file. Flags override it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster name for sources that do not carry one.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Extra rule directories (added to the built-in pack).
    #[serde(default)]
    pub rule_dirs: Vec<PathBuf>,
    /// Largest event accepted, in bytes.
    #[serde(default)]
    pub max_event_bytes: Option<usize>,
    /// Rule parameters, exceptions and disabled rules.
    #[serde(default)]
    pub rules: RuleConfig,
    /// Where the sidecar keeps its capture store, findings and checkpoints.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Address of the health and metrics endpoint.
    #[serde(default)]
    pub listen: Option<String>,
    /// Audit logs to follow (files, directories or globs).
    #[serde(default)]
    pub audit_logs: Vec<PathBuf>,
    /// DNS logs to follow (CoreDNS, Zeek).
    #[serde(default)]
    pub dns_logs: Vec<PathBuf>,
    /// Network-flow logs to follow (Hubble, VPC flow logs).
    #[serde(default)]
    pub flow_logs: Vec<PathBuf>,
    /// Capture store retention.
    #[serde(default)]
    pub retention: Retention,
    /// Whether files seen for the first time are read from their start (default) or end.
    #[serde(default)]
    pub start_at_end: bool,
}

/// How long and how much the capture store keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Delete hours older than this (`7d`).
    #[serde(default = "default_max_age")]
    pub max_age: String,
    /// Delete the oldest hours beyond this many bytes per table (`20GiB`, `500MB`).
    #[serde(default)]
    pub max_bytes: Option<String>,
}

fn default_max_age() -> String {
    "7d".into()
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: default_max_age(),
            max_bytes: None,
        }
    }
}

/// Parses `500MB`, `20GiB`, `1048576`.
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("`{text}` is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" | "t" => 1 << 40,
        other => anyhow::bail!("unknown size unit `{other}` in `{text}`"),
    };
    Ok(n * mult)
}

impl Config {
    /// Reads a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file `{}`", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file `{}`", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn the_documented_example_config_parses() {
        let text = include_str!("../deploy/audithound.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert!(!config.audit_logs.is_empty());
        assert!(parse_bytes(config.retention.max_bytes.as_deref().unwrap()).is_ok());
    }
}
