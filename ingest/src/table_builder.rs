//! A column builder for any event table, filled one row of cells at a time.
//!
//! The `audit` table has its own specialised builder (it is the hot path); the `dns` and `flow`
//! tables use this generic one, driven by their column lists in the models crate.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use audithound_models::TableKind;
use audithound_models::schema::ColumnType;

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// An integer (stored as Int32 or Int64 as the column says).
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A timestamp in microseconds.
    Ts(i64),
    /// A list of strings.
    List(Vec<String>),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Cell::Null, Cell::Text)
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Cell::Null, Cell::Int)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Cell::Null, Cell::Float)
    }
}

impl From<Option<bool>> for Cell {
    fn from(v: Option<bool>) -> Self {
        v.map_or(Cell::Null, Cell::Bool)
    }
}

impl From<Option<Vec<String>>> for Cell {
    fn from(v: Option<Vec<String>>) -> Self {
        v.map_or(Cell::Null, Cell::List)
    }
}

enum Column {
    Text(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    List(ListBuilder<StringBuilder>),
}

/// Builders for the columns of one table.
pub struct TableBuilder {
    kind: TableKind,
    columns: Vec<Column>,
    len: usize,
}

impl TableBuilder {
    /// An empty builder for `kind`.
    pub fn new(kind: TableKind) -> Self {
        let columns = kind
            .columns()
            .iter()
            .map(|c| match c.kind {
                ColumnType::Text => Column::Text(StringBuilder::new()),
                ColumnType::Int32 => Column::Int32(Int32Builder::new()),
                ColumnType::Int64 => Column::Int64(Int64Builder::new()),
                ColumnType::Float64 => Column::Float(Float64Builder::new()),
                ColumnType::Bool => Column::Bool(BooleanBuilder::new()),
                ColumnType::Timestamp => Column::Ts(TimestampMicrosecondBuilder::new()),
                ColumnType::TextList => Column::List(ListBuilder::new(StringBuilder::new())),
            })
            .collect();
        TableBuilder {
            kind,
            columns,
            len: 0,
        }
    }

    /// Rows appended since the last finish.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a row given as one cell per column, in schema order. A cell of the wrong kind
    /// becomes null rather than failing the batch.
    pub fn append(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(
            cells.len(),
            self.columns.len(),
            "{} row has the wrong width",
            self.kind.name()
        );
        self.len += 1;
        let mut cells = cells.into_iter();
        for col in &mut self.columns {
            let cell = cells.next().unwrap_or(Cell::Null);
            match (col, cell) {
                (Column::Text(b), Cell::Text(s)) => b.append_value(s),
                (Column::Text(b), _) => b.append_null(),
                (Column::Int32(b), Cell::Int(v)) => b.append_option(i32::try_from(v).ok()),
                (Column::Int32(b), _) => b.append_null(),
                (Column::Int64(b), Cell::Int(v)) => b.append_value(v),
                (Column::Int64(b), _) => b.append_null(),
                (Column::Float(b), Cell::Float(v)) => b.append_value(v),
                (Column::Float(b), _) => b.append_null(),
                (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (Column::Bool(b), _) => b.append_null(),
                (Column::Ts(b), Cell::Ts(v)) => b.append_value(v),
                (Column::Ts(b), _) => b.append_value(0),
                (Column::List(b), Cell::List(items)) => {
                    for i in items {
                        b.values().append_value(i);
                    }
                    b.append(true);
                }
                (Column::List(b), _) => b.append(false),
            }
        }
    }

    /// The pending rows as a batch.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Column::Text(b) => Arc::new(b.finish()),
                    Column::Int32(b) => Arc::new(b.finish()),
                    Column::Int64(b) => Arc::new(b.finish()),
                    Column::Float(b) => Arc::new(b.finish()),
                    Column::Bool(b) => Arc::new(b.finish()),
                    Column::Ts(b) => Arc::new(b.finish().with_timezone("UTC")),
                    Column::List(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(self.kind.schema(), arrays)
    }
}
