//! DNS and network-flow decoders: CoreDNS `log` plugin lines, Zeek `dns.log` (JSON, Metron's
//! `{"dns": {...}}` wrapper, and TSV with its `#fields` header), Cilium Hubble flows (`hubble
//! observe -o json` and the exporter's file; L7 DNS flows go to the `dns` table), and AWS VPC flow
//! logs (the v2 default format, or any format named by a header line).
//!
//! [`decoder::NetlogDecoder`] tells these formats apart and builds their rows; the audit decoder
//! hands it every record that is not an audit event.

pub mod coredns;
pub mod decoder;
pub mod hubble;
pub mod vpc;
pub mod zeek;

use crate::table_builder::Cell;

/// One row of the `dns` table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DnsRow {
    pub cluster: Option<String>,
    pub ts_micros: i64,
    pub source_format: &'static str,
    pub message_type: &'static str,
    pub client_ip: Option<String>,
    pub client_port: Option<i64>,
    pub server_ip: Option<String>,
    pub server_port: Option<i64>,
    pub query_id: Option<i64>,
    pub qname: Option<String>,
    pub qtype: Option<String>,
    pub rcode: Option<String>,
    pub proto: Option<String>,
    pub response_size: Option<i64>,
    pub duration_ms: Option<f64>,
    pub answers: Option<Vec<String>>,
    pub client_namespace: Option<String>,
    pub client_pod: Option<String>,
    pub node: Option<String>,
}

impl DnsRow {
    /// The row's cells in the `dns` schema's order.
    pub fn cells(self) -> Vec<Cell> {
        vec![
            self.cluster.into(),
            Cell::Ts(self.ts_micros),
            Cell::Text(self.source_format.into()),
            Cell::Text(self.message_type.into()),
            self.client_ip.into(),
            self.client_port.into(),
            self.server_ip.into(),
            self.server_port.into(),
            self.query_id.into(),
            self.qname.map(|q| normalize_name(&q)).into(),
            self.qtype.into(),
            self.rcode.into(),
            self.proto.into(),
            self.response_size.into(),
            self.duration_ms.into(),
            self.answers.into(),
            self.client_namespace.into(),
            self.client_pod.into(),
            self.node.into(),
        ]
    }
}

/// One row of the `flow` table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlowRow {
    pub cluster: Option<String>,
    pub ts_micros: i64,
    pub source_format: &'static str,
    pub src_ip: Option<String>,
    pub src_port: Option<i64>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<i64>,
    pub proto: Option<String>,
    pub verdict: Option<String>,
    pub drop_reason: Option<String>,
    pub direction: Option<String>,
    pub is_reply: Option<bool>,
    pub tcp_flags: Option<String>,
    pub src_namespace: Option<String>,
    pub src_pod: Option<String>,
    pub src_labels: Option<Vec<String>>,
    pub dst_namespace: Option<String>,
    pub dst_pod: Option<String>,
    pub dst_labels: Option<Vec<String>>,
    pub dst_names: Option<Vec<String>>,
    pub bytes: Option<i64>,
    pub packets: Option<i64>,
    pub node: Option<String>,
    pub interface_id: Option<String>,
    pub account_id: Option<String>,
}

impl FlowRow {
    /// The row's cells in the `flow` schema's order.
    pub fn cells(self) -> Vec<Cell> {
        vec![
            self.cluster.into(),
            Cell::Ts(self.ts_micros),
            Cell::Text(self.source_format.into()),
            self.src_ip.into(),
            self.src_port.into(),
            self.dst_ip.into(),
            self.dst_port.into(),
            self.proto.into(),
            self.verdict.into(),
            self.drop_reason.into(),
            self.direction.into(),
            self.is_reply.into(),
            self.tcp_flags.into(),
            self.src_namespace.into(),
            self.src_pod.into(),
            self.src_labels.into(),
            self.dst_namespace.into(),
            self.dst_pod.into(),
            self.dst_labels.into(),
            self.dst_names.into(),
            self.bytes.into(),
            self.packets.into(),
            self.node.into(),
            self.interface_id.into(),
            self.account_id.into(),
        ]
    }
}

/// `Example.ORG.` → `example.org`.
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// DNS response code names by number (RFC 1035, 2136, 6895).
pub fn rcode_name(code: i64) -> String {
    match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return code.to_string(),
    }
    .to_string()
}

/// IANA protocol names by number.
pub fn proto_name(n: i64) -> String {
    match n {
        1 => "ICMPv4",
        6 => "TCP",
        17 => "UDP",
        58 => "ICMPv6",
        132 => "SCTP",
        _ => return n.to_string(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_builder::TableBuilder;
    use arrow::array::{Array, AsArray};
    use audithound_models::TableKind;

    #[test]
    fn rows_land_in_the_columns_of_their_names() {
        let mut b = TableBuilder::new(TableKind::Dns);
        b.append(
            DnsRow {
                qname: Some("Evil.Example.".into()),
                rcode: Some("NXDOMAIN".into()),
                client_port: Some(5353),
                ..Default::default()
            }
            .cells(),
        );
        let batch = b.finish().unwrap();
        assert_eq!(
            batch
                .column_by_name("qname")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "evil.example"
        );
        assert_eq!(
            batch
                .column_by_name("rcode")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "NXDOMAIN"
        );
        assert_eq!(
            batch
                .column_by_name("client_port")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(0),
            5353
        );
        let mut f = TableBuilder::new(TableKind::Flow);
        f.append(
            FlowRow {
                dst_port: Some(10250),
                verdict: Some("DROPPED".into()),
                packets: Some(3),
                ..Default::default()
            }
            .cells(),
        );
        let batch = f.finish().unwrap();
        assert_eq!(
            batch
                .column_by_name("verdict")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "DROPPED"
        );
        assert_eq!(
            batch
                .column_by_name("packets")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            3
        );
        assert!(batch.column_by_name("src_pod").unwrap().is_null(0));
    }
}
