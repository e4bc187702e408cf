//! Cilium Hubble flows, as `hubble observe -o json` and the Hubble exporter write them
//! (`{"flow": {...}, "node_name": ..., "time": ...}`, or a bare flow object). L3/L4 flows become
//! rows of the `flow` table; L7 DNS flows become rows of the `dns` table (the client is the
//! source of a request and the destination of a response); other L7 flows (HTTP, Kafka) are
//! application traffic, skipped until that table exists.

use serde::Deserialize;

use crate::error::DecodeError;
use crate::time::parse_rfc3339_micros;

use super::{DnsRow, FlowRow, rcode_name};

/// What one Hubble record holds.
#[derive(Debug, PartialEq)]
pub enum HubbleRecord {
    /// A network flow.
    Flow(FlowRow),
    /// A DNS request or response.
    Dns(DnsRow),
    /// Application traffic (HTTP, Kafka): not a table yet.
    Skipped,
}

#[derive(Debug, Deserialize)]
struct Wrapper {
    flow: Option<Flow>,
    node_name: Option<String>,
    time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Flow {
    time: Option<String>,
    verdict: Option<String>,
    drop_reason_desc: Option<String>,
    #[serde(rename = "IP")]
    ip: Option<Ip>,
    l4: Option<L4>,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    #[serde(rename = "Type")]
    type_: Option<String>,
    node_name: Option<String>,
    reply: Option<bool>,
    is_reply: Option<bool>,
    traffic_direction: Option<String>,
    destination_names: Option<Vec<String>>,
    l7: Option<L7>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ip {
    source: Option<String>,
    destination: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct L4 {
    #[serde(rename = "TCP")]
    tcp: Option<Ports>,
    #[serde(rename = "UDP")]
    udp: Option<Ports>,
    #[serde(rename = "SCTP")]
    sctp: Option<Ports>,
    #[serde(rename = "ICMPv4")]
    icmpv4: Option<serde::de::IgnoredAny>,
    #[serde(rename = "ICMPv6")]
    icmpv6: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ports {
    source_port: Option<i64>,
    destination_port: Option<i64>,
    flags: Option<std::collections::BTreeMap<String, bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Endpoint {
    namespace: Option<String>,
    pod_name: Option<String>,
    labels: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct L7 {
    #[serde(rename = "type")]
    type_: Option<String>,
    latency_ns: Option<serde_json::Value>,
    dns: Option<Dns>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Dns {
    query: Option<String>,
    ips: Option<Vec<String>>,
    rcode: Option<i64>,
    qtypes: Option<Vec<String>>,
}

/// Parses one record; `wrapped` says whether it has the `{"flow": ...}` wrapper.
pub fn parse(text: &str, wrapped: bool) -> Result<HubbleRecord, DecodeError> {
    let (flow, node, time) = if wrapped {
        let w: Wrapper = serde_json::from_str(text)?;
        let flow = w
            .flow
            .ok_or_else(|| DecodeError::NotAuditEvent("Hubble record without flow".into()))?;
        (flow, w.node_name, w.time)
    } else {
        (serde_json::from_str::<Flow>(text)?, None, None)
    };
    let time = flow
        .time
        .clone()
        .or(time)
        .ok_or_else(|| DecodeError::NotAuditEvent("Hubble flow without time".into()))?;
    let ts = parse_rfc3339_micros(&time)?;
    let node = flow.node_name.clone().or(node);
    let (src_ip, dst_ip) = flow
        .ip
        .as_ref()
        .map_or((None, None), |i| (i.source.clone(), i.destination.clone()));
    let l4 = flow.l4.unwrap_or_default();
    let (proto, ports) = if let Some(p) = l4.tcp {
        ("TCP", Some(p))
    } else if let Some(p) = l4.udp {
        ("UDP", Some(p))
    } else if let Some(p) = l4.sctp {
        ("SCTP", Some(p))
    } else if l4.icmpv4.is_some() {
        ("ICMPv4", None)
    } else if l4.icmpv6.is_some() {
        ("ICMPv6", None)
    } else {
        ("", None)
    };
    let (src_port, dst_port) = ports
        .as_ref()
        .map_or((None, None), |p| (p.source_port, p.destination_port));
    let src = flow.source.unwrap_or_default();
    let dst = flow.destination.unwrap_or_default();

    if flow.type_.as_deref() == Some("L7") {
        let l7 = flow.l7.unwrap_or_default();
        let Some(dns) = l7.dns else {
            return Ok(HubbleRecord::Skipped);
        };
        let response = l7.type_.as_deref() == Some("RESPONSE");
        let (client, server, cport, sport, cip, sip) = if response {
            (dst, src, dst_port, src_port, dst_ip, src_ip)
        } else {
            (src, dst, src_port, dst_port, src_ip, dst_ip)
        };
        let _ = server;
        let latency = l7.latency_ns.and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        return Ok(HubbleRecord::Dns(DnsRow {
            ts_micros: ts,
            source_format: "hubble",
            message_type: if response { "response" } else { "query" },
            client_ip: cip,
            client_port: cport,
            server_ip: sip,
            server_port: sport,
            qname: dns.query,
            qtype: dns.qtypes.and_then(|q| q.into_iter().next()),
            rcode: if response {
                dns.rcode.map(rcode_name)
            } else {
                None
            },
            proto: (!proto.is_empty()).then(|| proto.to_ascii_lowercase()),
            duration_ms: latency.map(|ns| ns / 1e6),
            answers: dns.ips,
            client_namespace: client.namespace,
            client_pod: client.pod_name,
            node,
            ..Default::default()
        }));
    }
    let flags = ports.and_then(|p| p.flags).map(|f| {
        f.into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
            .join(",")
    });
    Ok(HubbleRecord::Flow(FlowRow {
        ts_micros: ts,
        source_format: "hubble",
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        proto: (!proto.is_empty()).then(|| proto.to_string()),
        verdict: flow.verdict,
        drop_reason: flow.drop_reason_desc,
        direction: flow.traffic_direction,
        is_reply: flow.is_reply.or(flow.reply),
        tcp_flags: flags.filter(|f| !f.is_empty()),
        src_namespace: src.namespace,
        src_pod: src.pod_name,
        src_labels: src.labels,
        dst_namespace: dst.namespace,
        dst_pod: dst.pod_name,
        dst_labels: dst.labels,
        dst_names: flow.destination_names,
        node,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_l3_l4_flow_of_the_sample() {
        let line = r#"{"flow":{"time":"2021-06-16T16:52:13.136834446Z","verdict":"FORWARDED","IP":{"source":"10.0.2.16","destination":"10.0.2.1","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":15020,"destination_port":42044,"flags":{"FIN":true,"ACK":true}}},"source":{"ID":1231,"identity":25339,"namespace":"bookinfo","labels":["k8s:app=reviews"],"pod_name":"reviews-v1-545db77b95-s6jb8"},"destination":{"identity":1,"labels":["reserved:host"]},"Type":"L3_L4","node_name":"gke-node","reply":true,"traffic_direction":"INGRESS"},"node_name":"gke-node","time":"2021-06-16T16:52:13.136834446Z"}"#;
        let HubbleRecord::Flow(f) = parse(line, true).unwrap() else {
            panic!("a flow")
        };
        assert_eq!(f.src_pod.as_deref(), Some("reviews-v1-545db77b95-s6jb8"));
        assert_eq!(f.src_namespace.as_deref(), Some("bookinfo"));
        assert_eq!(f.dst_port, Some(42044));
        assert_eq!(f.tcp_flags.as_deref(), Some("ACK,FIN"));
        assert_eq!(f.is_reply, Some(true));
        assert_eq!(f.node.as_deref(), Some("gke-node"));
    }

    #[test]
    fn an_l7_dns_response_names_the_destination_as_the_client() {
        let line = r#"{"flow":{"time":"2021-10-04T11:22:26.6Z","verdict":"FORWARDED","IP":{"source":"10.156.2.3","destination":"10.156.2.2"},"l4":{"UDP":{"source_port":53,"destination_port":59102}},"source":{"namespace":"kube-system","pod_name":"kube-dns-b4f5c58c7-vnx5s"},"destination":{"namespace":"web","pod_name":"frontend-1"},"Type":"L7","l7":{"type":"RESPONSE","latency_ns":"1200000","dns":{"query":"api.example.com.","ips":["93.184.216.34"],"rcode":3,"qtypes":["A"]}}}}"#;
        let HubbleRecord::Dns(d) = parse(line, true).unwrap() else {
            panic!("dns")
        };
        assert_eq!(d.client_pod.as_deref(), Some("frontend-1"));
        assert_eq!(d.client_ip.as_deref(), Some("10.156.2.2"));
        assert_eq!(d.rcode.as_deref(), Some("NXDOMAIN"));
        assert_eq!(d.duration_ms, Some(1.2));
        assert_eq!(d.message_type, "response");
    }
}
