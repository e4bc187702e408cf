//! File identity that survives renames and notices inode reuse and copytruncate.
//!
//! A file is the pair (device, inode) plus a hash of its first line: a rename keeps all three;
//! logrotate's copytruncate keeps the inode but the first line that follows the truncation
//! differs; a deleted file's inode reused by a new file has a different first line too.
//! A file whose first line is not complete yet has no identity and is not read.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
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

/// The identity of an open file, or `None` while its first line is incomplete.
pub fn identify(file: &mut File) -> io::Result<Option<FileId>> {
    let meta = file.metadata()?;
    let pos = file.stream_position()?;
    file.seek(SeekFrom::Start(0))?;
    let mut head = vec![0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < HEAD_BYTES {
        let n = file.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    file.seek(SeekFrom::Start(pos))?;
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
    identify(&mut File::open(path)?)
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
    fn incomplete_first_line_has_no_identity_yet() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("audit.log");
        std::fs::write(&a, "{\"partial\":").unwrap();
        assert_eq!(identify_path(&a).unwrap(), None);
    }
}
