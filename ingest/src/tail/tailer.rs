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
use super::follower::{FollowItem, Follower};

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
            max_line: 1 << 20,
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

/// Follows every file that the configured paths name.
pub struct Tailer {
    options: TailerOptions,
    followers: BTreeMap<FileId, Follower>,
    /// Followers whose path now names another file (rotated or deleted): read to the end first.
    draining: BTreeSet<FileId>,
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
            draining: BTreeSet::new(),
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
        // Rotated (or deleted) files first, to their end.
        let draining: Vec<FileId> = self
            .followers
            .keys()
            .filter(|id| !current.contains(*id))
            .cloned()
            .collect();
        for id in &draining {
            self.draining.insert(id.clone());
        }
        for id in draining {
            // The same inode under a new identity was truncated and rewritten in place: what the
            // old follower would read now is the new content.
            if current.iter().any(|c| c.dev == id.dev && c.ino == id.ino) {
                tracing::info!(file = ?self.followers.get(&id).map(|f| f.path.display().to_string()), "file truncated and rewritten in place");
                self.followers.remove(&id);
                self.draining.remove(&id);
                continue;
            }
            let Some(f) = self.followers.get_mut(&id) else {
                continue;
            };
            // Truncated and rewritten in place before it was renamed or deleted: its new content
            // is a new file, read from the start.
            if f.restart_if_rewritten().unwrap_or(false) {
                tracing::info!(file = %f.path.display(), "file truncated and rewritten in place before it was rotated");
            }
            let mut read_any = false;
            loop {
                match f.read_available(self.options.read_budget) {
                    Ok(items) if items.is_empty() => break,
                    Ok(items) => {
                        read_any = true;
                        events.extend(items.into_iter().map(TailEvent::Item));
                    }
                    Err(e) => {
                        events.push(TailEvent::Problem {
                            path: f.path.clone(),
                            message: format!("reading a rotated file: {e}; giving it up"),
                        });
                        read_any = false;
                        break;
                    }
                }
            }
            // A file still at its path with the same inode was emptied in place and has no
            // complete first line yet: keep following it.
            let still_there = std::fs::metadata(&f.path).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.dev() == f.id.dev && m.ino() == f.id.ino
            });
            if !read_any && !still_there {
                tracing::info!(file = %f.path.display(), offset = f.offset(), "rotated file read to its end");
                self.followers.remove(&id);
                self.draining.remove(&id);
            }
        }
        for id in current {
            let Some(f) = self.followers.get_mut(&id) else {
                continue;
            };
            match f.read_available(self.options.read_budget) {
                Ok(items) => events.extend(items.into_iter().map(TailEvent::Item)),
                Err(e) => events.push(TailEvent::Problem {
                    path: f.path.clone(),
                    message: e.to_string(),
                }),
            }
        }
        self.first_scan = false;
        events
    }

    /// Identifies the files the paths name now, creating followers for new ones.
    fn discover(
        &mut self,
        start_offset: &dyn Fn(&FileId) -> Option<u64>,
        events: &mut Vec<TailEvent>,
    ) -> BTreeSet<FileId> {
        let mut current = BTreeSet::new();
        for path in self.expand(events) {
            let opened = File::open(&path).and_then(|mut f| identify(&mut f).map(|id| (f, id)));
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
                // Truncated in place (copytruncate with the same first line): start over.
                let restart = if f.truncated().unwrap_or(false) {
                    tracing::info!(file = %path.display(), "file truncated in place: reading it from the start");
                    Some(Follower::new(
                        id.clone(),
                        path.clone(),
                        file,
                        0,
                        self.options.max_line,
                    ))
                } else {
                    f.path = path.clone();
                    None
                };
                match restart {
                    Some(Ok(nf)) => {
                        self.followers.insert(id.clone(), nf);
                    }
                    Some(Err(e)) => self.problem(&path, describe(&e), events),
                    None => {}
                }
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
            match Follower::new(
                id.clone(),
                path.clone(),
                file,
                offset,
                self.options.max_line,
            ) {
                Ok(f) => {
                    tracing::info!(file = %path.display(), offset, "following");
                    self.followers.insert(id.clone(), f);
                    current.insert(id);
                }
                Err(e) => self.problem(&path, describe(&e), events),
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
    use super::*;
    use std::io::Write;

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

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
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
        std::fs::copy(&log, dir.path().join("audit.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
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
