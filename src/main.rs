//! The `audithound` command: argument parsing, configuration and wiring of the crates.
//!
//! Logic lives in the library crates (`ingest` reads and decodes, `analytics` judges); this binary
//! only turns command lines and config files into calls to them and reports the results.

/// mimalloc instead of glibc's allocator: decoding allocates and frees small strings and vectors
/// for every event, and the scan takes less time with it at the same peak memory (see README,
/// Performance). It is built without transparent huge pages, which keep much more memory
/// resident and spend CPU time clearing huge pages. Word-aligned requests take its unaligned
/// fast path (`alloc`).
#[global_allocator]
static GLOBAL: alloc::Allocator = alloc::Allocator;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h`, which the Rust bindings do not name
/// (the versions are pinned in Cargo.toml, and a test checks the number against the default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory that mimalloc frees goes back to the system at once rather than after a second, so
/// that peak memory stays the same however long the input (with the delay, a scan's peak
/// varies from run to run by as much as the memory it needs). `MIMALLOC_PURGE_DELAY`
/// (milliseconds) still chooses otherwise.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: setting an allocator option has no preconditions; mimalloc reads it when it next
    // purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

mod alloc;
mod backlog;
mod coalesce;
mod config;
mod demo;
mod output;
mod query;
mod rules_cmd;
mod scan;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Kubernetes audit-log security analytics.
#[derive(Parser, Debug)]
#[command(name = "audithound", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output formats of findings and rule listings.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object a line.
    Ndjson,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan captured audit logs and report findings.
    Scan(scan::ScanArgs),
    /// Run as a sidecar: follow audit logs, judge them live, keep captures and findings durable.
    Serve(serve::ServeArgs),
    /// Run SQL over the capture store or over raw log files.
    Query(query::QueryArgs),
    /// List, validate and test rules.
    Rules {
        #[command(subcommand)]
        command: rules_cmd::RulesCommand,
    },
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Query(args) => query::run(args),
        Command::Rules { command } => rules_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("audithound: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("AUDITHOUND_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colour only for a person at a terminal: a log file or a container's log keeps plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
}

/// Rule directories from the command line and the config file, in that order of precedence.
pub fn rule_dirs(cli: &[PathBuf], config: &config::Config) -> Vec<PathBuf> {
    let mut dirs = config.rule_dirs.clone();
    dirs.extend(cli.iter().cloned());
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set_at_start() {
        // mimalloc 3's default purge delay is 1000 ms (`options.c`); no other option has that
        // default, so this fails if the number stops naming the purge delay.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment chose the delay; nothing is set from code
        }
        // SAFETY: reading and setting allocator options has no preconditions.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000);
        return_freed_memory_at_once();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 0);
    }
}
