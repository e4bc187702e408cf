//! Audit decoders: every shape of Kubernetes audit record, to rows of the `audit` table.
//!
//! One entry point, [`AuditDecoder::decode`], takes one framed record (a line, or a pretty-printed
//! document) and recognises its shape by its fields: a native `audit.k8s.io` Event (v1, v1beta1,
//! older partial shapes), an `EventList` or a JSON array of events, an AKS diagnostic record or
//! Event Hub batch, a GKE Cloud Audit Logs entry, a CloudWatch Logs subscription envelope (EKS),
//! one exported CloudWatch event, or an event inside a collector's record (a container runtime's
//! log line, a Splunk HEC event, an Elastic document, a syslog line); events as data lakes and
//! test suites leave them are read too (`native.rs`). Rows go into Arrow builders; `flush` yields
//! a batch. Like arrow-json's decoder, it never owns the input source, so files, the tailer and a
//! webhook body all feed it the same way.

mod builder;
mod event;
mod facts;
mod gke;
mod json_reader;
mod native;
pub mod redact;
mod row;
pub mod screen;

use std::borrow::Cow;
use std::collections::BTreeSet;

use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde_json::value::RawValue;

pub use builder::AuditBatchBuilder;
use row::Omissions;
pub use row::{AuditRow, IdentityText, ObjectFacts};
use screen::Screening;
pub use screen::{RuleBits, ScreenHandle, ScreenJudge, SetOnDrop};

use audithound_models::TableKind;

use crate::error::DecodeError;
use crate::netlog::decoder::{self as netlog, NetlogDecoder, NetlogOutcome};
use crate::time::parse_rfc3339_micros;
use event::{Envelope, Wanted};
use native::Surroundings;

/// Settings of an audit decoder.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Cluster name for records whose wrapper does not carry one.
    pub cluster: Option<String>,
    /// Events larger than this many bytes are refused as oversized.
    pub max_event_bytes: usize,
    /// The columns of the `audit` table to fill, when only some are read (a scan fills what
    /// its rules read); the others stay null. `None` fills every column.
    pub audit_columns: Option<BTreeSet<String>>,
    /// The screen of the rules that will judge the rows: events that no rule could read are
    /// counted and left out of the batches (a scan). `None` keeps every event.
    pub screen: Option<ScreenHandle>,
}

/// Largest event accepted by default, in bytes: larger than any event an apiserver writes for
/// a real object, small enough that one hostile line cannot take much memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            cluster: None,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            audit_columns: None,
            screen: None,
        }
    }
}

/// What decoding one record produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Events decoded (appended to the batch, or left out by the screen).
    pub events: u64,
    /// Of the events, those left out because no rule could read them.
    pub screened_out: u64,
    /// Records recognised as not being Kubernetes API events (cloud control-plane operations,
    /// CloudWatch health checks, other AKS log categories).
    pub skipped: u64,
    /// Of the events, those without a timestamp of their own, judged at the time of the
    /// record around them (a collector's, a wrapper's) or else the time they were read.
    pub untimed: u64,
    /// Events that could not be decoded; a record holding many events may have several.
    pub errors: Vec<DecodeError>,
}

/// Decodes audit records of any supported shape into rows of the `audit` table.
pub struct AuditDecoder {
    options: DecodeOptions,
    audit: AuditRows,
    /// Columns left null because nothing reads them.
    omissions: Omissions,
    /// What the envelope reader decodes (less when columns are left out).
    wanted: Wanted,
    /// The DNS and flow records among the log's records.
    netlog: NetlogDecoder,
    /// The time of the last audit event of the file being read: an event without a time of its
    /// own or around it is judged at the time of the event before it (it was logged between
    /// its neighbours), so that a scan gives the same findings every time and event time does
    /// not leap to the present in the middle of an old log.
    last_time: Option<i64>,
}

