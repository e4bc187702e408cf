//! Rule queries planned as the engine plans them, for the unit tests of the modules that read
//! plans (the row screens).

use audithound_models::TableKind;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

/// The optimized plan of `sql` over an empty `audit` table, with every audithound function
/// registered, and the context that planned it.
pub fn audit_plan(sql: &str) -> (SessionContext, LogicalPlan) {
    let ctx = SessionContext::new();
    crate::udf::register_all(&ctx);
    ctx.register_batch("audit", RecordBatch::new_empty(TableKind::Audit.schema()))
        .expect("the audit table registers");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let plan = runtime.block_on(async {
        ctx.sql(sql)
            .await
            .expect("the query plans")
            .into_optimized_plan()
            .expect("the plan optimizes")
    });
    (ctx, plan)
}
