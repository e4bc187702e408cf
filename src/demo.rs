//! `audithound serve --demo`: the bundled attack scenario replayed into a temporary log file as a
//! live stream (with one rotation on the way), followed by the real sidecar pipeline.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use audithound_analytics::store::FindingStore;
use audithound_api::Metrics;
use audithound_models::Severity;

use crate::serve::{ServeArgs, Settings, install_signal_handlers, resolve, run_pipeline};

/// The bundled scenario: routine traffic with an intrusion woven in (fixtures/attack).
const SCENARIO: &str = include_str!("../fixtures/attack/intrusion.log");
const LINES_PER_SECOND: usize = 1500;

/// Replays the scenario and runs the pipeline over it until every event is processed.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let work = tempfile::Builder::new()
        .prefix("audithound-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let log_dir = work.path().join("log");
    std::fs::create_dir_all(&log_dir)?;
    let log = log_dir.join("audit.log");
    File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let keep = args.data_dir.is_some();
    let mut args = args;
    args.audit_logs = vec![log.clone()];
    if args.data_dir.is_none() {
        args.data_dir = Some(work.path().join("data"));
    }
    let mut settings: Settings = resolve(&args)?;
    if args.listen.is_none() {
        settings.listen = None;
    }
    if settings.config.cluster.is_none() {
        settings.config.cluster = Some("demo".into());
    }
    let data_dir = settings.data_dir.clone();

    let lines: Vec<&str> = SCENARIO.lines().filter(|l| !l.trim().is_empty()).collect();
    let expected = lines.len() as u64;
    eprintln!(
        "audithound demo: replaying {expected} audit events (an intrusion inside routine traffic) into {} at {LINES_PER_SECOND}/s, rotating it halfway",
        log.display()
    );
    let written = Arc::new(AtomicU64::new(0));
    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, written, writer_done) =
            (log.clone(), Arc::clone(&written), Arc::clone(&writer_done));
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        std::thread::spawn(move || {
            let result = replay(&log, &lines, &written);
            writer_done.store(true, Ordering::SeqCst);
            result
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    install_signal_handlers(Arc::clone(&stop))?;
    let metrics = Arc::new(Metrics::default());
    let m = Arc::clone(&metrics);
    // Done when every written line is processed; a pipeline that has not caught up 30 s after
    // the last line is a failure, reported, not a hang.
    let stalled = Arc::new(AtomicBool::new(false));
    let caught_up_by = std::sync::Mutex::new(None::<std::time::Instant>);
    let stalled_flag = Arc::clone(&stalled);
    let finished = move |_: &audithound_ingest::tail::CheckpointStore| {
        if !writer_done.load(Ordering::SeqCst) {
            return false;
        }
        if m.events.load(Ordering::Relaxed) + m.malformed.load(Ordering::Relaxed)
            >= written.load(Ordering::SeqCst)
        {
            return true;
        }
        let mut deadline = caught_up_by.lock().unwrap_or_else(|e| e.into_inner());
        let deadline =
            deadline.get_or_insert_with(|| std::time::Instant::now() + Duration::from_secs(30));
        if std::time::Instant::now() > *deadline {
            stalled_flag.store(true, Ordering::SeqCst);
            return true;
        }
        false
    };
    let code = run_pipeline(settings, stop, Arc::clone(&metrics), Some(&finished))?;
    if stalled.load(Ordering::SeqCst) {
        anyhow::bail!(
            "the pipeline processed {} of {} replayed events and stopped catching up",
            metrics.events.load(Ordering::Relaxed),
            expected
        );
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the replay thread panicked"))??;

    let store = FindingStore::open(&data_dir.join("findings.db"))?;
    let all = store.changed_since(0, 100_000)?;
    let mut counts = std::collections::BTreeMap::new();
    for (_, f) in &all {
        *counts.entry(std::cmp::Reverse(f.severity)).or_insert(0) += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {}", s.0)).collect();
    eprintln!(
        "audithound demo: {} events processed, {} findings ({}).",
        metrics.events.load(Ordering::Relaxed),
        all.len(),
        summary.join(", ")
    );
    let serious = all
        .iter()
        .filter(|(_, f)| f.severity >= Severity::High)
        .count();
    eprintln!(
        "  {serious} at high or above: the intrusion, step by step, from permission probing to covering tracks."
    );
    if keep {
        eprintln!(
            "  Capture store and findings kept in {}; try: audithound query --data-dir {} \"SELECT user_name, verb, count(*) FROM audit GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10\"",
            data_dir.display(),
            data_dir.display()
        );
    } else {
        eprintln!(
            "  (add --data-dir DIR to keep the capture store and findings for `audithound query`)"
        );
    }
    Ok(code)
}

/// Appends the lines to `log` at a steady pace, renaming the file to a timestamped name and
/// starting a new one halfway, as the API server's log backend rotates.
fn replay(log: &Path, lines: &[String], written: &AtomicU64) -> anyhow::Result<()> {
    let mut file = OpenOptions::new().append(true).open(log)?;
    let per_tick = (LINES_PER_SECOND / 20).max(1);
    for (i, chunk) in lines.chunks(per_tick).enumerate() {
        if i == lines.len() / per_tick / 2 {
            let rotated: PathBuf = log.with_file_name("audit-2024-05-01T08-00-00.000.log");
            std::fs::rename(log, &rotated)?;
            file = File::create(log)?;
        }
        let mut text = chunk.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes())?;
        file.flush()?;
        written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