/// The audit rows of the batch being built, and the screen they pass first.
struct AuditRows {
    builder: AuditBatchBuilder,
    /// Which rows join the batch.
    screening: Screening,
    /// The latest event time of the rows left out since the last flush.
    screened_latest: Option<i64>,
}

impl AuditRows {
    /// Appends a row, unless the screen says no rule could read it.
    fn push(&mut self, row: &AuditRow<'_>, out: &mut RecordOutcome) {
        if self.screening.admits(row) {
            self.builder.append(row);
        } else {
            out.screened_out += 1;
            self.screened_latest = Some(
                self.screened_latest
                    .map_or(row.ts_micros, |t| t.max(row.ts_micros)),
            );
        }
        out.events += 1;
    }
}

/// Whether a text line is one of the text formats audithound reads (or their headers).
pub fn is_known_text_line(line: &str) -> bool {
    let (line, cri) = match strip_cri_prefix(line) {
        Some((_, rest)) => (rest, true),
        None => (line, false),
    };
    (cri && line.starts_with('{'))
        || syslog_payload(line).is_some()
        || netlog::is_known_text_line(line)
}

/// Text lines of the decoders that are per-file state, not events: they set how the lines after
/// them are read.
pub fn is_header_line(line: &[u8]) -> bool {
    netlog::is_header_line(trim(strip_bom(line)))
}

const MAX_NESTING: u8 = 4;

impl AuditDecoder {
    /// A decoder with these options.
    pub fn new(options: DecodeOptions) -> Self {
        AuditDecoder {
            omissions: Omissions::keeping(options.audit_columns.as_ref()),
            wanted: Wanted::keeping(options.audit_columns.as_ref()),
            audit: AuditRows {
                builder: AuditBatchBuilder::new(),
                screening: Screening::new(options.screen.as_ref()),
                screened_latest: None,
            },
            options,
            netlog: NetlogDecoder::default(),
            last_time: None,
        }
    }

    /// Rows decoded and not yet flushed.
    pub fn buffered_rows(&self) -> usize {
        self.audit.builder.len() + self.netlog.len()
    }

    /// Forgets per-file state (Zeek and VPC headers, the last event's time): call before reading
    /// another file, or another part of one.
    pub fn reset_file_state(&mut self) {
        self.netlog.reset_file_state();
        self.last_time = None;
    }

    /// Decodes one framed record, appending its events to the current batch.
    pub fn decode(&mut self, record: &[u8]) -> RecordOutcome {
        let mut out = RecordOutcome::default();
        let record = trim(strip_bom(record));
        if record.is_empty() {
            return out;
        }
        if is_json_start(record) {
            self.decode_value(record, Surroundings::default(), 0, &mut out);
        } else {
            match std::str::from_utf8(record) {
                Ok(text) => self.decode_text(text, None, None, &mut out),
                Err(_) => out.errors.push(DecodeError::NotUtf8),
            }
        }
        out
    }

    /// The latest event time (microseconds) of the audit events that the screen left out since
    /// the last call, so that event time still advances where no row reaches the rules.
    pub fn take_screened_latest(&mut self) -> Option<i64> {
        self.audit.screened_latest.take()
    }

    /// The rows decoded since the last flush, one batch per table that has rows.
    pub fn flush(&mut self) -> Result<Vec<(TableKind, RecordBatch)>, arrow::error::ArrowError> {
        let mut out = Vec::new();
        if !self.audit.builder.is_empty() {
            out.push((TableKind::Audit, self.audit.builder.finish()?));
        }
        self.netlog.flush(&mut out)?;
        Ok(out)
    }

