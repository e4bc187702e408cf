//! Audit decoders: every shape of Kubernetes audit record, to rows of the `audit` table.
//!
//! One entry point, [`AuditDecoder::decode`], takes one framed record (a line, or a pretty-printed
//! document) and recognises its shape by its fields: a native `audit.k8s.io` Event (v1, v1beta1,
//! older partial shapes), an `EventList` or a JSON array of events, an AKS diagnostic record or
//! Event Hub batch, a GKE Cloud Audit Logs entry, a CloudWatch Logs subscription envelope (EKS) or
//! one exported CloudWatch event. Rows go into Arrow builders; `flush` yields a batch. Like
//! arrow-json's decoder, it never owns the input source, so files, the tailer and a webhook body
//! all feed it the same way.

mod builder;
mod event;
mod facts;
mod gke;
mod json_reader;
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
use crate::netlog::hubble::{self, HubbleRecord};
use crate::netlog::zeek::{self, TsvHeader};
use crate::netlog::{coredns, vpc};
use crate::table_builder::TableBuilder;
use crate::time::parse_rfc3339_micros;
use event::{Envelope, KnownAnnotations, Wanted, is_null};

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

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            cluster: None,
            max_event_bytes: 1 << 20,
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
    dns: TableBuilder,
    flow: TableBuilder,
    /// Header of the Zeek TSV file being read, if any.
    zeek: Option<TsvHeader>,
    /// Fields named by a VPC flow log header line (empty: the v2 default format).
    vpc_fields: Vec<String>,
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
    let line = strip_cri_prefix(line).map_or(line, |(_, rest)| rest);
    (line.starts_with("#separator") || line.starts_with("#fields"))
        || vpc::is_header(line)
        || vpc::looks_like(line, &[])
        || coredns::looks_like(line)
}

