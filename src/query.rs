//! `audithound query`: forensic SQL over the capture store or over raw log files.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use audithound_analytics::forensic::{ForensicSession, QueryLimits};
use audithound_analytics::matches::cell_json;
use audithound_analytics::reads::table_columns_named;
use audithound_ingest::input::expand_paths;
use audithound_ingest::reader::{DecodedBatch, ReadOptions, read_audit_inputs};
use audithound_ingest::{DecodeOptions, RecordBatch};
use audithound_models::TableKind;
use clap::{Args, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value};

/// Output formats of query results.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryFormat {
    /// A readable table.
    Table,
    /// Comma-separated values with a header.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object a line.
    Ndjson,
}

/// Arguments of `audithound query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The SQL query (read-only) over the tables `audit`, `dns` and `flow`.
    #[arg(value_name = "SQL")]
    sql: String,
    /// The sidecar's data directory (its capture store). Default ./audithound-data.
    #[arg(long, value_name = "DIR", conflicts_with = "input")]
    data_dir: Option<PathBuf>,
    /// Query raw log files (any supported format) instead of the capture store.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    input: Vec<String>,
    /// Output format (default: table on a terminal, NDJSON otherwise).
    #[arg(long, value_enum)]
    format: Option<QueryFormat>,
    /// Most rows printed.
    #[arg(long, default_value_t = 100_000)]
    max_rows: usize,
    /// Time limit in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 2048)]
    memory_mib: usize,
    /// Cluster name for raw records that do not carry one.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
}

/// Runs a query and prints the result.
pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let limits = QueryLimits {
        memory_bytes: args.memory_mib << 20,
        timeout: Duration::from_secs(args.timeout),
        max_rows: args.max_rows,
    };
    let session = ForensicSession::new(limits)?;
    if args.input.is_empty() {
        let data = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("audithound-data"));
        let capture = data.join("capture");
        if !capture.is_dir() {
            bail!(
                "`{}` holds no capture store (run `audithound serve --data-dir {}` first, or query raw logs with --input)",
                data.display(),
                data.display()
            );
        }
        session.register_capture(&capture)?;
    } else {
        let inputs = expand_paths(&args.input)?;
        let options = ReadOptions {
            decode: DecodeOptions {
                cluster: args.cluster.clone(),
                // Only the columns the query names are filled: the others cannot show.
                audit_columns: table_columns_named(&args.sql, TableKind::Audit),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut batches: std::collections::BTreeMap<TableKind, Vec<RecordBatch>> =
            Default::default();
        let mut bad = 0u64;
        let stats = read_audit_inputs(&inputs, &options, &|_| {}, |item| {
            match item {
                DecodedBatch::Batch(t, b) => batches.entry(t).or_default().push(b),
                DecodedBatch::Bad(_) => bad += 1,
                // A query reads every event: its decoder has no screen.
                DecodedBatch::ScreenedOut { .. } => {}
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if bad > 0 {
            eprintln!(
                "audithound: {bad} malformed record(s) left out (see `audithound scan --dead-letter`)"
            );
        }
        eprintln!(
            "audithound: {} events loaded from {} input(s)",
            stats.events, stats.inputs
        );
        for table in TableKind::ALL {
            session.register_batches(table, batches.remove(&table).unwrap_or_default())?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the query runtime")?;
    let result = rt.block_on(session.run(&args.sql))?;
    let stdout = std::io::stdout();
    let format = args.format.unwrap_or(if stdout.is_terminal() {
        QueryFormat::Table
    } else {
        QueryFormat::Ndjson
    });
    let mut out = std::io::BufWriter::new(stdout.lock());
    print(&mut out, &result.batches, format)?;
    out.flush()?;
    if result.truncated {
        eprintln!(
            "audithound: output cut at {} rows (--max-rows)",
            args.max_rows
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rows(batches: &[RecordBatch]) -> (Vec<String>, Vec<Vec<Value>>) {
    let names: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                (0..b.num_columns())
                    .map(|c| cell_json(b.column(c).as_ref(), r))
                    .collect(),
            );
        }
    }
    (names, out)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print(out: &mut impl Write, batches: &[RecordBatch], format: QueryFormat) -> anyhow::Result<()> {
    let (names, rows) = rows(batches);
    match format {
        QueryFormat::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header(names.clone());
            for r in &rows {
                table.add_row(r.iter().map(text).collect::<Vec<_>>());
            }
            writeln!(out, "{table}")?;
            writeln!(out, "{} row(s)", rows.len())?;
        }
        QueryFormat::Csv => {
            writeln!(
                out,
                "{}",
                names
                    .iter()
                    .map(|n| csv_field(n))
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{}",
                    r.iter()
                        .map(|v| csv_field(&text(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
            }
        }
        QueryFormat::Json | QueryFormat::Ndjson => {
            let objects: Vec<Value> = rows
                .into_iter()
                .map(|r| {
                    Value::Object(names.iter().cloned().zip(r).collect::<Map<String, Value>>())
                })
                .collect();
            if format == QueryFormat::Json {
                serde_json::to_writer_pretty(&mut *out, &objects)?;
                writeln!(out)?;
            } else {
                for o in objects {
                    writeln!(out, "{o}")?;
                }
            }
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
