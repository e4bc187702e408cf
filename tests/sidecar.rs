//! The sidecar run as a real process: logs written and rotated while it runs, `kill -9` at
//! several moments, restarts, and then a count of what the capture store and the findings store
//! hold against what was written.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audithound"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start(logs: &Path, data: &Path, stderr: &Path) -> Child {
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--audit-log"])
        .arg(logs.join("audit*.log"))
        .arg("--data-dir")
        .arg(data)
        .env("AUDITHOUND_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("the sidecar starts")
}

fn query(data: &Path, sql: &str) -> serde_json::Value {
    let out = bin()
        .args(["query", "--format", "json", "--data-dir"])
        .arg(data)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().next().unwrap_or_default()
}

fn generate(dir: &Path, events: usize) -> Vec<String> {
    let log = dir.join("generated.log");
    let status = Command::new("python3")
        .arg(root().join("fixtures/generator/generate_traffic.py"))
        .args(["--events", &events.to_string(), "--attack", "--output"])
        .arg(&log)
        .status()
        .expect("python3 runs the generator");
    assert!(status.success());
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn kill_9_at_any_moment_loses_no_line_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, data, stderr) = (
        dir.path().join("logs"),
        dir.path().join("data"),
        dir.path().join("sidecar.log"),
    );
    std::fs::create_dir_all(&logs).unwrap();
    let lines = generate(dir.path(), 12_000);
    let total = lines.len();

    let mut child = start(&logs, &data, &stderr);
    let live = logs.join("audit.log");
    let mut rotations = 0;
    for (i, chunk) in lines.chunks(250).enumerate() {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live)
            .unwrap();
        f.write_all((chunk.join("\n") + "\n").as_bytes()).unwrap();
        drop(f);
        if i % 12 == 11 {
            rotations += 1;
            std::fs::rename(&live, logs.join(format!("audit-{rotations}.log"))).unwrap();
        }
        if i == 9 || i == 22 || i == 37 {
            // kill -9 in the middle of the stream; lines keep arriving while it is down.
            kill_9(&mut child, &stderr);
        }
        if i == 11 || i == 24 || i == 39 {
            child = start(&logs, &data, &stderr);
        }
        std::thread::sleep(Duration::from_millis(30));
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let stored = query(&data, "SELECT count(*) AS n FROM audit")["n"]
            .as_u64()
            .unwrap_or(0) as usize;
        if stored >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // SIGTERM: flush, checkpoint, exit 0.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        exit.success(),
        "the sidecar exits cleanly on SIGTERM: {exit:?}\n{log}"
    );
    assert_eq!(
        log.matches("audithound sidecar started").count(),
        4,
        "started once and restarted after each of the three kills\n{log}"
    );

    let counts = query(
        &data,
        "SELECT count(*) AS n, count(DISTINCT audit_id || stage) AS distinct_events FROM audit",
    );
    assert_eq!(
        counts["n"].as_u64(),
        Some(total as u64),
        "every line is in the capture store exactly once\n{log}"
    );
    assert_eq!(
        counts["distinct_events"].as_u64(),
        Some(total as u64),
        "and none of them twice"
    );

    // Findings: one per incident, the same as a scan of the whole log gives.
    let all = dir.path().join("all.log");
    std::fs::write(&all, lines.join("\n") + "\n").unwrap();
    let scan = bin()
        .args(["scan", "--format", "ndjson"])
        .arg(&all)
        .output()
        .unwrap();
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for l in String::from_utf8_lossy(&scan.stdout).lines() {
        let f: serde_json::Value = serde_json::from_str(l).unwrap();
        *expected
            .entry(f["rule_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let db = rusqlite::Connection::open(data.join("findings.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT rule_id, count(*) FROM findings GROUP BY rule_id")
        .unwrap();
    let stored: BTreeMap<String, usize> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        expected.contains_key("privileged-container") && expected.contains_key("pod-exec"),
        "{expected:?}"
    );
    assert_eq!(stored, expected, "every finding exists exactly once");
}

/// Kills the sidecar with SIGKILL, asserting that it was running until then.
fn kill_9(child: &mut Child, stderr: &Path) {
    use std::os::unix::process::ExitStatusExt;
    let log = || std::fs::read_to_string(stderr).unwrap_or_default();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sidecar was running when it was killed\n{}",
        log()
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL\n{}", log());
}

/// Stops the sidecar with SIGTERM and waits for a clean exit.
fn stop(child: &mut Child, stderr: &Path) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "the sidecar exits cleanly on SIGTERM: {exit:?}\n{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
}

