//! The rule engine: every rule planned once, its physical plan re-executed on each micro-batch.
//!
//! The `audit` table is a streaming table whose only partition yields the current batch; each
//! rule keeps its physical plan and, per batch, resets its state and executes it again (see
//! ARCHITECTURE.md, "Engine", for why this is 4–6× faster than planning per batch). Windowed rules
//! also read `audit_window`: the rows of the recent past that can matter to them. Only rows that
//! pass the rule's own filter on `audit_window` are retained, so a window of minutes at tens of
//! thousands of events per second costs the memory of the few events that matter. Batches are fed
//! in event-time order; a windowed rule is evaluated in time slices of a quarter of its window, so
//! a batch spanning hours still sees each window as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use audithound_ingest::audit::ScreenJudge;
use audithound_models::{Finding, TableKind};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{
    concat_batches, filter_record_batch, sort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimestampMicrosecondType};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, collect};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};

use crate::decode_screen::DecodeScreen;
use crate::dedup::{Deduplicator, RuleIdentity};
use crate::error::{EngineError, RuleError};
use crate::matches::{Match, TIME_COLUMNS, rows_to_matches};
use crate::params;
use crate::prescreen::{
    self, BatchKeys, NullColumns, Prescreen, ScreenedColumns, Selection, SharedScreens,
};
use crate::regex_match::precompile_regex_matches;
use crate::rules::{LoadedRule, RulePack};
use crate::udf;

/// Settings that users give rules without editing them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Parameter values by name, for every rule that declares the parameter
    /// (e.g. `allowed_registries`, `cluster_cidrs`).
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Values added to rules' named exception lists: rule id → list name → values.
    #[serde(default)]
    pub exceptions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Values added to shared exception lists, for every rule that uses them: list name →
    /// values (`cluster_components = ["monitoring:quay.io/prometheus/node-exporter"]`).
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
    /// Ids of rules not to run.
    #[serde(default)]
    pub disabled: Vec<String>,
}

/// The name of the table of a windowed rule's recent past: `audit_window`, `dns_window`, ...
pub fn window_table(kind: TableKind) -> String {
    format!("{}_window", kind.name())
}

/// A shared slot of batches that a streaming table yields when its plan executes.
#[derive(Debug)]
struct BatchSlot {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

#[derive(Debug)]
struct SlotStream(Arc<BatchSlot>);

impl PartitionStream for SlotStream {
    fn schema(&self) -> &SchemaRef {
        &self.0.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = self.0.batches.lock().map(|b| b.clone()).unwrap_or_default();
        // MemoryStream::try_new never fails without a projection.
        match MemoryStream::try_new(batches, Arc::clone(&self.0.schema), None) {
            Ok(s) => Box::pin(s),
            Err(_) => Box::pin(
                MemoryStream::try_new(vec![], Arc::clone(&self.0.schema), None)
                    .expect("empty stream"),
            ),
        }
    }
}

struct Exception {
    column: String,
    values: Vec<String>,
}

struct Window {
    length: Duration,
    slot: Arc<BatchSlot>,
    retain: Option<Arc<dyn PhysicalExpr>>,
    /// The columns of the window table that the rule reads; the others are not retained.
    reads: Option<Vec<usize>>,
}

struct CompiledRule {
    identity: RuleIdentity,
    /// The event table whose batches the rule judges.
    table: TableKind,
    /// The optimized logical plan, and the physical plan made from it when the rule first
    /// runs (or at once, when the engine plans eagerly): a scan never plans the rules whose
    /// screens admit nothing.
    logical: LogicalPlan,
    plan: OnceLock<Result<Arc<dyn ExecutionPlan>, String>>,
    /// Where the rule came from, for errors found when planning.
    origin: String,
    sql_line: usize,
    task_ctx: Arc<TaskContext>,
    exceptions: Vec<Exception>,
    window: Option<Window>,
    /// Skips the rows (or the whole batch) that the rule's conditions on repeated values rule out.
    prescreen: Option<Prescreen>,
    /// Time spent on this rule and how many batches it ran on (after screening).
    cost: RuleCost,
    /// Names of the columns of `table` that the plan reads (`None`: every column).
    reads: Option<Vec<String>>,
}

/// What one rule has cost so far: for finding the rule that slows a scan or a sidecar down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleCost {
    /// The rule's id.
    pub rule_id: String,
    /// Time spent narrowing batches for it and running it.
    pub time: Duration,
    /// Batches it ran on (skipped ones not counted).
    pub runs: u64,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Findings opened or updated by this batch (latest state of each).
    pub findings: Vec<Finding>,
    /// Rules that failed on this batch; the others ran.
    pub errors: Vec<EngineError>,
}

/// Runs a rule pack over micro-batches of the `audit` table.
pub struct RuleEngine {
    runtime: tokio::runtime::Runtime,
    current: BTreeMap<TableKind, Arc<BatchSlot>>,
    /// The window tables (`audit_window`, ...): each yields the retained rows of the windowed
    /// rule being run, put there just before it runs.
    windows: BTreeMap<TableKind, Arc<BatchSlot>>,
    /// The session of every rule, as one copy of its state: taking a copy copies the registry
    /// of functions, a noticeable share of start-up when done several times a rule.
    state: SessionState,
    /// The context that every rule's plan runs in (made once, for the same reason).
    task_ctx: Arc<TaskContext>,
    /// The pre-screened columns of each table.
    screened: BTreeMap<TableKind, ScreenedColumns>,
    /// Null columns for the columns that a rule does not read.
    nulls: NullColumns,
    rules: Vec<CompiledRule>,
    dedup: Deduplicator,
    watermark: Option<DateTime<Utc>>,
}

