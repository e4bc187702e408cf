//! Pre-screening a batch for each rule on the few columns whose values repeat.
//!
//! Most rules select a handful of verbs, resources or stages, and most events of a batch have
//! none of them. Running every rule's whole filter on every row costs more than decoding the
//! log. A batch of 8,192 audit events holds only a few hundred distinct combinations of verb,
//! resource, subresource, stage, API group, status code and the boolean pod facts, so each
//! rule's conditions on those columns are judged once per combination, and the rule then runs
//! on the rows that pass, or not at all.
//!
//! This is exact, not a heuristic: it applies only to rules whose plan is a single chain down to
//! one scan of their table, with no aggregate that yields a row from no input, and only to
//! conjuncts of the filter directly above that scan that read nothing but the screened columns.
//! Such a conjunct is a function of the combination, so a row it rejects is one the rule's own
//! filter rejects.

use std::collections::HashMap;
use std::sync::Arc;

use audithound_models::TableKind;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{FilterBuilder, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// Text and number columns of the audit table that take few distinct values in a batch.
const AUDIT_KEY_COLUMNS: &[&str] = &[
    "stage",
    "verb",
    "resource",
    "subresource",
    "api_group",
    "response_code",
];

/// The screened columns of `table` (indices into its schema), if it has any: the audit table's
/// low-cardinality text and number columns and every boolean fact.
pub fn key_columns(table: TableKind) -> Vec<usize> {
    if table != TableKind::Audit {
        return Vec::new();
    }
    let schema = table.schema();
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            AUDIT_KEY_COLUMNS.contains(&f.name().as_str()) || f.data_type() == &DataType::Boolean
        })
        .map(|(i, _)| i)
        .collect()
}

/// The distinct key combinations of one batch, and which combination each row has.
pub struct BatchKeys {
    /// One row per distinct combination, over the key columns only.
    combinations: RecordBatch,
    /// For each row of the batch, its row in `combinations`.
    row_combination: Vec<u32>,
}

impl BatchKeys {
    /// Groups the rows of `batch` (a batch of a table whose key columns are `columns`).
    pub fn new(batch: &RecordBatch, columns: &[usize]) -> Result<BatchKeys, ArrowError> {
        let schema = key_schema(batch.schema_ref(), columns);
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect();
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(&arrays)?;
        let mut seen: HashMap<&[u8], u32> = HashMap::new();
        let mut first_rows: Vec<u32> = Vec::new();
        let mut row_combination = Vec::with_capacity(batch.num_rows());
        for (i, row) in rows.iter().enumerate() {
            let next = first_rows.len() as u32;
            let id = *seen.entry(row.data()).or_insert_with(|| {
                first_rows.push(i as u32);
                next
            });
            row_combination.push(id);
        }
        let indices = UInt32Array::from(first_rows);
        let taken = arrays
            .iter()
            .map(|a| take(a.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchKeys {
            combinations: RecordBatch::try_new(schema, taken)?,
            row_combination,
        })
    }

    /// How many distinct combinations the batch holds.
    pub fn len(&self) -> usize {
        self.combinations.num_rows()
    }

    /// Whether the batch had no rows.
    pub fn is_empty(&self) -> bool {
        self.combinations.num_rows() == 0
    }
}

/// Which rows of a batch a rule needs to see.
#[derive(Debug)]
pub enum Selection {
    /// None: the rule cannot match anything in the batch.
    Nothing,
    /// Every row.
    All,
    /// The rows where the mask is true.
    Rows(BooleanArray),
}

/// A rule's conditions on the key columns, ready to judge combinations.
pub struct Prescreen {
    expr: Arc<dyn PhysicalExpr>,
    /// The columns of its table that the rule reads (all when unknown).
    reads: Option<Vec<usize>>,
}

impl Prescreen {
    /// The pre-screen of a rule with the optimized `plan` over `table`, if the plan's shape and
    /// filter allow one.
    pub fn for_plan(
        ctx: &SessionContext,
        plan: &LogicalPlan,
        table: TableKind,
        columns: &[usize],
    ) -> Option<Prescreen> {
        if columns.is_empty() {
            return None;
        }
        let full = table.schema();
        let predicate = key_predicate(plan, table.name(), &column_names(&full, columns))?;
        let schema = key_schema(&full, columns);
        let df_schema = DFSchema::try_from_qualified_schema(table.name(), &schema).ok()?;
        let expr = ctx
            .state()
            .create_physical_expr(predicate, &df_schema)
            .ok()?;
        let reads = columns_read(plan, table.name());
        Some(Prescreen { expr, reads })
    }

    /// The rows of `batch` where `mask` is true, with the columns that the rule does not read
    /// left null.
    pub fn narrow(
        &self,
        batch: &RecordBatch,
        mask: &BooleanArray,
    ) -> Result<RecordBatch, ArrowError> {
        filter_columns(batch, mask, self.reads.as_deref())
    }