/// Captured rows in a crash's window: the capture store holds parts that the checkpoint does
/// not cover yet (a crash between the capture write and the checkpoint write leaves this). At
/// start the sidecar deletes them and reads their lines again, so each line is stored once.
#[test]
fn parts_written_after_the_last_checkpoint_are_rolled_back_and_read_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, data, stderr) = (
        dir.path().join("logs"),
        dir.path().join("data"),
        dir.path().join("sidecar.log"),
    );
    std::fs::create_dir_all(&logs).unwrap();
    let lines = generate(dir.path(), 3_000);
    let (first, second) = lines.split_at(lines.len() / 2);
    let live = logs.join("audit.log");
    std::fs::write(&live, first.join("\n") + "\n").unwrap();
    let mut child = start(&logs, &data, &stderr);
    assert_eq!(wait_for_count(&data, first.len()), first.len());
    stop(&mut child, &stderr);
    let checkpoint_of_first = std::fs::read(data.join("checkpoints.json")).unwrap();

    let mut child = start(&logs, &data, &stderr);
    OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap()
        .write_all((second.join("\n") + "\n").as_bytes())
        .unwrap();
    assert_eq!(wait_for_count(&data, lines.len()), lines.len());
    stop(&mut child, &stderr);
    // The capture of the second half is written, its checkpoint is not.
    std::fs::write(data.join("checkpoints.json"), &checkpoint_of_first).unwrap();
    let before = std::fs::read_to_string(&stderr).unwrap_or_default().len();

    let mut child = start(&logs, &data, &stderr);
    let stored = wait_for_count(&data, lines.len());
    stop(&mut child, &stderr);
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let third_run = &log[before..];
    let rolled_back = third_run
        .lines()
        .find(|l| l.contains("rolled back parts written after the last checkpoint"))
        .unwrap_or_else(|| {
            panic!("the third start rolls back the uncheckpointed parts\n{third_run}")
        });
    // A log file holds plain text: the fields are read as they are written.
    assert!(rolled_back.contains("table=\"audit\""), "{rolled_back:?}");
    let removed: u64 = rolled_back
        .split("removed=")
        .nth(1)
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("how many parts were removed: {rolled_back:?}"));
    assert!(removed > 0, "{rolled_back}");
    assert_eq!(stored, lines.len(), "{log}");
    let counts = query(
        &data,
        "SELECT count(*) AS n, count(DISTINCT audit_id || stage) AS distinct_events FROM audit",
    );
    assert_eq!(counts["n"].as_u64(), Some(lines.len() as u64), "{log}");
    assert_eq!(
        counts["distinct_events"].as_u64(),
        Some(lines.len() as u64),
        "no line stored twice\n{log}"
    );
}

/// Records the sidecar cannot decode (not JSON, larger than the limit) go to the dead-letter
/// store with where they were and why, and the good lines around them are all stored.
#[test]
fn refused_records_are_dead_letters_with_their_reason_and_the_rest_is_stored() {
    /// An event cut off in the middle, as a crashed writer leaves it.
    const TRUNCATED: &str = "{\"kind\":\"Event\",\"auditID\":\"trunc";
    let dir = tempfile::tempdir().unwrap();
    let (logs, data, stderr) = (
        dir.path().join("logs"),
        dir.path().join("data"),
        dir.path().join("sidecar.log"),
    );
    std::fs::create_dir_all(&logs).unwrap();
    let lines = generate(dir.path(), 200);
    let limit = lines.iter().map(String::len).max().unwrap() + 10;
    let config = dir.path().join("audithound.toml");
    std::fs::write(&config, format!("max_event_bytes = {limit}\n")).unwrap();
    let (before, after) = lines.split_at(100);
    let oversized = format!("{{\"kind\":\"Event\",\"pad\":\"{}\"}}", "x".repeat(limit));
    let text = [
        before.join("\n"),
        TRUNCATED.into(),
        oversized,
        after.join("\n"),
    ]
    .join("\n")
        + "\n";
    std::fs::write(logs.join("audit.log"), &text).unwrap();
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr)
        .unwrap();
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--audit-log")
        .arg(logs.join("audit*.log"))
        .arg("--data-dir")
        .arg(&data)
        .env("AUDITHOUND_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    assert_eq!(wait_for_count(&data, lines.len()), lines.len());
    stop(&mut child, &stderr);
    let mut letters: Vec<serde_json::Value> = Vec::new();
    for entry in std::fs::read_dir(data.join("capture/dead_letter")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                letters.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    letters.sort_by_key(|l| l["offset"].as_u64());
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(letters.len(), 2, "{letters:?}\n{log}");
    let bad_offset = (before.join("\n").len() + 1) as u64;
    assert_eq!(letters[0]["offset"].as_u64(), Some(bad_offset));
    assert_eq!(letters[0]["excerpt"], TRUNCATED);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{}",
        letters[0]
    );
    assert_eq!(
        letters[1]["offset"].as_u64(),
        Some(bad_offset + TRUNCATED.len() as u64 + 1)
    );
    assert_eq!(
        letters[1]["reason"],
        format!("event larger than the limit of {limit} bytes")
    );
    assert!(
        log.contains("records refused (kept as dead letters)"),
        "the first refusal of each reason is logged\n{log}"
    );
}

