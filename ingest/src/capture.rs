//! The capture store: every decoded batch, as Parquet, partitioned by table and hour.
//!
//! Layout (the interface other engines query through):
//!
//! ```text
//! <data-dir>/capture/<table>/date=YYYY-MM-DD/hour=HH/part-<source>-<start>-<end>.parquet
//! <data-dir>/capture/<table>/date=YYYY-MM-DD/hour=HH/compacted-<n>.parquet
//! ```
//!
//! `date` and `hour` are the UTC event time of the rows (a batch spanning hours is split), in
//! Hive style, so DataFusion, DuckDB, Spark or Trino read them as partition columns. A part file
//! is named after the source it came from (file identity) and the byte range of that source it
//! covers: after a crash, the parts beyond the source's checkpoint are rolled back and produced
//! again by the replay, so every line lands in the store exactly once. Files are written to a
//! hidden temporary name, synced and renamed, so readers never see a partial file. Compaction
//! merges the parts of a closed hour that are all behind the checkpoints; retention deletes whole
//! hours by age and by total size, oldest first.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::dead_letter::DeadLetter;

/// Why the capture store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A filesystem operation failed.
    #[error("capture store: {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Writing or reading Parquet failed.
    #[error("capture store: parquet `{}`: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
}

/// A part file's source and byte range, parsed from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartName {
    /// The source's identity (short form).
    pub source: String,
    /// First byte of the source covered.
    pub start: u64,
    /// One past the last byte covered.
    pub end: u64,
}

impl PartName {
    fn parse(file_name: &str) -> Option<PartName> {
        let stem = file_name.strip_prefix("part-")?;
        let stem = stem
            .strip_suffix(".parquet")
            .or_else(|| stem.strip_suffix(".ndjson"))?;
        let mut it = stem.rsplitn(3, '-');
        let end = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        let source = it.next()?.to_string();
        Some(PartName { source, start, end })
    }
}

/// What retention removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Hour partitions deleted.
    pub partitions_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// The Parquet capture store under one directory.
#[derive(Debug, Clone)]
pub struct CaptureStore {
    root: PathBuf,
    sync: bool,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> CaptureError + 'p {
    move |source| CaptureError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl CaptureStore {
    /// Opens (creating) the store at `root`. With `sync`, files are synced to disk before they
    /// are renamed into place (survives power loss, not only a crash).
    pub fn open(root: impl Into<PathBuf>, sync: bool) -> Result<Self, CaptureError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
        Ok(CaptureStore { root, sync })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one table.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(table)
    }

