//! Benchmark: forensic SQL over 10 million captured audit events, audithound against DuckDB.
//!
//! Run with `cargo bench --bench query_vs_duckdb`. It builds (once, cached under the target
//! directory) a capture store of 10,000,000 events: the generated 200,000-event log, decoded and
//! written 50 times with event times shifted by one hour each, so the data spans three days in
//! hour partitions. Then it times `audithound query` (the real binary, process start included)
//! and DuckDB (Python package, `read_parquet` with Hive partitioning over the same files) on a
//! GROUP BY over user and verb for one day, and on the same GROUP BY over everything.
//! Results go to stdout and `<target>/bench/query_vs_duckdb.md`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use audithound_ingest::capture::CaptureStore;
use audithound_ingest::input::InputSource;
use audithound_ingest::reader::{DecodedBatch, ReadOptions, read_audit_inputs};
use audithound_models::TableKind;

const COPIES: i64 = 50;
const HOUR_MICROS: i64 = 3_600_000_000;

const DUCKDB: &str = r#"
import sys, time, duckdb
root, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads TO 2")
t0 = time.perf_counter()
con.execute(f"CREATE VIEW audit AS SELECT * FROM read_parquet('{root}/audit/**/*.parquet', hive_partitioning = true)")
rows = con.execute(sql).fetchall()
print(f"{time.perf_counter() - t0:.6f} {duckdb.__version__} {len(rows)}")
"#;

fn main() {
    let (_, dir) = common::bench_dir();
    let log = common::generated_log(200_000);
    let data = dir.join("query-10m");
    let capture = data.join("capture");
    let marker = data.join("complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&data);
        build_store(&log, &capture);
        std::fs::write(&marker, b"ok").expect("marker");
    }
    let total = count_rows(&capture);
    ensure_duckdb();
    let script = dir.join("duckdb_query.py");
    std::fs::write(&script, DUCKDB).expect("script");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_audithound"));

    let day = "ts >= TIMESTAMP '2024-05-02 00:00:00' AND ts < TIMESTAMP '2024-05-03 00:00:00'";
    let queries = [
        ("user and verb, one day", format!("SELECT user_name, verb, count(*) AS n FROM audit WHERE {day} GROUP BY user_name, verb ORDER BY n DESC")),
        ("user and verb, all data", "SELECT user_name, verb, count(*) AS n FROM audit GROUP BY user_name, verb ORDER BY n DESC".to_string()),
    ];
    let mut report = format!(
        "Capture store: {total} audit events in {} Parquet files (zstd, hour partitions over 3 days). Best of 3 runs each.\n\n| query | audithound query (s) | DuckDB (s) | ratio |\n|---|---|---|---|\n",
        count_files(&capture)
    );
    for (name, sql) in &queries {
        let ours = best_of(3, || {
            let start = Instant::now();
            let out = Command::new(&bin)
                .args(["query", "--format", "csv", "--data-dir"])
                .arg(&data)
                .arg(sql)
                .output()
                .expect("query runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            start.elapsed().as_secs_f64()
        });
        let (duck, version) = duckdb(&script, &capture, sql);
        report.push_str(&format!(
            "| {name} | {ours:.3} | {duck:.3} (DuckDB {version}) | {:.2}× |\n",
            ours / duck
        ));
    }
    println!("{report}");
    std::fs::write(dir.join("query_vs_duckdb.md"), &report).expect("report");
}

fn build_store(log: &Path, capture: &Path) {
    eprintln!(
        "building a 10M-event capture store in {}",
        capture.display()
    );
    let mut batches = Vec::new();
    read_audit_inputs(
        &[InputSource::File(log.to_path_buf())],
        &ReadOptions::default(),
        &|_| {},
        |item| {
            if let DecodedBatch::Batch(TableKind::Audit, b) = item {
                batches.push(b);
            }
            Ok::<_, ()>(())
        },
    )
    .expect("decode");
    let store = CaptureStore::open(capture, false).expect("store");
    for copy in 0..COPIES {
        let mut offset = 0u64;
        for b in &batches {
            let shifted = shift(b, copy * HOUR_MICROS);
            let end = offset + b.num_rows() as u64;
            store
                .write("audit", &shifted, &format!("copy{copy}"), offset, end)
                .expect("write");
            offset = end;
        }
    }
}

fn shift(batch: &RecordBatch, micros: i64) -> RecordBatch {
    let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
    let moved: TimestampMicrosecondArray = ts.iter().map(|v| v.map(|v| v + micros)).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[1] = Arc::new(moved.with_timezone("UTC"));
    RecordBatch::try_new(batch.schema(), columns).expect("same schema")
}

fn count_rows(capture: &Path) -> u64 {
    let store = CaptureStore::open(capture, false).expect("store");
    store
        .files("audit")
        .iter()
        .map(|(p, _)| {
            let f = std::fs::File::open(p).expect("file");
            parquet::file::reader::SerializedFileReader::new(f)
                .map(|r| {
                    parquet::file::reader::FileReader::metadata(&r)
                        .file_metadata()
                        .num_rows() as u64
                })
                .unwrap_or(0)
        })
        .sum()
}

fn count_files(capture: &Path) -> usize {
    CaptureStore::open(capture, false)
        .expect("store")
        .files("audit")
        .len()
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn ensure_duckdb() {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "duckdb"])
            .status();
    }
}

fn duckdb(script: &Path, capture: &Path, sql: &str) -> (f64, String) {
    let mut best = f64::INFINITY;
    let mut version = String::from("?");
    for _ in 0..3 {
        let out = Command::new("python3")
            .arg(script)
            .arg(capture)
            .arg(sql)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = text.split_whitespace();
        best = best.min(
            parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::INFINITY),
        );
        version = parts.next().unwrap_or("?").to_string();
    }
    (best, version)
}
