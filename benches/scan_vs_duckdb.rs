//! Benchmark: `audithound scan` against DuckDB on the same generated audit log.
//!
//! Run with `cargo bench --bench scan_vs_duckdb` (release build). It generates a 200,000-event
//! log with `fixtures/generator/generate_traffic.py` (cached under the target directory), then
//! measures in one run, on this machine:
//!
//! - the floor: a bare serde parse of every line (`IgnoredAny`), one thread;
//! - audithound's decode alone (every line to Arrow rows, on all cores), in process;
//! - `audithound scan` with the whole built-in pack, as a subprocess (wall time; its peak RSS in
//!   one more run, started from a small Python process so that this one's memory is not counted);
//! - DuckDB (Python package) loading the same file with its JSON reader and running ten
//!   comparable detection queries; the scan and DuckDB take turns, seven rounds, and the report
//!   gives each round's ratio as well as the best times;
//! - peak memory of `scan` over the 200k-event file and over a ~2 GB file (the same log repeated).
//!
//! Figures are printed as a Markdown table with ratios to DuckDB's time, and written to
//! `<target>/bench/scan_vs_duckdb.md`. Set `BENCH_EVENTS` to change the size and `BENCH_SKIP_2GB=1`
//! to skip the memory run over 2 GB.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use audithound_ingest::input::InputSource;
use audithound_ingest::reader::{DecodedBatch, ReadOptions, read_audit_inputs};

const DUCKDB_SCRIPT: &str = r#"
import sys, time
import duckdb
path = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads TO 2")
t0 = time.perf_counter()
con.execute(f"""
CREATE TABLE audit AS SELECT * FROM read_json('{path}', format='newline_delimited', maximum_object_size=16777216,
  columns={{'auditID':'VARCHAR','stage':'VARCHAR','verb':'VARCHAR','requestURI':'VARCHAR',
   'user':'STRUCT(username VARCHAR, groups VARCHAR[])','impersonatedUser':'STRUCT(username VARCHAR, groups VARCHAR[])',
   'sourceIPs':'VARCHAR[]','userAgent':'VARCHAR',
   'objectRef':'STRUCT(resource VARCHAR, namespace VARCHAR, name VARCHAR, subresource VARCHAR, apiGroup VARCHAR)',
   'responseStatus':'STRUCT(code INTEGER)','requestObject':'JSON','stageTimestamp':'TIMESTAMP',
   'annotations':'MAP(VARCHAR, VARCHAR)'}})
""")
not_system = "NOT (user.username LIKE 'system:%' AND user.username NOT LIKE 'system:serviceaccount:%' AND user.username <> 'system:anonymous') AND user.username NOT LIKE 'system:serviceaccount:kube-system:%'"
queries = [
 f"SELECT auditID FROM audit WHERE objectRef.resource='pods' AND objectRef.subresource IN ('exec','attach') AND responseStatus.code < 400 AND {not_system}",
 f"SELECT auditID FROM audit WHERE verb IN ('create','update','patch') AND objectRef.resource IN ('pods','deployments','daemonsets','statefulsets','jobs','cronjobs') AND (requestObject->>'$.spec.containers[0].securityContext.privileged' = 'true' OR requestObject->>'$.spec.template.spec.containers[0].securityContext.privileged' = 'true') AND {not_system}",
 f"SELECT auditID FROM audit WHERE verb IN ('create','update','patch') AND objectRef.resource IN ('pods','deployments','daemonsets') AND (requestObject->>'$.spec.volumes[0].hostPath.path' = '/' OR requestObject->>'$.spec.hostPID' = 'true') AND {not_system}",
 "SELECT auditID FROM audit WHERE objectRef.resource IN ('clusterrolebindings','rolebindings') AND verb IN ('create','update','patch') AND requestObject->>'$.roleRef.name' = 'cluster-admin'",
 f"SELECT auditID FROM audit WHERE objectRef.resource='secrets' AND verb='list' AND responseStatus.code < 400 AND {not_system}",
 "SELECT user.username, time_bucket(INTERVAL 5 MINUTE, stageTimestamp) b, count(*) FROM audit WHERE responseStatus.code IN (401,403) GROUP BY 1, 2 HAVING count(*) >= 10",
 "SELECT auditID FROM audit WHERE user.username='system:anonymous' AND responseStatus.code < 400 AND NOT regexp_matches(requestURI, '^/(healthz|livez|readyz|version)')",
 "SELECT auditID FROM audit WHERE user.username LIKE 'system:serviceaccount:%' AND NOT (sourceIPs[1] LIKE '10.%' OR sourceIPs[1] LIKE '192.168.%' OR sourceIPs[1] LIKE '172.1_.%' OR sourceIPs[1] LIKE '172.2_.%' OR sourceIPs[1] LIKE '172.3_.%')",
 f"SELECT auditID FROM audit WHERE objectRef.resource='events' AND verb IN ('delete','deletecollection') AND {not_system}",
 "SELECT auditID FROM audit WHERE objectRef.resource IN ('roles','clusterroles') AND verb IN ('create','update','patch') AND requestObject::VARCHAR LIKE '%\"*\"%'",
]
hits = [len(con.execute(q).fetchall()) for q in queries]
elapsed = time.perf_counter() - t0
print(f"{elapsed:.6f} {duckdb.__version__} {sum(hits)}")
"#;