/// The rule's query with its parameters' values put in: the rule's own, overridden by the
/// config's, overridden by `overrides`.
pub(crate) fn rule_sql(
    rule: &LoadedRule,
    config: &RuleConfig,
    overrides: &BTreeMap<String, Vec<String>>,
) -> Result<String, String> {
    let mut values = rule.spec.params.clone();
    for (name, v) in values.iter_mut() {
        if let Some(c) = config.params.get(name) {
            *v = c.clone();
        }
        if let Some(o) = overrides.get(name) {
            *v = o.clone();
        }
    }
    params::substitute(&rule.spec.sql, &values)
}

/// A session for rules: the engine's configuration and functions, the event tables over
/// `current` and the window tables over `windows`.
fn rule_session(
    current: &BTreeMap<TableKind, Arc<BatchSlot>>,
    windows: &BTreeMap<TableKind, Arc<BatchSlot>>,
) -> Result<SessionContext, datafusion::error::DataFusionError> {
    let ctx = SessionContext::new_with_config(session_config());
    // Common subexpressions become a projection between a rule's filter and its scan, which
    // hides the filter from pre-screening; re-evaluating a repeated condition costs less than
    // running the whole rule on every row.
    ctx.remove_optimizer_rule("common_sub_expression_eliminate");
    udf::register_all(&ctx);
    for (kind, slot) in current {
        ctx.register_table(kind.name(), slot_table(slot)?)?;
    }
    for (kind, slot) in windows {
        ctx.register_table(window_table(*kind), slot_table(slot)?)?;
    }
    Ok(ctx)
}

/// A table that yields whatever batches `slot` holds when a plan over it executes.
fn slot_table(
    slot: &Arc<BatchSlot>,
) -> Result<Arc<StreamingTable>, datafusion::error::DataFusionError> {
    let stream: Arc<dyn PartitionStream> = Arc::new(SlotStream(Arc::clone(slot)));
    StreamingTable::try_new(Arc::clone(&slot.schema), vec![stream]).map(Arc::new)
}

/// Threads that compile a pack at most.
const MAX_COMPILE_THREADS: usize = 4;

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192);
    let options = config.options_mut();
    // A dynamic filter would keep state between executions of a reused plan.
    options.optimizer.enable_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_dynamic_filter_pushdown = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    // Rules are small single-table queries that one pass optimizes fully; the second and third
    // passes only confirm it, and were a fifth of start-up.
    options.optimizer.max_passes = 1;
    // The generic dialect accepts trailing commas in projections, which makes `cluster` (a
    // CLUSTER BY keyword) end the select list; PostgreSQL's reads it as the column it is.
    options.sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
    config
}

impl RuleEngine {
    /// Compiles every enabled rule of the pack. Rules that fail to compile are returned as
    /// errors and left out; the others run.
    pub fn new(
        pack: &RulePack,
        config: &RuleConfig,
    ) -> Result<(RuleEngine, Vec<RuleError>), EngineError> {
        let (mut engine, mut errors) = Self::new_deferred(pack, config)?;
        errors.extend(engine.plan_all());
        Ok((engine, errors))
    }

