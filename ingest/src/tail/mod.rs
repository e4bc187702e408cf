//! Following log files as they are written: identity that survives renames, durable positions,
//! rotation (rename + create, copytruncate, delete + recreate), complete lines only.
//!
//! Split the way Vector's file source is: [`fingerprint`] says which file is which across
//! renames, [`checkpoint`] keeps positions durably (written to a temporary file and renamed into
//! place), [`follower`] reads one file, [`tailer`] discovers files and drives the followers.

pub mod checkpoint;
pub mod fingerprint;
pub mod follower;
pub mod tailer;
#[cfg(test)]
mod test_files;

pub use checkpoint::{Checkpoint, CheckpointStore};
pub use fingerprint::FileId;
pub use follower::{Follower, LineChunk, OversizedLine};
pub use tailer::{TailEvent, Tailer, TailerOptions};
