//! Reading one file: complete lines only, positions that are always line starts, oversized lines
//! skipped and reported, truncation noticed.
//!
//! A follower hands out only what it read from the file its identity names. After every read it
//! identifies the file again: a file truncated in place (logrotate's copytruncate) and perhaps
//! written again since then holds other content at the same inode, and what was just read may be
//! that content. Such a read is dropped rather than handed out under the old identity; the new
//! content is a new file, read from its start by a new follower once its first line is complete.
//! So a line is never handed out under two identities, which would read it twice.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::fingerprint::{FileId, identify};

/// Complete lines read from one file: bytes `[start, end)` of it, ending with a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChunk {
    /// The file.
    pub id: FileId,
    /// Where the file was when read.
    pub path: PathBuf,
    /// Offset of the first byte.
    pub start: u64,
    /// Offset just past the last newline.
    pub end: u64,
    /// The lines, newlines included.
    pub data: Vec<u8>,
}

/// A line longer than the limit, skipped without being buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OversizedLine {
    /// The file.
    pub id: FileId,
    /// Where the file was when read.
    pub path: PathBuf,
    /// Offset of the line's first byte.
    pub offset: u64,
    /// Its length without the newline.
    pub size: u64,
}

/// What reading a file produced, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowItem {
    /// Complete lines.
    Lines(LineChunk),
    /// A skipped oversized line; the position moves past it.
    Oversized(OversizedLine),
}

impl FollowItem {
    /// The offset just past this item: where reading resumes after it is processed.
    pub fn end(&self) -> u64 {
        match self {
            FollowItem::Lines(c) => c.end,
            FollowItem::Oversized(o) => o.offset + o.size + 1,
        }
    }
}

/// What one read of a followed file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Complete lines and skipped oversized lines, in file order (perhaps none), all read from
    /// the file this follower's identity names.
    Items(Vec<FollowItem>),
    /// The file was truncated in place, and perhaps written again: it no longer holds the
    /// content this follower's identity names. Nothing read since the last read was handed out;
    /// the follower is done, and what the file holds now is a new file.
    Replaced,
}

/// Follows one file from a line-start offset.
#[derive(Debug)]
pub struct Follower {
    /// The file's identity.
    pub id: FileId,
    /// The last path it was seen at.
    pub path: PathBuf,
    file: File,
    /// Offset of the first byte not yet handed out (a line start).
    offset: u64,
    /// Bytes of an incomplete last line, read but not handed out.
    pending: Vec<u8>,
    /// Whether an oversized line (starting at `offset`) is being skipped.
    skipping: bool,
    /// Bytes of that line skipped so far.
    skip_len: u64,
    max_line: usize,
}