    /// Like [`RuleEngine::new`], but each rule's physical plan is made when the rule first has
    /// rows to judge, on the thread that judges: for a scan, where most rules never see a row
    /// their screen admits and physical planning was a third of start-up. The rare query that
    /// plans logically but not physically then fails when it first runs, as a rule error.
    pub fn new_deferred(
        pack: &RulePack,
        config: &RuleConfig,
    ) -> Result<(RuleEngine, Vec<RuleError>), EngineError> {
        if let Some(unknown) = config
            .lists
            .keys()
            .find(|name| crate::shared_lists::named(name).is_none())
        {
            return Err(EngineError::Runtime(format!(
                "the config adds to shared list `{unknown}`, which does not exist (known: {})",
                crate::shared_lists::builtin()
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut engine = RuleEngine::empty().map_err(EngineError::Runtime)?;
        let enabled: Vec<&LoadedRule> = pack
            .rules()
            .filter(|rule| rule.spec.enabled && !config.disabled.iter().any(|d| d == &rule.spec.id))
            .collect();
        let mut errors = Vec::new();
        for compiled in engine.compile_all(&enabled, config) {
            match compiled {
                Ok(c) => engine.rules.push(c),
                Err(e) => errors.push(e),
            }
        }
        let mut shared = SharedScreens::default();
        for screen in engine.rules.iter_mut().filter_map(|r| r.prescreen.as_mut()) {
            screen.share(&mut shared);
        }
        Ok((engine, errors))
    }

    /// An engine of one rule, with parameter values that override the rule's and the config's
    /// (for rule tests).
    pub fn single(
        rule: &LoadedRule,
        config: &RuleConfig,
        params: &BTreeMap<String, Vec<String>>,
    ) -> Result<RuleEngine, RuleError> {
        let mut engine = RuleEngine::empty().map_err(|e| RuleError::Invalid {
            origin: rule.origin.clone(),
            rule_id: rule.spec.id.clone(),
            message: format!("cannot start the engine: {e}"),
        })?;
        let compiled = engine.compile(&engine.state, rule, config, params)?;
        engine.rules.push(compiled);
        match engine.plan_all().pop() {
            Some(e) => Err(e),
            None => Ok(engine),
        }
    }

    /// An engine without rules: its runtime, the slots of the event tables and the session
    /// that rules without a window share.
    fn empty() -> Result<RuleEngine, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let slots = || -> BTreeMap<TableKind, Arc<BatchSlot>> {
            TableKind::ALL
                .iter()
                .map(|k| {
                    (
                        *k,
                        Arc::new(BatchSlot {
                            schema: k.schema(),
                            batches: Mutex::new(Vec::new()),
                        }),
                    )
                })
                .collect()
        };
        let (current, windows) = (slots(), slots());
        let state = rule_session(&current, &windows)
            .map_err(|e| e.to_string())?
            .state();
        Ok(RuleEngine {
            runtime,
            current,
            windows,
            task_ctx: state.task_ctx(),
            state,
            screened: TableKind::ALL
                .iter()
                .map(|k| (*k, ScreenedColumns::of(*k)))
                .collect(),
            nulls: NullColumns::default(),
            rules: Vec::new(),
            dedup: Deduplicator::new(),
            watermark: None,
        })
    }

    fn slot(&self, kind: TableKind) -> &Arc<BatchSlot> {
        // Every table has a slot, created in `empty`.
        &self.current[&kind]
    }

    /// Reopens incidents stored by an earlier run (see `FindingStore::recent`), so that evidence
    /// replayed after a restart merges into them. Findings of rules that no longer run are left.
    pub fn restore(&mut self, findings: Vec<Finding>) {
        for f in findings {
            if let Some(rule) = self.rules.iter().find(|r| r.identity.rule_id == f.rule_id) {
                let period = rule.identity.period;
                self.dedup.restore(f, period);
            }
        }
    }

    /// The first column of `table` that a rule reads and `decoded` lacks, with the rule's id:
    /// a decoder that filled only `decoded` would have hidden that column's values from the
    /// rule. `None` when every rule has what it reads.
    pub fn column_missing_from(
        &self,
        table: TableKind,
        decoded: &BTreeSet<String>,
    ) -> Option<(String, String)> {
        self.rules
            .iter()
            .filter(|r| r.table == table)
            .find_map(|r| {
                let missing = match &r.reads {
                    Some(reads) => reads.iter().find(|c| !decoded.contains(*c))?.clone(),
                    None => "*".to_string(),
                };
                Some((r.identity.rule_id.clone(), missing))
            })
    }

    /// The audit rules' screens joined, for a decoder to leave out the events that no rule
    /// could read (see [`DecodeScreen`]). `None` when some audit rule has no screen: every
    /// event may matter to it.
    pub fn decode_screen(&self) -> Option<Arc<dyn ScreenJudge>> {
        let screens = self
            .rules
            .iter()
            .filter(|r| r.table == TableKind::Audit)
            .map(|r| r.prescreen.as_ref())
            .collect::<Option<Vec<&Prescreen>>>()?;
        let columns = self.screened.get(&TableKind::Audit)?;
        let screen = DecodeScreen::new(&screens, columns, &TableKind::Audit.schema());
        Some(Arc::new(screen))
    }

    /// Moves event time on to `latest` for events that no rule saw (the decoder's screen left
    /// them out): incidents whose period has passed close, as they would have had the events
    /// reached the rules.
    pub fn advance_time(&mut self, latest: DateTime<Utc>) {
        let w = self.watermark.map_or(latest, |w| w.max(latest));
        self.watermark = Some(w);
        self.dedup.expire(w);
    }

    /// How many rules run.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Compiles `rules` on up to as many threads as there are cores (planning a query is
    /// single-threaded, and planning the pack is a fixed cost of every scan); the results are
    /// in the order of `rules`.
    fn compile_all(
        &self,
        rules: &[&LoadedRule],
        config: &RuleConfig,
    ) -> Vec<Result<CompiledRule, RuleError>> {
        let no_overrides = BTreeMap::new();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_COMPILE_THREADS)
            .min(rules.len());
        if threads <= 1 {
            return rules
                .iter()
                .map(|r| self.compile(&self.state, r, config, &no_overrides))
                .collect();
        }
        let mut done: Vec<Option<Result<CompiledRule, RuleError>>> =
            rules.iter().map(|_| None).collect();
        // Rules differ in cost (a window or a long list of values against a single filter):
        // each thread takes the next rule when it is done with one, so that none sits idle
        // while another still has several to go.
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (no_overrides, next) = (&no_overrides, &next);
                    // Each thread plans in its own copy of the state.
                    let state = self.state.clone();
                    scope.spawn(move || {
                        let mut compiled = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(rule) = rules.get(i) else {
                                return compiled;
                            };
                            compiled.push((i, self.compile(&state, rule, config, no_overrides)));
                        }
                    })
                })
                .collect();
            for worker in workers {
                for (i, result) in worker.join().unwrap_or_default() {
                    done[i] = Some(result);
                }
            }
        });
        done.into_iter()
            .zip(rules)
            .map(|(result, rule)| {
                result.unwrap_or_else(|| {
                    Err(RuleError::Invalid {
                        origin: rule.origin.clone(),
                        rule_id: rule.spec.id.clone(),
                        message: "the rule compiler crashed on this rule or one compiled beside it"
                            .into(),
                    })
                })
            })
            .collect()
    }

    fn compile(
        &self,
        state: &SessionState,
        rule: &LoadedRule,
        config: &RuleConfig,
        overrides: &BTreeMap<String, Vec<String>>,
    ) -> Result<CompiledRule, RuleError> {
        let spec = &rule.spec;
        let sql_err = |message: String| RuleError::Sql {
            origin: rule.origin.clone(),
            line: rule.sql_line,
            rule_id: spec.id.clone(),
            message,
        };
        let invalid = |message: String| RuleError::Invalid {
            origin: rule.origin.clone(),
            rule_id: spec.id.clone(),
            message,
        };
        let sql = rule_sql(rule, config, overrides).map_err(sql_err)?;

        // Every rule plans in one session (building one per rule, with its functions, was a
        // tenth of start-up); a windowed rule's window table yields its own retained rows
        // because the engine puts them there before running it.
        let window_read = TableKind::ALL
            .into_iter()
            .find(|k| mentions(&sql, &window_table(*k)));
        let window_kind = match (rule.window, window_read) {
            (Some(_), Some(kind)) => Some(kind),
            (Some(_), None) => {
                return Err(invalid(
                    "a windowed rule reads `audit_window`, `dns_window` or `flow_window`".into(),
                ));
            }
            // The pack refuses such a rule already; the session has window tables for every
            // rule, where this one would silently see nothing.
            (None, Some(kind)) => {
                return Err(invalid(format!(
                    "the query reads `{}` but the rule has no `window`",
                    window_table(kind)
                )));
            }
            (None, None) => None,
        };
        let window_slot = window_kind.map(|k| {
            Arc::new(BatchSlot {
                schema: k.schema(),
                batches: Mutex::new(Vec::new()),
            })
        });

        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let logical = self
            .runtime
            .block_on(async {
                let plan = state.create_logical_plan(&sql).await?;
                options.verify_plan(&plan)?;
                precompile_regex_matches(state.optimize(&plan)?)
            })
            .map_err(|e| sql_err(e.to_string()))?;

        let read = scanned_tables(&logical);
        let table = match (window_kind, read.as_slice()) {
            (Some(k), _) => k,
            (None, [one]) => *one,
            (None, []) => {
                return Err(invalid(
                    "the query reads no event table (audit, dns or flow)".into(),
                ));
            }
            (None, _) => {
                return Err(invalid(
                    "the query reads several event tables; a rule judges one".into(),
                ));
            }
        };
        let schema = logical.schema().as_arrow();
        let has_time = TIME_COLUMNS.iter().any(|c| {
            schema
                .field_with_name(c)
                .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
        });
        if !has_time {
            return Err(invalid(
                "the query must return the event time as `ts` (or `first_seen`/`last_seen`)".into(),
            ));
        }
        let has = |c: &str| schema.field_with_name(c).is_ok();
        if let Some(missing) = spec
            .dedup
            .iter()
            .flat_map(|d| d.key.iter())
            .find(|c| !has(c))
        {
            return Err(invalid(format!(
                "dedup key column `{missing}` is not returned by the query"
            )));
        }
        // A windowed rule is screened on the rows its window retains: a row the screen rejects
        // is one its retention filter rejects.
        let scanned = match rule.window {
            None => table.name().to_string(),
            Some(_) => window_table(table),
        };
        let prescreen = self
            .screened
            .get(&table)
            .and_then(|columns| Prescreen::for_plan(state, &logical, table, &scanned, columns));
        let schema_of_table = table.schema();
        let reads = prescreen::columns_read(&logical, &scanned).map(|indices| {
            indices
                .into_iter()
                .filter_map(|i| schema_of_table.fields().get(i).map(|f| f.name().clone()))
                .collect()
        });
        let mut exceptions = Vec::new();
        for e in &spec.exceptions {
            if !has(&e.column) {
                return Err(invalid(format!(
                    "exception `{}` names column `{}`, which the query does not return",
                    e.name, e.column
                )));
            }
            let mut values = e.values.clone();
            if let Some(name) = &e.list {
                let shared = crate::shared_lists::named(name).ok_or_else(|| {
                    invalid(format!(
                        "exception `{}` names shared list `{name}`, which does not exist",
                        e.name
                    ))
                })?;
                values.extend(shared.values.iter().cloned());
                values.extend(config.lists.get(name).into_iter().flatten().cloned());
            }
            if let Some(extra) = config.exceptions.get(&spec.id).and_then(|m| m.get(&e.name)) {
                values.extend(extra.iter().cloned());
            }
            exceptions.push(Exception {
                column: e.column.clone(),
                values,
            });
        }
        if let Some(unknown) = config
            .exceptions
            .get(&spec.id)
            .into_iter()
            .flat_map(|lists| lists.keys())
            .find(|n| !spec.exceptions.iter().any(|e| &e.name == *n))
        {
            return Err(invalid(format!(
                "config names exception list `{unknown}`, which the rule does not have"
            )));
        }

        let window = match (rule.window, window_slot) {
            (Some(length), Some(slot)) => {
                let name = window_table(table);
                let retain = retention_filter(&logical, &name)
                    .map(|expr| {
                        let df_schema =
                            DFSchema::try_from_qualified_schema(name.as_str(), &table.schema())?;
                        state.create_physical_expr(expr, &df_schema)
                    })
                    .transpose()
                    .map_err(|e| sql_err(e.to_string()))?;
                if retain.is_none() {
                    tracing::warn!(rule = %spec.id, "windowed rule has no filter on its window table: it retains every event of its window");
                }
                Some(Window {
                    length,
                    slot,
                    retain,
                    reads: prescreen::columns_read(&logical, &name),
                })
            }
            _ => None,
        };

        Ok(CompiledRule {
            identity: RuleIdentity {
                rule_id: spec.id.clone(),
                title: spec.title.clone(),
                severity: spec.severity,
                techniques: rule.techniques.clone(),
                tags: spec.tags.clone(),
                explanation: spec.explanation.clone(),
                dedup_key: spec.dedup.as_ref().map(|d| d.key.clone()),
                period: rule.dedup_period,
                windowed: rule.window.is_some(),
            },
            table,
            logical,
            plan: OnceLock::new(),
            origin: rule.origin.clone(),
            sql_line: rule.sql_line,
            task_ctx: Arc::clone(&self.task_ctx),
            exceptions,
            window,
            prescreen,
            cost: RuleCost {
                rule_id: spec.id.clone(),
                ..RuleCost::default()
            },
            reads,
        })
    }

    /// What each rule has cost so far, the most expensive first.
    pub fn rule_costs(&self) -> Vec<RuleCost> {
        let mut costs: Vec<RuleCost> = self.rules.iter().map(|r| r.cost.clone()).collect();
        costs.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.rule_id.cmp(&b.rule_id)));
        costs
    }

    /// Runs the rules of `table` on one batch of it.
    pub fn process(&mut self, table: TableKind, batch: &RecordBatch) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        if batch.num_rows() == 0 {
            return outcome;
        }
        if let Some(max) = max_ts(batch) {
            self.watermark = Some(self.watermark.map_or(max, |w| w.max(max)));
        }
        let keys = self
            .rules
            .iter()
            .any(|r| r.table == table && r.prescreen.is_some())
            .then(|| self.screened.get(&table))
            .flatten()
            .and_then(|columns| BatchKeys::new(batch, columns).ok());
        for i in 0..self.rules.len() {
            if self.rules[i].table != table {
                continue;
            }
            let started = Instant::now();
            let input = match (&self.rules[i].prescreen, &keys) {
                (Some(screen), Some(keys)) => match screen.select(keys) {
                    Selection::Nothing => continue,
                    Selection::All => batch.clone(),
                    // A mask of the batch's own length always filters; if not, the rule sees all.
                    Selection::Rows(mask) => screen
                        .narrow(batch, &mask, &mut self.nulls)
                        .unwrap_or_else(|_| batch.clone()),
                },
                _ => batch.clone(),
            };
            let result = if self.rules[i].window.is_some() {
                self.run_windowed(i, &input)
            } else {
                if let Ok(mut slot) = self.slot(table).batches.lock() {
                    *slot = vec![input];
                }
                self.run_rule(i).map(|m| vec![m])
            };
            match result {
                Ok(all) => {
                    let rule = &self.rules[i];
                    for matches in all {
                        for m in matches {
                            if !is_excepted(&rule.exceptions, &m) {
                                outcome.findings.push(self.dedup.absorb(&rule.identity, &m));
                            }
                        }
                    }
                }
                Err(e) => outcome.errors.push(e),
            }
            let cost = &mut self.rules[i].cost;
            cost.time += started.elapsed();
            cost.runs += 1;
        }
        if let Ok(mut slot) = self.slot(table).batches.lock() {
            slot.clear();
        }
        if let Some(w) = self.watermark {
            self.dedup.expire(w);
        }
        outcome
    }

    /// The physical plan of an optimized logical plan (planning from the optimized plan:
    /// optimizing twice was half of start-up).
    fn physical_plan(&self, logical: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>, String> {
        self.runtime
            .block_on(
                self.state
                    .query_planner()
                    .create_physical_plan(logical, &self.state),
            )
            .map_err(|e| e.to_string())
    }

    /// Makes the physical plan of every rule that has none yet; the rules that cannot be
    /// planned are left out and returned as errors.
    fn plan_all(&mut self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut kept = Vec::with_capacity(self.rules.len());
        for rule in std::mem::take(&mut self.rules) {
            let planned = rule.plan.get_or_init(|| self.physical_plan(&rule.logical));
            match planned {
                Ok(_) => kept.push(rule),
                Err(message) => errors.push(RuleError::Sql {
                    origin: rule.origin.clone(),
                    line: rule.sql_line,
                    rule_id: rule.identity.rule_id.clone(),
                    message: message.clone(),
                }),
            }
        }
        self.rules = kept;
        errors
    }

    fn run_rule(&self, i: usize) -> Result<Vec<Match>, EngineError> {
        let rule = &self.rules[i];
        let err = |e: datafusion::error::DataFusionError| EngineError::Execution {
            rule_id: rule.identity.rule_id.clone(),
            message: e.to_string(),
        };
        let planned = rule.plan.get_or_init(|| self.physical_plan(&rule.logical));
        let plan = match planned {
            Ok(plan) => reset_plan_states(Arc::clone(plan)).map_err(err)?,
            Err(message) => {
                return Err(EngineError::Execution {
                    rule_id: rule.identity.rule_id.clone(),
                    message: message.clone(),
                });
            }
        };
        let batches = self
            .runtime
            .block_on(collect(plan, Arc::clone(&rule.task_ctx)))
            .map_err(err)?;
        Ok(batches.iter().flat_map(rows_to_matches).collect())
    }

    fn run_windowed(
        &mut self,
        i: usize,
        batch: &RecordBatch,
    ) -> Result<Vec<Vec<Match>>, EngineError> {
        let rule_id = self.rules[i].identity.rule_id.clone();
        let err = |e: datafusion::arrow::error::ArrowError| EngineError::Execution {
            rule_id: rule_id.clone(),
            message: e.to_string(),
        };
        let (length, retained) = {
            let Some(w) = &self.rules[i].window else {
                return Ok(Vec::new());
            };
            let retained = match &w.retain {
                Some(expr) => {
                    let mask = expr
                        .evaluate(batch)
                        .and_then(|v| v.into_array(batch.num_rows()))
                        .map_err(|e| EngineError::Execution {
                            rule_id: rule_id.clone(),
                            message: e.to_string(),
                        })?;
                    let mask = mask
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .cloned()
                        .unwrap_or_else(|| BooleanArray::from(vec![false; batch.num_rows()]));
                    prescreen::filter_columns(batch, &mask, w.reads.as_deref(), &mut self.nulls)
                        .map_err(err)?
                }
                None => match &w.reads {
                    Some(reads) => {
                        prescreen::null_unread(batch, reads, &mut self.nulls).map_err(err)?
                    }
                    None => batch.clone(),
                },
            };
            (w.length, retained)
        };
        if retained.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let sorted = sort_by_ts(&retained).map_err(err)?;
        let slice = (length / 4).max(Duration::from_secs(1)).as_micros() as i64;
        let ts = sorted
            .column(1)
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let mut results = Vec::new();
        let mut start = 0;
        while start < sorted.num_rows() {
            let slice_end_ts = ts.value(start) + slice;
            let mut end = start;
            while end < sorted.num_rows() && ts.value(end) < slice_end_ts {
                end += 1;
            }
            let part = sorted.slice(start, end - start);
            let newest = ts.value(end - 1);
            let table = self.rules[i].table;
            if let Some(w) = &self.rules[i].window {
                let cutoff = newest - length.as_micros() as i64;
                if let Ok(mut slot) = w.slot.batches.lock() {
                    slot.push(part);
                    trim_window(&mut slot, cutoff).map_err(err)?;
                    // The window table of the session yields this rule's window while it runs.
                    if let Ok(mut shared) = self.windows[&table].batches.lock() {
                        *shared = slot.clone();
                    }
                }
            }
            let run = self.run_rule(i);
            if let Ok(mut shared) = self.windows[&table].batches.lock() {
                shared.clear();
            }
            results.push(run?);
            start = end;
        }
        Ok(results)
    }
}

