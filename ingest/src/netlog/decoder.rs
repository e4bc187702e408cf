//! Recognising DNS and network-flow records among a log's records, and building their rows.
//!
//! The audit decoder hands over every record that is not an audit event (nor a wrapper of one):
//! a text line, or a JSON object with its top-level members. This decoder knows the formats by
//! their shape, keeps the per-file state that some of them need (a Zeek TSV `#fields` header, a
//! VPC flow log's header of field names) and the builders of the `dns` and `flow` tables.

use std::borrow::Cow;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use audithound_models::TableKind;

use super::hubble::{self, HubbleRecord};
use super::zeek::{self, TsvHeader};
use super::{DnsRow, FlowRow, coredns, vpc};
use crate::error::DecodeError;
use crate::table_builder::TableBuilder;

/// What a record was to the network-log decoders.
#[derive(Debug)]
pub enum NetlogOutcome {
    /// One row was added.
    Row,
    /// A header that sets how the lines after it are read.
    Header,
    /// A record of a known format that holds nothing for audithound (another Zeek log, a VPC
    /// record without data, a Hubble record of another kind).
    Skipped,
    /// A record of a known format that could not be read.
    Refused(DecodeError),
    /// Not a DNS or flow record.
    NotNetlog,
}

/// The DNS and flow rows decoded since the last flush, and the state of the file being read.
pub struct NetlogDecoder {
    dns: TableBuilder,
    flow: TableBuilder,
    /// Header of the Zeek TSV file being read, if any.
    zeek: Option<TsvHeader>,
    /// Fields named by a VPC flow log header line (empty: the v2 default format).
    vpc_fields: Vec<String>,
}

impl Default for NetlogDecoder {
    fn default() -> Self {
        NetlogDecoder {
            dns: TableBuilder::new(TableKind::Dns),
            flow: TableBuilder::new(TableKind::Flow),
            zeek: None,
            vpc_fields: Vec::new(),
        }
    }
}

/// Whether a text line starts a file of a text format read here (or is its header).
pub fn is_known_text_line(line: &str) -> bool {
    line.starts_with("#separator")
        || line.starts_with("#fields")
        || vpc::is_header(line)
        || vpc::looks_like(line, &[])
        || coredns::looks_like(line)
}

/// Whether a text line is per-file state rather than a record: a Zeek `#` header or a VPC flow
/// log's header of field names.
pub fn is_header_line(line: &[u8]) -> bool {
    line.starts_with(b"#")
        || (line.starts_with(b"version ") && std::str::from_utf8(line).is_ok_and(vpc::is_header))
}

impl NetlogDecoder {
    /// Rows decoded and not yet flushed.
    pub fn len(&self) -> usize {
        self.dns.len() + self.flow.len()
    }

    /// Whether no row waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the headers of the file being read: call before reading another file.
    pub fn reset_file_state(&mut self) {
        self.zeek = None;
        self.vpc_fields.clear();
    }

    /// The rows decoded since the last flush, one batch per table that has rows.
    pub fn flush(&mut self, out: &mut Vec<(TableKind, RecordBatch)>) -> Result<(), ArrowError> {
        if !self.dns.is_empty() {
            out.push((TableKind::Dns, self.dns.finish()?));
        }
        if !self.flow.is_empty() {
            out.push((TableKind::Flow, self.flow.finish()?));
        }
        Ok(())
    }

    /// A text line without its line end: a Zeek TSV header or record, a VPC flow log header or
    /// record, or a CoreDNS log line. `now` is the time of a record that carries none of its
    /// own (CoreDNS lines have no date).
    pub fn decode_text(
        &mut self,
        line: &str,
        cluster: Option<String>,
        now: impl FnOnce() -> i64,
    ) -> NetlogOutcome {
        if line.starts_with('#') {
            self.zeek
                .get_or_insert_with(TsvHeader::default)
                .absorb(line);
            return NetlogOutcome::Header;
        }
        if vpc::is_header(line) {
            self.vpc_fields = line.split_whitespace().map(String::from).collect();
            return NetlogOutcome::Header;
        }
        if let Some(header) = self
            .zeek
            .as_ref()
            .filter(|h| !h.fields.is_empty() && line.contains('\t'))
        {
            return match zeek::parse_tsv(line, header) {
                Ok(row) => self.push_dns(row, cluster),
                Err(DecodeError::NotAuditEvent(m)) if m.contains("only dns.log") => {
                    NetlogOutcome::Skipped
                }
                Err(e) => NetlogOutcome::Refused(e),
            };
        }
        if vpc::looks_like(line, &self.vpc_fields) {
            return match vpc::parse(line, &self.vpc_fields) {
                Ok(Some(row)) => self.push_flow(row, cluster),
                Ok(None) => NetlogOutcome::Skipped,
                Err(e) => NetlogOutcome::Refused(e),
            };
        }
        if coredns::looks_like(line) {
            return match coredns::parse(line, now()) {
                Ok(row) => self.push_dns(row, cluster),
                Err(e) => NetlogOutcome::Refused(e),
            };
        }
        NetlogOutcome::NotNetlog
    }