/// A scan's peak memory, and its time in that run.
struct Peak {
    seconds: f64,
    rss_mib: Option<f64>,
}

fn main() {
    let (_, dir) = common::bench_dir();
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let log = common::generated_log(events);
    let size = std::fs::metadata(&log).expect("log").len();
    let lines = BufReader::new(File::open(&log).expect("log"))
        .lines()
        .count();
    let audithound = PathBuf::from(env!("CARGO_BIN_EXE_audithound"));

    // Warm the page cache so every contender reads from memory.
    let _ = std::fs::read(&log);

    let parse = best_of(3, || bare_parse(&log));
    let decode = best_of(3, || decode_only(&log));
    // The scan and DuckDB take turns, so that both see the same machine: this VM's speed drifts
    // by 10-20% within minutes, which separate series of runs would read as a difference.
    let duck_script = duckdb_script(&dir);
    // One untimed run of each first: the first start of a freshly built binary (or of Python
    // and DuckDB's library) reads it from disk, which is not what the rounds compare.
    let _ = run_scan(&audithound, &log);
    if let Ok(script) = &duck_script {
        let _ = duckdb_once(script, &log);
    }
    let mut scans: Vec<f64> = Vec::new();
    let mut ducks: Vec<(f64, String)> = Vec::new();
    let mut duck_error = None;
    for _ in 0..ROUNDS {
        scans.push(run_scan(&audithound, &log));
        match duck_script
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|script| duckdb_once(script, &log))
        {
            Ok(d) => ducks.push(d),
            Err(e) => duck_error = Some(e),
        }
    }
    let round_ratios: Vec<f64> = scans.iter().zip(&ducks).map(|(s, (d, _))| s / d).collect();
    let peak = scan_peak(&audithound, &log);
    let scan = scans
        .into_iter()
        .min_by(f64::total_cmp)
        .expect("at least one run");
    let duck = match (ducks.iter().min_by(|a, b| a.0.total_cmp(&b.0)), duck_error) {
        (Some(best), None) => Ok(best.clone()),
        (_, Some(e)) => Err(e),
        (None, None) => Err("DuckDB did not run".to_string()),
    };

    let mut rows = vec![
        (
            "bare serde parse of every line (1 thread, floor)".to_string(),
            parse,
            None,
        ),
        (
            "audithound decode to Arrow (all cores)".to_string(),
            decode,
            None,
        ),
        (
            "audithound scan, whole built-in pack".to_string(),
            scan,
            peak.rss_mib,
        ),
    ];
    let duck_seconds = match &duck {
        Ok((s, version)) => {
            rows.push((
                format!("DuckDB {version}: load JSON + 10 detection queries (2 threads)"),
                *s,
                None,
            ));
            Some(*s)
        }
        Err(e) => {
            eprintln!("DuckDB not measured: {e}");
            None
        }
    };

    let mut report = String::new();
    report.push_str(&format!(
        "Input: {lines} events, {:.0} MB (generated, Metadata and RequestResponse mixed). Parse and decode: best of 3; scan and DuckDB: one untimed run each, then best of {ROUNDS}, taking turns.\n\n",
        size as f64 / 1e6
    ));
    report.push_str(
        "| what | time (s) | vs DuckDB | vs bare parse | peak RSS (MiB) |\n|---|---|---|---|---|\n",
    );
    for (name, secs, rss) in &rows {
        let vs_duck = duck_seconds.map_or("-".to_string(), |d| format!("{:.2}×", secs / d));
        report.push_str(&format!(
            "| {name} | {secs:.3} | {vs_duck} | {:.2}× | {} |\n",
            secs / parse,
            rss.map_or("-".into(), |r| format!("{r:.0}"))
        ));
    }

    if !round_ratios.is_empty() {
        let mut sorted = round_ratios.clone();
        sorted.sort_by(f64::total_cmp);
        report.push_str(&format!(
            "\nScan time over DuckDB's in each round: {} (median {:.2}×).\n",
            round_ratios
                .iter()
                .map(|r| format!("{r:.2}×"))
                .collect::<Vec<_>>()
                .join(", "),
            sorted[sorted.len() / 2]
        ));
    }

    if std::env::var("BENCH_SKIP_2GB").is_err() {
        let big = dir.join("audit-2gb.log");
        if !big.exists() {
            let mut out = File::create(&big).expect("2 GB file");
            let bytes = std::fs::read(&log).expect("log");
            let copies = (2_000_000_000 / bytes.len().max(1)).max(1);
            for _ in 0..copies {
                out.write_all(&bytes).expect("write");
            }
        }
        let big_size = std::fs::metadata(&big).expect("2 GB file").len();
        let m = scan_peak(&audithound, &big);
        report.push_str(&format!(
            "\nMemory with input size: scan of {:.0} MB peaked at {} MiB; scan of {:.1} GB peaked at {} MiB ({:.1} s).\n",
            size as f64 / 1e6,
            peak.rss_mib.map_or("?".into(), |r| format!("{r:.0}")),
            big_size as f64 / 1e9,
            m.rss_mib.map_or("?".into(), |r| format!("{r:.0}")),
            m.seconds
        ));
    }
    println!("{report}");
    std::fs::write(dir.join("scan_vs_duckdb.md"), &report).expect("report");
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

