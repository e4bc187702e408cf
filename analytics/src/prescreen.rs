//! Pre-screening a batch for each rule on the few columns whose values repeat.
//!
//! Most rules select a handful of verbs, resources or stages, and most events of a batch have
//! none of them. Running every rule's whole filter on every row costs more than decoding the
//! log. A batch of 8,192 audit events holds only a few hundred distinct combinations of verb,
//! resource, subresource, stage, API group, status code and the boolean pod facts, so each
//! rule's conditions on those columns are judged once per combination, and the rule then runs
//! on the rows that pass, or not at all.
//!
//! Text columns such as the user name, user agent and namespace also repeat, but too many of
//! them to combine: a conjunct that reads one of them alone (`NOT is_system_principal(user_name)`,
//! a regular expression over the user agent) is judged once per distinct value of that column,
//! and one that reads a few of them (`user_name = 'system:anonymous' OR array_has(user_groups,
//! ...)`) once per distinct combination of those few.
//!
//! This is exact, not a heuristic: it applies only to rules whose plan is a single chain down to
//! one scan of their table, with no aggregate that yields a row from no input, and only to
//! conjuncts of the filter directly above that scan that read nothing but the screened columns.
//! Such a conjunct is a function of the combination (or of the value), so a row it rejects is one
//! the rule's own filter rejects.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use audithound_models::TableKind;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, new_null_array,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{FilterBuilder, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, HashMap};
use datafusion::execution::SessionState;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;

/// Text and number columns of the audit table that take few distinct values in a batch (the
/// expiry a TokenRequest asks for is null in every other event).
const AUDIT_KEY_COLUMNS: &[&str] = &[
    "stage",
    "verb",
    "resource",
    "subresource",
    "api_group",
    "response_code",
    "token_expiration_seconds",
];

/// Columns of the audit table whose values repeat within a batch, screened alone or in the small
/// sets that one condition reads. The columns that are null in nearly every event (impersonation,
/// Pod Security violations) make the rules that look for them skip whole batches. The request
/// URI differs from event to event in general, but a condition on it is judged only for the rows
/// that pass the rule's other conditions, and there it repeats: anonymous requests are health
/// probes of a few endpoints, kubelet proxying is metrics scraping of a few paths per node.
const AUDIT_VALUE_COLUMNS: &[&str] = &[
    "user_name",
    "user_groups",
    "impersonated_user",
    "impersonated_groups",
    "source_ip",
    "user_agent",
    "namespace",
    "api_version",
    "decision",
    "pod_security_violations",
    "request_uri",
];

/// The columns of a table that screens read (indices into its schema).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenedColumns {
    /// Combined: the audit table's low-cardinality text and number columns and every boolean
    /// fact.
    pub keys: Vec<usize>,
    /// Alone or a few at a time: columns with more distinct values.
    pub values: Vec<usize>,
}

impl ScreenedColumns {
    /// The screened columns of `table` (none for tables without screens).
    pub fn of(table: TableKind) -> ScreenedColumns {
        if table != TableKind::Audit {
            return ScreenedColumns::default();
        }
        let schema = table.schema();
        let pick = |keep: &dyn Fn(&str, &DataType) -> bool| -> Vec<usize> {
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| keep(f.name(), f.data_type()))
                .map(|(i, _)| i)
                .collect()
        };
        ScreenedColumns {
            keys: pick(&|name, ty| AUDIT_KEY_COLUMNS.contains(&name) || ty == &DataType::Boolean),
            values: pick(&|name, _| AUDIT_VALUE_COLUMNS.contains(&name)),
        }
    }

    /// Whether there is nothing to screen on.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.values.is_empty()
    }
}

