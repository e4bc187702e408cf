//! Discovering the files to follow and driving their followers.
//!
//! A configured path is a file, a directory (its `*.log` files, compressed ones excluded) or a
//! glob on file names (`/var/log/audit/audit*.log`). On every poll the paths are expanded again
//! and each file identified: a renamed file keeps its follower (and is read to its end before the
//! file that replaced it); a file truncated in place, or replaced by a new one at the same path,
//! gets a new follower from its start. Files that are gone and fully read are forgotten. A missing
//! path or a permission error is reported once and retried on every poll. `notify` events wake the
//! poll early; polling keeps working where events do not arrive (network filesystems).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::fingerprint::{FileId, identify};
use super::follower::{FollowItem, Follower, Reading};

/// How files are followed.
#[derive(Debug, Clone)]
pub struct TailerOptions {
    /// Files, directories or globs to follow.
    pub paths: Vec<PathBuf>,
    /// Longest line kept; longer ones are reported and skipped.
    pub max_line: usize,
    /// Most bytes read from one file in one poll (bounds the size of a chunk).
    pub read_budget: usize,
    /// Whether files seen for the first time are read from their start (else from their end).
    pub from_beginning: bool,
}

impl Default for TailerOptions {
    fn default() -> Self {
        TailerOptions {
            paths: Vec::new(),
            max_line: crate::DEFAULT_MAX_EVENT_BYTES,
            read_budget: 4 << 20,
            from_beginning: true,
        }
    }
}

