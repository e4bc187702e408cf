//! The tailer against a live writer: lines appended at thousands a second, each written in two
//! pieces (a writer that flushes part of a line first), while logrotate's copytruncate empties
//! the file again and again. Lines written between the last read and a truncation go to the copy
//! only (copytruncate loses them by design); every other line must be read, and none twice.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audithound_ingest::tail::follower::FollowItem;
use audithound_ingest::tail::{TailEvent, Tailer, TailerOptions};

/// Not a multiple of the rotation: the last lines are written after the last truncation.
const LINES: usize = 6_100;
const LINES_PER_ROTATION: usize = 250;

// Only copytruncate is used here.
#[allow(dead_code)]
#[path = "../src/tail/test_files.rs"]
mod test_files;
use test_files::copytruncate;

#[test]
fn lines_written_in_two_pieces_across_copytruncate_are_never_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, "line-start-0\n").unwrap();
    let done = AtomicBool::new(false);
    let mut read: Vec<String> = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut out = OpenOptions::new().append(true).open(&log).unwrap();
            for i in 1..=LINES {
                // Two write calls: the first piece can be all that a reader or a truncation sees.
                out.write_all(format!("line-{i}-").as_bytes()).unwrap();
                out.write_all(format!("{i}-end\n").as_bytes()).unwrap();
                if i % LINES_PER_ROTATION == 0 {
                    copytruncate(&log);
                }
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        let mut idle_after_done = 0;
        while idle_after_done < 3 {
            let writer_done = done.load(Ordering::SeqCst);
            let events = t.poll(&|_| None);
            let any = !events.is_empty();
            for e in events {
                if let TailEvent::Item(FollowItem::Lines(c)) = e {
                    read.extend(String::from_utf8(c.data).unwrap().lines().map(String::from));
                }
            }
            if writer_done && !any {
                idle_after_done += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });

    let complete: Vec<&String> = read.iter().filter(|l| l.starts_with("line-")).collect();
    let distinct: BTreeSet<&String> = complete.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        complete.len(),
        "{} lines read twice",
        complete.len() - distinct.len()
    );
    // A truncation can lose what was written since the last read; nothing after the last one
    // is lost.
    let last_rotation = LINES - LINES % LINES_PER_ROTATION;
    for i in last_rotation + 1..=LINES {
        let line = format!("line-{i}-{i}-end");
        assert!(distinct.contains(&line), "{line} was not read");
    }
    // Anything else is the second piece of a line whose first piece went to the copy.
    for line in read.iter().filter(|l| !l.starts_with("line-")) {
        assert!(line.ends_with("-end"), "{line:?}");
    }
}