/// Rounds of one scan and one DuckDB run each.
const ROUNDS: usize = 7;

fn bare_parse(path: &Path) -> f64 {
    let start = Instant::now();
    let reader = BufReader::with_capacity(1 << 20, File::open(path).expect("log"));
    let mut ok = 0usize;
    for line in reader.split(b'\n') {
        let line = line.expect("read");
        if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_ok() {
            ok += 1;
        }
    }
    std::hint::black_box(ok);
    start.elapsed().as_secs_f64()
}

fn decode_only(path: &Path) -> f64 {
    let start = Instant::now();
    let mut rows = 0usize;
    read_audit_inputs(
        &[InputSource::File(path.to_path_buf())],
        &ReadOptions::default(),
        &|_| {},
        |item| {
            if let DecodedBatch::Batch(_, b) = item {
                rows += b.num_rows();
            }
            Ok::<_, ()>(())
        },
    )
    .expect("decode");
    std::hint::black_box(rows);
    start.elapsed().as_secs_f64()
}

/// The time of one scan, in seconds (its peak memory is measured apart: see [`scan_peak`]).
fn run_scan(bin: &Path, path: &Path) -> f64 {
    let start = Instant::now();
    let status = Command::new(bin)
        .args(["scan", "--format", "ndjson"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("audithound runs");
    let seconds = start.elapsed().as_secs_f64();
    assert!(status.success(), "scan failed: {status}");
    seconds
}

/// Runs a command and prints its exit code, its peak resident memory (KiB) and its time.
const PEAK_SCRIPT: &str = r#"
import resource, subprocess, sys, time
t = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - t
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, elapsed)
"#;

/// One scan with its peak memory, started from a small Python process. A child's `ru_maxrss`
/// includes the peak of the process it was forked from (Linux keeps it across `exec`), so a
/// scan started from this benchmark, which holds a few hundred MiB itself, would report the
/// benchmark's memory rather than its own.
fn scan_peak(bin: &Path, path: &Path) -> Peak {
    let out = Command::new("python3")
        .args(["-c", PEAK_SCRIPT])
        .arg(bin)
        .args(["scan", "--format", "ndjson"])
        .arg(path)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(
        out.status.success() && fields.first() == Some(&"0"),
        "scan for peak memory failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Peak {
        seconds: fields
            .get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN),
        rss_mib: fields
            .get(1)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|kib| kib / 1024.0),
    }
}

/// The DuckDB script, written into `dir`, with the duckdb package installed if missing.
fn duckdb_script(dir: &Path) -> Result<PathBuf, String> {
    let check = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .map_err(|e| e.to_string())?;
    if !check.success() {
        eprintln!("installing the duckdb Python package");
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "duckdb"])
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("pip install duckdb failed".into());
        }
    }
    let script = dir.join("duckdb_bench.py");
    std::fs::write(&script, DUCKDB_SCRIPT).map_err(|e| e.to_string())?;
    Ok(script)
}

/// One DuckDB run: its time (as the script measures it, without Python's start) and version.
fn duckdb_once(script: &Path, log: &Path) -> Result<(f64, String), String> {
    let out = Command::new("python3")
        .arg(script)
        .arg(log)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.split_whitespace();
    let secs: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("no timing from DuckDB")?;
    Ok((secs, parts.next().unwrap_or("?").to_string()))
}
