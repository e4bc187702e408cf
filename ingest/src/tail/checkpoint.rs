//! Durable read positions: where each file has been read to, written atomically.
//!
//! The file is JSON, written to a temporary file in the same directory, synced, and renamed over
//! the previous one (then the directory is synced), so a crash at any moment leaves either the
//! old or the new checkpoint, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fingerprint::FileId;

/// The position of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file's identity.
    pub id: FileId,
    /// Where it was last seen (informative; identity decides).
    pub path: PathBuf,
    /// Offset of the first byte not yet durably processed (always the start of a line).
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<Checkpoint>,
}

/// The checkpoints of every followed file, kept in one JSON file.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    positions: BTreeMap<FileId, Checkpoint>,
}

impl CheckpointStore {
    /// Opens (or starts) the checkpoint file at `path`.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let positions = match fs::read(&path) {
            Ok(bytes) => {
                let file: CheckpointFile = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                file.files.into_iter().map(|c| (c.id.clone(), c)).collect()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(CheckpointStore { path, positions })
    }

    /// The checkpoint of a file, if it was ever read.
    pub fn get(&self, id: &FileId) -> Option<&Checkpoint> {
        self.positions.get(id)
    }

    /// Every checkpoint.
    pub fn all(&self) -> impl Iterator<Item = &Checkpoint> {
        self.positions.values()
    }

    /// Records a position (in memory; `persist` makes it durable).
    pub fn set(&mut self, id: FileId, path: &Path, offset: u64) {
        self.positions.insert(
            id.clone(),
            Checkpoint {
                id,
                path: path.to_path_buf(),
                offset,
            },
        );
    }

    /// Forgets files that are gone (so the file does not grow forever).
    pub fn retain(&mut self, keep: impl Fn(&Checkpoint) -> bool) {
        self.positions.retain(|_, c| keep(c));
    }

    /// Writes every position atomically.
    pub fn persist(&self) -> io::Result<()> {
        let file = CheckpointFile {
            version: 1,
            files: self.positions.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("checkpoint"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> FileId {
        FileId {
            dev: 1,
            ino: n,
            head: format!("{n:024x}"),
        }
    }

    #[test]
    fn positions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        let mut store = CheckpointStore::open(&path).unwrap();
        store.set(id(1), Path::new("/var/log/audit.log"), 1234);
        store.set(id(2), Path::new("/var/log/audit-1.log"), 99);
        store.persist().unwrap();
        let reopened = CheckpointStore::open(&path).unwrap();
        assert_eq!(reopened.get(&id(1)).unwrap().offset, 1234);
        assert_eq!(reopened.all().count(), 2);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary file is left behind: {leftovers:?}"
        );
    }

    #[test]
    fn a_torn_checkpoint_file_is_an_error_not_a_silent_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        fs::write(&path, b"{\"version\":1,\"files\":[{\"id\":").unwrap();
        assert!(CheckpointStore::open(&path).is_err());
    }
}
