//! Model-based test of the tailer (after Vector's `file_watcher` experiment): random sequences of
//! appends, partial writes, rotations by rename, delete-and-recreate, copytruncate and polls are
//! applied to real files and to a trivial model; the lines read must be exactly the model's, in
//! order, none twice. Lines are written in two pieces too, and copytruncate may come between
//! the pieces, so that a freshly truncated file starts with the second piece of a line, or with
//! an incomplete first line when the tailer looks at it.

#[path = "../src/tail/test_files.rs"]
mod test_files;

use audithound_ingest::tail::follower::FollowItem;
use audithound_ingest::tail::{TailEvent, Tailer, TailerOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Partial,
    Rotate,
    Recreate,
    CopyTruncate,
    /// copytruncate, then the first piece of a line at once.
    CopyTruncatePartial,
    Poll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5).prop_map(Op::Append),
        1 => Just(Op::Partial),
        1 => Just(Op::Rotate),
        1 => Just(Op::Recreate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::CopyTruncatePartial),
        4 => Just(Op::Poll),
    ]
}

use test_files::{append, copytruncate};

fn read(t: &mut Tailer, out: &mut Vec<String>) {
    for e in t.poll(&|_| None) {
        if let TailEvent::Item(FollowItem::Lines(c)) = e {
            out.extend(String::from_utf8(c.data).unwrap().lines().map(String::from));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lines_read_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "line-0\n");
        let mut t = Tailer::new(TailerOptions { paths: vec![log.clone()], ..Default::default() });
        let mut expected: Vec<String> = vec!["line-0".into()];
        // Lines in the live file that no poll has read yet (copytruncate loses them).
        let mut unread: Vec<String> = vec!["line-0".into()];
        let mut got = Vec::new();
        let mut n = 1;
        let mut rotations = 0;
        // The line whose first piece is written: its number, and whether that piece went to a
        // copy (copytruncate came between the pieces, so the file now starts with the second).
        let mut partial: Option<(usize, bool)> = None;
        // Whether a poll has seen the live file since it was created: lines of a file the tailer
        // never saw, renamed or deleted before any poll, cannot be followed.
        read(&mut t, &mut got);
        unread.clear();
        let mut seen_live = true;
        // The line a completion writes: both pieces, or only the second when the first was cut.
        let completed = |k: usize, cut: bool| {
            if cut { format!("/{k}") } else { format!("line-{k}/{k}") }
        };
        for op in ops {
            match op {
                Op::Append(k) => {
                    let mut text = String::new();
                    if let Some((p, cut)) = partial.take() {
                        text.push_str(&format!("/{p}\n"));
                        let line = completed(p, cut);
                        expected.push(line.clone());
                        unread.push(line);
                    }
                    for _ in 0..k {
                        let line = format!("line-{n}");
                        n += 1;
                        text.push_str(&line);
                        text.push('\n');
                        expected.push(line.clone());
                        unread.push(line);
                    }
                    append(&log, &text);
                }
                Op::Partial => {
                    if partial.is_none() {
                        append(&log, &format!("line-{n}"));
                        partial = Some((n, false));
                        n += 1;
                    }
                }
                Op::Rotate | Op::Recreate if partial.is_some() => {}
                Op::Rotate | Op::Recreate if !log.exists() => {}
                Op::Rotate | Op::Recreate => {
                    if matches!(op, Op::Rotate) {
                        rotations += 1;
                        std::fs::rename(&log, dir.path().join(format!("audit-{rotations}.log"))).unwrap();
                    } else {
                        std::fs::remove_file(&log).unwrap();
                    }
                    if !seen_live {
                        for lost in unread.iter() {
                            expected.retain(|l| l != lost);
                        }
                    }
                    unread.clear();
                    seen_live = false;
                }
                Op::CopyTruncate | Op::CopyTruncatePartial => {
                    if log.exists() && seen_live {
                        copytruncate(&log);
                        // What was written since the last poll went to the copy only.
                        for lost in unread.drain(..) {
                            expected.retain(|l| *l != lost);
                        }
                        if let Some((_, cut)) = partial.as_mut() {
                            *cut = true;
                        }
                    }
                    if matches!(op, Op::CopyTruncatePartial) && partial.is_none() && log.exists() {
                        append(&log, &format!("line-{n}"));
                        partial = Some((n, false));
                        n += 1;
                    }
                }
                Op::Poll => {
                    read(&mut t, &mut got);
                    unread.clear();
                    // A new file whose first line is not complete has no identity yet: not seen. A
                    // file the tailer follows stays followed when it is emptied in place.
                    seen_live = seen_live || std::fs::read(&log).is_ok_and(|b| b.contains(&b'\n'));
                }
            }
        }
        if let Some((p, cut)) = partial.take() {
            append(&log, &format!("/{p}\n"));
            expected.push(completed(p, cut));
        }
        read(&mut t, &mut got);
        read(&mut t, &mut got);
        prop_assert_eq!(got, expected);
    }
}
