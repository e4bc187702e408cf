//! The findings store: every finding, durably, keyed by its stable id (SQLite).
//!
//! An upsert merges with what is stored (count and last seen only grow, evidence ids are
//! united), so a replay after a crash leaves one finding per incident, never two. Each insert or
//! update takes the next sequence number: a SIEM that polls "everything after sequence N" gets
//! every change once, without gaps or repeats.

use std::path::Path;

use audithound_models::Finding;
use rusqlite::{Connection, OptionalExtension, params};

/// Why the findings store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("findings store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored finding is not valid JSON (the file was edited or corrupted).
    #[error("findings store: stored finding `{id}` is unreadable: {message}")]
    Corrupt {
        /// The finding.
        id: String,
        /// The parser's message.
        message: String,
    },
}

/// The SQLite findings store.
pub struct FindingStore {
    conn: Connection,
    next_seq: i64,
}

const MAX_EVENT_IDS: usize = 20;

impl FindingStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS findings (
                 id TEXT PRIMARY KEY,
                 seq INTEGER NOT NULL,
                 rule_id TEXT NOT NULL,
                 severity TEXT NOT NULL,
                 cluster TEXT,
                 first_seen TEXT NOT NULL,
                 last_seen TEXT NOT NULL,
                 count INTEGER NOT NULL,
                 incident TEXT NOT NULL,
                 body TEXT NOT NULL
             );
             CREATE UNIQUE INDEX IF NOT EXISTS findings_seq ON findings(seq);
             CREATE INDEX IF NOT EXISTS findings_last_seen ON findings(last_seen);",
        )?;
        let next_seq: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) + 1 FROM findings", [], |r| {
                r.get(0)
            })?;
        Ok(FindingStore { conn, next_seq })
    }

    /// Stores findings (new or updated) in one transaction.
    pub fn upsert(&mut self, findings: &[Finding]) -> Result<(), StoreError> {
        if findings.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for f in findings {
            let stored: Option<(String, String)> = tx
                .query_row(
                    "SELECT body, incident FROM findings WHERE id = ?1",
                    params![f.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let mut merged = f.clone();
            if let Some((body, incident)) = stored {
                let mut old: Finding =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                        id: f.id.clone(),
                        message: e.to_string(),
                    })?;
                old.incident = incident.clone();
                merged.count = merged.count.max(old.count);
                merged.first_seen = merged.first_seen.min(old.first_seen);
                merged.time = merged.first_seen;
                merged.last_seen = merged.last_seen.max(old.last_seen);
                merged.severity = merged.severity.max(old.severity);
                for id in old.event_ids.clone() {
                    if merged.event_ids.len() < MAX_EVENT_IDS && !merged.event_ids.contains(&id) {
                        merged.event_ids.push(id);
                    }
                }
                if merged.incident.is_empty() {
                    merged.incident = incident;
                }
                if merged == old {
                    continue;
                }
            }
            let body = serde_json::to_string(&merged).map_err(|e| StoreError::Corrupt {
                id: f.id.clone(),
                message: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO findings (id, seq, rule_id, severity, cluster, first_seen, last_seen, count, incident, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, severity = excluded.severity,
                   first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = excluded.count,
                   incident = excluded.incident, body = excluded.body",
                params![
                    merged.id,
                    self.next_seq,
                    merged.rule_id,
                    merged.severity.as_str(),
                    merged.cluster,
                    merged.first_seen.to_rfc3339(),
                    merged.last_seen.to_rfc3339(),
                    merged.count as i64,
                    merged.incident,
                    body
                ],
            )?;
            self.next_seq += 1;
        }
        tx.commit()?;
        Ok(())
    }

    /// Findings changed after sequence number `after`, in sequence order, at most `limit`.
    pub fn changed_since(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Finding)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, body, incident FROM findings WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body, incident) = row?;
            let mut f: Finding = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                id: seq.to_string(),
                message: e.to_string(),
            })?;
            f.incident = incident;
            out.push((seq, f));
        }
        Ok(out)
    }

    /// Findings whose last evidence is at or after `since` (RFC 3339): the incidents a restart
    /// reopens.
    pub fn recent(&self, since: &str) -> Result<Vec<Finding>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT body, incident FROM findings WHERE last_seen >= ?1")?;
        let rows = stmt.query_map(params![since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (body, incident) = row?;
            let mut f: Finding = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                id: String::new(),
                message: e.to_string(),
            })?;
            f.incident = incident;
            out.push(f);
        }
        Ok(out)
    }

    /// The latest evidence time stored (RFC 3339), if any.
    pub fn latest_seen(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(last_seen) FROM findings", [], |r| r.get(0))?)
    }

    /// How many findings are stored.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM findings", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Stops this connection from checkpointing the write-ahead log itself. A checkpoint
    /// `fsync`s, and on a disk busy with other writes that can take seconds: the sidecar leaves
    /// it to a [`WalCheckpointer`] on another thread, so storing findings never waits for it.
    pub fn defer_checkpoints(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        Ok(())
    }
}

