//! `audithound serve`: the sidecar. Follows the audit log as it is written, judges every batch,
//! and keeps the capture store, the findings and the checkpoints durable.
//!
//! Per batch, in this order: rules, findings store (upsert), capture store (Parquet part named
//! after the source range), dead letters, checkpoint. A crash at any point replays from the last
//! checkpoint: parts written beyond it are rolled back at startup and written again, findings
//! merge by their stable ids, so every line is stored once and every finding exists once.
//!
//! Rules and findings run on one thread, the capture store and checkpoints on another (the
//! persister), in the same order. A part or checkpoint `fsync` that waits for the kernel to write
//! back other files' dirty pages (seconds, on a busy disk: ext4 commits the apiserver's freshly
//! written log before it) then delays only the persister, not the findings. The queue between
//! them is bounded by the bytes it holds ([`PERSIST_BACKLOG_BYTES`]), so a persister that falls
//! further behind slows reading instead of growing memory.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use audithound_analytics::store::{FindingStore, WalCheckpointer};
use audithound_analytics::{RuleEngine, RulePack};
use audithound_api::Metrics;
use audithound_ingest::capture::{CaptureStore, PartName};
use audithound_ingest::tail::follower::FollowItem;
use audithound_ingest::tail::{CheckpointStore, FileId, TailEvent, Tailer, TailerOptions};
use audithound_ingest::{AuditDecoder, DeadLetter, DecodeError, DecodeOptions};
use audithound_models::{Catalog, Finding, TableKind};
use clap::Args;

use crate::backlog::Backlog;
use crate::config::{Config, parse_bytes};

/// Arguments of `audithound serve`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Audit log to follow: a file, a directory (its *.log files) or a glob. Repeatable.
    #[arg(long = "audit-log", value_name = "PATH")]
    pub audit_logs: Vec<PathBuf>,
    /// DNS log to follow (CoreDNS, Zeek dns.log, Hubble DNS): file, directory or glob. Repeatable.
    #[arg(long = "dns-log", value_name = "PATH")]
    pub dns_logs: Vec<PathBuf>,
    /// Network-flow log to follow (Hubble, VPC flow logs): file, directory or glob. Repeatable.
    #[arg(long = "flow-log", value_name = "PATH")]
    pub flow_logs: Vec<PathBuf>,
    /// Data directory (capture store, findings, checkpoints). Default ./audithound-data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the health and metrics endpoint. Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Extra rule directories.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Cluster name for records that do not carry one.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Replay the bundled attack scenario into a temporary log file as a live stream.
    #[arg(long)]
    pub demo: bool,
}

/// Everything the pipeline needs, resolved from flags, config and defaults.
pub struct Settings {
    pub audit_logs: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: Option<String>,
    pub config: Config,
    pub rule_dirs: Vec<PathBuf>,
    pub max_age_hours: Option<i64>,
    pub max_bytes: Option<u64>,
    /// Print each new finding to stdout.
    pub print_findings: bool,
}

const QUEUE_DEPTH: usize = 4;
/// Bytes of judged batches that may wait for the persister (Arrow memory). A stalled `fsync` of
/// 2 s at 50,000 events/s holds about 130 MB; at 10,000 events/s this covers ten times as long.
const PERSIST_BACKLOG_BYTES: usize = 256 << 20;
/// Where kubeadm-style control planes write the audit log (`--audit-log-path`).
const DEFAULT_AUDIT_LOG: &str = "/var/log/kubernetes/audit/audit.log";
const IDLE_POLL: Duration = Duration::from_millis(200);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

/// Runs the sidecar until SIGTERM/SIGINT (or, in demo mode, until the scenario is replayed).
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.demo {
        return crate::demo::run(args);
    }
    let settings = resolve(&args)?;
    let stop = Arc::new(AtomicBool::new(false));
    install_signal_handlers(Arc::clone(&stop))?;
    let metrics = Arc::new(Metrics::default());
    run_pipeline(settings, stop, metrics, None)
}

