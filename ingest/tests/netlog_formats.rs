//! DNS and flow formats, decoded from real files of public projects (fixtures/dns, fixtures/flow).

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use audithound_ingest::input::expand_paths;
use audithound_ingest::reader::{DecodedBatch, ReadOptions, decode_bytes, read_audit_inputs};
use audithound_models::TableKind;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

fn decode(
    rel: &str,
) -> (
    Vec<(TableKind, RecordBatch)>,
    usize,
    audithound_ingest::ReadStats,
) {
    let (tables, bad, stats) = decode_bytes(
        &std::fs::read(fixture(rel)).unwrap(),
        &ReadOptions::default(),
    );
    (tables, bad.len(), stats)
}

fn column(
    tables: &[(TableKind, RecordBatch)],
    table: TableKind,
    name: &str,
) -> Vec<Option<String>> {
    tables
        .iter()
        .filter(|(t, _)| *t == table)
        .flat_map(|(_, b)| {
            let a = b.column_by_name(name).unwrap().as_string::<i32>().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        })
        .collect()
}

#[test]
fn coredns_log_lines_with_and_without_timestamps() {
    let (t, bad, stats) = decode("dns/coredns-datadog.log");
    assert_eq!((stats.events, bad), (2, 0));
    assert_eq!(
        column(&t, TableKind::Dns, "rcode"),
        [Some("NXDOMAIN".into()), Some("NOERROR".into())]
    );
    assert_eq!(
        column(&t, TableKind::Dns, "qname")[1].as_deref(),
        Some("example.org")
    );
    assert_eq!(
        column(&t, TableKind::Dns, "source_format")[0].as_deref(),
        Some("coredns")
    );
}

#[test]
fn zeek_json_metron_wrapper_and_tsv() {
    let (t, bad, stats) = decode("dns/zeek-manual.json");
    assert_eq!((stats.events, bad), (5, 0));
    assert!(
        column(&t, TableKind::Dns, "qname")
            .iter()
            .all(|q| q.as_deref() == Some("zeek.org"))
    );
    let (t, bad, stats) = decode("dns/metron-dga.json");
    assert_eq!((stats.events, bad), (60, 0));
    assert!(
        column(&t, TableKind::Dns, "qname")[0]
            .as_deref()
            .unwrap()
            .ends_with("groupprograms.in")
    );
    let (_, bad, stats) = decode("dns/metron-bro-example.json");
    assert_eq!(
        (stats.events, bad),
        (3, 0),
        "3 dns records, the 28 other Zeek logs skipped"
    );
    assert_eq!(stats.skipped, 28);
    let (t, bad, stats) = decode("dns/zeek-root.dns.log");
    assert_eq!((stats.events, bad), (1, 0));
    assert_eq!(
        column(&t, TableKind::Dns, "qtype")[0].as_deref(),
        Some("HTTPS"),
        "qtype 65 as Zeek names it"
    );
}

#[test]
fn zeek_tsv_with_masked_times_is_reported_not_invented() {
    let (_, bad, stats) = decode("dns/zeek-rrsig-masked.dns.log");
    assert_eq!(stats.events, 0);
    assert!(bad > 0);
}

#[test]
fn hubble_l3_l4_flows_go_to_flow_and_l7_dns_to_dns() {
    let (t, bad, stats) = decode("flow/hubble-10-flows.json");
    assert_eq!((stats.events, bad), (10, 0));
    assert!(
        column(&t, TableKind::Flow, "src_pod")
            .iter()
            .any(|p| p.as_deref() == Some("reviews-v1-545db77b95-s6jb8"))
    );
    let (t, bad, stats) = decode("dns/hubble-330-dns-flows.json");
    assert_eq!(bad, 0);
    assert_eq!(stats.events, 330);
    let dns = column(&t, TableKind::Dns, "qname");
    assert!(!dns.is_empty());
    assert!(
        dns.iter()
            .all(|q| q.as_deref().is_some_and(|q| !q.ends_with('.')))
    );
    let (t, bad, stats) = decode("flow/hubble-icmpv4-flows.json");
    assert_eq!((stats.events, bad), (18, 0));
    assert!(
        column(&t, TableKind::Flow, "proto")
            .iter()
            .all(|p| p.as_deref() == Some("ICMPv4"))
    );
}

#[test]
fn vpc_flow_logs_default_custom_nodata_and_cloudwatch() {
    let (t, bad, stats) = decode("flow/vpc-multi.log");
    assert_eq!((stats.events, bad), (2, 0));
    assert_eq!(
        column(&t, TableKind::Flow, "verdict"),
        [Some("ACCEPT".into()), Some("REJECT".into())]
    );
    let (_, bad, stats) = decode("flow/vpc-nodata.log");
    assert_eq!((stats.events, stats.skipped, bad), (0, 1, 0));
    let (t, bad, stats) = decode("flow/vpc-custom-v5.log");
    assert_eq!((stats.events, bad), (1, 0));
    assert_eq!(
        column(&t, TableKind::Flow, "dst_ip")[0].as_deref(),
        Some("10.0.2.200")
    );
    let (t, bad, stats) = decode("flow/vpc-cloudwatch.json");
    assert_eq!((stats.events, bad), (2, 0));
    assert_eq!(
        column(&t, TableKind::Flow, "src_ip")[1].as_deref(),
        Some("172.31.9.69")
    );
}

#[test]
fn a_directory_of_mixed_logs_routes_every_record_to_its_table() {
    let inputs = expand_paths(&[
        fixture("flow").to_str().unwrap(),
        fixture("dns/coredns-datadog.log").to_str().unwrap(),
    ])
    .unwrap();
    let mut per_table = std::collections::BTreeMap::new();
    let stats = read_audit_inputs(
        &inputs,
        &ReadOptions {
            workers: 2,
            batch_rows: 4,
            ..Default::default()
        },
        &|_| {},
        |item| {
            if let DecodedBatch::Batch(t, b) = item {
                *per_table.entry(t).or_insert(0usize) += b.num_rows();
            }
            Ok::<_, ()>(())
        },
    )
    .unwrap();
    assert!(
        stats.skipped_inputs.is_empty(),
        "{:?}",
        stats.skipped_inputs
    );
    assert_eq!(
        per_table.get(&TableKind::Flow),
        Some(&(10 + 18 + 2 + 1 + 2))
    );
    assert_eq!(per_table.get(&TableKind::Dns), Some(&2));
    assert_eq!(stats.malformed, 0);
}

#[test]
fn a_text_line_of_no_known_format_is_malformed_with_its_line() {
    let text = b"[INFO] 10.0.0.1:5353 - 1 \"A IN ok.example. udp 1 false 512\" NOERROR qr 10 0.001s\nthis is not a log line\n";
    let (tables, bad, stats) = decode_bytes(text, &ReadOptions::default());
    assert_eq!(stats.events, 1);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 2);
    assert_eq!(tables[0].0, TableKind::Dns);
}