/// What a poll produced.
#[derive(Debug)]
pub enum TailEvent {
    /// Lines or an oversized line of one file.
    Item(FollowItem),
    /// A path that cannot be read (missing, permission), reported once until it changes.
    Problem {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A file that was truncated in place while followed, held open until its first line is
/// complete and it has an identity again (it may be renamed or deleted before that).
struct Unidentified {
    /// The identity of what it held before the truncation.
    replaced: FileId,
    /// The path it was followed at.
    path: PathBuf,
    file: File,
    /// Its length when last looked at.
    len: u64,
}

/// Follows every file that the configured paths name.
pub struct Tailer {
    options: TailerOptions,
    followers: BTreeMap<FileId, Follower>,
    /// Truncated files without a complete first line yet.
    unidentified: Vec<Unidentified>,
    problems: BTreeMap<PathBuf, String>,
    first_scan: bool,
    _watcher: Option<notify::RecommendedWatcher>,
    wake: Option<Receiver<()>>,
}

impl Tailer {
    /// A tailer over `options.paths`. `start_offset` gives the checkpointed offset of a file.
    pub fn new(options: TailerOptions) -> Self {
        let (tx, rx) = channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Only changes wake the poll: our own reads raise access events, and waking on
            // them would spin.
            if res.is_ok_and(|e| {
                matches!(
                    e.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                )
            }) {
                let _ = tx.send(());
            }
        })
        .ok()
        .map(|mut w| {
            let mut dirs = BTreeSet::new();
            for p in &options.paths {
                let dir = if p.is_dir() {
                    p.clone()
                } else {
                    p.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                dirs.insert(dir);
            }
            for d in dirs {
                if let Err(e) = w.watch(&d, RecursiveMode::NonRecursive) {
                    tracing::info!(dir = %d.display(), "no file events ({e}); polling only");
                }
            }
            w
        });
        Tailer {
            options,
            followers: BTreeMap::new(),
            unidentified: Vec::new(),
            problems: BTreeMap::new(),
            first_scan: true,
            wake: watcher.as_ref().map(|_| rx),
            _watcher: watcher,
        }
    }

    /// Files currently followed, with their offsets.
    pub fn positions(&self) -> Vec<(FileId, PathBuf, u64)> {
        self.followers
            .values()
            .map(|f| (f.id.clone(), f.path.clone(), f.offset()))
            .collect()
    }

    /// Waits for a file event or the timeout, whichever comes first.
    pub fn wait(&self, timeout: Duration) {
        match &self.wake {
            Some(rx) => match rx.recv_timeout(timeout) {
                // Coalesce a burst of events into one wake-up.
                Ok(()) => while rx.try_recv().is_ok() {},
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // The watcher is gone: fall back to plain polling.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
            },
            None => std::thread::sleep(timeout),
        }
    }

    /// Discovers files and reads what is available. Rotated files are read to their end before
    /// the files that replaced them. `start_offset` tells where a newly seen file was
    /// checkpointed.
    pub fn poll(&mut self, start_offset: &dyn Fn(&FileId) -> Option<u64>) -> Vec<TailEvent> {
        let mut events = Vec::new();
        let current = self.discover(start_offset, &mut events);
        self.read_followers(&current, start_offset, &mut events);
        self.first_scan = false;
        events
    }

    /// Reads every follower: first those whose path now names another file (rotated or
    /// deleted), to their end, then the files the paths name (`current`).
    fn read_followers(
        &mut self,
        current: &BTreeSet<FileId>,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) {
        self.identify_replaced(start_offset, events);
        let draining: Vec<FileId> = self
            .followers
            .keys()
            .filter(|id| !current.contains(*id))
            .cloned()
            .collect();
        for id in draining {
            // The same inode under a new identity was truncated and written again in place:
            // what it holds now is followed by its path.
            if current.iter().any(|c| c.dev == id.dev && c.ino == id.ino) {
                if let Some(f) = self.followers.remove(&id) {
                    tracing::info!(file = %f.path.display(), "file truncated and written again in place");
                }
                continue;
            }
            self.drain(id, start_offset, events);
        }
        for id in current {
            let Some(f) = self.followers.get_mut(id) else {
                continue;
            };
            match f.read_available(self.options.read_budget) {
                Ok(Reading::Items(items)) => events.extend(items.into_iter().map(TailEvent::Item)),
                Ok(Reading::Replaced) => {
                    if let Some(f) = self.followers.remove(id) {
                        tracing::info!(file = %f.path.display(), "file truncated in place: reading what it holds now as a new file");
                        self.follow_successor(f, start_offset, events);
                    }
                }
                Err(e) => events.push(TailEvent::Problem {
                    path: f.path.clone(),
                    message: e.to_string(),
                }),
            }
        }
    }

    /// Reads a file that its path no longer names (renamed or deleted) to its end, and forgets
    /// it once it is read to its end and gone from its path.
    fn drain(
        &mut self,
        mut id: FileId,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) {
        loop {
            let Some(f) = self.followers.get_mut(&id) else {
                return;
            };
            let mut read_any = false;
            let replaced = loop {
                match f.read_available(self.options.read_budget) {
                    Ok(Reading::Items(items)) if items.is_empty() => break false,
                    Ok(Reading::Items(items)) => {
                        read_any = true;
                        events.extend(items.into_iter().map(TailEvent::Item));
                    }
                    Ok(Reading::Replaced) => break true,
                    Err(e) => {
                        events.push(TailEvent::Problem {
                            path: f.path.clone(),
                            message: format!("reading a rotated file: {e}; giving it up"),
                        });
                        self.followers.remove(&id);
                        return;
                    }
                }
            };
            if replaced {
                // Truncated and written again in place before it was renamed or deleted: what
                // it holds now is a new file, read to its end in turn.
                let Some(f) = self.followers.remove(&id) else {
                    return;
                };
                tracing::info!(file = %f.path.display(), "file truncated and written again in place before it was rotated");
                match self.follow_successor(f, start_offset, events) {
                    Some(next) => {
                        id = next;
                        continue;
                    }
                    None => return,
                }
            }
            // A file still at its path with the same inode that its path could not be
            // identified by this time (an error opening it): keep following it.
            let still_there = std::fs::metadata(&f.path).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.dev() == f.id.dev && m.ino() == f.id.ino
            });
            if !read_any && !still_there {
                tracing::info!(file = %f.path.display(), offset = f.offset(), "rotated file read to its end");
                self.followers.remove(&id);
            }
            return;
        }
    }

    /// Follows what a replaced file (truncated in place) holds now, as the new file it is,
    /// from its start (or its checkpoint): its identity is taken from its complete first line.
    /// While that line is incomplete the file has no identity; its path finds it again once it
    /// has one. Returns the new identity, if it is followed.
    fn follow_successor(
        &mut self,
        replaced: Follower,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) -> Option<FileId> {
        let (old, path) = (replaced.id.clone(), replaced.path.clone());
        let file = replaced.into_file();
        let id = match identify(&file) {
            Ok(Some(id)) => id,
            Ok(None) => {
                let len = file.metadata().map_or(0, |m| m.len());
                self.unidentified.push(Unidentified {
                    replaced: old,
                    path,
                    file,
                    len,
                });
                return None;
            }
            Err(e) => {
                self.problem(&path, describe(&e), events);
                return None;
            }
        };
        self.follow_identified(id, Some(&old), path, file, start_offset, events)
    }

    /// Replaced files whose first line was incomplete: followed once it is complete, forgotten
    /// when they are gone from their path and no longer written.
    fn identify_replaced(
        &mut self,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) {
        for u in std::mem::take(&mut self.unidentified) {
            match identify(&u.file) {
                Ok(Some(id)) => {
                    let replaced = Some(&u.replaced);
                    self.follow_identified(id, replaced, u.path, u.file, start_offset, events);
                }
                Ok(None) => {
                    let len = u.file.metadata().map_or(0, |m| m.len());
                    let still_there = std::fs::metadata(&u.path).is_ok_and(|m| {
                        use std::os::unix::fs::MetadataExt;
                        let held = u.file.metadata().ok();
                        held.is_some_and(|h| h.dev() == m.dev() && h.ino() == m.ino())
                    });
                    if still_there || len != u.len {
                        self.unidentified.push(Unidentified { len, ..u });
                    }
                }
                Err(e) => self.problem(&u.path, describe(&e), events),
            }
        }
    }

    /// Follows an open file of a known identity from its start (or its checkpoint), unless it
    /// is followed already. `replaced` is the identity of the content it held before a
    /// truncation in place, when known.
    fn follow_identified(
        &mut self,
        id: FileId,
        replaced: Option<&FileId>,
        path: PathBuf,
        file: File,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) -> Option<FileId> {
        if self.followers.contains_key(&id) {
            return None;
        }
        // The same first line again: the checkpoint of this identity is of the old content.
        let offset = if replaced == Some(&id) {
            0
        } else {
            start_offset(&id).unwrap_or(0)
        };
        self.follow(id.clone(), path, file, offset, events)
            .then_some(id)
    }

    /// Starts following an open file of a known identity from `offset`; whether it could.
    fn follow(
        &mut self,
        id: FileId,
        path: PathBuf,
        file: File,
        offset: u64,
        events: &mut Vec<TailEvent>,
    ) -> bool {
        match Follower::new(
            id.clone(),
            path.clone(),
            file,
            offset,
            self.options.max_line,
        ) {
            Ok(f) => {
                tracing::info!(file = %path.display(), offset, "following");
                self.followers.insert(id, f);
                true
            }
            Err(e) => {
                self.problem(&path, describe(&e), events);
                false
            }
        }
    }

    /// Identifies the files the paths name now, creating followers for new ones.
    fn discover(
        &mut self,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) -> BTreeSet<FileId> {
        let mut current = BTreeSet::new();
        for path in self.expand(events) {
            let opened = File::open(&path).and_then(|f| identify(&f).map(|id| (f, id)));
            let (file, id) = match opened {
                Ok((_, None)) => continue, // first line still incomplete
                Ok((file, Some(id))) => (file, id),
                Err(e) => {
                    self.problem(&path, describe(&e), events);
                    continue;
                }
            };
            self.problems.remove(&path);
            if let Some(f) = self.followers.get_mut(&id) {
                // Renamed, or still where it was. A truncation in place is noticed when the
                // follower reads.
                f.path = path.clone();
                current.insert(id);
                continue;
            }
            let offset = start_offset(&id).unwrap_or_else(|| {
                if self.first_scan && !self.options.from_beginning {
                    file.metadata().map(|m| m.len()).unwrap_or(0)
                } else {
                    0
                }
            });
            if self.follow(id.clone(), path, file, offset, events) {
                current.insert(id);
            }
        }
        current
    }

    fn problem(&mut self, path: &Path, message: String, events: &mut Vec<TailEvent>) {
        if self.problems.get(path) != Some(&message) {
            tracing::warn!(path = %path.display(), "{message}; retrying");
            self.problems.insert(path.to_path_buf(), message.clone());
            events.push(TailEvent::Problem {
                path: path.to_path_buf(),
                message,
            });
        }
    }

    /// The files the configured paths name right now.
    fn expand(&mut self, events: &mut Vec<TailEvent>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in self.options.paths.clone() {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.contains('*') || name.contains('?') {
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                match std::fs::read_dir(&dir) {
                    Ok(entries) => {
                        let mut found: Vec<PathBuf> = entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|f| f.is_file())
                            .filter(|f| {
                                f.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| wildcard(name, n))
                            })
                            .collect();
                        found.sort();
                        out.extend(found);
                    }
                    Err(e) => self.problem(&dir, describe(&e), events),
                }
            } else if p.is_dir() {
                match std::fs::read_dir(&p) {
                    Ok(entries) => {
                        let mut found: Vec<PathBuf> = entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|f| {
                                f.is_file() && f.extension().and_then(|e| e.to_str()) == Some("log")
                            })
                            .collect();
                        found.sort();
                        out.extend(found);
                    }
                    Err(e) => self.problem(&p, describe(&e), events),
                }
            } else {
                out.push(p);
            }
        }
        out
    }
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found (waiting for it to appear)".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `*` and `?` wildcards over a whole file name.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::super::test_files::{append, copytruncate};
    use super::*;

    fn lines(events: &[TailEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                TailEvent::Item(FollowItem::Lines(c)) => {
                    Some(String::from_utf8(c.data.clone()).unwrap())
                }
                _ => None,
            })
            .flat_map(|s| s.lines().map(String::from).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard("audit*.log", "audit.log"));
        assert!(wildcard("audit*.log", "audit-2024-01-01T00-00-00.000.log"));
        assert!(!wildcard("audit*.log", "audit.log.gz"));
        assert!(wildcard("a?c", "abc"));
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_before_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "1\n2\n");
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        assert_eq!(lines(&t.poll(&|_| None)), ["1", "2"]);
        append(&log, "3\n");
        std::fs::rename(&log, dir.path().join("audit-2024.log")).unwrap();
        // The writer still holds the old file and writes one more line before reopening.
        append(&dir.path().join("audit-2024.log"), "4\n");
        append(&log, "5\n");
        assert_eq!(lines(&t.poll(&|_| None)), ["3", "4", "5"]);
        append(&log, "6\n");
        assert_eq!(lines(&t.poll(&|_| None)), ["6"]);
    }

    #[test]
    fn a_rotated_file_compressed_and_deleted_meanwhile_is_still_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "1\n");
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        assert_eq!(lines(&t.poll(&|_| None)), ["1"]);
        append(&log, "2\n3\n");
        let rotated = dir.path().join("audit-2024-05-01T10-00-00.000.log");
        std::fs::rename(&log, &rotated).unwrap();
        append(&log, "4\n");
        // The API server gzips the rotated file and deletes it before we poll again.
        std::fs::copy(
            &rotated,
            dir.path().join("audit-2024-05-01T10-00-00.000.log.gz"),
        )
        .unwrap();
        std::fs::remove_file(&rotated).unwrap();
        assert_eq!(lines(&t.poll(&|_| None)), ["2", "3", "4"]);
    }

    #[test]
    fn copytruncate_and_delete_recreate_lose_nothing_after_the_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "a\nb\n");
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        assert_eq!(lines(&t.poll(&|_| None)), ["a", "b"]);
        copytruncate(&log);
        append(&log, "c\nlonger line that reaches past the old offset\n");
        assert_eq!(
            lines(&t.poll(&|_| None)),
            ["c", "longer line that reaches past the old offset"]
        );
        std::fs::remove_file(&log).unwrap();
        assert!(lines(&t.poll(&|_| None)).is_empty());
        append(&log, "d\ne\n");
        assert_eq!(lines(&t.poll(&|_| None)), ["d", "e"]);
    }

    /// What a sidecar does with a poll's lines: processes them and checkpoints past them.
    fn processed(events: &[TailEvent], checkpoints: &mut BTreeMap<FileId, u64>) -> Vec<String> {
        for e in events {
            if let TailEvent::Item(item) = e {
                let (id, end) = match item {
                    FollowItem::Lines(c) => (&c.id, c.end),
                    FollowItem::Oversized(o) => (&o.id, o.offset + o.size + 1),
                };
                checkpoints.insert(id.clone(), end);
            }
        }
        lines(events)
    }

    /// The sequence seen at 3,000 lines a second: copytruncate, then a first line written in
    /// two pieces, the second piece landing while the tailer is between finding the files and
    /// reading them; with a crash (a new tailer from the checkpoints) at each step in turn.
    #[test]
    fn a_first_line_completed_while_a_poll_runs_after_copytruncate_is_read_once() {
        // (crash after the poll that saw the partial line, crash after the completion was read)
        for crash in [None, Some(0), Some(1)] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("audit.log");
            append(&log, "a\nb\n");
            let options = TailerOptions {
                paths: vec![log.clone()],
                ..Default::default()
            };
            // As the sidecar does, a tailer resumes from the checkpoints as they were when it
            // started.
            let mut checkpoints = BTreeMap::new();
            let mut start = checkpoints.clone();
            let mut t = Tailer::new(options.clone());
            assert_eq!(processed(&t.poll(&|_| None), &mut checkpoints), ["a", "b"]);

            copytruncate(&log);
            append(&log, "{\"first\":");
            let mut got = Vec::new();
            let events = t.poll(&|id| start.get(id).copied());
            got.extend(processed(&events, &mut checkpoints));
            if crash == Some(0) {
                (t, start) = (Tailer::new(options.clone()), checkpoints.clone());
            }
            // Found while the first line is incomplete; completed before the files are read.
            let current = t.discover(&|id| start.get(id).copied(), &mut Vec::new());
            append(&log, "1}\n{\"second\":2}\n");
            let mut events = Vec::new();
            t.read_followers(&current, &|id| start.get(id).copied(), &mut events);
            got.extend(processed(&events, &mut checkpoints));
            if crash == Some(1) {
                (t, start) = (Tailer::new(options.clone()), checkpoints.clone());
            }
            append(&log, "{\"third\":3}\n");
            for _ in 0..3 {
                let events = t.poll(&|id| start.get(id).copied());
                got.extend(processed(&events, &mut checkpoints));
            }
            assert_eq!(
                got,
                ["{\"first\":1}", "{\"second\":2}", "{\"third\":3}"],
                "crash: {crash:?}"
            );
            let ino = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&log).unwrap().ino()
            };
            let identities = checkpoints.keys().filter(|id| id.ino == ino).count();
            assert_eq!(
                identities, 2,
                "one identity before the truncation, one after: {checkpoints:?}"
            );
        }
    }

    /// A truncation that a follower does not see coming (between the poll's look at the file and
    /// its read, the file is emptied and written again past the old offset) hands out nothing
    /// from the middle of the new content: it is read from its start, once.
    #[test]
    fn content_written_after_an_unseen_truncation_is_read_from_its_start_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "old-1\nold-2\n");
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        assert_eq!(lines(&t.poll(&|_| None)), ["old-1", "old-2"]);
        let current = t.discover(&|_| None, &mut Vec::new());
        copytruncate(&log);
        append(
            &log,
            "new-1\nnew-2 is long enough to reach past the old offset\n",
        );
        let mut events = Vec::new();
        t.read_followers(&current, &|_| None, &mut events);
        let mut got = lines(&events);
        for _ in 0..2 {
            got.extend(lines(&t.poll(&|_| None)));
        }
        assert_eq!(
            got,
            ["new-1", "new-2 is long enough to reach past the old offset"]
        );
    }

    #[test]
    fn a_missing_file_is_reported_once_and_followed_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        let first = t.poll(&|_| None);
        assert!(
            matches!(&first[..], [TailEvent::Problem { message, .. }] if message.contains("not found"))
        );
        assert!(t.poll(&|_| None).is_empty(), "reported once");
        append(&log, "x\n");
        assert_eq!(lines(&t.poll(&|_| None)), ["x"]);
    }

    #[test]
    fn checkpointed_offsets_resume_where_processing_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        append(&log, "1\n2\n3\n");
        let id = crate::tail::fingerprint::identify_path(&log)
            .unwrap()
            .unwrap();
        let mut t = Tailer::new(TailerOptions {
            paths: vec![log.clone()],
            ..Default::default()
        });
        let resume = |f: &FileId| (f == &id).then_some(2);
        assert_eq!(lines(&t.poll(&resume)), ["2", "3"]);
    }
}
