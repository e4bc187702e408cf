//! Benchmark: the sidecar following a live audit log.
//!
//! Run with `cargo bench --bench sidecar`. A writer appends generated audit events to a log file
//! at a fixed rate (default 50,000 and 10,000 events/s, 30 s each) while `audithound serve`
//! follows it. Ten times a second the writer adds a probe: an exec into a uniquely named pod,
//! which the `pod-exec` rule reports. The benchmark polls the findings store and measures, for
//! every probe, the time from the line being written to its finding being stored (p50, p99, max;
//! the store is polled every 20 ms while the writer runs, so figures include up to 20 ms of polling);
//! it also samples the sidecar's resident memory and reports how long the capture store (its
//! checkpoint) needed to catch up after the writer stopped. "Findings kept up" means every probe's
//! finding was stored within a second. Results go to stdout and `<target>/bench/sidecar.md`.
//! `BENCH_RATES=50000,10000` and `BENCH_SECONDS=30` change the runs; `BENCH_WORK_DIR` puts the
//! log and the data directory elsewhere (e.g. on tmpfs, to take the disk out of the figures).
//! Each run's directory keeps `latency.csv` (every probe's latency, in the order written) and
//! `sidecar.log` (the sidecar's log; `BENCH_SIDECAR_LOG` sets its filter, default `warn`).

mod common;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let (_, dir) = common::bench_dir();
    let source = common::generated_log(200_000);
    let lines: Vec<String> = BufReader::new(File::open(&source).expect("log"))
        .lines()
        .map_while(Result::ok)
        .collect();
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "50000,10000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_audithound"));

    let mut report = format!(
        "Sidecar following a live log, {seconds} s per rate, generated events (~{} bytes each), probes every 100 ms.\n\n| rate (events/s) | written | findings kept up | capture caught up after stop (s) | latency p50 (ms) | p99 (ms) | max (ms) | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|\n",
        lines.iter().map(|l| l.len() + 1).sum::<usize>() / lines.len().max(1)
    );
    for rate in rates {
        let r = run(&bin, &dir, &lines, rate, seconds);
        report.push_str(&format!(
            "| {rate} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            r.written,
            if r.all_reported && r.max < 1000.0 {
                "yes"
            } else {
                "no"
            },
            r.catch_up,
            r.p50,
            r.p99,
            r.max,
            r.peak_rss_mib
        ));
        println!("{report}");
    }
    std::fs::write(dir.join("sidecar.md"), &report).expect("report");
    println!("{report}");
}

struct RunResult {
    written: u64,
    /// Every probe's finding was stored.
    all_reported: bool,
    catch_up: f64,
    p50: f64,
    p99: f64,
    max: f64,
    peak_rss_mib: f64,
}

fn probe(n: u64) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"probe-{n}","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/bench/pods/probe-{n}/exec?command=sh","verb":"create","user":{{"username":"bench@example.com","groups":["system:authenticated"]}},"sourceIPs":["203.0.113.1"],"userAgent":"kubectl/v1.29.2","objectRef":{{"resource":"pods","namespace":"bench","name":"probe-{n}","apiVersion":"v1","subresource":"exec"}},"responseStatus":{{"metadata":{{}},"code":101}},"requestReceivedTimestamp":"{now}","stageTimestamp":"{now}"}}"#
    )
}

