//! `audithound scan`: captured logs in, findings out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use audithound_analytics::{EngineError, RuleEngine, RuleError, RulePack, reads};
use audithound_ingest::DecodeOptions;
use audithound_ingest::audit::{ScreenHandle, SetOnDrop};
use audithound_ingest::input::expand_paths;
use audithound_ingest::reader::{
    BadRecord, DecodedBatch, ReadError, ReadOptions, read_audit_inputs,
};
use audithound_models::{Catalog, Finding, Severity, TableKind};
use clap::Args;

use crate::Format;
use crate::coalesce::{Coalescer, Joined};
use crate::config::Config;
use crate::output;

/// Arguments of `audithound scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files, directories (every file under them), `.gz` files, or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Extra rule directories or files; a rule with a built-in rule's id replaces it.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Output format (default: table on a terminal, NDJSON otherwise).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Report only findings at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "info")]
    min_severity: Severity,
    /// Cluster name for records that do not carry one.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write every record that could not be decoded to this file (NDJSON with its position).
    #[arg(long, value_name = "FILE")]
    dead_letter: Option<PathBuf>,
    /// Largest event accepted, in bytes (default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    max_event_bytes: Option<usize>,
    /// Decoding threads (default: the number of cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Hand every event to the rules. By default the events that no rule's pre-screen admits
    /// are counted and left out while decoding; the findings are the same either way.
    #[arg(long)]
    no_screen: bool,
}