    /// A text line: CoreDNS, Zeek TSV, VPC flow log, or a header of one of them, or an audit
    /// event after a syslog header. A container runtime's `<time> stdout F ` prefix is stripped
    /// and its time used.
    fn decode_text(
        &mut self,
        line: &str,
        cluster: Option<&str>,
        time_hint: Option<i64>,
        out: &mut RecordOutcome,
    ) {
        let line = line.trim_end_matches(['\r', '\n']);
        let (line, time_hint) = match strip_cri_prefix(line) {
            Some((ts, rest)) => (rest, Some(ts)),
            None => (line, time_hint),
        };
        // An audit event in a container runtime's log line.
        if line.starts_with('{') {
            let around = Surroundings {
                cluster,
                time: time_hint,
            };
            self.decode_value(line.as_bytes(), around, 1, out);
            return;
        }
        let wrapper_cluster = cluster;
        let cluster = cluster
            .or(self.options.cluster.as_deref())
            .map(String::from);
        let now = || time_hint.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        if counted(self.netlog.decode_text(line, cluster, now), out) {
            return;
        }
        // An event sent through syslog: `<133>Oct 21 10:37:55 host k8s-audit: {...}`.
        if let Some(json) = syslog_payload(line) {
            let around = Surroundings {
                cluster: wrapper_cluster,
                time: time_hint,
            };
            self.decode_value(json.as_bytes(), around, 1, out);
            return;
        }
        out.errors.push(DecodeError::NotAuditEvent(
            "text line is not a CoreDNS, Zeek dns.log or VPC flow log record".into(),
        ));
    }