/// The distinct rows of `arrays` (row indices of their first occurrences) and, for every row,
/// which of them it equals.
fn group_rows(arrays: &[ArrayRef]) -> Result<(UInt32Array, Vec<u32>), ArrowError> {
    if let [one] = arrays
        && let Some(text) = one.as_string_opt::<i32>()
    {
        // One text column: its values are the keys, with no row encoding.
        return Ok(first_occurrences(text.iter()));
    }
    let converter = RowConverter::new(
        arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(arrays)?;
    Ok(first_occurrences(rows.iter().map(|r| r.data())))
}

/// For a sequence of keys: the positions of each distinct key's first occurrence, and for every
/// position, which distinct key it holds.
fn first_occurrences<K: std::hash::Hash + Eq>(
    keys: impl ExactSizeIterator<Item = K>,
) -> (UInt32Array, Vec<u32>) {
    let mut seen: HashMap<K, u32> = HashMap::default();
    let mut first_rows: Vec<u32> = Vec::new();
    let mut row_group = Vec::with_capacity(keys.len());
    for (i, key) in keys.enumerate() {
        let next = first_rows.len() as u32;
        let id = *seen.entry(key).or_insert_with(|| {
            first_rows.push(i as u32);
            next
        });
        row_group.push(id);
    }
    (UInt32Array::from(first_rows), row_group)
}

/// The distinct rows of some columns of a batch, and which of them each row of the batch has.
struct Groups {
    /// One row per distinct value (or combination).
    distinct: RecordBatch,
    /// For each row of the batch, its row in `distinct`.
    row_group: Vec<u32>,
}

impl Groups {
    fn new(batch: &RecordBatch, columns: &[usize]) -> Result<Groups, ArrowError> {
        let schema = key_schema(batch.schema_ref(), columns);
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect();
        let (first_rows, row_group) = group_rows(&arrays)?;
        let taken = arrays
            .iter()
            .map(|a| take(a.as_ref(), &first_rows, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Groups {
            distinct: RecordBatch::try_new(schema, taken)?,
            row_group,
        })
    }

    /// Which distinct rows `expr` (over their schema) holds true for; `None` if it cannot be
    /// evaluated.
    fn passing(&self, expr: &Arc<dyn PhysicalExpr>) -> Option<Rc<[bool]>> {
        let n = self.distinct.num_rows();
        let pass = expr
            .evaluate(&self.distinct)
            .and_then(|v| v.into_array(n))
            .ok()?;
        let pass = pass.as_any().downcast_ref::<BooleanArray>()?;
        Some((0..n).map(|c| pass.is_valid(c) && pass.value(c)).collect())
    }
}

/// Which groups a condition holds true for; `None` when it could not be evaluated.
type Verdict = Option<Rc<[bool]>>;

/// Which value columns a condition reads: positions in [`ScreenedColumns::values`], ascending.
pub type ValueSet = Vec<usize>;

/// One batch grouped for screening: its distinct key combinations, and (built when a screen
/// first asks) the distinct values of each set of value columns that a condition reads.
pub struct BatchKeys<'a> {
    batch: &'a RecordBatch,
    combinations: Rc<Groups>,
    /// The value columns (indices into the batch's schema).
    value_columns: Vec<usize>,
    /// The distinct values of each set of value columns asked for so far.
    values: RefCell<HashMap<ValueSet, Option<Rc<Groups>>>>,
    /// Verdicts of the conditions judged so far, by which groups they judged (`None` for the
    /// combinations, else the value set) and by condition (the address of a condition that
    /// [`SharedScreens`] made one for all the rules that have it).
    verdicts: RefCell<HashMap<(Option<ValueSet>, usize), Verdict>>,
}

impl<'a> BatchKeys<'a> {
    /// Groups the rows of `batch` (a batch of a table screened on `columns`).
    pub fn new(
        batch: &'a RecordBatch,
        columns: &ScreenedColumns,
    ) -> Result<BatchKeys<'a>, ArrowError> {
        Ok(BatchKeys {
            batch,
            combinations: Rc::new(Groups::new(batch, &columns.keys)?),
            value_columns: columns.values.clone(),
            values: RefCell::default(),
            verdicts: RefCell::default(),
        })
    }

    /// Which of the groups (`None`: the combinations; else the distinct values of a value set)
    /// `expr` holds true for, judged once per batch for every rule that shares the condition.
    fn verdict(&self, set: Option<&ValueSet>, expr: &Arc<dyn PhysicalExpr>) -> Verdict {
        let id = (set.cloned(), Arc::as_ptr(expr) as *const () as usize);
        if let Some(known) = self.verdicts.borrow().get(&id) {
            return known.clone();
        }
        let pass = self.groups(set).and_then(|g| g.passing(expr));
        self.verdicts.borrow_mut().insert(id, pass.clone());
        pass
    }

    /// The groups that `set` names (see [`BatchKeys::verdict`]).
    fn groups(&self, set: Option<&ValueSet>) -> Option<Rc<Groups>> {
        match set {
            None => Some(Rc::clone(&self.combinations)),
            Some(set) => self.values(set),
        }
    }

    /// How many distinct key combinations the batch holds.
    pub fn len(&self) -> usize {
        self.combinations.distinct.num_rows()
    }

    /// Whether the batch had no rows.
    pub fn is_empty(&self) -> bool {
        self.combinations.distinct.num_rows() == 0
    }

    /// The distinct values (or combinations of values) of a set of value columns.
    fn values(&self, set: &ValueSet) -> Option<Rc<Groups>> {
        if let Some(known) = self.values.borrow().get(set) {
            return known.clone();
        }
        let columns = set
            .iter()
            .map(|k| self.value_columns.get(*k).copied())
            .collect::<Option<Vec<usize>>>();
        let groups = columns
            .and_then(|c| Groups::new(self.batch, &c).ok())
            .map(Rc::new);
        self.values.borrow_mut().insert(set.clone(), groups.clone());
        groups
    }
}