/// Combines flags, config file and defaults.
pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
    let mut config = Config::load(args.config.as_deref())?;
    if args.cluster.is_some() {
        config.cluster = args.cluster.clone();
    }
    let audit_logs = if args.audit_logs.is_empty() {
        config.audit_logs.clone()
    } else {
        args.audit_logs.clone()
    };
    let mut audit_logs = audit_logs;
    for paths in [
        &config.dns_logs,
        &config.flow_logs,
        &args.dns_logs,
        &args.flow_logs,
    ] {
        audit_logs.extend(paths.iter().cloned());
    }
    if audit_logs.is_empty() {
        tracing::info!(
            "no log given: following the API server's usual audit log path {DEFAULT_AUDIT_LOG}"
        );
        audit_logs.push(PathBuf::from(DEFAULT_AUDIT_LOG));
    }
    let max_age_hours = Some(
        audithound_models::rule::parse_duration(&config.retention.max_age)
            .context("retention.max_age")?
            .as_secs() as i64
            / 3600,
    );
    let max_bytes = config
        .retention
        .max_bytes
        .as_deref()
        .map(parse_bytes)
        .transpose()
        .context("retention.max_bytes")?;
    Ok(Settings {
        audit_logs,
        data_dir: args
            .data_dir
            .clone()
            .or(config.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("audithound-data")),
        listen: args
            .listen
            .clone()
            .or(config.listen.clone())
            .or_else(|| Some("127.0.0.1:8080".into())),
        rule_dirs: crate::rule_dirs(&args.rules, &config),
        max_age_hours,
        max_bytes,
        print_findings: true,
        config,
    })
}

/// Sets `stop` on SIGTERM or SIGINT.
pub fn install_signal_handlers(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: flushing and checkpointing"),
                _ = term.recv() => tracing::info!("SIGTERM: flushing and checkpointing"),
            }
            stop.store(true, Ordering::SeqCst);
        });
    })?;
    Ok(())
}

/// One decoded chunk of a followed file, on its way to the rules and the stores.
struct Work {
    id: FileId,
    path: PathBuf,
    start: u64,
    end: u64,
    batches: Vec<(TableKind, audithound_ingest::RecordBatch)>,
    dead: Vec<DeadLetter>,
}

impl Work {
    /// Memory its batches and dead letters hold, which the persister's backlog counts.
    fn bytes(&self) -> usize {
        let batches: usize = self
            .batches
            .iter()
            .map(|(_, b)| b.get_array_memory_size())
            .sum();
        batches + self.dead.iter().map(DeadLetter::heap_bytes).sum::<usize>()
    }
}