    /// A JSON record that is not an audit event: Hubble flows, Zeek JSON (bare or in Metron's
    /// wrapper), a container runtime's JSON log line, a Splunk HTTP Event Collector event, an
    /// Elastic document. `None` when it is none of them.
    fn decode_netlog_json(
        &mut self,
        env: &Envelope<'_>,
        bytes: &[u8],
        around: Surroundings<'_>,
        depth: u8,
        out: &mut RecordOutcome,
    ) -> Option<()> {
        let member = |k: &str| {
            env.unknown
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, value)| *value)
        };
        let has = |k: &str| member(k).is_some();
        let cluster = around
            .cluster
            .or(self.options.cluster.as_deref())
            .map(String::from);
        let text = std::str::from_utf8(bytes).ok()?;
        if counted(
            self.netlog.decode_json(text, &env.unknown, cluster.clone()),
            out,
        ) {
            return Some(());
        }
        let time = member("time").and_then(|t| native::timestamp_value(t).ok());
        // A Splunk HTTP Event Collector event: the audit event in `event`.
        if let Some(event) = member("event").filter(|e| e.starts_with(['{', '"']))
            && (has("sourcetype") || has("time") || has("host"))
        {
            let inner = Surroundings {
                cluster: around.cluster,
                time: time.or(around.time),
            };
            self.decode_embedded(event, inner, depth, out);
            return Some(());
        }
        // An Elastic document: the audit event under `kubernetes.audit`.
        if let Some(audit) = member("kubernetes").and_then(elastic_audit_event) {
            let inner = Surroundings {
                cluster: around.cluster,
                time: member("@timestamp")
                    .and_then(|t| native::timestamp_value(t).ok())
                    .or(around.time),
            };
            self.decode_value(audit.as_bytes(), inner, depth + 1, out);
            return Some(());
        }
        if let Some(log) = member("log")
            && let Ok(line) = serde_json::from_str::<String>(log)
        {
            let hint = time.or(around.time);
            let record = trim(strip_bom(line.as_bytes()));
            if is_json_start(record) {
                // A container runtime's JSON log line holding an audit event.
                let inner = Surroundings {
                    cluster: around.cluster,
                    time: hint,
                };
                self.decode_value(record, inner, depth + 1, out);
            } else {
                self.decode_text(&line, cluster.as_deref(), hint, out);
            }
            return Some(());
        }
        None
    }

    fn decode_value(
        &mut self,
        bytes: &[u8],
        around: Surroundings<'_>,
        depth: u8,
        out: &mut RecordOutcome,
    ) {
        if depth > MAX_NESTING {
            out.errors.push(DecodeError::NotAuditEvent(
                "wrappers nested too deeply".into(),
            ));
            return;
        }
        if bytes.first() == Some(&b'[') {
            match serde_json::from_slice::<Vec<&RawValue>>(bytes) {
                Ok(items) => {
                    for item in items {
                        self.decode_value(item.get().as_bytes(), around, depth + 1, out);
                    }
                }
                Err(e) => out.errors.push(e.into()),
            }
            return;
        }
        // One check of the whole record is cheaper than serde_json's check of every string in
        // it; a record that is not valid UTF-8 still gets the byte parser's verdict.
        let parsed = match json_reader::plain(bytes) {
            Some(text) => Envelope::parse_plain(text, self.wanted),
            None => match std::str::from_utf8(bytes) {
                Ok(text) => Envelope::parse(text, self.wanted),
                Err(_) => serde_json::from_slice(bytes).map(Box::new),
            },
        };
        let env: Box<Envelope<'_>> = match parsed {
            Ok(env) => env,
            Err(e) => {
                out.errors.push(e.into());
                return;
            }
        };
        if let Err(e) = self.dispatch(env, bytes, around, depth, out) {
            out.errors.push(e);
        }
    }

    /// Decodes a JSON string value that itself holds a JSON record (AKS `properties.log`,
    /// CloudWatch `message`).
    fn decode_embedded(
        &mut self,
        raw: &str,
        around: Surroundings<'_>,
        depth: u8,
        out: &mut RecordOutcome,
    ) {
        let text = raw.trim_start();
        if text.starts_with('"') {
            match serde_json::from_str::<Cow<'_, str>>(text) {
                Ok(inner) => {
                    let inner = trim(strip_bom(inner.as_bytes()));
                    if inner.first().is_some_and(|b| *b == b'{' || *b == b'[') {
                        self.decode_value(inner, around, depth + 1, out);
                    } else {
                        // A text record inside a wrapper: a VPC flow log line in CloudWatch, say.
                        match std::str::from_utf8(inner) {
                            Ok(t) => self.decode_text(t, around.cluster, around.time, out),
                            Err(_) => out.errors.push(DecodeError::NotUtf8),
                        }
                    }
                }
                Err(e) => out.errors.push(e.into()),
            }
        } else {
            self.decode_value(text.as_bytes(), around, depth + 1, out);
        }
    }

    fn dispatch(
        &mut self,
        env: Box<Envelope<'_>>,
        bytes: &[u8],
        around: Surroundings<'_>,
        depth: u8,
        out: &mut RecordOutcome,
    ) -> Result<(), DecodeError> {
        let size = bytes.len();
        // CloudWatch Logs subscription envelope (EKS control-plane logs).
        if let Some(mt) = env.message_type.as_deref() {
            if mt == "CONTROL_MESSAGE" {
                out.skipped += 1;
                return Ok(());
            }
            let events = env.log_events.ok_or_else(|| {
                DecodeError::NotAuditEvent("CloudWatch envelope without logEvents".into())
            })?;
            let cluster = env
                .log_group
                .as_deref()
                .and_then(eks_cluster_name)
                .or(around.cluster);
            let events: Vec<CloudWatchEvent<'_>> = serde_json::from_str(events)?;
            for e in events {
                if let Some(m) = e.message {
                    let time = e
                        .timestamp
                        .and_then(|t| native::timestamp_value(t.get()).ok());
                    let inner = Surroundings {
                        cluster,
                        time: time.or(around.time),
                    };
                    self.decode_embedded(m.get(), inner, depth, out);
                }
            }
            return Ok(());
        }
        // EventList (webhook body).
        if let Some(items) = env.items {
            let items: Vec<&RawValue> = serde_json::from_str(items)?;
            for item in items {
                self.decode_value(item.get().as_bytes(), around, depth + 1, out);
            }
            return Ok(());
        }
        // AKS Event Hub batch.
        if let Some(records) = env.records {
            let records: Vec<&RawValue> = serde_json::from_str(records)?;
            for r in records {
                self.decode_value(r.get().as_bytes(), around, depth + 1, out);
            }
            return Ok(());
        }
        // One AKS diagnostic record.
        if let Some(props) = env.properties {
            if env
                .category
                .as_deref()
                .is_some_and(|cat| !cat.starts_with("kube-audit"))
            {
                out.skipped += 1;
                return Ok(());
            }
            let props: AksProperties<'_> = serde_json::from_str(props)?;
            let log = props.log.ok_or_else(|| {
                DecodeError::NotAuditEvent("AKS record without properties.log".into())
            })?;
            let inner = Surroundings {
                cluster: env
                    .resource_id
                    .as_deref()
                    .and_then(aks_cluster_name)
                    .or(around.cluster),
                time: native::added_time(&env.unknown, &["time"]).or(around.time),
            };
            self.decode_embedded(log.get(), inner, depth, out);
            return Ok(());
        }
        // Another log category of a cloud's diagnostic records (Azure's Administrative, say).
        if env
            .category
            .as_deref()
            .is_some_and(|cat| !cat.starts_with("kube-audit"))
            && env.kind.is_none()
            && env.proto_payload.is_none()
        {
            out.skipped += 1;
            return Ok(());
        }
        // GKE Cloud Audit Logs entry.
        if let Some(payload) = env.proto_payload {
            return self.gke_event(&env, payload, bytes, around, out);
        }
        let is_event =
            env.kind.as_deref() == Some("Event") || (env.kind.is_none() && looks_like_event(&env));
        if !is_event
            && env.kind.is_none()
            && self
                .decode_netlog_json(&env, bytes, around, depth, out)
                .is_some()
        {
            return Ok(());
        }
        if !is_event {
            // One exported CloudWatch event: {"timestamp":..,"message":"{...Event...}"}.
            if let (None, Some(message)) = (env.kind.as_deref(), env.message) {
                let inner = Surroundings {
                    cluster: around.cluster,
                    time: native::present(env.timestamp)
                        .and_then(|t| native::timestamp_value(t).ok())
                        .or(around.time),
                };
                self.decode_embedded(message, inner, depth, out);
                return Ok(());
            }
            return Err(DecodeError::NotAuditEvent(match env.kind.as_deref() {
                Some(kind) => format!("kind `{kind}` is not Event or EventList"),
                None => "no kind, auditID, verb, objectRef, requestURI or user".into(),
            }));
        }
        if size > self.options.max_event_bytes {
            return Err(DecodeError::Oversized {
                size,
                limit: self.options.max_event_bytes,
            });
        }
        let around = Surroundings {
            time: around.time.or(self.last_time),
            ..around
        };
        let (mut row, own_time) =
            native::native_row(env, around, self.options.cluster.as_deref(), bytes)?;
        if !own_time {
            out.untimed += 1;
        }
        self.last_time = Some(row.ts_micros);
        self.omissions.apply(&mut row);
        self.audit.push(&row, out);
        Ok(())
    }
}