/// Waits until the capture store holds `n` events (or a minute has passed); returns how many.
fn wait_for_count(data: &Path, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Until the sidecar has written its first part there is no store to query.
        let started = bin()
            .args(["query", "--format", "json", "--data-dir"])
            .arg(data)
            .arg("SELECT 1")
            .output()
            .is_ok_and(|out| out.status.success());
        let stored = if started {
            query(data, "SELECT count(*) AS n FROM audit")["n"]
                .as_u64()
                .unwrap_or(0) as usize
        } else {
            0
        };
        if stored >= n || Instant::now() > deadline {
            return stored;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// logrotate's copytruncate three times, each followed by a first line written in two pieces
/// that the sidecar sees incomplete; the second time the sidecar is killed (`kill -9`) while
/// the first line is incomplete, and restarted after it is complete.
#[test]
fn copytruncate_with_an_incomplete_first_line_and_a_crash_stores_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, data, stderr) = (
        dir.path().join("logs"),
        dir.path().join("data"),
        dir.path().join("sidecar.log"),
    );
    std::fs::create_dir_all(&logs).unwrap();
    let lines = generate(dir.path(), 2_000);
    let live = logs.join("audit.log");
    let write = |text: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    let mut child = start(&logs, &data, &stderr);
    let parts: Vec<&[String]> = lines.chunks(lines.len() / 4 + 1).collect();
    let mut written = 0;
    for (round, part) in parts.iter().enumerate() {
        if round > 0 {
            // Everything written so far is stored before the truncation, so nothing is lost
            // to the copy; then the file is copied and emptied in place.
            assert_eq!(
                wait_for_count(&data, written),
                written,
                "before round {round}"
            );
            std::fs::copy(&live, logs.join("audit.log.1")).unwrap();
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&live)
                .unwrap();
        }
        let (first, rest) = part.split_first().unwrap();
        let (head, tail) = first.split_at(first.len() / 2);
        write(head);
        std::thread::sleep(Duration::from_millis(600));
        if round == 2 {
            kill_9(&mut child, &stderr);
        }
        write(&format!("{tail}\n"));
        for chunk in rest.chunks(100) {
            write(&(chunk.join("\n") + "\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
        if round == 2 {
            child = start(&logs, &data, &stderr);
        }
        written += part.len();
    }
    let stored = wait_for_count(&data, written);
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert_eq!(stored, lines.len(), "{log}");
    let counts = query(
        &data,
        "SELECT count(*) AS n, count(DISTINCT audit_id || stage) AS distinct_events FROM audit",
    );
    assert_eq!(counts["n"].as_u64(), Some(lines.len() as u64), "{log}");
    assert_eq!(
        counts["distinct_events"].as_u64(),
        Some(lines.len() as u64),
        "no line stored twice\n{log}"
    );
}

#[test]
fn with_no_log_given_it_waits_for_the_default_path_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("sidecar.log");
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr)
        .unwrap();
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !std::fs::read_to_string(&stderr)
            .unwrap_or_default()
            .contains("waiting for it to appear")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("/var/log/kubernetes/audit/audit.log")
            && log.contains("waiting for it to appear"),
        "{log}"
    );
    assert!(
        dir.path().join("data/checkpoints.json").exists(),
        "checkpoints are written on exit"
    );
}

#[test]
fn demo_replays_the_scenario_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = bin()
        .args(["serve", "--demo", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("events processed"), "{stderr}");
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected =
        std::fs::read_to_string(root().join("fixtures/attack/expected-rules.txt")).unwrap();
    for rule in expected.lines() {
        assert!(
            printed.iter().any(|f| f["rule_id"] == rule),
            "demo did not report `{rule}`"
        );
    }
    assert!(printed.iter().all(|f| f["cluster"] == "demo"));
    let n = query(&data, "SELECT count(*) AS n FROM audit")["n"]
        .as_u64()
        .unwrap();
    let lines = std::fs::read_to_string(root().join("fixtures/attack/intrusion.log"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(n, lines);
}