    /// A JSON object, given as its text and its top-level members (name, raw value): a Hubble
    /// flow (as `hubble observe` or the exporter writes it), or a Zeek `dns.log` record, bare or
    /// in Metron's `{"dns": {...}}` wrapper.
    pub fn decode_json(
        &mut self,
        text: &str,
        members: &[(Cow<'_, str>, &str)],
        cluster: Option<String>,
    ) -> NetlogOutcome {
        let has = |name: &str| members.iter().any(|(key, _)| key == name);
        if has("flow") || (has("verdict") && has("IP")) {
            return match hubble::parse(text, has("flow")) {
                Ok(HubbleRecord::Flow(row)) => self.push_flow(row, cluster),
                Ok(HubbleRecord::Dns(row)) => self.push_dns(row, cluster),
                Ok(HubbleRecord::Skipped) => NetlogOutcome::Skipped,
                Err(e) => NetlogOutcome::Refused(e),
            };
        }
        if has("id.orig_h") {
            return self.push_zeek_json(text, cluster);
        }
        if let [(key, value)] = members
            && value.starts_with('{')
            && value.contains("\"ts\"")
        {
            if key == "dns" {
                return self.push_zeek_json(value, cluster);
            }
            return NetlogOutcome::Skipped; // another Zeek log in Metron's wrapper
        }
        NetlogOutcome::NotNetlog
    }

    fn push_zeek_json(&mut self, text: &str, cluster: Option<String>) -> NetlogOutcome {
        match zeek::parse_json(text) {
            Ok(row) => self.push_dns(row, cluster),
            Err(e) => NetlogOutcome::Refused(e),
        }
    }

    fn push_dns(&mut self, mut row: DnsRow, cluster: Option<String>) -> NetlogOutcome {
        row.cluster = cluster;
        self.dns.append(row.cells());
        NetlogOutcome::Row
    }

    fn push_flow(&mut self, mut row: FlowRow, cluster: Option<String>) -> NetlogOutcome {
        row.cluster = cluster;
        self.flow.append(row.cells());
        NetlogOutcome::Row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COREDNS: &str = r#"[INFO] 10.244.0.1:49358 - 61383 "A IN example.org. udp 29 false 512" NOERROR qr,rd,ra 80 0.000060001s"#;

    #[test]
    fn text_lines_of_each_format_and_their_headers() {
        let mut d = NetlogDecoder::default();
        assert!(matches!(
            d.decode_text(COREDNS, Some("c1".into()), || 0),
            NetlogOutcome::Row
        ));
        assert!(matches!(
            d.decode_text("version account-id srcaddr dstaddr", None, || 0),
            NetlogOutcome::Header
        ));
        assert!(matches!(
            d.decode_text("neither a flow nor a query", None, || 0),
            NetlogOutcome::NotNetlog
        ));
        assert_eq!(d.len(), 1);
        let mut batches = Vec::new();
        d.flush(&mut batches).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0, TableKind::Dns);
        assert!(d.is_empty());
    }

    #[test]
    fn json_records_are_known_by_their_members() {
        let mut d = NetlogDecoder::default();
        let other_zeek = r#"{"conn": {"ts": 1.0}}"#;
        let members = [(Cow::Borrowed("conn"), r#"{"ts": 1.0}"#)];
        assert!(matches!(
            d.decode_json(other_zeek, &members, None),
            NetlogOutcome::Skipped
        ));
        let members = [(Cow::Borrowed("kind"), r#""Event""#)];
        assert!(matches!(
            d.decode_json(r#"{"kind":"Event"}"#, &members, None),
            NetlogOutcome::NotNetlog
        ));
        assert!(d.is_empty());
    }

    #[test]
    fn headers_are_told_from_records() {
        assert!(is_header_line(b"#fields\tts\tuid"));
        assert!(is_header_line(
            b"version account-id interface-id srcaddr dstaddr"
        ));
        assert!(!is_header_line(b"2 123456789012 eni-1 10.0.0.1"));
        assert!(is_known_text_line(COREDNS));
        assert!(!is_known_text_line("hello"));
    }
}
