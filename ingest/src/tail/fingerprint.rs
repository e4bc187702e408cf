//! File identity that survives renames and notices inode reuse and copytruncate.
//!
//! A file is the pair (device, inode) plus a hash of its first line: a rename keeps all three;
//! logrotate's copytruncate keeps the inode but the first line that follows the truncation
//! differs; a deleted file's inode reused by a new file has a different first line too.
//! A file whose first line is not complete yet has no identity and is not read: a line written
//! in two pieces (a writer that flushes part of a line first) would otherwise give the same file
//! two identities, one of its first piece and one of the whole line.
//!
//! Only complete lines are hashed, and a complete line never changes while the file is appended
//! to, so the identity of an appended file is stable; the follower checks it again after every
//! read ([`super::follower`]), so that what it hands out was read from the file it names.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest first line that is hashed; longer first lines are identified by their first bytes.
const HEAD_BYTES: usize = 4096;

/// The identity of a log file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hex hash of the first line (or first 4 KiB).
    pub head: String,
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x}-{:x}-{}",
            self.dev,
            self.ino,
            &self.head[..self.head.len().min(16)]
        )
    }
}

impl FileId {
    /// A short text form, usable in file names.
    pub fn short(&self) -> String {
        self.to_string()
    }
}

/// The identity of an open file, or `None` while its first line is incomplete. The file's read
/// position is left where it was.
pub fn identify(file: &File) -> io::Result<Option<FileId>> {
    let meta = file.metadata()?;
    let mut head = vec![0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < HEAD_BYTES {
        let n = match file.read_at(&mut head[filled..], filled as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &head[..filled];
    let line = match memchr::memchr(b'\n', head) {
        Some(i) => &head[..=i],
        None if filled == HEAD_BYTES => head,
        None => return Ok(None),
    };
    let digest = Sha256::digest(line);
    Ok(Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        head: digest[..12].iter().map(|b| format!("{b:02x}")).collect(),
    }))
}

/// The identity of the file at `path`.
pub fn identify_path(path: &Path) -> io::Result<Option<FileId>> {
    identify(&File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rename_keeps_identity_and_rewrite_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("audit.log");
        std::fs::write(&a, "{\"first\":1}\n{\"second\":2}\n").unwrap();
        let id = identify_path(&a).unwrap().unwrap();
        let b = dir.path().join("audit-1.log");
        std::fs::rename(&a, &b).unwrap();
        assert_eq!(identify_path(&b).unwrap().unwrap(), id);
        // copytruncate: same inode, new first line.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&b)
            .unwrap();
        f.write_all(b"{\"other\":1}\n").unwrap();
        let again = identify_path(&b).unwrap().unwrap();
        assert_eq!(again.ino, id.ino);
        assert_ne!(again, id);
    }

    #[test]
    fn a_first_line_written_in_two_pieces_gets_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("audit.log");
        let mut f = std::fs::File::create(&a).unwrap();
        f.write_all(b"{\"first\":").unwrap();
        assert_eq!(identify_path(&a).unwrap(), None);
        f.write_all(b"1}\n{\"sec").unwrap();
        let id = identify_path(&a).unwrap().expect("a complete first line");
        f.write_all(b"ond\":2}\n").unwrap();
        assert_eq!(identify_path(&a).unwrap(), Some(id));
    }

    #[test]
    fn identifying_leaves_the_read_position_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("audit.log");
        std::fs::write(&a, "one\ntwo\n").unwrap();
        let mut f = File::open(&a).unwrap();
        let mut first = [0u8; 4];
        std::io::Read::read_exact(&mut f, &mut first).unwrap();
        identify(&f).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut f, &mut rest).unwrap();
        assert_eq!(rest, "two\n");
    }

    #[test]
    fn incomplete_first_line_has_no_identity_yet() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("audit.log");
        std::fs::write(&a, "{\"partial\":").unwrap();
        assert_eq!(identify_path(&a).unwrap(), None);
    }
}