impl Follower {
    /// Starts following an open file at `offset` (a line start).
    pub fn new(
        id: FileId,
        path: PathBuf,
        mut file: File,
        offset: u64,
        max_line: usize,
    ) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let offset = if offset > len { 0 } else { offset };
        file.seek(SeekFrom::Start(offset))?;
        Ok(Follower {
            id,
            path,
            file,
            offset,
            pending: Vec::new(),
            skipping: false,
            skip_len: 0,
            max_line,
        })
    }

    /// Offset of the first byte not yet handed out.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset just past the last byte read from the file (handed out, pending or skipped).
    fn read_to(&self) -> u64 {
        self.offset + self.pending.len() as u64 + self.skip_len
    }

    /// Whether the file is now shorter than what was read (truncated in place).
    pub fn truncated(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.len() < self.read_to())
    }

    /// The open file, for identifying what it holds now once this follower is done with it.
    pub fn into_file(self) -> File {
        self.file
    }

    /// Reads what is available, up to about `budget` bytes, and returns complete lines and
    /// skipped oversized lines in file order. An incomplete last line stays pending until its
    /// newline is written. When the file no longer holds the content this follower's identity
    /// names (truncated, and perhaps written again, in place), nothing is handed out:
    /// [`Reading::Replaced`].
    pub fn read_available(&mut self, budget: usize) -> io::Result<Reading> {
        let mut data = Vec::new();
        let mut buf = vec![0u8; budget.clamp(4096, 8 << 20)];
        while data.len() < budget {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            data.extend_from_slice(&buf[..n]);
        }
        let read_to = self.read_to() + data.len() as u64;
        if self.file.metadata()?.len() < read_to {
            return Ok(Reading::Replaced);
        }
        // Identified after the read: if the first line is still this file's, no truncation came
        // between the last check and this one, and the bytes read are this file's. With nothing
        // new to read, the file may still have been emptied and written again up to the same
        // length.
        if identify(&self.file)?.as_ref() != Some(&self.id) {
            return Ok(Reading::Replaced);
        }
        let mut items = Vec::new();
        self.absorb(&data, &mut items);
        Ok(Reading::Items(items))
    }

    fn absorb(&mut self, mut bytes: &[u8], items: &mut Vec<FollowItem>) {
        while !bytes.is_empty() {
            if self.skipping {
                match memchr::memchr(b'\n', bytes) {
                    Some(i) => {
                        self.skip_len += i as u64;
                        items.push(FollowItem::Oversized(OversizedLine {
                            id: self.id.clone(),
                            path: self.path.clone(),
                            offset: self.offset,
                            size: self.skip_len,
                        }));
                        self.offset += self.skip_len + 1;
                        self.skipping = false;
                        self.skip_len = 0;
                        bytes = &bytes[i + 1..];
                    }
                    None => {
                        self.skip_len += bytes.len() as u64;
                        return;
                    }
                }
                continue;
            }
            match memchr::memrchr(b'\n', bytes) {
                None => {
                    if self.pending.len() + bytes.len() > self.max_line {
                        self.skipping = true;
                        self.skip_len = (self.pending.len() + bytes.len()) as u64;
                        self.pending.clear();
                    } else {
                        self.pending.extend_from_slice(bytes);
                    }
                    return;
                }
                Some(last) => {
                    let mut data = std::mem::take(&mut self.pending);
                    data.extend_from_slice(&bytes[..=last]);
                    let start = self.offset;
                    self.offset += data.len() as u64;
                    self.push_lines(start, data, items);
                    bytes = &bytes[last + 1..];
                }
            }
        }
    }

    /// Emits complete lines, splitting out any line longer than the limit as oversized.
    fn push_lines(&mut self, start: u64, data: Vec<u8>, items: &mut Vec<FollowItem>) {
        let mut chunk_start = 0usize;
        let mut pos = 0usize;
        while pos < data.len() {
            let nl = memchr::memchr(b'\n', &data[pos..]).map_or(data.len() - 1, |i| pos + i);
            let line_len = nl - pos;
            if line_len > self.max_line {
                if chunk_start < pos {
                    items.push(
                        self.chunk(start + chunk_start as u64, data[chunk_start..pos].to_vec()),
                    );
                }
                items.push(FollowItem::Oversized(OversizedLine {
                    id: self.id.clone(),
                    path: self.path.clone(),
                    offset: start + pos as u64,
                    size: line_len as u64,
                }));
                chunk_start = nl + 1;
            }
            pos = nl + 1;
        }
        if chunk_start < data.len() {
            let bytes = if chunk_start == 0 {
                data
            } else {
                data[chunk_start..].to_vec()
            };
            items.push(self.chunk(start + chunk_start as u64, bytes));
        }
    }

    fn chunk(&self, start: u64, data: Vec<u8>) -> FollowItem {
        FollowItem::Lines(LineChunk {
            id: self.id.clone(),
            path: self.path.clone(),
            start,
            end: start + data.len() as u64,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn follower(path: &std::path::Path, max_line: usize) -> Follower {
        let id = crate::tail::fingerprint::identify_path(path)
            .unwrap()
            .expect("the test file has a complete first line");
        Follower::new(
            id,
            path.to_path_buf(),
            File::open(path).unwrap(),
            0,
            max_line,
        )
        .unwrap()
    }

    /// What a read hands out, from a file that was not replaced.
    fn read(f: &mut Follower, budget: usize) -> Vec<FollowItem> {
        match f.read_available(budget).unwrap() {
            Reading::Items(items) => items,
            Reading::Replaced => panic!("the file was not replaced"),
        }
    }

    fn lines(items: &[FollowItem]) -> String {
        items
            .iter()
            .filter_map(|i| match i {
                FollowItem::Lines(c) => Some(String::from_utf8(c.data.clone()).unwrap()),
                FollowItem::Oversized(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_partial_line_is_not_read_until_its_newline_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = std::fs::File::create(&path).unwrap();
        w.write_all(b"one\ntw").unwrap();
        let mut f = follower(&path, 100);
        let items = read(&mut f, 1 << 20);
        assert_eq!(lines(&items), "one\n");
        assert_eq!(f.offset(), 4);
        w.write_all(b"o\nthree").unwrap();
        let items = read(&mut f, 1 << 20);
        assert_eq!(lines(&items), "two\n");
        assert_eq!(items[0].end(), 8);
        w.write_all(b"\n").unwrap();
        assert_eq!(lines(&read(&mut f, 1 << 20)), "three\n");
    }

    #[test]
    fn oversized_lines_are_skipped_with_their_position_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let long = "x".repeat(50);
        std::fs::write(&path, format!("ok1\n{long}\nok2\n{long}")).unwrap();
        let mut f = follower(&path, 10);
        let items = read(&mut f, 8);
        let items: Vec<FollowItem> = items.into_iter().chain(read(&mut f, 1 << 20)).collect();
        assert_eq!(lines(&items), "ok1\nok2\n");
        let over: Vec<&OversizedLine> = items
            .iter()
            .filter_map(|i| {
                if let FollowItem::Oversized(o) = i {
                    Some(o)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(over.len(), 1, "the unterminated one is still being skipped");
        assert_eq!((over[0].offset, over[0].size), (4, 50));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\nok3\n")
            .unwrap();
        let items = read(&mut f, 1 << 20);
        assert!(matches!(
            items[0],
            FollowItem::Oversized(OversizedLine {
                offset: 59,
                size: 50,
                ..
            })
        ));
        assert_eq!(lines(&items), "ok3\n");
    }

    #[test]
    fn a_read_after_an_unnoticed_truncation_and_rewrite_hands_out_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "old-1\nold-2\n").unwrap();
        let mut f = follower(&path, 100);
        assert_eq!(lines(&read(&mut f, 1 << 20)), "old-1\nold-2\n");
        // copytruncate, and the writer goes on past the old offset before the next read.
        std::fs::write(&path, "new-1\nnew-2, longer than what was there\n").unwrap();
        assert_eq!(f.read_available(1 << 20).unwrap(), Reading::Replaced);
    }

    #[test]
    fn an_emptied_file_is_replaced_though_nothing_is_left_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let mut f = follower(&path, 100);
        read(&mut f, 1 << 20);
        std::fs::write(&path, "{\"partial\":").unwrap();
        assert_eq!(f.read_available(1 << 20).unwrap(), Reading::Replaced);
    }

    #[test]
    fn truncation_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let mut f = follower(&path, 100);
        read(&mut f, 1 << 20);
        assert!(!f.truncated().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert!(f.truncated().unwrap());
    }
}