/// Runs the pipeline until `stop` is set and everything read has been processed.
/// `done` (demo mode) is called after every batch with the checkpoint store.
pub fn run_pipeline(
    settings: Settings,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    done: Option<&dyn Fn(&CheckpointStore) -> bool>,
) -> anyhow::Result<ExitCode> {
    let data = &settings.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the data directory `{}`", data.display()))?;
    let capture = CaptureStore::open(data.join("capture"), true)?;
    let checkpoints =
        CheckpointStore::open(data.join("checkpoints.json")).context("reading checkpoints")?;
    recover(&capture, &checkpoints)?;
    let findings_path = data.join("findings.db");
    let mut findings = FindingStore::open(&findings_path).context("opening the findings store")?;
    findings
        .defer_checkpoints()
        .context("opening the findings store")?;
    let wal = WalCheckpointer::open(&findings_path).context("opening the findings store")?;

    let catalog = Catalog::embedded();
    let (pack, errors) = RulePack::load_to_run(&settings.rule_dirs, &catalog);
    for e in &errors {
        tracing::error!("rule refused: {e}");
    }
    let (mut engine, compile_errors) =
        RuleEngine::new(&pack, &settings.config.rules).context("starting the rule engine")?;
    for e in &compile_errors {
        tracing::error!("rule refused: {e}");
    }
    if let Some(latest) = findings.latest_seen()?
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(&latest)
    {
        let since = (t - chrono::Duration::days(1)).to_rfc3339();
        engine.restore(findings.recent(&since)?);
    }
    tracing::info!(
        rules = engine.rule_count(),
        data_dir = %data.display(),
        logs = ?settings.audit_logs,
        "audithound sidecar started"
    );
    if let Some(addr) = &settings.listen {
        start_http(addr, Arc::clone(&metrics))?;
    }
    metrics.running.store(true, Ordering::SeqCst);

    let start_offsets: BTreeMap<FileId, u64> = checkpoints
        .all()
        .map(|c| (c.id.clone(), c.offset))
        .collect();
    let tailer_options = TailerOptions {
        paths: settings.audit_logs.clone(),
        max_line: settings
            .config
            .max_event_bytes
            .unwrap_or(audithound_ingest::DEFAULT_MAX_EVENT_BYTES),
        from_beginning: !settings.config.start_at_end,
        ..TailerOptions::default()
    };
    let decode_options = DecodeOptions {
        cluster: settings.config.cluster.clone(),
        max_event_bytes: settings
            .config
            .max_event_bytes
            .unwrap_or(audithound_ingest::DEFAULT_MAX_EVENT_BYTES),
        // The capture store keeps every column and every event for forensics.
        audit_columns: None,
        screen: None,
    };
    let (tx, rx) = sync_channel::<Work>(QUEUE_DEPTH);
    let reader_stop = Arc::clone(&stop);
    let reader = std::thread::Builder::new()
        .name("tailer".into())
        .spawn(move || {
            read_loop(
                tailer_options,
                decode_options,
                start_offsets,
                tx,
                reader_stop,
            )
        })?;

    let checkpoints = Mutex::new(checkpoints);
    let backlog = Backlog::<Work>::new(PERSIST_BACKLOG_BYTES);
    let (result, persisted) = std::thread::scope(|scope| {
        let persister = std::thread::Builder::new()
            .name("persister".into())
            .spawn_scoped(scope, {
                // The checkpointer's connection moves to the persister; the rest is shared.
                let (backlog, capture, checkpoints, metrics, settings) =
                    (&backlog, &capture, &checkpoints, &metrics, &settings);
                move || {
                    let persisted =
                        persist_loop(backlog, capture, checkpoints, &wal, metrics, settings);
                    // On an error, the judging thread must not wait for room that never comes.
                    backlog.close();
                    persisted
                }
            });
        let persister = match persister {
            Ok(p) => p,
            Err(e) => return (Err(e.into()), Ok(())),
        };
        let result = process_loop(
            &rx,
            &backlog,
            &mut engine,
            &mut findings,
            &checkpoints,
            &metrics,
            &settings,
            done,
            &stop,
        );
        stop.store(true, Ordering::SeqCst);
        // What was judged is made durable before the process stops.
        backlog.close();
        let persisted = persister
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the persister thread panicked")));
        (result, persisted)
    });
    // Drain what the reader already sent, so nothing read is left unprocessed.
    drop(rx);
    let _ = reader.join();
    metrics.running.store(false, Ordering::SeqCst);
    lock(&checkpoints)?
        .persist()
        .context("writing checkpoints")?;
    persisted?;
    result?;
    tracing::info!(
        events = metrics.events.load(Ordering::Relaxed),
        findings = findings.count().unwrap_or(0),
        "audithound sidecar stopped; positions checkpointed"
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes capture parts and dead letters written beyond the checkpoints by a run that crashed.
fn recover(capture: &CaptureStore, checkpoints: &CheckpointStore) -> anyhow::Result<()> {
    let offset_of = |source: &str| {
        checkpoints
            .all()
            .find(|c| c.id.short() == source)
            .map_or(0, |c| c.offset)
    };
    for table in ["audit", "dns", "flow", "dead_letter"] {
        for source in capture.sources(table) {
            let removed = capture.roll_back(table, &source, offset_of(&source))?;
            if removed > 0 {
                tracing::info!(
                    table,
                    source,
                    removed,
                    "rolled back parts written after the last checkpoint; they will be replayed"
                );
            }
        }
    }
    Ok(())
}

fn read_loop(
    options: TailerOptions,
    decode: DecodeOptions,
    start: BTreeMap<FileId, u64>,
    tx: SyncSender<Work>,
    stop: Arc<AtomicBool>,
) {
    let max_line = options.max_line;
    let mut tailer = Tailer::new(options);
    let mut decoder = AuditDecoder::new(decode);
    let mut file_headers: std::collections::HashMap<FileId, Vec<Vec<u8>>> =
        std::collections::HashMap::new();
    let start_offset = |id: &FileId| start.get(id).copied();
    let mut refusals = Refusals::default();
    while !stop.load(Ordering::SeqCst) {
        let events = tailer.poll(&start_offset);
        let idle = events.is_empty();
        for event in events {
            let work = match event {
                TailEvent::Problem { path, message } => {
                    tracing::warn!(path = %path.display(), "{message}");
                    continue;
                }
                TailEvent::Item(FollowItem::Lines(chunk)) => {
                    let headers = file_headers
                        .entry(chunk.id.clone())
                        .or_insert_with(|| read_headers(&chunk.path));
                    let (batches, dead) = decode_chunk(
                        &mut decoder,
                        headers,
                        &chunk.data,
                        &chunk.path,
                        chunk.start,
                        &mut refusals,
                    );
                    Work {
                        id: chunk.id,
                        path: chunk.path,
                        start: chunk.start,
                        end: chunk.end,
                        batches,
                        dead,
                    }
                }
                TailEvent::Item(FollowItem::Oversized(o)) => {
                    let oversized = DecodeError::Oversized {
                        size: usize::try_from(o.size).unwrap_or(usize::MAX),
                        limit: max_line,
                    };
                    let dead = vec![DeadLetter::refused(
                        o.path.display().to_string(),
                        o.offset,
                        &oversized,
                        &[],
                    )];
                    Work {
                        id: o.id,
                        path: o.path,
                        start: o.offset,
                        end: o.offset + o.size + 1,
                        batches: Vec::new(),
                        dead,
                    }
                }
            };
            // Blocks while the processing side is busy: backpressure instead of buffering.
            if tx.send(work).is_err() {
                return;
            }
        }
        if idle {
            tailer.wait(IDLE_POLL);
        }
    }
}

/// The header lines at the start of a file (Zeek `#fields`, VPC flow log header), which say how
/// its later lines are read: reading resumes mid-file after a restart.
fn read_headers(path: &Path) -> Vec<Vec<u8>> {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .split(b'\n')
        .take(64)
        .map_while(Result::ok)
        .filter(|l| audithound_ingest::audit::is_header_line(l))
        .collect()
}

/// What the sidecar refused and what it judged without a timestamp of its own, so that the log
/// says at once why a new shape of input yields nothing: the first record of each reason is
/// logged as a warning, and the counts when the sidecar stops.
#[derive(Default)]
struct Refusals {
    by_reason: BTreeMap<String, u64>,
    untimed: u64,
}

impl Refusals {
    fn refused(&mut self, reason: String, path: &Path, offset: u64) {
        if !self.by_reason.contains_key(&reason) {
            tracing::warn!(file = %path.display(), offset, reason = %reason, "records refused (kept as dead letters), the first of them here");
        }
        *self.by_reason.entry(reason).or_default() += 1;
    }

    fn untimed(&mut self, events: u64, path: &Path) {
        if events > 0 && self.untimed == 0 {
            tracing::warn!(file = %path.display(), "events without a timestamp of their own: judged at the time of the record around them or of the event before them (else of reading)");
        }
        self.untimed += events;
    }
}

impl Drop for Refusals {
    fn drop(&mut self) {
        for (reason, n) in &self.by_reason {
            tracing::info!(records = n, reason = %reason, "refused while running");
        }
        if self.untimed > 0 {
            tracing::info!(
                events = self.untimed,
                "events judged without a timestamp of their own"
            );
        }
    }
}

/// Decodes complete lines; records that fail become dead letters with their position and the
/// reason they were refused.
fn decode_chunk(
    decoder: &mut AuditDecoder,
    headers: &mut Vec<Vec<u8>>,
    data: &[u8],
    path: &Path,
    start: u64,
    refusals: &mut Refusals,
) -> (
    Vec<(TableKind, audithound_ingest::RecordBatch)>,
    Vec<DeadLetter>,
) {
    let mut dead = Vec::new();
    let mut offset = start;
    decoder.reset_file_state();
    for h in headers.iter() {
        decoder.decode(h);
    }
    for line in data.split_inclusive(|b| *b == b'\n') {
        let trimmed = line.trim_ascii_end();
        if audithound_ingest::audit::is_header_line(trimmed)
            && !headers.iter().any(|h| h.as_slice() == trimmed)
        {
            headers.push(trimmed.to_vec());
        }
        let outcome = decoder.decode(line);
        refusals.untimed(outcome.untimed, path);
        for e in outcome.errors {
            let letter = DeadLetter::refused(path.display().to_string(), offset, &e, line);
            refusals.refused(letter.reason.clone(), path, offset);
            dead.push(letter);
        }
        offset += line.len() as u64;
    }
    let batches = match decoder.flush() {
        Ok(b) => b,
        Err(e) => {
            let error = DecodeError::BatchAssembly(e.to_string());
            dead.push(DeadLetter::refused(
                path.display().to_string(),
                start,
                &error,
                &[],
            ));
            Vec::new()
        }
    };
    (batches, dead)
}

/// The checkpoint store, shared by the persister (which advances it) and the demo's end check.
fn lock(checkpoints: &Mutex<CheckpointStore>) -> anyhow::Result<MutexGuard<'_, CheckpointStore>> {
    checkpoints
        .lock()
        .map_err(|_| anyhow::anyhow!("the checkpoint store was poisoned by a panic"))
}

/// Judges each unit of work, stores its findings, and hands it to the persister.
#[allow(clippy::too_many_arguments)]
fn process_loop(
    rx: &Receiver<Work>,
    persist: &Backlog<Work>,
    engine: &mut RuleEngine,
    findings: &mut FindingStore,
    checkpoints: &Mutex<CheckpointStore>,
    metrics: &Metrics,
    settings: &Settings,
    done: Option<&dyn Fn(&CheckpointStore) -> bool>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let finished = || -> anyhow::Result<bool> {
        match done {
            Some(d) => Ok(d(&*lock(checkpoints)?)),
            None => Ok(false),
        }
    };
    let mut out = std::io::stdout();
    let mut printed = std::collections::HashSet::new();
    let mut directory = audithound_analytics::enrich::IpDirectory::new();
    loop {
        let work = match rx.recv_timeout(IDLE_POLL) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::SeqCst) {
                    // The reader stops at its next poll; take what it still sends.
                    match rx.recv_timeout(Duration::from_secs(2)) {
                        Ok(w) => w,
                        Err(_) => return Ok(()),
                    }
                } else {
                    if finished()? {
                        return Ok(());
                    }
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let mut judged = Vec::with_capacity(work.batches.len());
        for (table, batch) in work.batches {
            let batch = directory.enrich(table, batch);
            let outcome = engine.process(table, &batch);
            for e in &outcome.errors {
                metrics.rule_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{e}");
            }
            findings
                .upsert(&outcome.findings)
                .context("storing findings")?;
            if settings.print_findings {
                print_findings(&mut out, &outcome.findings, &mut printed);
            }
            metrics
                .findings
                .fetch_add(outcome.findings.len() as u64, Ordering::Relaxed);
            metrics
                .events
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            judged.push((table, batch));
        }
        let work = Work {
            batches: judged,
            ..work
        };
        let bytes = work.bytes();
        let sent = persist.push(work, bytes);
        metrics
            .persist_backlog_bytes
            .store(persist.held() as u64, Ordering::Relaxed);
        if sent.is_err() {
            // The persister stopped on an error, which `run_pipeline` reports.
            return Ok(());
        }
        if finished()? {
            return Ok(());
        }
    }
}

/// Makes each judged unit of work durable, in order: capture parts, dead letters, then the
/// checkpoint past it. Runs the store's maintenance now and then.
///
/// When works queue up (a slow disk), the contiguous ones of one file are written together: one
/// part per table and hour and one checkpoint for all of them, so a backlog costs one `fsync`
/// instead of one per work, and the persister catches up. It also checkpoints the findings
/// store's write-ahead log, which the thread storing findings leaves alone for the same reason.
fn persist_loop(
    backlog: &Backlog<Work>,
    capture: &CaptureStore,
    checkpoints: &Mutex<CheckpointStore>,
    wal: &WalCheckpointer,
    metrics: &Metrics,
    settings: &Settings,
) -> anyhow::Result<()> {
    let mut last_maintenance = Instant::now();
    let mut last_wal_checkpoint = Instant::now();
    let mut held: Option<(Work, usize)> = None;
    loop {
        let Some((first, mut bytes)) = held.take().or_else(|| backlog.pop()) else {
            return Ok(());
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUPED {
            let Some((next, size)) = backlog.try_pop() else {
                break;
            };
            let last = &group[group.len() - 1];
            if next.id == last.id && next.start == last.end {
                group.push(next);
                bytes += size;
            } else {
                held = Some((next, size));
                break;
            }
        }
        let started = Instant::now();
        persist_group(group, capture, checkpoints, metrics)?;
        backlog.release(bytes);
        let waiting = backlog.held();
        metrics
            .persist_backlog_bytes
            .store(waiting as u64, Ordering::Relaxed);
        if started.elapsed() > SLOW_PERSIST {
            if backlog.blocked_producers() > 0 {
                tracing::warn!(
                    ms = started.elapsed().as_millis() as u64,
                    backlog_mib = waiting >> 20,
                    "writing the capture store stalled (a busy disk) and the backlog is full: \
                     judging waits for the disk, and the tailer falls behind the log"
                );
            } else {
                tracing::warn!(
                    ms = started.elapsed().as_millis() as u64,
                    backlog_mib = waiting >> 20,
                    "writing the capture store stalled (a busy disk); findings are not delayed, \
                     judged batches wait in memory"
                );
            }
        }
        if last_wal_checkpoint.elapsed() > WAL_CHECKPOINT_EVERY {
            if let Err(e) = wal.checkpoint() {
                tracing::warn!("checkpointing the findings store failed (retried later): {e}");
            }
            last_wal_checkpoint = Instant::now();
        }
        if last_maintenance.elapsed() > MAINTENANCE_EVERY {
            maintain(capture, &*lock(checkpoints)?, settings);
            last_maintenance = Instant::now();
        }
    }
}

/// How often the persister moves the findings store's write-ahead log into its database file.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A capture-store write slower than this is logged: the disk stalled.
const SLOW_PERSIST: Duration = Duration::from_secs(1);

/// Works the persister writes as one at most (bounds the size of one part).
const MAX_GROUPED: usize = 8;

/// Writes contiguous works of one file as one range of it, then checkpoints past them.
fn persist_group(
    group: Vec<Work>,
    capture: &CaptureStore,
    checkpoints: &Mutex<CheckpointStore>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Ok(());
    };
    let (id, path, start, end) = (last.id.clone(), last.path.clone(), first.start, last.end);
    let works = group.len() as u64;
    let source = id.short();
    let mut tables: BTreeMap<TableKind, Vec<audithound_ingest::RecordBatch>> = BTreeMap::new();
    let mut dead = Vec::new();
    for work in group {
        for (table, batch) in work.batches {
            tables.entry(table).or_default().push(batch);
        }
        dead.extend(work.dead);
    }
    for (table, batches) in &tables {
        capture
            .write_all(table.name(), batches, &source, start, end)
            .context("writing the capture store")?;
    }
    if !dead.is_empty() {
        metrics
            .malformed
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        capture
            .write_dead_letters(&source, start, end, &dead)
            .context("writing dead letters")?;
        tracing::warn!(file = %path.display(), offset = start, count = dead.len(), "records sent to the dead-letter store");
    }
    {
        // The checkpoint file is small; holding the lock through its fsync only delays the
        // demo's end check.
        let mut checkpoints = lock(checkpoints)?;
        checkpoints.set(id, &path, end);
        checkpoints.persist().context("writing checkpoints")?;
    }
    metrics.batches.fetch_add(works, Ordering::Relaxed);
    metrics.bytes.fetch_add(end - start, Ordering::Relaxed);
    Ok(())
}

fn print_findings(
    out: &mut impl Write,
    findings: &[Finding],
    printed: &mut std::collections::HashSet<String>,
) {
    for f in findings {
        if !printed.insert(f.id.clone()) {
            continue;
        }
        let line = if std::io::stdout().is_terminal() {
            format!(
                "[{}] {} {} — {}",
                f.severity,
                f.first_seen.format("%H:%M:%S"),
                f.rule_id,
                f.explanation
            )
        } else {
            serde_json::to_string(f).unwrap_or_default()
        };
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Compaction of closed hours and retention, between batches.
fn maintain(capture: &CaptureStore, checkpoints: &CheckpointStore, settings: &Settings) {
    let now_hour = chrono::Utc::now().timestamp() / 3600;
    let durable = |p: &PartName| {
        checkpoints
            .all()
            .any(|c| c.id.short() == p.source && p.end <= c.offset)
    };
    for table in TableKind::ALL {
        let name = table.name();
        match capture.compact(name, now_hour - 1, 8, &durable) {
            Ok(n) if n > 0 => {
                tracing::info!(table = name, partitions = n, "compacted closed hours")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(table = name, "compaction failed: {e}"),
        }
        match capture.enforce_retention(name, now_hour, settings.max_age_hours, settings.max_bytes)
        {
            Ok(r) if r.partitions_removed > 0 => {
                tracing::info!(
                    table = name,
                    removed = r.partitions_removed,
                    bytes = r.bytes_freed,
                    "retention"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(table = name, "retention failed: {e}"),
        }
    }
}

fn start_http(addr: &str, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("http runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = audithound_api::serve(l, metrics).await {
                            tracing::error!("http server: {e}");
                        }
                    }
                    Err(e) => tracing::error!("http listener: {e}"),
                }
            });
        })?;
    tracing::info!(%addr, "health and metrics at http://{addr}/healthz and /metrics");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One unit of work of `file` covering `[start, end)`, holding one audit event.
    fn work(file: &FileId, start: u64, end: u64) -> Work {
        let line = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{}-{start}","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{{"username":"alice"}},"sourceIPs":["10.0.0.1"],"objectRef":{{"resource":"pods","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-01T10:00:00.000000Z","stageTimestamp":"2024-05-01T10:00:00.100000Z"}}"#,
            file.ino
        );
        let options = audithound_ingest::ReadOptions::default();
        let (batches, bad, _) =
            audithound_ingest::reader::decode_audit_bytes(line.as_bytes(), &options);
        assert!(bad.is_empty(), "{bad:?}");
        Work {
            id: file.clone(),
            path: PathBuf::from(format!("/var/log/audit-{}.log", file.ino)),
            start,
            end,
            batches: batches.into_iter().map(|b| (TableKind::Audit, b)).collect(),
            dead: Vec::new(),
        }
    }

    fn parts_under(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                found.extend(parts_under(&path));
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                found.push(name.to_string());
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_backlog_of_contiguous_works_is_persisted_as_one_range_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let capture = CaptureStore::open(dir.path().join("capture"), true).expect("store");
        let checkpoints = Mutex::new(
            CheckpointStore::open(dir.path().join("checkpoints.json")).expect("checkpoints"),
        );
        let metrics = Metrics::default();
        let settings = Settings {
            audit_logs: Vec::new(),
            data_dir: dir.path().to_path_buf(),
            listen: None,
            config: Config::default(),
            rule_dirs: Vec::new(),
            max_age_hours: None,
            max_bytes: None,
            print_findings: false,
        };
        let a = FileId {
            dev: 1,
            ino: 1,
            head: "aa".into(),
        };
        let b = FileId {
            dev: 1,
            ino: 2,
            head: "bb".into(),
        };
        // Queued before the persister runs: a backlog, as after a stalled fsync.
        let backlog = Backlog::new(PERSIST_BACKLOG_BYTES);
        for w in [
            work(&a, 0, 100),
            work(&a, 100, 200),
            work(&a, 200, 300),
            work(&b, 0, 50),
            work(&a, 300, 400),
        ] {
            let bytes = w.bytes();
            assert!(bytes > 0, "a work's batches are counted");
            assert!(backlog.push(w, bytes).is_ok(), "queued");
        }
        backlog.close();
        let findings_path = dir.path().join("findings.db");
        let _store = FindingStore::open(&findings_path).expect("findings store");
        let wal = WalCheckpointer::open(&findings_path).expect("checkpointer");
        persist_loop(&backlog, &capture, &checkpoints, &wal, &metrics, &settings)
            .expect("persists");
        assert_eq!(
            backlog.held(),
            0,
            "every persisted work's bytes are released"
        );

        let (sa, sb) = (a.short(), b.short());
        assert_eq!(
            parts_under(&dir.path().join("capture/audit")),
            vec![
                format!("part-{sa}-0-300.parquet"),
                format!("part-{sa}-300-400.parquet"),
                format!("part-{sb}-0-50.parquet"),
            ]
        );
        let rows: usize = ["0-300", "300-400"]
            .iter()
            .map(|range| {
                let path = dir
                    .path()
                    .join("capture/audit/date=2024-05-01/hour=10")
                    .join(format!("part-{sa}-{range}.parquet"));
                audithound_ingest::capture::read_parquet(&path)
                    .expect("readable part")
                    .iter()
                    .map(|b| b.num_rows())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(rows, 4, "every event of file a is in its parts once");
        let checkpoints = lock(&checkpoints).expect("lock");
        assert_eq!(checkpoints.get(&a).map(|c| c.offset), Some(400));
        assert_eq!(checkpoints.get(&b).map(|c| c.offset), Some(50));
        assert_eq!(metrics.batches.load(Ordering::Relaxed), 5);
    }
}
