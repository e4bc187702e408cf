//! Zeek `dns.log`: JSON lines (also inside Metron's `{"dns": {...}}` wrapper), and the default
//! tab-separated format, whose columns are named by the `#fields` header.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::DecodeError;
use crate::time::parse_rfc3339_micros;

use super::DnsRow;

#[derive(Debug, Deserialize)]
struct ZeekDns {
    ts: Option<Box<RawValue>>,
    #[serde(rename = "id.orig_h")]
    orig_h: Option<String>,
    #[serde(rename = "id.orig_p")]
    orig_p: Option<i64>,
    #[serde(rename = "id.resp_h")]
    resp_h: Option<String>,
    #[serde(rename = "id.resp_p")]
    resp_p: Option<i64>,
    proto: Option<String>,
    trans_id: Option<i64>,
    rtt: Option<f64>,
    query: Option<String>,
    qtype_name: Option<String>,
    qtype: Option<i64>,
    rcode_name: Option<String>,
    rcode: Option<i64>,
    answers: Option<Vec<String>>,
}

/// Whether a JSON object's keys are those of a Zeek dns.log record.
pub fn is_zeek_dns_key(key: &str) -> bool {
    key == "id.orig_h"
}

/// Parses one JSON record.
pub fn parse_json(text: &str) -> Result<DnsRow, DecodeError> {
    let z: ZeekDns = serde_json::from_str(text)?;
    let ts = match z.ts.as_deref().map(RawValue::get) {
        Some(t) if t.starts_with('"') => parse_rfc3339_micros(t.trim_matches('"'))?,
        Some(t) => epoch_micros(t)?,
        None => {
            return Err(DecodeError::NotAuditEvent(
                "Zeek dns record without ts".into(),
            ));
        }
    };
    Ok(DnsRow {
        ts_micros: ts,
        source_format: "zeek",
        message_type: "exchange",
        client_ip: z.orig_h,
        client_port: z.orig_p,
        server_ip: z.resp_h,
        server_port: z.resp_p,
        query_id: z.trans_id,
        qname: z.query,
        qtype: z.qtype_name.or(z.qtype.map(|q| q.to_string())),
        rcode: z.rcode_name.or(z.rcode.map(super::rcode_name)),
        proto: z.proto,
        duration_ms: z.rtt.map(|r| r * 1000.0),
        answers: z.answers,
        ..Default::default()
    })
}

fn epoch_micros(t: &str) -> Result<i64, DecodeError> {
    let secs: f64 = t
        .trim()
        .parse()
        .map_err(|_| DecodeError::BadTimestamp(t.to_string()))?;
    if !secs.is_finite() {
        return Err(DecodeError::BadTimestamp(t.to_string()));
    }
    Ok((secs * 1_000_000.0).round() as i64)
}

/// The header state of a Zeek TSV file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsvHeader {
    /// Column names from `#fields`.
    pub fields: Vec<String>,
    /// The `#path` (only `dns` files are decoded).
    pub path: Option<String>,
    /// Separator within vector fields.
    pub set_separator: String,
}

impl TsvHeader {
    /// Absorbs one `#...` header line.
    pub fn absorb(&mut self, line: &str) {
        let mut parts = line.splitn(2, ['\t', ' ']);
        let key = parts.next().unwrap_or("");
        let value = parts.next().unwrap_or("").trim_end();
        match key {
            "#fields" => self.fields = value.split('\t').map(String::from).collect(),
            "#path" => self.path = Some(value.trim().to_string()),
            "#set_separator" => self.set_separator = value.trim().to_string(),
            _ => {}
        }
        if self.set_separator.is_empty() {
            self.set_separator = ",".into();
        }
    }
}

/// Parses one data line of a TSV dns.log.
pub fn parse_tsv(line: &str, header: &TsvHeader) -> Result<DnsRow, DecodeError> {
    if header.path.as_deref().is_some_and(|p| p != "dns") {
        return Err(DecodeError::NotAuditEvent(format!(
            "Zeek {} log (only dns.log is decoded)",
            header.path.as_deref().unwrap_or("?")
        )));
    }
    let values: Vec<&str> = line.split('\t').collect();
    let get = |name: &str| -> Option<&str> {
        let i = header.fields.iter().position(|f| f == name)?;
        values
            .get(i)
            .copied()
            .filter(|v| *v != "-" && *v != "(empty)")
    };
    let ts = epoch_micros(
        get("ts").ok_or_else(|| DecodeError::NotAuditEvent("Zeek dns line without ts".into()))?,
    )?;
    let num = |n: &str| get(n).and_then(|v| v.parse::<i64>().ok());
    Ok(DnsRow {
        ts_micros: ts,
        source_format: "zeek",
        message_type: "exchange",
        client_ip: get("id.orig_h").map(String::from),
        client_port: num("id.orig_p"),
        server_ip: get("id.resp_h").map(String::from),
        server_port: num("id.resp_p"),
        query_id: num("trans_id"),
        qname: get("query").map(String::from),
        qtype: get("qtype_name").map(String::from),
        rcode: get("rcode_name").map(String::from),
        proto: get("proto").map(String::from),
        duration_ms: get("rtt")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|r| r * 1000.0),
        answers: get("answers").map(|a| {
            a.split(header.set_separator.as_str())
                .map(String::from)
                .collect()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_from_the_zeek_manual_parse() {
        let r = parse_json(r#"{"ts":1774911641.803041,"uid":"CHhAvVGS1DHFjwGM9","id.orig_h":"172.17.0.2","id.orig_p":36844,"id.resp_h":"1.1.1.1","id.resp_p":53,"proto":"udp","trans_id":20661,"rtt":0.03837108612060547,"query":"zeek.org","qclass":1,"qclass_name":"C_INTERNET","qtype":1,"qtype_name":"A","rcode":0,"rcode_name":"NOERROR","AA":false,"TC":false,"RD":true,"RA":true,"Z":2,"answers":["192.0.78.150","192.0.78.212"],"TTLs":[60.0,60.0],"rejected":false}"#).unwrap();
        assert_eq!(r.client_ip.as_deref(), Some("172.17.0.2"));
        assert_eq!(r.qname.as_deref(), Some("zeek.org"));
        assert_eq!(r.rcode.as_deref(), Some("NOERROR"));
        assert_eq!(r.answers.as_ref().unwrap().len(), 2);
        assert_eq!(r.ts_micros, 1_774_911_641_803_041);
    }

    #[test]
    fn tsv_lines_follow_their_header() {
        let mut h = TsvHeader::default();
        for l in [
            "#separator \\x09",
            "#set_separator\t,",
            "#path\tdns",
            "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected",
        ] {
            h.absorb(l);
        }
        let r = parse_tsv("1258567191.405770\tCwRyEk\t192.168.1.103\t52826\t192.168.1.1\t53\tudp\t32795\t0.005\tmail.example.com\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t10.0.0.1,10.0.0.2\t300.0,300.0\tF", &h).unwrap();
        assert_eq!(r.qname.as_deref(), Some("mail.example.com"));
        assert_eq!(r.answers, Some(vec!["10.0.0.1".into(), "10.0.0.2".into()]));
        assert!(parse_tsv("XXXXXXXXXX.XXXXXX\tC\t1.1.1.1\t1\t2.2.2.2\t53\tudp\t0\t-\tq\t1\tC\t1\tA\t-\t-\tF\tF\tF\tF\t0\t-\t-\tF", &h).is_err(), "masked times are refused");
    }
}
