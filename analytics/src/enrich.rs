//! Naming the workload behind an address: DNS and flow records that carry only an IP get the
//! namespace and pod that another source (a recent Hubble flow, a Hubble DNS record) saw at
//! that address.

use std::collections::HashMap;
use std::sync::Arc;

use audithound_models::TableKind;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::record_batch::RecordBatch;

/// How long an address keeps its pod (pod IPs are reused after pods go).
const TTL_MICROS: i64 = 3600 * 1_000_000;
const CAPACITY: usize = 200_000;

/// Recently seen (namespace, pod) of addresses.
#[derive(Debug, Default)]
pub struct IpDirectory {
    pods: HashMap<String, (String, String, i64)>,
}

/// Column triples (ip, namespace, pod) of each table that name a workload.
fn endpoints(table: TableKind) -> &'static [(&'static str, &'static str, &'static str)] {
    match table {
        TableKind::Flow => &[
            ("src_ip", "src_namespace", "src_pod"),
            ("dst_ip", "dst_namespace", "dst_pod"),
        ],
        TableKind::Dns => &[("client_ip", "client_namespace", "client_pod")],
        TableKind::Audit => &[],
    }
}

impl IpDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns addresses from the batch, then fills the workload of rows that lack it.
    pub fn enrich(&mut self, table: TableKind, batch: RecordBatch) -> RecordBatch {
        let triples = endpoints(table);
        if triples.is_empty() || batch.num_rows() == 0 {
            return batch;
        }
        let ts = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned());
        let now = ts
            .as_ref()
            .and_then(datafusion::arrow::compute::max)
            .unwrap_or(0);
        for (ip, ns, pod) in triples {
            let (Some(ip), Some(ns), Some(pod)) =
                (text(&batch, ip), text(&batch, ns), text(&batch, pod))
            else {
                continue;
            };
            for i in 0..batch.num_rows() {
                if ip.is_valid(i) && pod.is_valid(i) {
                    let seen = ts.as_ref().map_or(now, |t| t.value(i));
                    self.pods.insert(
                        ip.value(i).to_string(),
                        (ns.value(i).to_string(), pod.value(i).to_string(), seen),
                    );
                }
            }
        }
        self.evict(now);
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let schema = batch.schema();
        for (ip, ns, pod) in triples {
            let (Some(ip_col), Some(ns_col), Some(pod_col)) =
                (text(&batch, ip), text(&batch, ns), text(&batch, pod))
            else {
                continue;
            };
            if pod_col.null_count() == 0 {
                continue;
            }
            let mut new_ns = StringBuilder::new();
            let mut new_pod = StringBuilder::new();
            let mut changed = false;
            for i in 0..batch.num_rows() {
                let known = (!pod_col.is_valid(i) && ip_col.is_valid(i))
                    .then(|| self.pods.get(ip_col.value(i)))
                    .flatten();
                match known {
                    Some((n, p, _)) => {
                        changed = true;
                        new_ns.append_value(if ns_col.is_valid(i) {
                            ns_col.value(i)
                        } else {
                            n
                        });
                        new_pod.append_value(p);
                    }
                    None => {
                        new_ns.append_option(ns_col.is_valid(i).then(|| ns_col.value(i)));
                        new_pod.append_option(pod_col.is_valid(i).then(|| pod_col.value(i)));
                    }
                }
            }
            if changed && let (Ok(ni), Ok(pi)) = (schema.index_of(ns), schema.index_of(pod)) {
                columns[ni] = Arc::new(new_ns.finish());
                columns[pi] = Arc::new(new_pod.finish());
            }
        }
        RecordBatch::try_new(schema, columns).unwrap_or(batch)
    }

    fn evict(&mut self, now: i64) {
        if self.pods.len() > CAPACITY {
            self.pods
                .retain(|_, (_, _, seen)| *seen >= now - TTL_MICROS);
        }
        if self.pods.len() > CAPACITY {
            // Still over: forget the older half.
            let mut seen: Vec<i64> = self.pods.values().map(|v| v.2).collect();
            seen.sort_unstable();
            let cut = seen[seen.len() / 2];
            self.pods.retain(|_, v| v.2 > cut);
        }
    }

    /// How many addresses are known.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

fn text<'b>(batch: &'b RecordBatch, name: &str) -> Option<&'b StringArray> {
    batch.column_by_name(name)?.as_string_opt::<i32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use audithound_ingest::reader::{ReadOptions, decode_bytes};

    #[test]
    fn a_dns_record_with_only_an_ip_gets_the_pod_a_flow_saw() {
        let flows = br#"{"flow":{"time":"2024-05-01T10:00:00Z","verdict":"FORWARDED","IP":{"source":"10.244.1.7","destination":"10.96.0.10"},"l4":{"UDP":{"source_port":40000,"destination_port":53}},"source":{"namespace":"web","pod_name":"frontend-abc"},"destination":{"namespace":"kube-system","pod_name":"coredns-1"},"Type":"L3_L4"}}"#;
        let dns = b"2024-05-01T10:00:01Z [INFO] 10.244.1.7:40000 - 1 \"A IN evil.example. udp 30 false 512\" NOERROR qr,rd 60 0.001s\n2024-05-01T10:00:02Z [INFO] 10.244.9.9:40000 - 2 \"A IN other.example. udp 30 false 512\" NOERROR qr,rd 60 0.001s\n";
        let mut dir = IpDirectory::new();
        for (t, b) in decode_bytes(flows, &ReadOptions::default()).0 {
            dir.enrich(t, b);
        }
        assert_eq!(dir.len(), 2);
        let (mut tables, _, _) = decode_bytes(dns, &ReadOptions::default());
        let (t, b) = tables.remove(0);
        let b = dir.enrich(t, b);
        let pods = b.column_by_name("client_pod").unwrap().as_string::<i32>();
        assert_eq!(pods.value(0), "frontend-abc");
        assert!(pods.is_null(1), "an unknown address stays unknown");
        assert_eq!(
            b.column_by_name("client_namespace")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "web"
        );
    }
}