impl AuditDecoder {
    fn gke_event(
        &mut self,
        env: &Envelope<'_>,
        payload: &str,
        record: &[u8],
        around: Surroundings<'_>,
        out: &mut RecordOutcome,
    ) -> Result<(), DecodeError> {
        let p: gke::ProtoPayload<'_> = serde_json::from_str(payload)?;
        if !gke::is_kubernetes_api(&p) {
            out.skipped += 1;
            return Ok(());
        }
        if record.len() > self.options.max_event_bytes {
            return Err(DecodeError::Oversized {
                size: record.len(),
                limit: self.options.max_event_bytes,
            });
        }
        let around = Surroundings {
            time: around.time.or(self.last_time),
            ..around
        };
        let (mut row, own_time) =
            gke::row(env, p, around, self.options.cluster.as_deref(), record)?;
        if !own_time {
            out.untimed += 1;
        }
        self.last_time = Some(row.ts_micros);
        self.omissions.apply(&mut row);
        self.audit.push(&row, out);
        Ok(())
    }
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

/// Whether a record without `kind` is an audit event: it has a member only events have. Data
/// lakes and test suites keep a few members of an event and drop the rest.
/// Counts what the network-log decoders made of a record; whether it was theirs.
fn counted(outcome: NetlogOutcome, out: &mut RecordOutcome) -> bool {
    match outcome {
        NetlogOutcome::Row => out.events += 1,
        NetlogOutcome::Header => {}
        NetlogOutcome::Skipped => out.skipped += 1,
        NetlogOutcome::Refused(e) => out.errors.push(e),
        NetlogOutcome::NotNetlog => return false,
    }
    true
}

fn looks_like_event(env: &Envelope<'_>) -> bool {
    env.audit_id.is_some()
        || env.verb.is_some()
        || env.object_ref.is_some()
        || env.request_uri.is_some()
        || (env.user.is_some() && (env.stage.is_some() || env.response_status.is_some()))
}

/// The audit event of an Elastic document's `kubernetes` member (`{"audit": {...}}`), as JSON
/// text.
fn elastic_audit_event(kubernetes: &str) -> Option<&str> {
    #[derive(Deserialize)]
    struct Kubernetes<'a> {
        #[serde(borrow)]
        audit: Option<&'a RawValue>,
    }
    let k: Kubernetes<'_> = serde_json::from_str(kubernetes).ok()?;
    k.audit.map(RawValue::get).filter(|a| a.starts_with('{'))
}