    /// Writes a batch of `table` that covers bytes `[start, end)` of `source`, one part per hour
    /// of event time. Returns the files written.
    pub fn write(
        &self,
        table: &str,
        batch: &RecordBatch,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<PathBuf>, CaptureError> {
        self.write_all(table, std::slice::from_ref(batch), source, start, end)
    }

    /// Writes the batches of `table` that together cover bytes `[start, end)` of `source` as one
    /// part per hour of event time (one file and one `fsync` for all of them). Returns the files
    /// written.
    pub fn write_all(
        &self,
        table: &str,
        batches: &[RecordBatch],
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<PathBuf>, CaptureError> {
        let mut hours: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            for (hour, part) in split_by_hour(batch)? {
                hours.entry(hour).or_default().push(part);
            }
        }
        let mut written = Vec::new();
        for (hour, parts) in hours {
            let dir = self.table_dir(table).join(partition_dir(hour));
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            let path = dir.join(format!("part-{source}-{start}-{end}.parquet"));
            self.write_file(&path, &parts)?;
            written.push(path);
        }
        Ok(written)
    }

    fn write_file(&self, path: &Path, batches: &[RecordBatch]) -> Result<(), CaptureError> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("part")
        ));
        let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .set_max_row_group_row_count(Some(64 * 1024))
            .build();
        let parquet_err = |e: parquet::errors::ParquetError| CaptureError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut writer =
            ArrowWriter::try_new(file, first.schema(), Some(props)).map_err(parquet_err)?;
        for b in batches {
            writer.write(b).map_err(parquet_err)?;
        }
        let file = writer.into_inner().map_err(parquet_err)?;
        if self.sync {
            file.sync_all().map_err(io_err("syncing", &tmp))?;
        }
        drop(file);
        fs::rename(&tmp, path).map_err(io_err("renaming", path))?;
        Ok(())
    }

    /// Keeps records that could not be decoded, as NDJSON lines ([`DeadLetter`]), in
    /// `dead_letter/part-<source>-<start>-<end>.ndjson`: the same naming and rollback as parts,
    /// so a replay never stores a dead letter twice.
    pub fn write_dead_letters(
        &self,
        source: &str,
        start: u64,
        end: u64,
        letters: &[DeadLetter],
    ) -> Result<PathBuf, CaptureError> {
        let dir = self.table_dir("dead_letter");
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let path = dir.join(format!("part-{source}-{start}-{end}.ndjson"));
        let tmp = dir.join(format!(".part-{source}-{start}-{end}.tmp"));
        let mut text = String::new();
        for letter in letters {
            text.push_str(&letter.to_json_line());
            text.push('\n');
        }
        {
            let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
            io::Write::write_all(&mut f, text.as_bytes()).map_err(io_err("writing", &tmp))?;
            if self.sync {
                f.sync_all().map_err(io_err("syncing", &tmp))?;
            }
        }
        fs::rename(&tmp, &path).map_err(io_err("renaming", &path))?;
        Ok(path)
    }

    /// Every data file of a table (Parquet; NDJSON for dead letters), with its size.
    pub fn files(&self, table: &str) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        walk(&self.table_dir(table), &mut |p| {
            if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("parquet" | "ndjson")
            ) {
                let size = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                out.push((p.to_path_buf(), size));
            }
        });
        out.sort();
        out
    }

    /// Deletes the parts of `source` that start at or after `offset` (they were written after
    /// the last checkpoint, and the replay will write them again). Returns how many.
    pub fn roll_back(&self, table: &str, source: &str, offset: u64) -> Result<usize, CaptureError> {
        let mut removed = 0;
        for (path, _) in self.files(table) {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(PartName::parse)
            else {
                continue;
            };
            if name.source == source && name.start >= offset {
                fs::remove_file(&path).map_err(io_err("removing", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The sources that have parts in the store, for rolling back those never checkpointed.
    pub fn sources(&self, table: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .files(table)
            .iter()
            .filter_map(|(p, _)| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(PartName::parse)
            })
            .map(|n| n.source)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Merges the small parts of every hour partition older than `before_hour` (an hour index:
    /// Unix hours) into one file, when every part is covered by `is_durable` (behind its
    /// source's checkpoint).
    pub fn compact(
        &self,
        table: &str,
        before_hour: i64,
        min_files: usize,
        is_durable: &dyn Fn(&PartName) -> bool,
    ) -> Result<usize, CaptureError> {
        let mut compacted = 0;
        for dir in self.partitions(table) {
            let Some(hour) = partition_hour(&dir) else {
                continue;
            };
            if hour >= before_hour {
                continue;
            }
            let parts: Vec<PathBuf> = list_parquet(&dir)
                .into_iter()
                .filter(|p| file_name(p).starts_with("part-"))
                .collect();
            if parts.len() < min_files {
                continue;
            }
            if !parts
                .iter()
                .all(|p| PartName::parse(file_name(p)).is_some_and(|n| is_durable(&n)))
            {
                continue;
            }
            let mut batches = Vec::new();
            for p in &parts {
                batches.extend(read_parquet(p)?);
            }
            let n = list_parquet(&dir)
                .iter()
                .filter(|p| file_name(p).starts_with("compacted-"))
                .count();
            let target = dir.join(format!("compacted-{n}.parquet"));
            self.write_file(&target, &batches)?;
            for p in &parts {
                fs::remove_file(p).map_err(io_err("removing", p))?;
            }
            compacted += 1;
        }
        Ok(compacted)
    }

    /// Deletes whole hour partitions older than `max_age_hours` before `now_hour`, then the
    /// oldest ones until the table is at most `max_bytes`.
    pub fn enforce_retention(
        &self,
        table: &str,
        now_hour: i64,
        max_age_hours: Option<i64>,
        max_bytes: Option<u64>,
    ) -> Result<RetentionReport, CaptureError> {
        let mut report = RetentionReport::default();
        let mut partitions: Vec<(i64, PathBuf, u64)> = self
            .partitions(table)
            .into_iter()
            .filter_map(|d| {
                let hour = partition_hour(&d)?;
                let size = list_parquet(&d)
                    .iter()
                    .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                    .sum();
                Some((hour, d, size))
            })
            .collect();
        partitions.sort();
        let mut total: u64 = partitions.iter().map(|p| p.2).sum();
        for (hour, dir, size) in partitions {
            let too_old = max_age_hours.is_some_and(|age| hour < now_hour - age);
            let too_big = max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                continue;
            }
            fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
            if let Some(date_dir) = dir.parent() {
                let _ = fs::remove_dir(date_dir); // only if now empty
            }
            total = total.saturating_sub(size);
            report.partitions_removed += 1;
            report.bytes_freed += size;
        }
        Ok(report)
    }

    fn partitions(&self, table: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(dates) = fs::read_dir(self.table_dir(table)) else {
            return out;
        };
        for d in dates
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
        {
            if let Ok(hours) = fs::read_dir(&d) {
                out.extend(
                    hours
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_dir()),
                );
            }
        }
        out.sort();
        out
    }
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn list_parquet(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()) == Some("parquet")
                        && !file_name(p).starts_with('.')
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if file_name(&p).starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// Reads every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, CaptureError> {
    let err = |m: String| CaptureError::Parquet {
        path: path.to_path_buf(),
        message: m,
    };
    let file = File::open(path).map_err(io_err("opening", path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(e.to_string()))?
        .build()
        .map_err(|e| err(e.to_string()))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// `date=YYYY-MM-DD/hour=HH` of a Unix hour.
pub fn partition_dir(hour: i64) -> String {
    let secs = hour * 3600;
    let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    format!("date={}/hour={}", dt.format("%Y-%m-%d"), dt.format("%H"))
}

fn partition_hour(dir: &Path) -> Option<i64> {
    let hour: i64 = file_name(dir).strip_prefix("hour=")?.parse().ok()?;
    let date = dir.parent().map(file_name)?.strip_prefix("date=")?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let secs = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(secs / 3600 + hour)
}

/// The rows of a batch grouped by the Unix hour of their `ts` (column 1 of every table).
fn split_by_hour(batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>, CaptureError> {
    let ts = batch
        .column_by_name("ts")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| CaptureError::Parquet {
            path: PathBuf::new(),
            message: "batch has no microsecond `ts` column".into(),
        })?;
    let hours: Vec<i64> = (0..ts.len())
        .map(|i| {
            if ts.is_null(i) {
                0
            } else {
                ts.value(i).div_euclid(MICROS_PER_HOUR)
            }
        })
        .collect();
    let mut distinct = hours.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() == 1 {
        return Ok(vec![(distinct[0], batch.clone())]);
    }
    distinct
        .into_iter()
        .map(|h| {
            let mask: BooleanArray = hours.iter().map(|x| Some(*x == h)).collect();
            filter_record_batch(batch, &mask)
                .map(|b| (h, b))
                .map_err(|e| CaptureError::Parquet {
                    path: PathBuf::new(),
                    message: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{ReadOptions, decode_audit_bytes};

    fn batch_at(times: &[&str]) -> RecordBatch {
        let text: String = times
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{{\"kind\":\"Event\",\"auditID\":\"a{i}\",\"verb\":\"get\",\"stageTimestamp\":\"{t}\"}}\n"))
            .collect();
        decode_audit_bytes(text.as_bytes(), &ReadOptions::default())
            .0
            .remove(0)
    }

    #[test]
    fn batches_are_split_by_hour_into_hive_partitions_named_by_source_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaptureStore::open(dir.path(), false).unwrap();
        let batch = batch_at(&[
            "2024-05-01T10:59:59Z",
            "2024-05-01T11:00:00Z",
            "2024-05-01T10:00:01Z",
        ]);
        let files = store.write("audit", &batch, "src1", 0, 300).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "audit/date=2024-05-01/hour=10/part-src1-0-300.parquet",
                "audit/date=2024-05-01/hour=11/part-src1-0-300.parquet"
            ]
        );
        let rows: usize = files
            .iter()
            .map(|f| {
                read_parquet(f)
                    .unwrap()
                    .iter()
                    .map(|b| b.num_rows())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(rows, 3);
        assert!(
            !fs::read_dir(dir.path().join("audit/date=2024-05-01/hour=10"))
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().starts_with('.'))
        );
    }

    #[test]
    fn several_batches_of_one_range_make_one_part_per_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaptureStore::open(dir.path(), false).unwrap();
        let first = batch_at(&["2024-05-01T10:59:59Z", "2024-05-01T11:00:00Z"]);
        let second = batch_at(&["2024-05-01T11:30:00Z", "2024-05-01T10:10:00Z"]);
        let files = store
            .write_all("audit", &[first, second], "src1", 0, 700)
            .unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let rows =
            |f: &PathBuf| -> usize { read_parquet(f).unwrap().iter().map(|b| b.num_rows()).sum() };
        assert!(files[0].ends_with("hour=10/part-src1-0-700.parquet"));
        assert_eq!(rows(&files[0]), 2);
        assert!(files[1].ends_with("hour=11/part-src1-0-700.parquet"));
        assert_eq!(rows(&files[1]), 2);
    }

    #[test]
    fn parts_beyond_a_checkpoint_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaptureStore::open(dir.path(), false).unwrap();
        let b = batch_at(&["2024-05-01T10:00:00Z"]);
        store.write("audit", &b, "src1", 0, 100).unwrap();
        store.write("audit", &b, "src1", 100, 200).unwrap();
        store.write("audit", &b, "src2", 100, 200).unwrap();
        assert_eq!(store.roll_back("audit", "src1", 100).unwrap(), 1);
        let names: Vec<String> = store
            .files("audit")
            .iter()
            .map(|(p, _)| file_name(p).to_string())
            .collect();
        assert_eq!(
            names,
            ["part-src1-0-100.parquet", "part-src2-100-200.parquet"]
        );
        assert_eq!(store.sources("audit"), ["src1", "src2"]);
    }

    #[test]
    fn compaction_merges_closed_durable_hours_and_retention_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaptureStore::open(dir.path(), false).unwrap();
        let b10 = batch_at(&["2024-05-01T10:00:00Z", "2024-05-01T10:30:00Z"]);
        let b12 = batch_at(&["2024-05-01T12:00:00Z"]);
        for i in 0..3u64 {
            store
                .write("audit", &b10, "s", i * 10, i * 10 + 10)
                .unwrap();
        }
        store.write("audit", &b12, "s", 30, 40).unwrap();
        let hour_12 = partition_hour(&dir.path().join("audit/date=2024-05-01/hour=12")).unwrap();
        assert_eq!(
            store
                .compact("audit", hour_12, 2, &|p| p.end <= 30)
                .unwrap(),
            1
        );
        let files = store.files("audit");
        assert_eq!(files.len(), 2);
        assert!(file_name(&files[0].0).starts_with("compacted-"));
        assert_eq!(
            read_parquet(&files[0].0)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            6
        );
        let report = store
            .enforce_retention("audit", hour_12, Some(1), None)
            .unwrap();
        assert_eq!(report.partitions_removed, 1);
        assert_eq!(store.files("audit").len(), 1);
        let report = store
            .enforce_retention("audit", hour_12, None, Some(1))
            .unwrap();
        assert_eq!(report.partitions_removed, 1);
        assert!(store.files("audit").is_empty());
    }

    #[test]
    fn part_names_round_trip() {
        assert_eq!(
            PartName::parse("part-803-1a2b-0011aabbccdd-1024-2048.parquet"),
            Some(PartName {
                source: "803-1a2b-0011aabbccdd".into(),
                start: 1024,
                end: 2048
            })
        );
        assert_eq!(PartName::parse("compacted-0.parquet"), None);
    }
}
