//! What the benchmarks share: where they keep their data, and the generated audit log.

use std::path::PathBuf;
use std::process::Command;

/// The repository root and `<target>/bench`, created.
pub fn bench_dir() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).expect("bench directory");
    (root, dir)
}

/// A generated audit log of `events` routine events with the intrusion woven in (cached).
pub fn generated_log(events: usize) -> PathBuf {
    let (root, dir) = bench_dir();
    let log = dir.join(format!("audit-{events}.log"));
    if !log.exists() {
        eprintln!("generating {events} events into {}", log.display());
        let status = Command::new("python3")
            .arg(root.join("fixtures/generator/generate_traffic.py"))
            .args([
                "--events",
                &events.to_string(),
                "--attack",
                "--rate",
                "60",
                "--output",
            ])
            .arg(&log)
            .status()
            .expect("python3 runs the traffic generator");
        assert!(status.success(), "the traffic generator failed");
    }
    log
}