/// Text lines of the decoders that are per-file state, not events: they set how the lines after
/// them are read.
pub fn is_header_line(line: &[u8]) -> bool {
    let line = trim(strip_bom(line));
    line.starts_with(b"#")
        || (line.starts_with(b"version ") && std::str::from_utf8(line).is_ok_and(vpc::is_header))
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
            dns: TableBuilder::new(TableKind::Dns),
            flow: TableBuilder::new(TableKind::Flow),
            zeek: None,
            vpc_fields: Vec::new(),
        }
    }

    /// Rows decoded and not yet flushed.
    pub fn buffered_rows(&self) -> usize {
        self.audit.builder.len() + self.dns.len() + self.flow.len()
    }

    /// Forgets per-file state (Zeek and VPC headers): call before reading another file.
    pub fn reset_file_state(&mut self) {
        self.zeek = None;
        self.vpc_fields.clear();
    }

    /// Decodes one framed record, appending its events to the current batch.
    pub fn decode(&mut self, record: &[u8]) -> RecordOutcome {
        let mut out = RecordOutcome::default();
        let record = trim(strip_bom(record));
        if record.is_empty() {
            return out;
        }
        if is_json_start(record) {
            self.decode_value(record, None, 0, &mut out);
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
        if !self.dns.is_empty() {
            out.push((TableKind::Dns, self.dns.finish()?));
        }
        if !self.flow.is_empty() {
            out.push((TableKind::Flow, self.flow.finish()?));
        }
        Ok(out)
    }

    /// A text line: CoreDNS, Zeek TSV, VPC flow log, or a header of one of them. A container
    /// runtime's `<time> stdout F ` prefix is stripped and its time used.
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
        let cluster = cluster
            .or(self.options.cluster.as_deref())
            .map(String::from);
        if line.starts_with('#') {
            self.zeek
                .get_or_insert_with(TsvHeader::default)
                .absorb(line);
            return;
        }
        if vpc::is_header(line) {
            self.vpc_fields = line.split_whitespace().map(String::from).collect();
            return;
        }
        let now = time_hint.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        if let Some(header) = self
            .zeek
            .as_ref()
            .filter(|h| !h.fields.is_empty() && line.contains('\t'))
        {
            match zeek::parse_tsv(line, header) {
                Ok(mut row) => {
                    row.cluster = cluster;
                    self.dns.append(row.cells());
                    out.events += 1;
                }
                Err(DecodeError::NotAuditEvent(m)) if m.contains("only dns.log") => {
                    out.skipped += 1
                }
                Err(e) => out.errors.push(e),
            }
            return;
        }
        if vpc::looks_like(line, &self.vpc_fields) {
            match vpc::parse(line, &self.vpc_fields) {
                Ok(Some(mut row)) => {
                    row.cluster = cluster;
                    self.flow.append(row.cells());
                    out.events += 1;
                }
                Ok(None) => out.skipped += 1,
                Err(e) => out.errors.push(e),
            }
            return;
        }
        if coredns::looks_like(line) {
            match coredns::parse(line, now) {
                Ok(mut row) => {
                    row.cluster = cluster;
                    self.dns.append(row.cells());
                    out.events += 1;
                }
                Err(e) => out.errors.push(e),
            }
            return;
        }
        out.errors.push(DecodeError::NotAuditEvent(
            "text line is not a CoreDNS, Zeek dns.log or VPC flow log record".into(),
        ));
    }

    /// A JSON record that is not an audit event: Hubble flows, Zeek JSON (bare or in Metron's
    /// wrapper), a container runtime's JSON log line. `None` when it is none of them.
    fn decode_netlog_json(
        &mut self,
        env: &Envelope<'_>,
        bytes: &[u8],
        cluster: Option<&str>,
        out: &mut RecordOutcome,
    ) -> Option<()> {
        let has = |k: &str| env.unknown.iter().any(|(key, _)| key == k);
        let cluster = cluster
            .or(self.options.cluster.as_deref())
            .map(String::from);
        let text = std::str::from_utf8(bytes).ok()?;
        if has("flow") || (has("verdict") && has("IP")) {
            match hubble::parse(text, has("flow")) {
                Ok(HubbleRecord::Flow(mut row)) => {
                    row.cluster = cluster;
                    self.flow.append(row.cells());
                    out.events += 1;
                }
                Ok(HubbleRecord::Dns(mut row)) => {
                    row.cluster = cluster;
                    self.dns.append(row.cells());
                    out.events += 1;
                }
                Ok(HubbleRecord::Skipped) => out.skipped += 1,
                Err(e) => out.errors.push(e),
            }
            return Some(());
        }
        if has("id.orig_h") {
            self.push_zeek_json(text, cluster, out);
            return Some(());
        }
        if let [(key, value)] = env.unknown.as_slice()
            && value.starts_with('{')
            && value.contains("\"ts\"")
        {
            if key == "dns" {
                self.push_zeek_json(value, cluster, out);
            } else {
                out.skipped += 1; // another Zeek log in Metron's wrapper
            }
            return Some(());
        }
        if let Some((_, log)) = env.unknown.iter().find(|(k, _)| k == "log")
            && let Ok(line) = serde_json::from_str::<String>(log)
        {
            let time = env
                .unknown
                .iter()
                .find(|(k, _)| k == "time")
                .and_then(|(_, t)| serde_json::from_str::<String>(t).ok());
            let hint = time.and_then(|t| parse_rfc3339_micros(&t).ok());
            self.decode_text(&line, cluster.as_deref(), hint, out);
            return Some(());
        }
        None
    }

    fn push_zeek_json(&mut self, text: &str, cluster: Option<String>, out: &mut RecordOutcome) {
        match zeek::parse_json(text) {
            Ok(mut row) => {
                row.cluster = cluster;
                self.dns.append(row.cells());
                out.events += 1;
            }
            Err(e) => out.errors.push(e),
        }
    }

    fn decode_value(
        &mut self,
        bytes: &[u8],
        cluster: Option<&str>,
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
                        self.decode_value(item.get().as_bytes(), cluster, depth + 1, out);
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
        if let Err(e) = self.dispatch(env, bytes, cluster, depth, out) {
            out.errors.push(e);
        }
    }

    /// Decodes a JSON string value that itself holds a JSON record (AKS `properties.log`,
    /// CloudWatch `message`).
    fn decode_embedded(
        &mut self,
        raw: &str,
        cluster: Option<&str>,
        depth: u8,
        out: &mut RecordOutcome,
    ) {
        let text = raw.trim_start();
        if text.starts_with('"') {
            match serde_json::from_str::<Cow<'_, str>>(text) {
                Ok(inner) => {
                    let inner = trim(strip_bom(inner.as_bytes()));
                    if inner.first().is_some_and(|b| *b == b'{' || *b == b'[') {
                        self.decode_value(inner, cluster, depth + 1, out);
                    } else {
                        // A text record inside a wrapper: a VPC flow log line in CloudWatch, say.
                        match std::str::from_utf8(inner) {
                            Ok(t) => self.decode_text(t, cluster, None, out),
                            Err(_) => out.errors.push(DecodeError::NotUtf8),
                        }
                    }
                }
                Err(e) => out.errors.push(e.into()),
            }
        } else {
            self.decode_value(text.as_bytes(), cluster, depth + 1, out);
        }
    }

    fn dispatch(
        &mut self,
        env: Box<Envelope<'_>>,
        bytes: &[u8],
        cluster: Option<&str>,
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
                .or(cluster);
            let events: Vec<CloudWatchEvent<'_>> = serde_json::from_str(events)?;
            for e in events {
                if let Some(m) = e.message {
                    self.decode_embedded(m.get(), cluster, depth, out);
                }
            }
            return Ok(());
        }
        // EventList (webhook body).
        if let Some(items) = env.items {
            let items: Vec<&RawValue> = serde_json::from_str(items)?;
            for item in items {
                self.decode_value(item.get().as_bytes(), cluster, depth + 1, out);
            }
            return Ok(());
        }
        // AKS Event Hub batch.
        if let Some(records) = env.records {
            let records: Vec<&RawValue> = serde_json::from_str(records)?;
            for r in records {
                self.decode_value(r.get().as_bytes(), cluster, depth + 1, out);
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
            let cluster = env
                .resource_id
                .as_deref()
                .and_then(aks_cluster_name)
                .or(cluster);
            self.decode_embedded(log.get(), cluster, depth, out);
            return Ok(());
        }
        // GKE Cloud Audit Logs entry.
        if let Some(payload) = env.proto_payload {
            return self.gke_event(&env, payload, size, cluster, out);
        }
        let is_event = env.kind.as_deref() == Some("Event")
            || (env.kind.is_none() && (env.audit_id.is_some() || env.verb.is_some()));
        if !is_event
            && env.kind.is_none()
            && self.decode_netlog_json(&env, bytes, cluster, out).is_some()
        {
            return Ok(());
        }
        if !is_event {
            // One exported CloudWatch event: {"timestamp":..,"message":"{...Event...}"}.
            if let (None, Some(message)) = (env.kind.as_deref(), env.message) {
                self.decode_embedded(message, cluster, depth, out);
                return Ok(());
            }
            return Err(DecodeError::NotAuditEvent(match env.kind.as_deref() {
                Some(kind) => format!("kind `{kind}` is not Event or EventList"),
                None => "no kind, auditID or verb".into(),
            }));
        }
        if size > self.options.max_event_bytes {
            return Err(DecodeError::Oversized {
                size,
                limit: self.options.max_event_bytes,
            });
        }
        let mut row = native_row(env, cluster.or(self.options.cluster.as_deref()))?;
        self.omissions.apply(&mut row);
        self.audit.push(&row, out);
        Ok(())
    }
}

