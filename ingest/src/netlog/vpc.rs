//! AWS VPC flow logs: space-separated records in the v2 default format, or in any custom format
//! named by a header line (`version account-id interface-id srcaddr ...`), as delivered to S3 or
//! inside a CloudWatch Logs envelope. NODATA and SKIPDATA records carry no flow: they are skipped.

use crate::error::DecodeError;

use super::FlowRow;

/// The v2 default format's fields.
pub const DEFAULT_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Whether a line is a VPC flow log header.
pub fn is_header(line: &str) -> bool {
    let mut it = line.split_whitespace();
    it.next() == Some("version") && line.contains("srcaddr") && line.contains("dstaddr")
}

/// Whether a line looks like a VPC flow record of `fields`.
pub fn looks_like(line: &str, fields: &[String]) -> bool {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let want = if fields.is_empty() {
        DEFAULT_FIELDS.len()
    } else {
        fields.len()
    };
    tokens.len() == want
        && tokens[0].chars().all(|c| c.is_ascii_digit())
        && (tokens.len() < 3 || tokens.iter().any(|t| t.starts_with("eni-") || *t == "-"))
}

/// Parses one record; `Ok(None)` for NODATA/SKIPDATA.
pub fn parse(line: &str, fields: &[String]) -> Result<Option<FlowRow>, DecodeError> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let names: Vec<&str> = if fields.is_empty() {
        DEFAULT_FIELDS.to_vec()
    } else {
        fields.iter().map(String::as_str).collect()
    };
    if tokens.len() != names.len() {
        return Err(DecodeError::NotAuditEvent(format!(
            "VPC flow record has {} fields, the format has {}",
            tokens.len(),
            names.len()
        )));
    }
    let get = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .and_then(|i| tokens.get(i).copied())
            .filter(|v| *v != "-")
    };
    if matches!(get("log-status"), Some("NODATA" | "SKIPDATA")) {
        return Ok(None);
    }
    let num = |n: &str| get(n).and_then(|v| v.parse::<i64>().ok());
    let start = num("start")
        .ok_or_else(|| DecodeError::BadTimestamp(get("start").unwrap_or("-").to_string()))?;
    Ok(Some(FlowRow {
        ts_micros: start.saturating_mul(1_000_000),
        source_format: "vpc",
        src_ip: get("srcaddr").or(get("pkt-srcaddr")).map(String::from),
        src_port: num("srcport"),
        dst_ip: get("dstaddr").or(get("pkt-dstaddr")).map(String::from),
        dst_port: num("dstport"),
        proto: num("protocol").map(super::proto_name),
        verdict: get("action").map(String::from),
        direction: get("flow-direction").map(|d| d.to_ascii_uppercase()),
        bytes: num("bytes"),
        packets: num("packets"),
        interface_id: get("interface-id").map(String::from),
        account_id: get("account-id").map(String::from),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_records_and_nodata() {
        let r = parse("2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK", &[]).unwrap().unwrap();
        assert_eq!(r.dst_port, Some(3389));
        assert_eq!(r.proto.as_deref(), Some("TCP"));
        assert_eq!(r.verdict.as_deref(), Some("REJECT"));
        assert_eq!(r.ts_micros, 1_418_530_010_000_000);
        assert_eq!(
            parse(
                "2 12345678910 eni-0eb1e4178af74336c - - - - - - - 1742570089 1742570142 - NODATA",
                &[]
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn custom_formats_follow_the_header() {
        let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status ecs-cluster-name";
        assert!(is_header(header));
        let fields: Vec<String> = header.split_whitespace().map(String::from).collect();
        let line = "5 123456789012 eni-0abc 10.0.1.100 10.0.2.200 49152 22 6 15 3500 1700000000 1700000060 ACCEPT OK my-cluster";
        assert!(looks_like(line, &fields));
        let r = parse(line, &fields).unwrap().unwrap();
        assert_eq!(r.src_ip.as_deref(), Some("10.0.1.100"));
        assert_eq!(r.bytes, Some(3500));
    }
}