fn run(bin: &Path, dir: &Path, lines: &[String], rate: u64, seconds: u64) -> RunResult {
    let work = std::env::var_os("BENCH_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf())
        .join(format!("sidecar-{rate}"));
    let _ = std::fs::remove_dir_all(&work);
    // Start from a clean page cache: dirty data left by earlier runs (or other benchmarks) is
    // written back in the middle of the run otherwise, and its stalls land in the figures.
    let _ = Command::new("sync").status();
    std::fs::create_dir_all(work.join("logs")).expect("work dir");
    let log = work.join("logs/audit.log");
    File::create(&log).expect("log");
    let data = work.join("data");
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--audit-log"])
        .arg(&log)
        .arg("--data-dir")
        .arg(&data)
        .env(
            "AUDITHOUND_LOG",
            std::env::var("BENCH_SIDECAR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(File::create(work.join("sidecar.log")).expect("sidecar log"))
        .spawn()
        .expect("sidecar starts");
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id();
    let rss_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rss_thread = {
        let stop = std::sync::Arc::clone(&rss_stop);
        std::thread::spawn(move || {
            let mut peak = 0f64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    for l in status.lines() {
                        if let Some(v) = l.strip_prefix("VmRSS:") {
                            let kb: f64 = v
                                .trim()
                                .trim_end_matches("kB")
                                .trim()
                                .parse()
                                .unwrap_or(0.0);
                            peak = peak.max(kb / 1024.0);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };

    // Latency: when each probe's finding appears in the store, watched while the writer runs.
    let db_path = data.join("findings.db");
    let sightings: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let sightings = Arc::clone(&sightings);
        let watching = Arc::clone(&watching);
        let db_path = db_path.clone();
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                let names = probe_findings(&db_path);
                let now = Instant::now();
                if let Ok(mut seen) = sightings.lock() {
                    for name in names {
                        seen.entry(name).or_insert(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let mut out = OpenOptions::new().append(true).open(&log).expect("log");
    let start = Instant::now();
    let mut written = 0u64;
    let mut probes: HashMap<String, Instant> = HashMap::new();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1) as usize;
    let mut i = 0usize;
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let tick_start = Instant::now();
        // Keep to the schedule: a tick that started late (the writer shares two cores with the
        // sidecar) writes what is due, up to five ticks' worth, so the offered rate is the rate.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + per_tick as u64;
        let lines_now = (due.saturating_sub(written) as usize).clamp(1, per_tick * 5);
        let mut buf = String::with_capacity(lines_now * 1100);
        for _ in 0..lines_now {
            buf.push_str(&lines[i % lines.len()]);
            buf.push('\n');
            i += 1;
        }
        let probe_due = n < (start.elapsed().as_millis() / 100) as u64 + 1;
        if probe_due {
            buf.push_str(&probe(n));
            buf.push('\n');
        }
        out.write_all(buf.as_bytes()).expect("write");
        if probe_due {
            probes.insert(format!("probe-{n}"), Instant::now());
            n += 1;
        }
        written += lines_now as u64;
        let spent = tick_start.elapsed();
        if spent < tick {
            std::thread::sleep(tick - spent);
        }
    }
    let stop_writing = Instant::now();
    let total_bytes = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut catch_up = f64::NAN;
    while Instant::now() < deadline {
        if catch_up.is_nan() && checkpointed(&data) >= total_bytes {
            catch_up = stop_writing.elapsed().as_secs_f64();
        }
        let all_seen = sightings.lock().map(|s| s.len()).unwrap_or(0) >= probes.len();
        if all_seen && !catch_up.is_nan() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    watching.store(false, Ordering::Relaxed);
    let _ = watcher.join();
    let seen: HashMap<String, f64> = sightings
        .lock()
        .map(|s| {
            s.iter()
                .filter_map(|(name, at)| {
                    let written_at = probes.get(name)?;
                    Some((
                        name.clone(),
                        at.saturating_duration_since(*written_at).as_secs_f64() * 1000.0,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    rss_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_rss_mib = rss_thread.join().unwrap_or(0.0);
    // Every probe's latency in the order written, to see whether slow ones come together.
    let mut series: Vec<(f64, &String, f64)> = seen
        .iter()
        .filter_map(|(name, ms)| {
            let at = probes.get(name)?.saturating_duration_since(start);
            Some((at.as_secs_f64(), name, *ms))
        })
        .collect();
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    let csv: String = series
        .iter()
        .map(|(at, name, ms)| format!("{at:.3},{name},{ms:.1}\n"))
        .collect();
    let _ = std::fs::write(
        work.join("latency.csv"),
        format!("written_s,probe,latency_ms\n{csv}"),
    );
    let mut lat: Vec<f64> = seen.values().copied().collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    if lat.len() < probes.len() {
        eprintln!(
            "rate {rate}: only {} of {} probes were reported",
            lat.len(),
            probes.len()
        );
    }
    RunResult {
        written,
        all_reported: lat.len() >= probes.len(),
        catch_up,
        p50: pct(0.50),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or(f64::NAN),
        peak_rss_mib,
    }
}

/// Names of the pods of the `pod-exec` findings stored so far.
fn probe_findings(db: &Path) -> Vec<String> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT body FROM findings WHERE rule_id = 'pod-exec'") else {
        return Vec::new();
    };
    let bodies: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect()
}

/// Bytes of the log that the sidecar has checkpointed.
fn checkpointed(data: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(data.join("checkpoints.json")) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["files"].as_array().map_or(0, |files| {
        files.iter().filter_map(|f| f["offset"].as_u64()).sum()
    })
}