    /// The rows of the batch (grouped as `keys`) that the rule needs to see. A failure to
    /// evaluate selects every row: the rule's own filter still decides.
    pub fn select(&self, keys: &BatchKeys) -> Selection {
        let n = keys.combinations.num_rows();
        let Some(pass) = self
            .expr
            .evaluate(&keys.combinations)
            .and_then(|v| v.into_array(n))
            .ok()
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>().cloned())
        else {
            return Selection::All;
        };
        let passes = |c: usize| pass.is_valid(c) && pass.value(c);
        let passing = (0..n).filter(|c| passes(*c)).count();
        if passing == 0 {
            Selection::Nothing
        } else if passing == n {
            Selection::All
        } else {
            Selection::Rows(
                keys.row_combination
                    .iter()
                    .map(|c| Some(passes(*c as usize)))
                    .collect(),
            )
        }
    }
}

/// The columns of `table` that `plan` reads (the union over its scans of it), or `None` when a
/// scan reads them all or the plan does not say.
pub fn columns_read(plan: &LogicalPlan, table: &str) -> Option<Vec<usize>> {
    let mut reads: Option<Vec<usize>> = Some(Vec::new());
    let mut scans = 0usize;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.table() == table
        {
            scans += 1;
            match (&mut reads, &scan.projection) {
                (Some(all), Some(these)) => all.extend(these),
                _ => reads = None,
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if scans == 0 {
        return None;
    }
    reads.map(|mut r| {
        r.sort_unstable();
        r.dedup();
        r
    })
}

/// The rows of `batch` where `mask` is true, with the columns outside `reads` (when given) left
/// null: copying raw request objects that a rule never looks at would be most of its cost.
/// Columns that may not be null are always kept.
pub fn filter_columns(
    batch: &RecordBatch,
    mask: &BooleanArray,
    reads: Option<&[usize]>,
) -> Result<RecordBatch, ArrowError> {
    let Some(reads) = reads else {
        return filter_record_batch(batch, mask);
    };
    let filter = FilterBuilder::new(mask).optimize().build();
    keep_columns(batch, reads, filter.count(), |c| filter.filter(c))
}

/// Every row of `batch`, with the columns outside `reads` left null (no copy of the others).
pub fn null_unread(batch: &RecordBatch, reads: &[usize]) -> Result<RecordBatch, ArrowError> {
    keep_columns(batch, reads, batch.num_rows(), |c| Ok(Arc::clone(c)))
}

fn keep_columns(
    batch: &RecordBatch,
    reads: &[usize],
    rows: usize,
    keep: impl Fn(&ArrayRef) -> Result<ArrayRef, ArrowError>,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .enumerate()
        .map(|(i, (column, field))| {
            if reads.contains(&i) || !field.is_nullable() {
                keep(column)
            } else {
                Ok(new_null_array(field.data_type(), rows))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

fn column_names(schema: &SchemaRef, columns: &[usize]) -> Vec<String> {
    columns
        .iter()
        .map(|i| schema.field(*i).name().clone())
        .collect()
}

fn key_schema(full: &SchemaRef, columns: &[usize]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|i| full.field(*i).clone())
            .collect::<Vec<_>>(),
    ))
}

/// The conjunction of the conditions that only read `names`, from the filter directly above the
/// single scan of `table`, when the plan is a chain that yields no row from no input.
fn key_predicate(plan: &LogicalPlan, table: &str, names: &[String]) -> Option<Expr> {
    let mut scans = 0usize;
    let _ = plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            scans += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if scans != 1 {
        return None;
    }
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Window(_) => {}
            LogicalPlan::Aggregate(a) if !a.group_expr.is_empty() => {}
            LogicalPlan::Filter(f) => {
                if let LogicalPlan::TableScan(scan) = f.input.as_ref()
                    && scan.table_name.table() == table
                {
                    return conjuncts_on(&f.predicate, names);
                }
            }
            _ => return None,
        }
        match node.inputs().as_slice() {
            [one] => node = one,
            _ => return None,
        }
    }
}

fn conjuncts_on(predicate: &Expr, names: &[String]) -> Option<Expr> {
    split_conjunction(predicate)
        .into_iter()
        .filter(|e| {
            !e.is_volatile()
                && !e.column_refs().is_empty()
                && e.column_refs().iter().all(|c| names.contains(&c.name))
        })
        .cloned()
        .reduce(Expr::and)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};

    fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        crate::udf::register_all(&ctx);
        let schema = TableKind::Audit.schema();
        ctx.register_batch("audit", RecordBatch::new_empty(schema))
            .expect("register");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            ctx.sql(sql)
                .await
                .expect("plans")
                .into_optimized_plan()
                .expect("optimizes")
        })
    }

    fn names() -> Vec<String> {
        column_names(&TableKind::Audit.schema(), &key_columns(TableKind::Audit))
    }

    #[test]
    fn keeps_only_conditions_on_key_columns_of_a_plain_filter() {
        let p = plan(
            "SELECT ts, user_name FROM audit WHERE resource = 'pods' AND verb IN ('create','update') \
             AND NOT is_system_principal(user_name) AND privileged",
        );
        let pred = key_predicate(&p, "audit", &names()).expect("a predicate");
        let text = pred.to_string();
        assert!(text.contains("resource"), "{text}");
        assert!(text.contains("verb"), "{text}");
        assert!(text.contains("privileged"), "{text}");
        assert!(!text.contains("user_name"), "{text}");
    }

    fn screenable(sql: &str) -> bool {
        key_predicate(&plan(sql), "audit", &names()).is_some()
    }

    #[test]
    fn refuses_plans_that_can_yield_rows_from_no_input_or_read_twice() {
        assert!(!screenable(
            "SELECT max(ts) AS ts, count(*) AS n FROM audit WHERE verb = 'delete'"
        ));
        assert!(!screenable(
            "SELECT a.ts FROM audit a JOIN audit b ON a.audit_id = b.audit_id WHERE a.verb = 'delete'"
        ));
        assert!(!screenable("SELECT ts FROM audit WHERE user_name = 'x'"));
        // A grouped aggregate yields nothing from nothing: screened.
        assert!(screenable(
            "SELECT user_name, max(ts) AS ts FROM audit WHERE verb = 'delete' GROUP BY user_name"
        ));
    }

    fn batch(rows: &[(&str, &str, i32)]) -> RecordBatch {
        let schema = TableKind::Audit.schema();
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "verb" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                    "resource" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                    "ts" => Arc::new(
                        datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                            rows.iter().map(|_| 0),
                        )
                        .with_timezone("UTC"),
                    ),
                    "response_code" => {
                        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.2)))
                    }
                    _ => datafusion::arrow::array::new_null_array(f.data_type(), rows.len()),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    fn screen(sql: &str) -> Prescreen {
        let ctx = SessionContext::new();
        crate::udf::register_all(&ctx);
        let columns = key_columns(TableKind::Audit);
        Prescreen::for_plan(&ctx, &plan(sql), TableKind::Audit, &columns).expect("screen")
    }

    #[test]
    fn selects_the_rows_whose_combination_passes() {
        let b = batch(&[
            ("get", "pods", 200),
            ("create", "pods", 201),
            ("get", "pods", 200),
            ("create", "secrets", 201),
            ("create", "pods", 403),
        ]);
        let keys = BatchKeys::new(&b, &key_columns(TableKind::Audit)).expect("keys");
        assert_eq!(keys.len(), 4);

        let s = screen(
            "SELECT ts FROM audit WHERE resource = 'pods' AND verb = 'create' AND response_code < 400 AND user_name <> 'x'",
        );
        match s.select(&keys) {
            Selection::Rows(mask) => assert_eq!(
                mask.iter().map(|v| v == Some(true)).collect::<Vec<_>>(),
                vec![false, true, false, false, false]
            ),
            other => panic!("expected rows, got {other:?}"),
        }
        let narrowed = screen("SELECT ts, resource FROM audit WHERE resource = 'pods'")
            .narrow(
                &b,
                &BooleanArray::from(vec![false, true, false, false, true]),
            )
            .expect("narrows");
        assert_eq!(narrowed.num_rows(), 2);
        let column = |name: &str| narrowed.column_by_name(name).expect("column");
        assert_eq!(
            column("resource").null_count(),
            0,
            "a column the rule reads is kept"
        );
        assert_eq!(column("ts").null_count(), 0);
        assert_eq!(
            column("request_uri").null_count(),
            2,
            "an unread column is left null"
        );

        let whole = null_unread(
            &b,
            &columns_read(&plan("SELECT ts, verb FROM audit"), "audit").expect("a projection"),
        )
        .expect("nulls");
        assert_eq!(whole.num_rows(), 5);
        let column = |name: &str| whole.column_by_name(name).expect("column");
        assert_eq!(
            column("verb").null_count(),
            0,
            "a column the rule reads is kept"
        );
        assert_eq!(
            column("resource").null_count(),
            5,
            "an unread column is left null"
        );

        let none = screen("SELECT ts FROM audit WHERE resource = 'nodes'");
        assert!(matches!(none.select(&keys), Selection::Nothing));
        let all = screen("SELECT ts FROM audit WHERE response_code > 0");
        assert!(matches!(all.select(&keys), Selection::All));
    }
}
