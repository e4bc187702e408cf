//! CoreDNS `log` plugin lines in the default (common) format, and the `combined` format:
//!
//! ```text
//! [INFO] 10.244.0.1:49358 - 61383 "A IN example.org. udp 29 false 512" NOERROR qr,rd,ra 80 0.000060001s
//! ```
//!
//! with or without a leading RFC 3339 timestamp (as container runtimes and log shippers add it).
//! Lines without a timestamp are stamped with the time they are read.

use crate::error::DecodeError;
use crate::time::parse_rfc3339_micros;

use super::DnsRow;

/// Whether a line looks like a CoreDNS query log line.
pub fn looks_like(line: &str) -> bool {
    line.contains(" - ") && line.contains('"') && (line.contains(" IN ") || line.contains(" CH "))
}

/// Parses one line; `now` stamps lines that carry no time.
pub fn parse(line: &str, now: i64) -> Result<DnsRow, DecodeError> {
    let bad = |why: &str| DecodeError::NotAuditEvent(format!("CoreDNS log line: {why}"));
    let mut rest = line.trim();
    let mut ts = None;
    if let Some((first, tail)) = rest.split_once(' ')
        && first.len() >= 20
        && first.as_bytes()[4] == b'-'
    {
        ts = Some(parse_rfc3339_micros(first)?);
        rest = tail.trim_start();
    }
    if let Some(tail) = rest.strip_prefix('[') {
        let (_level, after) = tail.split_once(']').ok_or_else(|| bad("unclosed level"))?;
        rest = after.trim_start();
    }
    let (remote, after) = rest
        .split_once(" - ")
        .ok_or_else(|| bad("no ` - ` after the client address"))?;
    let (client_ip, client_port) =
        split_host_port(remote.trim()).ok_or_else(|| bad("client address"))?;
    let (id, after) = after
        .trim_start()
        .split_once(' ')
        .ok_or_else(|| bad("no query id"))?;
    let after = after
        .trim_start()
        .strip_prefix('"')
        .ok_or_else(|| bad("no quoted question"))?;
    let (question, after) = after
        .split_once('"')
        .ok_or_else(|| bad("unclosed question"))?;
    let q: Vec<&str> = question.split_whitespace().collect();
    if q.len() < 4 {
        return Err(bad("question has fewer than 4 fields"));
    }
    let tail: Vec<&str> = after.split_whitespace().collect();
    let rcode = tail.first().map(|s| s.to_string());
    let rsize = tail.get(2).and_then(|s| s.parse().ok());
    let duration_ms = tail
        .get(3)
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse::<f64>().ok())
        .map(|s| s * 1000.0);
    Ok(DnsRow {
        ts_micros: ts.unwrap_or(now),
        source_format: "coredns",
        message_type: "exchange",
        client_ip: Some(client_ip.to_string()),
        client_port: client_port.parse().ok(),
        query_id: id.parse().ok(),
        qtype: Some(q[0].to_string()),
        qname: Some(q[2].to_string()),
        proto: Some(q[3].to_string()),
        rcode,
        response_size: rsize,
        duration_ms,
        ..Default::default()
    })
}

/// `10.0.0.1:53` or `[::1]:53`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, port) = v6.split_once("]:")?;
        return Some((host, port));
    }
    s.rsplit_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datadog_samples_parse() {
        let r = parse("2019-11-28T14:47:20.55Z [INFO] 10.145.105.176:36008 - 21628 \"AAAA IN trace-k8s.agent.datadoghq.com.apm1.cluster.local. udp 66 false 512\" NXDOMAIN qr,aa,rd,ra 174 0.000078493s", 0).unwrap();
        assert_eq!(r.client_ip.as_deref(), Some("10.145.105.176"));
        assert_eq!(r.client_port, Some(36008));
        assert_eq!(r.query_id, Some(21628));
        assert_eq!(r.qtype.as_deref(), Some("AAAA"));
        assert_eq!(r.rcode.as_deref(), Some("NXDOMAIN"));
        assert_eq!(r.response_size, Some(174));
        assert!((r.duration_ms.unwrap() - 0.078493).abs() < 1e-9);
        assert_eq!(r.ts_micros, 1_574_952_440_550_000);
        let plain = parse("[INFO] 127.0.0.1:50759 - 29008 \"A IN example.org. udp 41 false 4096\" NOERROR qr,rd,ra,ad 68 0.037990251s", 7).unwrap();
        assert_eq!(plain.ts_micros, 7, "no time in the line: the read time");
        assert_eq!(plain.qname.as_deref(), Some("example.org."));
    }

    #[test]
    fn ipv6_clients_and_bad_lines() {
        let r = parse("[INFO] [::1]:50759 - 29008 \"A IN example.org. udp 41 false 4096\" NOERROR qr,rd,ra,ad 68 0.037990251s", 0).unwrap();
        assert_eq!(r.client_ip.as_deref(), Some("::1"));
        assert!(
            parse(
                "[INFO] plugin/reload: Running configuration SHA512 = 1234",
                0
            )
            .is_err()
        );
        assert!(!looks_like("[INFO] plugin/reload: Running configuration"));
    }
}