/// The predicate that rows of `audit_window` must pass for the rule to see them: the filter
/// directly above every scan of the table, ORed. `None` when some scan is unfiltered.
fn retention_filter(plan: &LogicalPlan, window: &str) -> Option<Expr> {
    let is_window = |node: &LogicalPlan| matches!(node, LogicalPlan::TableScan(scan) if scan.table_name.table() == window);
    let mut predicates: Vec<Expr> = Vec::new();
    let mut scans = 0usize;
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Filter(f) if is_window(f.input.as_ref()) => {
                predicates.push(f.predicate.clone())
            }
            LogicalPlan::TableScan(scan) if is_window(node) => {
                scans += 1;
                if let Some(pushed) = scan.filters.iter().cloned().reduce(Expr::and) {
                    predicates.push(pushed);
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if predicates.len() < scans {
        return None;
    }
    predicates.into_iter().reduce(Expr::or)
}

/// The event tables a plan scans (window tables count as their table).
fn scanned_tables(plan: &LogicalPlan) -> Vec<TableKind> {
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan.table_name.table();
            let base = name.strip_suffix("_window").unwrap_or(name);
            if let Some(k) = TableKind::from_name(base)
                && !out.contains(&k)
            {
                out.push(k);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Whether `sql` names `table` as a whole word.
fn mentions(sql: &str, table: &str) -> bool {
    sql.match_indices(table).any(|(i, _)| {
        let before = sql[..i].chars().next_back();
        let after = sql[i + table.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

fn max_ts(batch: &RecordBatch) -> Option<DateTime<Utc>> {
    let ts = batch
        .column_by_name("ts")?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    datafusion::arrow::compute::max(ts).and_then(DateTime::from_timestamp_micros)
}

fn sort_by_ts(batch: &RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let indices = sort_to_indices(batch.column(1), None, None)?;
    take_record_batch(batch, &indices)
}

/// Drops retained rows older than `cutoff` (microseconds), and merges small batches so the
/// window does not fragment into thousands of tiny ones.
fn trim_window(
    slot: &mut Vec<RecordBatch>,
    cutoff: i64,
) -> Result<(), datafusion::arrow::error::ArrowError> {
    let mut kept = Vec::with_capacity(slot.len());
    for b in slot.drain(..) {
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let min = datafusion::arrow::compute::min(ts).unwrap_or(i64::MIN);
        let max = datafusion::arrow::compute::max(ts).unwrap_or(i64::MIN);
        if max < cutoff {
            continue;
        }
        if min >= cutoff {
            kept.push(b);
            continue;
        }
        let mask: BooleanArray = ts
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= cutoff)))
            .collect();
        kept.push(filter_record_batch(&b, &mask)?);
    }
    if kept.len() > 64 {
        let schema = kept[0].schema();
        kept = vec![concat_batches(&schema, &kept)?];
    }
    *slot = kept;
    Ok(())
}

/// Whether a match is allowed by one of the rule's exception lists.
fn is_excepted(exceptions: &[Exception], m: &Match) -> bool {
    exceptions.iter().any(|e| match m.columns.get(&e.column) {
        Some(serde_json::Value::Array(items)) => {
            !items.is_empty()
                && items.iter().all(|v| {
                    v.as_str()
                        .is_some_and(|s| e.values.iter().any(|p| value_matches(s, p)))
                })
        }
        Some(serde_json::Value::Null) | None => false,
        Some(serde_json::Value::String(s)) => e.values.iter().any(|p| value_matches(s, p)),
        Some(other) => e
            .values
            .iter()
            .any(|p| value_matches(&other.to_string(), p)),
    })
}

fn value_matches(value: &str, pattern: &str) -> bool {
    crate::patterns::matches(value, pattern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn findings_of(engine: &mut RuleEngine, batches: &[RecordBatch]) -> Vec<String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for b in batches {
            let outcome = engine.process(TableKind::Audit, b);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            for f in outcome.findings {
                let text = serde_json::to_string(&f).expect("serializes");
                out.insert(f.id.clone(), text);
            }
        }
        out.into_values().collect()
    }

    fn builtin_pack() -> RulePack {
        let catalog = audithound_models::Catalog::embedded();
        let (pack, errors) = RulePack::assemble(&crate::rules::builtin_sources(), &catalog);
        assert!(errors.is_empty(), "{errors:?}");
        pack
    }

    fn attack_fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/attack/intrusion.log"
        ))
        .expect("the attack fixture")
    }

    #[test]
    fn prescreening_changes_no_finding_of_the_builtin_pack() {
        let pack = builtin_pack();
        let config = RuleConfig::default();
        let bytes = attack_fixture();
        let options = audithound_ingest::reader::ReadOptions::default();
        let (decoded, _, _) = audithound_ingest::reader::decode_audit_bytes(&bytes, &options);
        // Micro-batches of the size the sidecar closes at low traffic.
        let batches: Vec<RecordBatch> = decoded
            .iter()
            .flat_map(|b| {
                (0..b.num_rows())
                    .step_by(256)
                    .map(|start| b.slice(start, 256.min(b.num_rows() - start)))
            })
            .collect();
        assert!(batches.len() > 3, "several batches");

        let (mut screened, errors) = RuleEngine::new(&pack, &config).expect("engine");
        assert!(errors.is_empty(), "{errors:?}");
        let with_screens = screened
            .rules
            .iter()
            .filter(|r| r.prescreen.is_some())
            .count();
        assert!(
            with_screens * 2 > screened.rules.len(),
            "most rules are screened ({with_screens} of {})",
            screened.rules.len()
        );
        let windowed: Vec<String> = screened
            .rules
            .iter()
            .filter(|r| r.window.is_some() && r.prescreen.is_some())
            .map(|r| format!("\"rule_id\":\"{}\"", r.identity.rule_id))
            .collect();
        assert!(!windowed.is_empty(), "windowed rules are screened too");
        let (mut plain, _) = RuleEngine::new(&pack, &config).expect("engine");
        for r in &mut plain.rules {
            r.prescreen = None;
        }
        let a = findings_of(&mut screened, &batches);
        let b = findings_of(&mut plain, &batches);
        assert!(
            a.len() >= 10,
            "the attack fixture yields findings: {}",
            a.len()
        );
        assert!(
            a.iter()
                .any(|f| windowed.iter().any(|w| f.contains(w.as_str()))),
            "a screened windowed rule finds something in the fixture"
        );
        assert_eq!(a, b);

        // Costs: one per rule, the most expensive first; screening skips batches.
        let costs = screened.rule_costs();
        assert_eq!(costs.len(), screened.rules.len());
        assert!(costs.windows(2).all(|w| w[0].time >= w[1].time));
        let runs =
            |engine: &RuleEngine| -> u64 { engine.rule_costs().iter().map(|c| c.runs).sum() };
        assert!(runs(&screened) > 0);
        assert!(
            runs(&screened) < runs(&plain),
            "screened rules skip batches: {} runs against {}",
            runs(&screened),
            runs(&plain)
        );
    }

    /// The findings of the built-in pack over the attack fixture, read in chunks of 200
    /// events, with the decoder's screen or without.
    fn findings_read_with(screen: bool) -> (Vec<String>, audithound_ingest::ReadStats) {
        let fixture = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/attack/intrusion.log"
        ));
        findings_of_file(&fixture, screen)
    }

    /// The findings of the built-in pack over the audit log `path`, read in chunks of 200
    /// events, with the decoder's screen or without.
    fn findings_of_file(
        path: &std::path::Path,
        screen: bool,
    ) -> (Vec<String>, audithound_ingest::ReadStats) {
        use audithound_ingest::audit::ScreenHandle;
        use audithound_ingest::input::InputSource;
        use audithound_ingest::reader::{DecodedBatch, ReadOptions, read_audit_inputs};

        let (mut engine, errors) =
            RuleEngine::new(&builtin_pack(), &RuleConfig::default()).expect("engine");
        assert!(errors.is_empty(), "{errors:?}");
        let mut options = ReadOptions {
            batch_rows: 200,
            ..ReadOptions::default()
        };
        if screen {
            let handle = ScreenHandle::new();
            let judge = engine.decode_screen();
            assert!(judge.is_some(), "every built-in audit rule has a screen");
            handle.set(judge);
            options.decode.screen = Some(handle);
        }
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        let input = InputSource::File(path.to_path_buf());
        let stats = read_audit_inputs(&[input], &options, &|_| {}, |item| {
            match item {
                DecodedBatch::Batch(table, batch) => {
                    let outcome = engine.process(table, &batch);
                    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
                    for f in outcome.findings {
                        found.insert(f.id.clone(), serde_json::to_string(&f).expect("json"));
                    }
                }
                DecodedBatch::ScreenedOut { latest_ts, .. } => {
                    engine.advance_time(DateTime::from_timestamp_micros(latest_ts).expect("time"))
                }
                DecodedBatch::Bad(b) => panic!("the fixture decodes: {b:?}"),
            }
            Ok::<_, ()>(())
        })
        .expect("reads");
        (found.into_values().collect(), stats)
    }

    #[test]
    fn leaving_out_events_no_rule_could_read_changes_no_finding() {
        let (screened, with) = findings_read_with(true);
        let (all, without) = findings_read_with(false);
        assert!(screened.len() >= 10, "findings: {}", screened.len());
        assert_eq!(screened, all);
        assert_eq!(with.events, without.events);
        assert_eq!(without.screened_out, 0);
        assert!(
            with.screened_out * 2 > with.events,
            "most routine events reach no rule: {} of {} left out",
            with.screened_out,
            with.events
        );
    }

    #[test]
    fn health_probes_and_metrics_scraping_are_left_out_while_decoding_by_their_uri() {
        // Anonymous health probes and metrics scraped through the kubelet proxy pass every
        // condition of their rules but the one on the request URI; the screen judges that
        // one too, so they never become rows, while the requests the rules are for still do.
        let event = |i: usize, user: &str, verb: &str, uri: &str, object_ref: &str| {
            let group = if user == "system:anonymous" {
                "system:unauthenticated"
            } else {
                "system:authenticated"
            };
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"e{i}","stage":"ResponseComplete","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}","groups":["{group}"]}},"sourceIPs":["10.0.{}.{}"],"userAgent":"probe/1.0",{object_ref}"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-01T10:{:02}:{:02}.000000Z","stageTimestamp":"2024-05-01T10:{:02}:{:02}.000000Z"}}"#,
                i % 3,
                i % 7,
                i / 60 % 60,
                i % 60,
                i / 60 % 60,
                i % 60
            )
        };
        let mut log = String::new();
        let routine = 600;
        for i in 0..routine {
            let line = if i % 4 == 0 {
                let node = format!("node-{}", i % 5);
                event(
                    i,
                    "system:serviceaccount:monitoring:prometheus",
                    "get",
                    &format!("/api/v1/nodes/{node}/proxy/metrics/cadvisor"),
                    &format!(
                        r#""objectRef":{{"resource":"nodes","name":"{node}","subresource":"proxy","apiVersion":"v1"}},"#
                    ),
                )
            } else {
                let path = ["/healthz", "/readyz?verbose", "/livez"][i % 3];
                event(i, "system:anonymous", "get", path, "")
            };
            log.push_str(&line);
            log.push('\n');
        }
        for (i, line) in [
            event(
                routine,
                "system:anonymous",
                "list",
                "/api/v1/secrets",
                r#""objectRef":{"resource":"secrets","apiVersion":"v1"},"#,
            ),
            event(
                routine + 1,
                "mallory",
                "create",
                "/api/v1/nodes/node-1/proxy/run/kube-system/etcd-node-1/etcd",
                r#""objectRef":{"resource":"nodes","name":"node-1","subresource":"proxy","apiVersion":"v1"},"#,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            // The two requests the rules are for come among the routine ones.
            let at = log.len() / (3 - i);
            let at = log[..at].rfind('\n').map_or(0, |n| n + 1);
            log.insert_str(at, &format!("{line}\n"));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("probes.log");
        std::fs::write(&path, log).expect("write");

        let (screened, with) = findings_of_file(&path, true);
        let (all, without) = findings_of_file(&path, false);
        assert_eq!(screened, all);
        assert_eq!(with.events, routine as u64 + 2);
        assert_eq!(without.screened_out, 0);
        assert_eq!(
            with.screened_out, routine as u64,
            "every probe and every scrape is left out, and nothing else"
        );
        let rules: Vec<String> = screened
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).expect("json");
                v["rule_id"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        assert!(
            rules.iter().any(|r| r == "anonymous-request-allowed"),
            "{rules:?}"
        );
        assert!(rules.iter().any(|r| r == "kubelet-proxy"), "{rules:?}");
    }

    #[test]
    fn a_deferred_engine_plans_only_the_rules_that_get_rows() {
        let pack = builtin_pack();
        let (mut engine, errors) =
            RuleEngine::new_deferred(&pack, &RuleConfig::default()).expect("engine");
        assert!(errors.is_empty(), "{errors:?}");
        let planned = |e: &RuleEngine| e.rules.iter().filter(|r| r.plan.get().is_some()).count();
        assert_eq!(planned(&engine), 0, "nothing is planned before rows arrive");
        let bytes = attack_fixture();
        let options = audithound_ingest::reader::ReadOptions::default();
        let (decoded, _, _) = audithound_ingest::reader::decode_audit_bytes(&bytes, &options);
        let deferred = findings_of(&mut engine, &decoded);
        let ran = engine.rule_costs().iter().filter(|c| c.runs > 0).count();
        assert_eq!(
            planned(&engine),
            ran,
            "the rules that ran, and only they, were planned"
        );
        assert!(
            ran < engine.rule_count(),
            "{ran} of {}",
            engine.rule_count()
        );
        let (mut eager, _) = RuleEngine::new(&pack, &RuleConfig::default()).expect("engine");
        assert_eq!(planned(&eager), eager.rule_count());
        assert_eq!(deferred, findings_of(&mut eager, &decoded));
    }

    #[test]
    fn every_column_the_rules_are_screened_on_is_one_the_decoder_reads() {
        let columns = ScreenedColumns::of(TableKind::Audit);
        let schema = TableKind::Audit.schema();
        for i in columns.keys.iter().chain(&columns.values) {
            let name = schema.field(*i).name();
            assert!(
                audithound_ingest::audit::screen::decoder_reads(name),
                "the decoder cannot screen on `{name}`"
            );
        }
    }

    #[test]
    fn decoding_only_the_columns_the_pack_names_changes_no_finding() {
        let pack = builtin_pack();
        let config = RuleConfig::default();
        let named = crate::reads::pack_columns(&pack, &config, TableKind::Audit)
            .expect("the built-in pack names the columns it reads");
        let schema = TableKind::Audit.schema();
        assert!(
            named.len() < schema.fields().len(),
            "some columns are left out: {named:?}"
        );
        assert!(
            !named.contains("reason") && named.contains("verb"),
            "{named:?}"
        );

        let (mut narrow, errors) = RuleEngine::new(&pack, &config).expect("engine");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(narrow.column_missing_from(TableKind::Audit, &named), None);
        let mut without_verb = named.clone();
        without_verb.remove("verb");
        assert!(
            narrow
                .column_missing_from(TableKind::Audit, &without_verb)
                .is_some_and(|(_, column)| column == "verb")
        );

        let bytes = attack_fixture();
        let decode = |columns: Option<BTreeSet<String>>| {
            let mut options = audithound_ingest::reader::ReadOptions::default();
            options.decode.audit_columns = columns;
            audithound_ingest::reader::decode_audit_bytes(&bytes, &options).0
        };
        let narrow_batches = decode(Some(named));
        let reason = narrow_batches[0]
            .column_by_name("reason")
            .expect("the schema keeps every column");
        assert_eq!(
            reason.null_count(),
            reason.len(),
            "unread columns stay null"
        );
        let (mut full, _) = RuleEngine::new(&pack, &config).expect("engine");
        let a = findings_of(&mut narrow, &narrow_batches);
        let b = findings_of(&mut full, &decode(None));
        assert!(a.len() >= 10, "the fixture yields findings: {}", a.len());
        assert_eq!(a, b);
    }

    #[test]
    fn exception_patterns_match_exactly_or_by_prefix_and_lists_need_every_element() {
        let e = vec![Exception {
            column: "images".into(),
            values: vec!["registry.corp/*".into(), "pause".into()],
        }];
        let mk = |v: serde_json::Value| Match {
            columns: [("images".to_string(), v)].into_iter().collect(),
            first_seen: DateTime::from_timestamp(0, 0).unwrap(),
            last_seen: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert!(is_excepted(
            &e,
            &mk(serde_json::json!(["registry.corp/app:1", "pause"]))
        ));
        assert!(!is_excepted(
            &e,
            &mk(serde_json::json!(["registry.corp/app:1", "evil/miner"]))
        ));
        assert!(!is_excepted(&e, &mk(serde_json::json!([]))));
        assert!(is_excepted(&e, &mk(serde_json::json!("pause"))));
    }
}
