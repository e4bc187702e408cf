//! Joining the small batches that a screened scan decodes into batches of a few thousand rows.
//!
//! A scan's decoders leave out most events (no rule could read them), so a chunk of 8192 lines
//! turns into a batch of a few hundred rows. The rule engine pays a cost per batch and rule
//! (planning the prescreens' verdicts, starting each rule's plan), which on such batches is a
//! large share of the work; joined batches pay it once per few thousand rows instead.

use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use audithound_models::TableKind;

/// Consecutive batches of one table, held until they make `rows` rows.
#[derive(Debug)]
pub struct Coalescer {
    target: usize,
    table: Option<TableKind>,
    held: Vec<RecordBatch>,
    rows: usize,
    latest_screened: Option<i64>,
}

/// What a coalescer hands over: a joined batch, then the latest time of the events screened
/// out while it was held (time advances after the batch's rows, never before them).
#[derive(Debug)]
pub struct Joined {
    /// The rows held, in the order they were decoded (`None` when none were held).
    pub batch: Option<(TableKind, RecordBatch)>,
    /// The latest event time (microseconds) of the events left out meanwhile.
    pub latest_screened: Option<i64>,
}

impl Joined {
    /// Whether there is nothing to hand over.
    pub fn is_empty(&self) -> bool {
        self.batch.is_none() && self.latest_screened.is_none()
    }
}

impl Coalescer {
    /// A coalescer that hands over batches of at least `target` rows (the last may be smaller).
    pub fn new(target: usize) -> Self {
        Coalescer {
            target: target.max(1),
            table: None,
            held: Vec::new(),
            rows: 0,
            latest_screened: None,
        }
    }

    /// Takes a decoded batch; returns what is ready to hand over: the rows held before, when
    /// this batch is of another table, and the rows held with it once they reach the target.
    pub fn push(
        &mut self,
        table: TableKind,
        batch: RecordBatch,
    ) -> Result<Vec<Joined>, ArrowError> {
        let mut ready = Vec::new();
        if self.table.is_some_and(|t| t != table) {
            ready.push(self.take()?);
        }
        self.table = Some(table);
        self.rows += batch.num_rows();
        self.held.push(batch);
        if self.rows >= self.target {
            ready.push(self.take()?);
        }
        Ok(ready)
    }

    /// Notes that events up to `latest` were left out; time advances once the rows held before
    /// them are handed over (at once when none are held).
    pub fn screened_out(&mut self, latest: i64) -> Option<i64> {
        if self.held.is_empty() {
            return Some(latest);
        }
        self.latest_screened = Some(self.latest_screened.map_or(latest, |l| l.max(latest)));
        None
    }

    /// Everything held, joined.
    pub fn take(&mut self) -> Result<Joined, ArrowError> {
        let latest_screened = self.latest_screened.take();
        let held = std::mem::take(&mut self.held);
        self.rows = 0;
        let batch = match (self.table, held.len()) {
            (_, 0) | (None, _) => None,
            (Some(t), 1) => held.into_iter().next().map(|b| (t, b)),
            (Some(t), _) => Some((t, concat_batches(&held[0].schema(), &held)?)),
        };
        Ok(Joined {
            batch,
            latest_screened,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    fn values(j: &Joined) -> Vec<i64> {
        let (_, b) = j.batch.as_ref().expect("a batch");
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ints");
        (0..a.len()).map(|i| a.value(i)).collect()
    }

    #[test]
    fn small_batches_are_joined_in_order_until_the_target() {
        let mut c = Coalescer::new(5);
        assert!(
            c.push(TableKind::Audit, batch(&[1, 2]))
                .expect("push")
                .is_empty()
        );
        assert!(
            c.push(TableKind::Audit, batch(&[3]))
                .expect("push")
                .is_empty()
        );
        let ready = c.push(TableKind::Audit, batch(&[4, 5, 6])).expect("push");
        assert_eq!(ready.len(), 1);
        assert_eq!(values(&ready[0]), vec![1, 2, 3, 4, 5, 6]);
        assert!(c.take().expect("take").is_empty());
    }

    #[test]
    fn another_table_hands_over_what_was_held_first() {
        let mut c = Coalescer::new(100);
        c.push(TableKind::Audit, batch(&[1])).expect("push");
        let ready = c.push(TableKind::Dns, batch(&[2])).expect("push");
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ready[0].batch.as_ref().map(|(t, _)| *t),
            Some(TableKind::Audit)
        );
        let rest = c.take().expect("take");
        assert_eq!(rest.batch.as_ref().map(|(t, _)| *t), Some(TableKind::Dns));
        assert_eq!(values(&rest), vec![2]);
    }

    #[test]
    fn time_of_screened_events_advances_only_after_the_rows_held_before_them() {
        let mut c = Coalescer::new(100);
        assert_eq!(c.screened_out(10), Some(10), "nothing held: at once");
        c.push(TableKind::Audit, batch(&[1])).expect("push");
        assert_eq!(c.screened_out(30), None);
        assert_eq!(c.screened_out(20), None);
        let joined = c.take().expect("take");
        assert_eq!(values(&joined), vec![1]);
        assert_eq!(joined.latest_screened, Some(30), "the latest of them");
    }
}