/// The row of a native Event. `cluster` is the wrapper's cluster, else the configured one.
fn native_row<'a>(
    env: Box<Envelope<'a>>,
    cluster: Option<&'a str>,
) -> Result<Box<AuditRow<'a>>, DecodeError> {
    let stage_ts = env
        .stage_timestamp
        .as_deref()
        .map(parse_rfc3339_micros)
        .transpose()?;
    let received_ts = env
        .request_received_timestamp
        .as_deref()
        .map(parse_rfc3339_micros)
        .transpose()?;
    let legacy_ts = match env.timestamp {
        Some(raw) if !is_null(raw) => Some(timestamp_value(raw)?),
        _ => None,
    };
    let meta_ts = env
        .metadata
        .as_ref()
        .and_then(|m| m.creation_timestamp.as_deref())
        .map(parse_rfc3339_micros)
        .transpose()?;
    let ts = stage_ts
        .or(received_ts)
        .or(legacy_ts)
        .or(meta_ts)
        .ok_or_else(|| DecodeError::NotAuditEvent("event has no timestamp".into()))?;

    // Built in place on the heap, like the envelope: a row is most of a kilobyte.
    let mut row = Box::<AuditRow<'a>>::default();
    row.cluster = cluster.map(Cow::Borrowed);
    row.ts_micros = ts;
    row.request_received_micros = received_ts.or(legacy_ts);
    row.audit_id = env.audit_id;
    row.stage = env.stage;
    row.level = env.level;
    row.verb = env.verb;
    row.request_uri = env.request_uri;
    row.source_ips = env.source_ips;
    row.user_agent = env.user_agent;
    row.identity = env.identity;
    if let Some(user) = env.user {
        row.user_name = user.username;
        row.user_groups = user.groups;
    }
    if let Some(user) = env.impersonated_user {
        row.impersonated_user = user.username;
        row.impersonated_groups = user.groups;
    }
    if let Some(obj) = env.object_ref {
        row.resource = obj.resource;
        row.subresource = obj.subresource;
        row.namespace = obj.namespace;
        row.name = obj.name;
        row.api_group = obj.api_group;
        row.api_version = obj.api_version;
    }
    if let Some(status) = env.response_status {
        row.response_code = status.code;
        row.response_reason = status.reason;
        row.response_message = status.message;
    }
    if let Some(raw) = env.annotations.filter(|r| !is_null(r)) {
        let known = env
            .known_annotations
            .unwrap_or_else(|| KnownAnnotations::find(raw));
        row.decision = known.decision;
        row.reason = known.reason;
        row.pod_security_violations = known.pod_security_violations;
        row.annotations = Some(Cow::Borrowed(raw));
    }
    fill_objects(&mut row, env.request_object, env.response_object);
    row.exec_command = exec_command(&row);
    row.unknown_fields = unknown_fields(&env.unknown);
    Ok(row)
}

