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