/// The JSON after a syslog header (`<PRI>` or a month name starting the line), when there is
/// one: audit events sent through syslog.
fn syslog_payload(line: &str) -> Option<&str> {
    const MONTHS: [&str; 12] = [
        "Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ",
        "Dec ",
    ];
    let after_pri = match line.strip_prefix('<') {
        Some(rest) => {
            let end = rest.find('>')?;
            if end == 0 || end > 3 || !rest[..end].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &rest[end + 1..]
        }
        None => line,
    };
    let header = after_pri.len() < line.len()
        || MONTHS.iter().any(|m| after_pri.starts_with(m))
        || after_pri.as_bytes().get(4) == Some(&b'-');
    let json = &line[line.find('{')?..];
    (header && json.trim_end().ends_with('}')).then_some(json)
}

#[derive(Deserialize)]
struct AksProperties<'a> {
    #[serde(borrow)]
    log: Option<&'a RawValue>,
}

/// `/aws/eks/<name>/cluster` → `<name>`.
fn eks_cluster_name(log_group: &str) -> Option<&str> {
    let rest = log_group.strip_prefix("/aws/eks/")?;
    let (name, tail) = rest.split_once('/')?;
    (tail == "cluster" && !name.is_empty()).then_some(name)
}

/// `/SUBSCRIPTIONS/../MANAGEDCLUSTERS/<name>` → `<name>`.
fn aks_cluster_name(resource_id: &str) -> Option<&str> {
    let upper = resource_id.to_ascii_uppercase();
    let idx = upper.find("/MANAGEDCLUSTERS/")? + "/MANAGEDCLUSTERS/".len();
    let name = resource_id[idx..].split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Whether a record is JSON: an object, or an array (`[INFO] ...` and `[::1]:53 ...` are text).
fn is_json_start(record: &[u8]) -> bool {
    match record.first() {
        Some(b'{') => true,
        Some(b'[') => record[1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|b| {
                matches!(
                    b,
                    b'{' | b'[' | b']' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
                )
            }),
        _ => false,
    }
}

/// `2024-05-01T10:00:00.123456789Z stdout F <line>` (the CRI log format) → (time, line).
fn strip_cri_prefix(line: &str) -> Option<(i64, &str)> {
    let (ts, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    let (tag, rest) = rest.split_once(' ')?;
    if !matches!(tag, "F" | "P") {
        return None;
    }
    Some((parse_rfc3339_micros(ts).ok()?, rest))
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

#[cfg(test)]
mod tests;