impl AuditDecoder {
    fn gke_event(
        &mut self,
        env: &Envelope<'_>,
        payload: &str,
        size: usize,
        cluster: Option<&str>,
        out: &mut RecordOutcome,
    ) -> Result<(), DecodeError> {
        let p: gke::ProtoPayload<'_> = serde_json::from_str(payload)?;
        if !gke::is_kubernetes_api(&p) {
            out.skipped += 1;
            return Ok(());
        }
        if size > self.options.max_event_bytes {
            return Err(DecodeError::Oversized {
                size,
                limit: self.options.max_event_bytes,
            });
        }
        let ts = match env.timestamp {
            Some(raw) if !is_null(raw) => timestamp_value(raw)?,
            _ => {
                return Err(DecodeError::NotAuditEvent(
                    "GKE entry has no timestamp".into(),
                ));
            }
        };
        let resource: gke::MonitoredResource<'_> = env
            .resource
            .map(serde_json::from_str)
            .transpose()?
            .unwrap_or_default();
        let gke_cluster = resource
            .labels
            .as_ref()
            .and_then(|l| l.cluster_name.as_deref());
        let operation: gke::Operation<'_> = env
            .operation
            .map(serde_json::from_str)
            .transpose()?
            .unwrap_or_default();
        let labels: KnownAnnotations<'_> = env
            .labels
            .map(serde_json::from_str)
            .transpose()
            .unwrap_or_default()
            .unwrap_or_default();

        let mut row = AuditRow {
            cluster: gke_cluster
                .or(cluster)
                .or(self.options.cluster.as_deref())
                .map(Cow::Borrowed),
            ts_micros: ts,
            request_received_micros: Some(ts),
            audit_id: operation.id.or_else(|| env.insert_id.clone()),
            stage: Some(Cow::Borrowed("ResponseComplete")),
            level: Some(Cow::Borrowed(if p.request.is_some() {
                "RequestResponse"
            } else {
                "Metadata"
            })),
            user_name: p
                .authentication_info
                .as_ref()
                .and_then(|a| a.principal_email.clone()),
            decision: labels.decision,
            reason: labels.reason,
            pod_security_violations: labels.pod_security_violations,
            annotations: env.labels.map(Cow::Borrowed),
            response_code: p
                .status
                .as_ref()
                .map(|s| gke::http_status(s.code.unwrap_or(0)))
                .or(Some(200)),
            response_message: p
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .map(Cow::Owned),
            ..Default::default()
        };
        if let Some(meta) = &p.request_metadata {
            row.source_ips = meta.caller_ip.clone().map(|ip| vec![ip]);
            row.user_agent = meta.caller_supplied_user_agent.clone();
        }
        gke::fill_target(
            p.method_name.as_deref(),
            p.resource_name.as_deref(),
            &mut row,
        );
        fill_objects(
            &mut row,
            p.request.map(RawValue::get),
            p.response.map(RawValue::get),
        );
        row.exec_command = exec_command(&row);
        self.omissions.apply(&mut row);
        self.audit.push(&row, out);
        Ok(())
    }
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AksProperties<'a> {
    #[serde(borrow)]
    log: Option<&'a RawValue>,
}