/// A second connection to a findings store that copies its write-ahead log into the database
/// file (and `fsync`s it) when asked, off the thread that stores findings.
pub struct WalCheckpointer {
    conn: Connection,
}

/// What one checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// Frames in the write-ahead log.
    pub log_frames: i64,
    /// Of them, those now in the database file.
    pub checkpointed_frames: i64,
}

impl WalCheckpointer {
    /// Opens a checkpointing connection to the store at `path` (open the store first).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(WalCheckpointer { conn })
    }

    /// Checkpoints what it can without blocking the writer (`PASSIVE`).
    pub fn checkpoint(&self) -> Result<CheckpointOutcome, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(CheckpointOutcome {
                    log_frames: r.get(1)?,
                    checkpointed_frames: r.get(2)?,
                })
            })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audithound_models::Severity;
    use chrono::{DateTime, Utc};

    fn finding(id: &str, count: u64, secs: i64) -> Finding {
        let t: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        Finding {
            id: id.into(),
            rule_id: "r".into(),
            title: "t".into(),
            severity: Severity::High,
            techniques: vec![],
            time: t,
            cluster: Some("c".into()),
            user: None,
            source_ip: None,
            namespace: None,
            resource: None,
            name: None,
            verb: None,
            event_ids: vec![format!("e{secs}")],
            count,
            first_seen: t,
            last_seen: t,
            explanation: "e".into(),
            tags: vec![],
            evidence: Default::default(),
            incident: format!("inc-{id}"),
        }
    }

    #[test]
    fn deferred_checkpoints_are_done_by_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("findings.db");
        let mut store = FindingStore::open(&path).unwrap();
        store.defer_checkpoints().unwrap();
        // More than the default auto-checkpoint threshold (1000 pages) of log.
        for batch in 0..40 {
            let findings: Vec<Finding> = (0..100)
                .map(|i| finding(&format!("f{batch}-{i}"), 1, i))
                .collect();
            store.upsert(&findings).unwrap();
        }
        let checkpointer = WalCheckpointer::open(&path).unwrap();
        let done = checkpointer.checkpoint().unwrap();
        assert!(
            done.log_frames > 1000,
            "the writer did not checkpoint by itself: {done:?}"
        );
        assert_eq!(done.checkpointed_frames, done.log_frames);
        drop(store);
        assert_eq!(FindingStore::open(&path).unwrap().count().unwrap(), 4000);
    }

    #[test]
    fn replaying_a_finding_merges_instead_of_duplicating() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FindingStore::open(&dir.path().join("findings.db")).unwrap();
        store.upsert(&[finding("a", 3, 10)]).unwrap();
        store
            .upsert(&[finding("a", 1, 5), finding("b", 1, 0)])
            .unwrap();
        assert_eq!(store.count().unwrap(), 2);
        let all = store.changed_since(0, 100).unwrap();
        let a = &all.iter().find(|(_, f)| f.id == "a").unwrap().1;
        assert_eq!(
            a.count, 3,
            "a replay with fewer events never lowers the count"
        );
        assert_eq!(a.first_seen.timestamp(), 1_700_000_005);
        assert_eq!(a.event_ids.len(), 2);
        assert_eq!(a.incident, "inc-a");
    }

    #[test]
    fn sequence_numbers_give_every_change_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("findings.db");
        let mut store = FindingStore::open(&path).unwrap();
        store
            .upsert(&[finding("a", 1, 0), finding("b", 1, 0)])
            .unwrap();
        let first = store.changed_since(0, 100).unwrap();
        assert_eq!(first.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2]);
        store.upsert(&[finding("a", 2, 30)]).unwrap();
        store.upsert(&[finding("a", 2, 30)]).unwrap();
        let next = store.changed_since(2, 100).unwrap();
        assert_eq!(
            next.len(),
            1,
            "an update is seen once; an identical replay is no change"
        );
        assert_eq!(next[0].1.id, "a");
        drop(store);
        let reopened = FindingStore::open(&path).unwrap();
        assert_eq!(reopened.changed_since(0, 100).unwrap().last().unwrap().0, 3);
    }
}
