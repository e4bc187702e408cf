//! Turning the rows a rule returns into matches: the finding fields by their conventional column
//! names, everything else kept as evidence.
//!
//! Conventional columns: `ts` (or `first_seen`/`last_seen`), `user_name` (or `user`), `source_ip`,
//! `namespace`, `resource`, `subresource`, `name`, `verb`, `cluster`, `audit_id` (or the list
//! `event_ids`), `count`, `explanation`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use serde_json::Value;

/// One row of a rule's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Every column of the row, by name, as JSON.
    pub columns: BTreeMap<String, Value>,
    /// Time of the first evidence.
    pub first_seen: DateTime<Utc>,
    /// Time of the last evidence.
    pub last_seen: DateTime<Utc>,
}

impl Match {
    /// The text value of a column, if present and not null.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.columns.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The count the row stands for (`count` column), else 1.
    pub fn count(&self) -> u64 {
        self.columns
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1)
    }

    /// Audit ids of the evidence: `event_ids` (list) or `audit_id`.
    pub fn event_ids(&self) -> Vec<String> {
        match self.columns.get("event_ids") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => self.text("audit_id").into_iter().collect(),
        }
    }
}

/// Names of columns that a rule may return as time.
pub const TIME_COLUMNS: [&str; 3] = ["ts", "first_seen", "last_seen"];

/// Every row of `batch` as a match; rows without a usable time are skipped.
pub fn rows_to_matches(batch: &RecordBatch) -> Vec<Match> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut columns = BTreeMap::new();
        let mut times: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let col = batch.column(i);
            if let Some(name) = TIME_COLUMNS.iter().find(|c| **c == field.name())
                && let Some(t) = cell_time(col.as_ref(), row)
            {
                times.insert(name, t);
            }
            columns.insert(field.name().clone(), cell_json(col.as_ref(), row));
        }
        let first = times
            .get("first_seen")
            .or(times.get("ts"))
            .or(times.get("last_seen"))
            .copied();
        let last = times
            .get("last_seen")
            .or(times.get("ts"))
            .copied()
            .or(first);
        if let (Some(first_seen), Some(last_seen)) = (first, last) {
            out.push(Match {
                columns,
                first_seen,
                last_seen: last_seen.max(first_seen),
            });
        }
    }
    out
}

fn cell_time(array: &dyn Array, row: usize) -> Option<DateTime<Utc>> {
    if array.is_null(row) {
        return None;
    }
    let micros = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            array
                .as_primitive::<datafusion::arrow::datatypes::TimestampSecondType>()
                .value(row)
                * 1_000_000
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            array
                .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
                .value(row)
                * 1_000
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .value(row),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            array
                .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                .value(row)
                / 1_000
        }
        _ => return None,
    };
    DateTime::from_timestamp_micros(micros)
}

/// One cell as JSON: strings, numbers, booleans, lists, timestamps as RFC 3339.
pub fn cell_json(array: &dyn Array, row: usize) -> Value {
    use datafusion::arrow::datatypes as t;
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<t::Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<t::Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<t::Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<t::Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<t::UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<t::UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<t::UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<t::UInt64Type>().value(row)),
        DataType::Float32 => {
            Value::from(f64::from(array.as_primitive::<t::Float32Type>().value(row)))
        }
        DataType::Float64 => Value::from(array.as_primitive::<t::Float64Type>().value(row)),
        DataType::Timestamp(_, _) => cell_time(array, row)
            .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .unwrap_or(Value::Null),
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| cell_json(values.as_ref(), i))
                    .collect(),
            )
        }
        DataType::LargeList(_) => {
            let values = array.as_list::<i64>().value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| cell_json(values.as_ref(), i))
                    .collect(),
            )
        }
        _ => Value::String(
            datafusion::arrow::util::display::array_value_to_string(array, row).unwrap_or_default(),
        ),
    }
}