const SHOWN_BAD_RECORDS: usize = 5;
/// Reasons for refusing records that the summary lists, the most common first.
const SHOWN_REASONS: usize = 10;
/// Rows of screened batches joined before the rules see them. Fewer rows per run cost more per
/// row, but whatever is held when the input ends is judged after decoding, alone on one core;
/// this size balances the two on the benchmark log (`benches/README.md`).
const JOINED_ROWS: usize = 2048;
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// Runs a scan and prints findings to stdout and a summary to stderr.
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let config = Config::load(args.config.as_deref())?;
    let dirs = crate::rule_dirs(&args.rules, &config);
    // Rule files are read before any input, so that a broken one stops the scan at once, even
    // when the input is a pipe that has not sent a batch yet. Without their test cases the
    // built-in pack reads in milliseconds.
    let loading = Instant::now();
    let (pack, errors) = RulePack::load_to_run(&dirs, &Catalog::embedded());
    if !errors.is_empty() {
        return Err(rule_errors(
            errors.iter().map(ToString::to_string).collect(),
        ));
    }
    for w in pack.warnings() {
        eprintln!("audithound: rule warning: {w}");
    }
    tracing::debug!(
        ms = loading.elapsed().as_secs_f64() * 1e3,
        "rule files read"
    );
    // The rules compile on their own threads from here on, while the inputs are found and read
    // (and the columns to decode are worked out); decoders wait for the rules' screen, so that
    // every event is judged by it.
    let pack = Arc::new(pack);
    let screen = (!args.no_screen).then(ScreenHandle::new);
    let mut compiling = Some(std::thread::spawn({
        let rules = config.rules.clone();
        let pack = Arc::clone(&pack);
        // Decoders wait for the screen: whatever happens here, it is set.
        let publisher = screen.clone().map(SetOnDrop);
        move || {
            let compiled = compile_rules(&pack, &rules);
            if let Some(SetOnDrop(screen)) = &publisher {
                let ready = compiled
                    .as_ref()
                    .ok()
                    .filter(|(_, errors)| errors.is_empty());
                screen.set(ready.and_then(|(engine, _)| engine.decode_screen()));
            }
            compiled
        }
    }));
    let inputs = expand_paths(&args.paths)?;
    let total_bytes: u64 = inputs.iter().filter_map(|i| i.size_hint()).sum();
    let progress = progress_bar(total_bytes);
    // Only the columns that some rule names are decoded; findings show nothing else.
    let audit_columns = reads::pack_columns(&pack, &config.rules, TableKind::Audit);
    tracing::debug!(
        columns = ?audit_columns,
        "audit columns decoded (None: all)"
    );
    // Decoders leave out the events that no rule could read, once the rules have compiled.
    let mut options = ReadOptions {
        decode: DecodeOptions {
            screen,
            audit_columns: audit_columns.clone(),
            cluster: args.cluster.clone().or(config.cluster.clone()),
            max_event_bytes: args
                .max_event_bytes
                .or(config.max_event_bytes)
                .unwrap_or(audithound_ingest::DEFAULT_MAX_EVENT_BYTES),
        },
        ..ReadOptions::default()
    };
    if let Some(t) = args.threads {
        options.workers = t.max(1);
    }
    let mut dead_letter = args
        .dead_letter
        .as_ref()
        .map(|p| {
            File::create(p)
                .map(BufWriter::new)
                .with_context(|| format!("cannot create `{}`", p.display()))
        })
        .transpose()?;

    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let mut directory = audithound_analytics::enrich::IpDirectory::new();
    let mut shown_bad: Vec<BadRecord> = Vec::new();
    let mut engine_errors = 0u64;
    let on_progress = |bytes: u64| {
        if let Some(p) = &progress {
            p.set_position(bytes);
        }
    };
    let mut engine: Option<RuleEngine> = None;
    // Screened batches are small; the rules see them joined (their cost is partly per batch).
    let mut coalescer = Coalescer::new(JOINED_ROWS);
    let mut hand_over = |joined: Joined,
                         engine: &mut Option<RuleEngine>,
                         compiling: &mut Option<Compiling>|
     -> anyhow::Result<()> {
        if joined.is_empty() {
            return Ok(());
        }
        let engine = ready(compiling, engine, audit_columns.as_ref())?;
        if let Some((table, batch)) = joined.batch {
            let batch = directory.enrich(table, batch);
            let judging = Instant::now();
            let outcome = engine.process(table, &batch);
            tracing::trace!(
                rows = batch.num_rows(),
                at_ms = started.elapsed().as_secs_f64() * 1e3,
                ms = judging.elapsed().as_secs_f64() * 1e3,
                "rules ran on a batch"
            );
            for e in &outcome.errors {
                engine_errors += 1;
                tracing::error!("{e}");
            }
            for f in outcome.findings {
                findings.insert(f.id.clone(), f);
            }
        }
        if let Some(latest) = joined
            .latest_screened
            .and_then(chrono::DateTime::from_timestamp_micros)
        {
            engine.advance_time(latest);
        }
        Ok(())
    };
    let stats = read_audit_inputs(
        &inputs,
        &options,
        &on_progress,
        |item| -> anyhow::Result<()> {
            match item {
                DecodedBatch::Batch(table, batch) => {
                    for joined in coalescer
                        .push(table, batch)
                        .context("joining decoded batches")?
                    {
                        hand_over(joined, &mut engine, &mut compiling)?;
                    }
                }
                DecodedBatch::ScreenedOut { latest_ts, .. } => {
                    let latest_screened = coalescer.screened_out(latest_ts);
                    hand_over(
                        Joined {
                            batch: None,
                            latest_screened,
                        },
                        &mut engine,
                        &mut compiling,
                    )?;
                }
                DecodedBatch::Bad(bad) => {
                    if let Some(w) = dead_letter.as_mut() {
                        let line = bad.dead_letter().to_json_line();
                        writeln!(w, "{line}").context("writing the dead-letter file")?;
                    }
                    if shown_bad.len() < SHOWN_BAD_RECORDS {
                        shown_bad.push(bad);
                    }
                }
            }
            Ok(())
        },
    );
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "input read and decoded"
    );
    let stats = match stats {
        Ok(s) => s,
        Err(ReadError::Input(e)) => return Err(e.into()),
        Err(ReadError::Sink(e)) => return Err(e),
    };
    hand_over(
        coalescer.take().context("joining decoded batches")?,
        &mut engine,
        &mut compiling,
    )?;
    let engine = ready(&mut compiling, &mut engine, audit_columns.as_ref())?;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "the rules judged the last rows"
    );
    tracing::debug!(
        events = stats.events,
        screened_out = stats.screened_out,
        "events that no rule could read were left out while decoding"
    );
    for cost in engine.rule_costs() {
        tracing::debug!(
            rule = %cost.rule_id,
            ms = cost.time.as_secs_f64() * 1e3,
            batches = cost.runs,
            "rule cost"
        );
    }
    if let Some(mut w) = dead_letter {
        w.flush().context("writing the dead-letter file")?;
    }

    let mut findings: Vec<Finding> = findings
        .into_values()
        .filter(|f| f.severity >= args.min_severity)
        .collect();
    findings.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.rule_id.cmp(&b.rule_id))
            .then_with(|| a.id.cmp(&b.id))
    });

    let stdout = std::io::stdout();
    let format = args.format.unwrap_or(if stdout.is_terminal() {
        Format::Table
    } else {
        Format::Ndjson
    });
    let mut out = BufWriter::new(stdout.lock());
    output::write_findings(&mut out, &findings, format)?;
    out.flush().context("writing findings")?;

    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "audithound: {} events from {} input(s) ({:.1} MB) in {:.2}s with {} rules; {} malformed, {} skipped",
        stats.events,
        stats.inputs,
        stats.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        engine.rule_count(),
        stats.malformed,
        stats.skipped,
    );
    // Why records were refused, most common first: a new shape of input shows here at once.
    let mut reasons: Vec<(&String, &u64)> = stats.refused.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (reason, n) in reasons.iter().take(SHOWN_REASONS) {
        let _ = writeln!(err, "  refused {n}: {reason}");
    }
    if reasons.len() > SHOWN_REASONS {
        let _ = writeln!(
            err,
            "  refused for {} other reasons",
            reasons.len() - SHOWN_REASONS
        );
    }
    if stats.untimed > 0 {
        let _ = writeln!(
            err,
            "  {} event(s) had no timestamp of their own: judged at the time of the record around them or of the event before them, else of reading",
            stats.untimed
        );
    }
    if !stats.skipped_inputs.is_empty() {
        let _ = writeln!(
            err,
            "  skipped {} input(s) that are not JSON logs: {}",
            stats.skipped_inputs.len(),
            stats.skipped_inputs.join(", ")
        );
    }
    for bad in &shown_bad {
        let _ = writeln!(
            err,
            "  malformed: {}:{}: {}",
            bad.source, bad.line, bad.error
        );
    }
    if stats.malformed as usize > shown_bad.len() {
        let hint = if args.dead_letter.is_some() {
            ""
        } else {
            " (use --dead-letter FILE to keep them all)"
        };
        let _ = writeln!(
            err,
            "  ... and {} more malformed{hint}",
            stats.malformed as usize - shown_bad.len()
        );
    }
    let _ = writeln!(
        err,
        "audithound: findings: {}",
        output::severity_summary(&findings)
    );
    if engine_errors > 0 {
        let _ = writeln!(
            err,
            "audithound: {engine_errors} rule evaluation(s) failed (see the log above)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The rule engine being compiled on its own thread, with the rules that did not compile.
type Compiling = std::thread::JoinHandle<Result<(RuleEngine, Vec<RuleError>), EngineError>>;

/// Compiles every enabled rule of `pack`.
fn compile_rules(
    pack: &RulePack,
    config: &audithound_analytics::RuleConfig,
) -> Result<(RuleEngine, Vec<RuleError>), EngineError> {
    let started = Instant::now();
    let compiled = RuleEngine::new_deferred(pack, config)?;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        rules = compiled.0.rule_count(),
        "rules compiled"
    );
    Ok(compiled)
}

/// The rule engine, once its compilation (started on another thread) has finished; an error
/// naming every rule that did not compile.
/// `decoded` is the set of audit columns the decoder fills, if not all: a rule that reads
/// another one stops the scan rather than miss what that column holds.
fn ready<'a>(
    compiling: &mut Option<Compiling>,
    engine: &'a mut Option<RuleEngine>,
    decoded: Option<&BTreeSet<String>>,
) -> anyhow::Result<&'a mut RuleEngine> {
    if let Some(handle) = compiling.take() {
        let waiting = Instant::now();
        let (compiled, errors) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the rule compiler crashed"))?
            .context("starting the rule engine")?;
        tracing::debug!(
            ms = waiting.elapsed().as_secs_f64() * 1e3,
            "the first batch waited for the rules"
        );
        if !errors.is_empty() {
            return Err(rule_errors(
                errors.iter().map(ToString::to_string).collect(),
            ));
        }
        if let Some((rule, column)) =
            decoded.and_then(|d| compiled.column_missing_from(TableKind::Audit, d))
        {
            anyhow::bail!(
                "rule `{rule}` reads column `{column}` without naming it, which the scan did not decode (a bug: please report it with the rule)"
            );
        }
        *engine = Some(compiled);
    }
    engine
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the rule engine did not start"))
}

/// Prints every rule error and returns the error that ends the scan.
fn rule_errors(errors: Vec<String>) -> anyhow::Error {
    for e in &errors {
        eprintln!("audithound: rule error: {e}");
    }
    anyhow::anyhow!(
        "{} rule(s) could not be loaded; fix them or remove them from --rules",
        errors.len()
    )
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} scanning [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}
