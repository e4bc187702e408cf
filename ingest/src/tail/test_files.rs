//! What writers and logrotate do to a log file, for the tailer's tests: its unit tests and the
//! integration tests in `tests/` (which include this file by path) share it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Appends `text` to the file at `path`, creating it if needed, as a log writer does.
pub fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the log opens for appending")
        .write_all(text.as_bytes())
        .expect("the log is appended to");
}

/// logrotate's copytruncate: copies the file to `<name>.1`, then empties it in place (the inode
/// stays, and the writer goes on appending to it).
pub fn copytruncate(log: &Path) {
    std::fs::copy(log, log.with_extension("log.1")).expect("the log is copied");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(log)
        .expect("the log is truncated");
}