/// Keeps the request and response objects (redacted where they may hold secrets) and extracts
/// the facts of the one that describes the object as written.
fn fill_objects<'a>(row: &mut AuditRow<'a>, request: Option<&'a str>, response: Option<&'a str>) {
    let request = request.filter(|r| !is_null(r));
    let response = response.filter(|r| !is_null(r));
    let resource = row.resource.as_deref().unwrap_or("");
    let subresource = row.subresource.as_deref();
    let writes = matches!(row.verb.as_deref(), Some("create" | "update" | "patch"));
    if writes && facts::resource_has_facts(resource, subresource) {
        // A create or update carries the whole object in the request; a patch carries only the
        // change, so its facts come from the response (the object as patched) when the policy
        // keeps it.
        let source = if row.verb.as_deref() == Some("patch") {
            response.or(request)
        } else {
            request.or(response)
        };
        if let Some(obj) = source {
            row.facts = Some(Box::new(facts::extract(resource, subresource, obj)));
        }
    }
    if redact::needs_redaction(resource, subresource) {
        row.request_object = request.and_then(|o| redact::redact(resource, o));
        row.response_object = response.and_then(|o| redact::redact(resource, o));
    } else {
        row.request_object = request.map(Cow::Borrowed);
        row.response_object = response.map(Cow::Borrowed);
    }
}

/// Top-level keys that no known shape has, as one JSON object (`None` when there are none).
fn unknown_fields(unknown: &[(Cow<'_, str>, &str)]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    let mut out = String::from("{");
    for (i, (key, value)) in unknown.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key.as_ref()).ok()?);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    Some(out)
}

/// The command of an exec request, from the `command` query parameters of its URI.
fn exec_command(row: &AuditRow<'_>) -> Option<String> {
    if row.subresource.as_deref() != Some("exec") {
        return None;
    }
    let uri = row.request_uri.as_deref()?;
    let query = uri.split_once('?')?.1;
    let parts: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("command="))
        .map(percent_decode)
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A timestamp given as an RFC 3339 string or as epoch milliseconds.
fn timestamp_value(raw: &str) -> Result<i64, DecodeError> {
    let text = raw.trim();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return parse_rfc3339_micros(inner);
    }
    text.parse::<i64>()
        .map(|ms| ms.saturating_mul(1000))
        .map_err(|_| DecodeError::BadTimestamp(text.to_string()))
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