/// The distinct screen conditions of the rules compiled so far (see [`Prescreen::share`]).
#[derive(Default)]
pub struct SharedScreens {
    seen: Vec<Arc<dyn PhysicalExpr>>,
}

impl SharedScreens {
    fn share(&mut self, expr: &mut Arc<dyn PhysicalExpr>) {
        match self.seen.iter().find(|s| s.as_ref() == expr.as_ref()) {
            Some(same) => *expr = Arc::clone(same),
            None => self.seen.push(Arc::clone(expr)),
        }
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

/// A rule's conditions on the screened columns, ready to judge combinations and values.
pub struct Prescreen {
    /// The conditions on the key columns, over the key columns' schema.
    keys: Option<Arc<dyn PhysicalExpr>>,
    /// The conditions on value columns alone, one per set of value columns that conditions
    /// read: the set and the conjunction of its conditions, over the schema of those columns.
    values: Vec<(ValueSet, Arc<dyn PhysicalExpr>)>,
    /// The columns of its table that the rule reads (all when unknown).
    reads: Option<Vec<usize>>,
}

impl Prescreen {
    /// The pre-screen of a rule with the optimized `plan` that scans `scanned` (the name of
    /// `table`, or of its window), if the plan's shape and filter allow one.
    pub fn for_plan(
        state: &SessionState,
        plan: &LogicalPlan,
        table: TableKind,
        scanned: &str,
        columns: &ScreenedColumns,
    ) -> Option<Prescreen> {
        if columns.is_empty() {
            return None;
        }
        let filter = scan_filter(plan, scanned)?;
        let full = table.schema();
        let physical = |predicate: Expr, over: &[usize]| {
            let schema = key_schema(&full, over);
            let df_schema = DFSchema::try_from_qualified_schema(scanned, &schema).ok()?;
            state.create_physical_expr(predicate, &df_schema).ok()
        };
        let keys = conjuncts_on(filter, &column_names(&full, &columns.keys), true)
            .and_then(|p| physical(p, &columns.keys));
        let values: Vec<(ValueSet, Arc<dyn PhysicalExpr>)> =
            value_conjuncts(filter, &column_names(&full, &columns.values))
                .into_iter()
                .filter_map(|(set, predicate)| {
                    let over: Vec<usize> = set.iter().map(|k| columns.values[*k]).collect();
                    Some((set, physical(predicate, &over)?))
                })
                .collect();
        if keys.is_none() && values.is_empty() {
            return None;
        }
        let reads = columns_read(plan, scanned);
        Some(Prescreen {
            keys,
            values,
            reads,
        })
    }

    /// The rule's condition on the key columns, over their schema.
    pub fn key_condition(&self) -> Option<&Arc<dyn PhysicalExpr>> {
        self.keys.as_ref()
    }

    /// The rule's conditions on sets of value columns, each over the schema of its set.
    pub fn value_conditions(&self) -> &[(ValueSet, Arc<dyn PhysicalExpr>)] {
        &self.values
    }

    /// The rows of `batch` where `mask` is true, with the columns that the rule does not read
    /// left null.
    pub fn narrow(
        &self,
        batch: &RecordBatch,
        mask: &BooleanArray,
        nulls: &mut NullColumns,
    ) -> Result<RecordBatch, ArrowError> {
        filter_columns(batch, mask, self.reads.as_deref(), nulls)
    }

    /// The rows of the batch (grouped as `keys`) that the rule needs to see. A condition that
    /// fails to evaluate passes every row: the rule's own filter still decides.
    pub fn select(&self, keys: &BatchKeys) -> Selection {
        // Each screen: which group every row is in, and which groups pass.
        let mut screens: Vec<(Rc<Groups>, Rc<[bool]>)> = Vec::new();
        let judged = self
            .keys
            .iter()
            .map(|expr| (None, expr))
            .chain(self.values.iter().map(|(set, expr)| (Some(set), expr)));
        for (set, expr) in judged {
            let (Some(groups), Some(pass)) = (keys.groups(set), keys.verdict(set, expr)) else {
                continue;
            };
            if !pass.contains(&true) {
                return Selection::Nothing;
            }
            if pass.contains(&false) {
                screens.push((groups, pass));
            }
        }
        if screens.is_empty() {
            return Selection::All;
        }
        let rows = keys.batch.num_rows();
        let mask = BooleanBuffer::collect_bool(rows, |r| {
            screens
                .iter()
                .all(|(groups, pass)| pass[groups.row_group[r] as usize])
        });
        match mask.count_set_bits() {
            0 => Selection::Nothing,
            n if n == rows => Selection::All,
            _ => Selection::Rows(BooleanArray::new(mask, None)),
        }
    }

    /// Makes this rule's conditions the very ones of earlier rules where they are equal, so
    /// that a batch judges each distinct condition once (many rules share one, such as
    /// `NOT is_system_principal(user_name)`).
    pub fn share(&mut self, shared: &mut SharedScreens) {
        if let Some(expr) = &mut self.keys {
            shared.share(expr);
        }
        for (_, expr) in &mut self.values {
            shared.share(expr);
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

/// All-null columns of any type and length, cut from one array per type: the columns a rule
/// does not read are filled with these, and building fresh ones for every rule and batch (fifty
/// columns each) cost as much as running the rules.
#[derive(Default)]
pub struct NullColumns {
    by_type: HashMap<DataType, ArrayRef>,
}

impl NullColumns {
    /// A null array of `data_type` with `rows` rows.
    pub fn get(&mut self, data_type: &DataType, rows: usize) -> ArrayRef {
        match self.by_type.get(data_type) {
            Some(nulls) if nulls.len() >= rows => nulls.slice(0, rows),
            _ => {
                let nulls = new_null_array(data_type, rows);
                self.by_type.insert(data_type.clone(), Arc::clone(&nulls));
                nulls
            }
        }
    }
}

/// The rows of `batch` where `mask` is true, with the columns outside `reads` (when given) left
/// null: copying raw request objects that a rule never looks at would be most of its cost.
/// Columns that may not be null are always kept.
pub fn filter_columns(
    batch: &RecordBatch,
    mask: &BooleanArray,
    reads: Option<&[usize]>,
    nulls: &mut NullColumns,
) -> Result<RecordBatch, ArrowError> {
    let Some(reads) = reads else {
        return filter_record_batch(batch, mask);
    };
    let filter = FilterBuilder::new(mask).optimize().build();
    keep_columns(batch, reads, filter.count(), nulls, |c| filter.filter(c))
}

/// Every row of `batch`, with the columns outside `reads` left null (no copy of the others).
pub fn null_unread(
    batch: &RecordBatch,
    reads: &[usize],
    nulls: &mut NullColumns,
) -> Result<RecordBatch, ArrowError> {
    keep_columns(batch, reads, batch.num_rows(), nulls, |c| Ok(Arc::clone(c)))
}

fn keep_columns(
    batch: &RecordBatch,
    reads: &[usize],
    rows: usize,
    nulls: &mut NullColumns,
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
                Ok(nulls.get(field.data_type(), rows))
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
#[cfg(test)]
fn key_predicate(plan: &LogicalPlan, table: &str, names: &[String]) -> Option<Expr> {
    conjuncts_on(scan_filter(plan, table)?, names, true)
}

/// The predicate of the filter directly above the single scan of `table`, when the plan is a
/// chain that yields no row from no input.
fn scan_filter<'p>(plan: &'p LogicalPlan, table: &str) -> Option<&'p Expr> {
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
                    return Some(&f.predicate);
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

/// The conditions of `predicate` that read value columns (`names`) and nothing else, grouped by
/// the set of value columns each reads (positions in `names`, ascending), each group's
/// conditions joined by `AND`.
fn value_conjuncts(predicate: &Expr, names: &[String]) -> Vec<(ValueSet, Expr)> {
    let mut sets: Vec<(ValueSet, Expr)> = Vec::new();
    for e in split_conjunction(predicate) {
        let refs = e.column_refs();
        if e.is_volatile() || refs.is_empty() {
            continue;
        }
        let Some(mut set) = refs
            .iter()
            .map(|c| names.iter().position(|n| n == &c.name))
            .collect::<Option<ValueSet>>()
        else {
            continue;
        };
        set.sort_unstable();
        set.dedup();
        match sets.iter_mut().find(|(s, _)| *s == set) {
            Some((_, all)) => *all = all.clone().and(e.clone()),
            None => sets.push((set, e.clone())),
        }
    }
    sets
}

/// The conjunction of the conditions of `predicate` that read only `names` (and, with
/// `constants`, those that read no column at all, such as the `NULL` that an empty list parameter
/// leaves).
fn conjuncts_on(predicate: &Expr, names: &[String], constants: bool) -> Option<Expr> {
    split_conjunction(predicate)
        .into_iter()
        .filter(|e| {
            let refs = e.column_refs();
            !e.is_volatile()
                && (constants || !refs.is_empty())
                && refs.iter().all(|c| names.contains(&c.name))
        })
        .cloned()
        .reduce(Expr::and)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};

    fn plan(sql: &str) -> LogicalPlan {
        crate::test_plans::audit_plan(sql).1
    }

    fn names() -> Vec<String> {
        column_names(
            &TableKind::Audit.schema(),
            &ScreenedColumns::of(TableKind::Audit).keys,
        )
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

    /// A batch of (verb, resource, response_code, user_name) rows.
    fn batch(rows: &[(&str, &str, i32, &str)]) -> RecordBatch {
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
                    "user_name" => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3)))
                    }
                    _ => datafusion::arrow::array::new_null_array(f.data_type(), rows.len()),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    /// Which rows a selection keeps; panics unless it is a mask.
    fn rows(s: Selection) -> Vec<bool> {
        match s {
            Selection::Rows(mask) => mask.iter().map(|v| v == Some(true)).collect(),
            other => panic!("expected rows, got {other:?}"),
        }
    }

    fn screen(sql: &str) -> Prescreen {
        let (ctx, plan) = crate::test_plans::audit_plan(sql);
        let columns = ScreenedColumns::of(TableKind::Audit);
        Prescreen::for_plan(&ctx.state(), &plan, TableKind::Audit, "audit", &columns)
            .expect("screen")
    }

    #[test]
    fn selects_the_rows_whose_combination_passes() {
        let b = batch(&[
            ("get", "pods", 200, "alice"),
            ("create", "pods", 201, "alice"),
            ("get", "pods", 200, "alice"),
            ("create", "secrets", 201, "alice"),
            ("create", "pods", 403, "alice"),
        ]);
        let keys = BatchKeys::new(&b, &ScreenedColumns::of(TableKind::Audit)).expect("keys");
        assert_eq!(keys.len(), 4);

        let s = screen(
            "SELECT ts FROM audit WHERE resource = 'pods' AND verb = 'create' AND response_code < 400 AND user_name <> 'x'",
        );
        assert_eq!(
            rows(s.select(&keys)),
            vec![false, true, false, false, false]
        );
        let narrowed = screen("SELECT ts, resource FROM audit WHERE resource = 'pods'")
            .narrow(
                &b,
                &BooleanArray::from(vec![false, true, false, false, true]),
                &mut NullColumns::default(),
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
            &mut NullColumns::default(),
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

    #[test]
    fn rules_with_equal_conditions_share_them_and_select_as_before() {
        let b = batch(&[
            ("create", "pods", 201, "system:kube-scheduler"),
            ("create", "pods", 201, "alice"),
            ("get", "pods", 200, "bob"),
        ]);
        let keys = BatchKeys::new(&b, &ScreenedColumns::of(TableKind::Audit)).expect("keys");
        let mut first = screen(
            "SELECT ts FROM audit WHERE verb = 'create' AND NOT is_system_principal(user_name)",
        );
        let mut second = screen(
            "SELECT name FROM audit WHERE verb = 'get' AND NOT is_system_principal(user_name)",
        );
        let mut shared = SharedScreens::default();
        first.share(&mut shared);
        second.share(&mut shared);
        assert!(
            Arc::ptr_eq(&first.values[0].1, &second.values[0].1),
            "the user-name condition is one for both rules"
        );
        let (Some(a), Some(b)) = (&first.keys, &second.keys) else {
            panic!("both rules have key conditions");
        };
        assert!(!Arc::ptr_eq(a, b), "different verb conditions stay apart");
        // The shared verdict, judged once for the batch, serves both rules.
        assert_eq!(rows(first.select(&keys)), vec![false, true, false]);
        assert_eq!(rows(second.select(&keys)), vec![false, false, true]);
    }

    #[test]
    fn null_columns_are_cut_to_any_length_from_one_array_per_type() {
        let mut nulls = NullColumns::default();
        let list = DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
            "item",
            DataType::Utf8,
            true,
        )));
        for (data_type, rows) in [
            (DataType::Utf8, 5),
            (DataType::Utf8, 3),
            (DataType::Utf8, 9),
            (list.clone(), 4),
            (list, 2),
            (DataType::Boolean, 0),
        ] {
            let column = nulls.get(&data_type, rows);
            assert_eq!(column.data_type(), &data_type);
            assert_eq!(column.len(), rows);
            assert_eq!(column.null_count(), rows, "every row is null");
        }
    }

    #[test]
    fn judges_conditions_on_one_value_column_once_per_value() {
        let b = batch(&[
            ("create", "pods", 201, "system:kube-scheduler"),
            ("create", "pods", 201, "alice"),
            ("get", "pods", 200, "alice"),
            ("create", "pods", 201, "system:node:n1"),
            ("create", "pods", 201, "bob"),
        ]);
        let keys = BatchKeys::new(&b, &ScreenedColumns::of(TableKind::Audit)).expect("keys");
        // A key condition and a condition on the user name alone: both must hold.
        let s = screen(
            "SELECT ts FROM audit WHERE verb = 'create' AND NOT is_system_principal(user_name)",
        );
        assert_eq!(rows(s.select(&keys)), vec![false, true, false, false, true]);
        // A condition on a value column alone is a screen by itself.
        let s = screen("SELECT ts FROM audit WHERE user_name LIKE 'system:%'");
        assert_eq!(rows(s.select(&keys)), vec![true, false, false, true, false]);
        let none = screen("SELECT ts FROM audit WHERE regexp_like(user_name, '^eve$')");
        assert!(matches!(none.select(&keys), Selection::Nothing));
        // A list parameter left empty (`IN (NULL)`) admits no row at all.
        let unset = screen("SELECT ts FROM audit WHERE verb = 'create' AND namespace IN (NULL)");
        assert!(matches!(unset.select(&keys), Selection::Nothing));
        // A condition over a value column and a column that is not screened is left to the
        // rule's filter.
        let mixed =
            screen("SELECT ts FROM audit WHERE verb = 'get' AND (user_name = 'x' OR name = 'y')");
        assert_eq!(
            rows(mixed.select(&keys)),
            vec![false, false, true, false, false]
        );
    }

    #[test]
    fn judges_conditions_on_several_value_columns_once_per_combination() {
        let mut b = batch(&[
            ("get", "pods", 200, "system:anonymous"),
            ("get", "pods", 200, "alice"),
            ("get", "pods", 200, "mallory"),
            ("get", "pods", 200, "alice"),
        ]);
        // Groups of each row: the third user came in without authentication under another name.
        let mut groups = datafusion::arrow::array::ListBuilder::new(
            datafusion::arrow::array::StringBuilder::new(),
        );
        for g in [
            &["system:unauthenticated"][..],
            &["system:authenticated"],
            &["system:unauthenticated"],
            &["system:authenticated"],
        ] {
            for item in g {
                groups.values().append_value(item);
            }
            groups.append(true);
        }
        let schema = b.schema();
        let mut columns = b.columns().to_vec();
        let at = schema.index_of("user_groups").expect("user_groups");
        columns[at] = Arc::new(groups.finish());
        b = RecordBatch::try_new(schema, columns).expect("batch");
        let keys = BatchKeys::new(&b, &ScreenedColumns::of(TableKind::Audit)).expect("keys");
        let s = screen(
            "SELECT ts FROM audit WHERE verb = 'get' \
             AND (user_name = 'system:anonymous' OR array_has(user_groups, 'system:unauthenticated'))",
        );
        assert_eq!(s.values.len(), 1, "one condition over two value columns");
        assert_eq!(s.values[0].0.len(), 2);
        assert_eq!(rows(s.select(&keys)), vec![true, false, true, false]);
        // Null in nearly every event: a rule that looks for impersonation skips the batch.
        let s = screen("SELECT ts FROM audit WHERE impersonated_user IS NOT NULL");
        assert!(matches!(s.select(&keys), Selection::Nothing));
    }
}
