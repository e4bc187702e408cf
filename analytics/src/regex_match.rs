//! Regular-expression matches against a constant pattern, compiled once when a rule is planned.
//!
//! DataFusion turns `regexp_like(x, 'pattern')` into `x ~ 'pattern'` and evaluates that by
//! compiling the pattern again for every batch. A rule's pattern (the list of offensive tools'
//! user agents, say) takes about as long to compile as matching it against a whole batch, so a
//! rule engine that runs every rule on every micro-batch paid it again and again. After a rule's
//! plan is optimized, each such match with a literal pattern is replaced by a function that holds
//! the compiled expression; the result is the same, row for row (see the tests).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

/// `plan` with every regular-expression match against a literal pattern (`~`, `~*`, `!~`,
/// `!~*`, and `regexp_like`, which the optimizer turns into those) evaluated by a pattern compiled
/// once. Output column names stay as they were. A pattern that does not compile is left alone,
/// so that running the rule reports it as before.
pub fn precompile_regex_matches(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let name = names.save(&expr);
            Ok(expr
                .transform_up(compile_match)?
                .update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

fn compile_match(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let (case_insensitive, negated) = match op {
        Operator::RegexMatch => (false, false),
        Operator::RegexIMatch => (true, false),
        Operator::RegexNotMatch => (false, true),
        Operator::RegexNotIMatch => (true, true),
        _ => return Ok(Transformed::no(expr)),
    };
    let Expr::Literal(literal, _) = right.as_ref() else {
        return Ok(Transformed::no(expr));
    };
    let Some(Some(pattern)) = literal.try_as_str() else {
        return Ok(Transformed::no(expr));
    };
    // The same pattern text as DataFusion's kernel compiles.
    let pattern = if case_insensitive {
        format!("(?i){pattern}")
    } else {
        pattern.to_string()
    };
    let Ok(regex) = Regex::new(&pattern) else {
        return Ok(Transformed::no(expr));
    };
    let udf = ScalarUDF::new_from_impl(CompiledRegexMatch {
        pattern,
        negated,
        regex,
        signature: Signature::string(1, Volatility::Immutable),
    });
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(Arc::new(udf), vec![left.as_ref().clone()]),
    )))
}

/// Whether a string matches (or, negated, does not match) one compiled pattern; NULL for NULL.
#[derive(Debug)]
struct CompiledRegexMatch {
    /// The pattern as compiled (a case-insensitive match carries its `(?i)` prefix).
    pattern: String,
    negated: bool,
    regex: Regex,
    signature: Signature,
}

impl PartialEq for CompiledRegexMatch {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.negated == other.negated
    }
}

impl Eq for CompiledRegexMatch {}

impl Hash for CompiledRegexMatch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pattern.hash(state);
        self.negated.hash(state);
    }
}

impl ScalarUDFImpl for CompiledRegexMatch {
    fn name(&self) -> &str {
        if self.negated {
            "not_regexp_like_compiled"
        } else {
            "regexp_like_compiled"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let matches = |text: &str| self.regex.is_match(text) != self.negated;
        let array = match value {
            ColumnarValue::Scalar(scalar) => {
                let Some(text) = scalar.try_as_str() else {
                    return exec_err!("{} expects text, got {}", self.name(), scalar.data_type());
                };
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(
                    text.map(matches),
                )));
            }
            ColumnarValue::Array(array) => array,
        };
        let len = array.len();
        let values = match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                BooleanBuffer::collect_bool(len, |i| matches(a.value(i)))
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                BooleanBuffer::collect_bool(len, |i| matches(a.value(i)))
            }
            DataType::Utf8View => {
                let a = array.as_string_view();
                BooleanBuffer::collect_bool(len, |i| matches(a.value(i)))
            }
            other => return exec_err!("{} expects text, got {other}", self.name()),
        };
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            values,
            array.nulls().cloned(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    /// Runs `sql` over a one-column table, with and without compiled patterns.
    async fn both_ways(sql: &str) -> (Vec<RecordBatch>, Vec<RecordBatch>, String) {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("ua", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec![
                Some("kubectl/v1.29.2"),
                Some("Kubectl/1.0"),
                None,
                Some("curl/8.5.0"),
                Some("Go-http-client/2.0"),
                Some(""),
            ]))],
        )
        .expect("batch");
        ctx.register_batch("t", batch).expect("table");
        let optimized = ctx
            .sql(sql)
            .await
            .expect("plans")
            .into_optimized_plan()
            .expect("optimizes");
        let compiled = precompile_regex_matches(optimized.clone()).expect("rewrites");
        let shown = compiled.display_indent().to_string();
        let run = |plan: LogicalPlan| {
            let ctx = ctx.clone();
            async move {
                let state = ctx.state();
                let physical = state.create_physical_plan(&plan).await.expect("physical");
                datafusion::physical_plan::collect(physical, state.task_ctx())
                    .await
                    .expect("runs")
            }
        };
        (run(optimized).await, run(compiled).await, shown)
    }

    #[tokio::test]
    async fn compiled_patterns_give_the_same_rows_and_names() {
        // Patterns that are plain text the optimizer turns into LIKE; these stay regexes.
        for (sql, compiled_here) in [
            (
                "SELECT ua, regexp_like(ua, '^(kube|cu)[a-z]+/') AS m FROM t",
                true,
            ),
            (
                "SELECT ua FROM t WHERE regexp_like(ua, 'k[a-z]bectl', 'i')",
                true,
            ),
            ("SELECT ua ~ 'go-http-[a-z]+' FROM t", true),
            (
                "SELECT ua ~* 'GO-[a-z]+', ua !~ '^k[a-z]', ua !~* '^[kc]' FROM t",
                true,
            ),
            (
                "SELECT ua FROM t WHERE NOT regexp_like(coalesce(ua, ''), '^(curl|kubectl)/[0-9]')",
                true,
            ),
            ("SELECT ua FROM t WHERE regexp_like(ua, 'curl')", false),
            ("SELECT ua FROM t WHERE regexp_like(ua, '')", false),
        ] {
            let (plain, compiled, shown) = both_ways(sql).await;
            assert_eq!(
                shown.contains("regexp_like_compiled"),
                compiled_here,
                "{sql}: {shown}"
            );
            assert_eq!(
                plain[0].schema().fields(),
                compiled[0].schema().fields(),
                "{sql}: column names are kept"
            );
            assert_eq!(plain, compiled, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_pattern_that_does_not_compile_is_left_to_fail_as_before() {
        let ctx = SessionContext::new();
        let plan = ctx
            .sql("SELECT 'a' ~ '(' AS m")
            .await
            .expect("plans")
            .into_unoptimized_plan();
        let kept = precompile_regex_matches(plan).expect("rewrites");
        assert!(!kept.display_indent().to_string().contains("compiled"));
    }
}
