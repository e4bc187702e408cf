//! Forensic SQL: a user's query over the capture store or over raw log files, with limits.
//!
//! The query runs with DDL, DML and other statements refused, no URL tables, a memory limit
//! (no spilling) and a time limit. Over the capture store, `audit` is a listing table of the
//! Parquet parts with `date` and `hour` partition columns; a time predicate on `ts` is turned into
//! predicates on `date`, so only the partitions of the requested days are read.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use audithound_models::TableKind;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, col, lit};
use datafusion::physical_plan::collect;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use crate::udf;

/// Limits of a forensic query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Memory the query may use.
    pub memory_bytes: usize,
    /// Wall-clock time it may take.
    pub timeout: Duration,
    /// Rows returned at most (more are cut, and the result says so).
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 2 << 30,
            timeout: Duration::from_secs(300),
            max_rows: 100_000,
        }
    }
}

/// Why a forensic query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is invalid, refers to unknown columns, or is not a read-only query.
    #[error("{0}")]
    Sql(String),
    /// The query took longer than its limit.
    #[error(
        "the query did not finish within {0:?}; narrow it (a time range on `ts` prunes partitions)"
    )]
    Timeout(Duration),
    /// The capture store cannot be read.
    #[error("cannot read the capture store at `{path}`: {message}")]
    Store {
        /// The directory.
        path: String,
        /// Why.
        message: String,
    },
}

/// Result rows of a query.
#[derive(Debug)]
pub struct QueryResult {
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Whether rows beyond the limit were cut.
    pub truncated: bool,
}

/// A DataFusion session for user SQL.
pub struct ForensicSession {
    ctx: SessionContext,
    limits: QueryLimits,
}

impl ForensicSession {
    /// A session with the limits, the audithound functions and no tables yet.
    pub fn new(limits: QueryLimits) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let mut config = SessionConfig::new().with_information_schema(false);
        config.options_mut().sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        udf::register_all(&ctx);
        Ok(ForensicSession { ctx, limits })
    }

    /// Registers the capture store's tables (`audit`, `dns`, `flow`: Parquet parts under
    /// `<root>/<table>`).
    pub fn register_capture(&self, root: &Path) -> Result<(), QueryError> {
        for table in TableKind::ALL {
            self.register_capture_table(root, table)?;
        }
        Ok(())
    }

    fn register_capture_table(&self, root: &Path, kind: TableKind) -> Result<(), QueryError> {
        let dir = root.join(kind.name());
        let store_err = |m: String| QueryError::Store {
            path: dir.display().to_string(),
            message: m,
        };
        std::fs::create_dir_all(&dir).map_err(|e| store_err(e.to_string()))?;
        let abs = std::fs::canonicalize(&dir).map_err(|e| store_err(e.to_string()))?;
        let url = ListingTableUrl::parse(format!("{}/", abs.display()))
            .map_err(|e| store_err(e.to_string()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![
                ("date".to_string(), DataType::Utf8),
                ("hour".to_string(), DataType::Utf8),
            ]);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(kind.schema());
        let table = ListingTable::try_new(config).map_err(|e| store_err(e.to_string()))?;
        self.ctx
            .register_table(kind.name(), Arc::new(table))
            .map_err(|e| store_err(e.to_string()))?;
        Ok(())
    }

    /// Registers decoded batches as one table.
    pub fn register_batches(
        &self,
        kind: TableKind,
        batches: Vec<RecordBatch>,
    ) -> Result<(), QueryError> {
        let table = MemTable::try_new(kind.schema(), vec![batches])
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        self.ctx
            .register_table(kind.name(), Arc::new(table))
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        Ok(())
    }

    /// Runs one read-only query.
    pub async fn run(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let sql_err = |e: datafusion::error::DataFusionError| QueryError::Sql(e.to_string());
        let work = async {
            let df = self
                .ctx
                .sql_with_options(sql, options)
                .await
                .map_err(sql_err)?;
            let state = self.ctx.state();
            let plan = state.optimize(df.logical_plan()).map_err(sql_err)?;
            let plan = prune_partitions_by_time(plan).map_err(sql_err)?;
            let physical = state.create_physical_plan(&plan).await.map_err(sql_err)?;
            collect(physical, self.ctx.task_ctx())
                .await
                .map_err(sql_err)
        };
        let batches = tokio::time::timeout(self.limits.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout(self.limits.timeout))??;
        let mut rows = 0usize;
        let mut out = Vec::new();
        let mut truncated = false;
        for b in batches {
            if rows + b.num_rows() > self.limits.max_rows {
                out.push(b.slice(0, self.limits.max_rows - rows));
                truncated = true;
                break;
            }
            rows += b.num_rows();
            out.push(b);
        }
        Ok(QueryResult {
            batches: out,
            truncated,
        })
    }
}

/// Adds `date` bounds to every scan of `audit` that filters `ts` with constant bounds.
fn prune_partitions_by_time(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::TableScan(mut scan) = node else {
            return Ok(Transformed::no(node));
        };
        if TableKind::from_name(scan.table_name.table()).is_none() || scan.filters.is_empty() {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        let (mut lo, mut hi) = (None::<i64>, None::<i64>);
        for f in &scan.filters {
            for conjunct in split_and(f) {
                if let Some((op, micros)) = ts_bound(conjunct) {
                    match op {
                        Operator::Gt | Operator::GtEq => {
                            lo = Some(lo.map_or(micros, |l| l.max(micros)))
                        }
                        Operator::Lt | Operator::LtEq => {
                            hi = Some(hi.map_or(micros, |h| h.min(micros)))
                        }
                        Operator::Eq => {
                            lo = Some(micros);
                            hi = Some(micros);
                        }
                        _ => {}
                    }
                }
            }
        }
        let day = |m: i64| {
            chrono::DateTime::from_timestamp_micros(m).map(|t| t.format("%Y-%m-%d").to_string())
        };
        let mut added = false;
        if let Some(d) = lo.and_then(day) {
            scan.filters.push(col("date").gt_eq(lit(d)));
            added = true;
        }
        if let Some(d) = hi.and_then(day) {
            scan.filters.push(col("date").lt_eq(lit(d)));
            added = true;
        }
        Ok(if added {
            Transformed::yes(LogicalPlan::TableScan(scan))
        } else {
            Transformed::no(LogicalPlan::TableScan(scan))
        })
    })
    .map(|t| t.data)
}

fn split_and(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = split_and(left);
            v.extend(split_and(right));
            v
        }
        other => vec![other],
    }
}

/// `ts <op> <timestamp literal>` (or the mirror) as (operator as if ts is on the left, micros).
fn ts_bound(e: &Expr) -> Option<(Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let is_ts = |x: &Expr| matches!(x, Expr::Column(c) if c.name == "ts");
    let micros = |x: &Expr| match x {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampMicrosecond(Some(m), _) => Some(*m),
            ScalarValue::TimestampNanosecond(Some(n), _) => Some(n / 1000),
            ScalarValue::TimestampMillisecond(Some(m), _) => Some(m * 1000),
            ScalarValue::TimestampSecond(Some(s), _) => Some(s * 1_000_000),
            _ => None,
        },
        _ => None,
    };
    if is_ts(left) {
        return micros(right).map(|m| (*op, m));
    }
    if is_ts(right) {
        let mirrored = match op {
            Operator::Gt => Operator::Lt,
            Operator::GtEq => Operator::LtEq,
            Operator::Lt => Operator::Gt,
            Operator::LtEq => Operator::GtEq,
            other => *other,
        };
        return micros(left).map(|m| (mirrored, m));
    }
    None
}
