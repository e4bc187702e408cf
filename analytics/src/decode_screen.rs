//! The audit rules' pre-screens joined into one, for the decoder: a scan leaves out the events
//! that no rule's screen admits before they become rows (see `audithound_ingest::audit::screen`).
//!
//! Each rule's screen is a condition on the key columns and conditions on sets of value columns
//! ([`Prescreen`]); a row may matter to the rule only if all of them hold. The decoder asks, for
//! each key combination and each value it meets, which rules' conditions hold, and keeps the row
//! if some rule passes on all of its screens. Pre-screens are exact (a row a rule's screen
//! rejects is one its filter rejects), so the rows left out are rows no rule could have read.

use std::collections::HashMap;
use std::sync::Arc;

use audithound_ingest::audit::{RuleBits, ScreenJudge};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::prescreen::{Prescreen, ScreenedColumns, ValueSet};

/// One rule's conditions: on the key columns, and on value sets (by index into `value_sets`).
struct RuleConditions {
    keys: Option<Arc<dyn PhysicalExpr>>,
    values: Vec<(usize, Arc<dyn PhysicalExpr>)>,
}

/// The screens of a table's rules, judged together.
pub struct DecodeScreen {
    key_columns: Vec<String>,
    value_sets: Vec<Vec<String>>,
    rules: Vec<RuleConditions>,
}

impl DecodeScreen {
    /// The joined screen of rules with these screens, over the table with `schema` screened on
    /// `columns`.
    pub fn new(screens: &[&Prescreen], columns: &ScreenedColumns, schema: &SchemaRef) -> Self {
        let name = |i: &usize| schema.field(*i).name().clone();
        let mut sets: Vec<ValueSet> = Vec::new();
        let rules = screens
            .iter()
            .map(|screen| RuleConditions {
                keys: screen.key_condition().cloned(),
                values: screen
                    .value_conditions()
                    .iter()
                    .map(|(set, expr)| {
                        let at = match sets.iter().position(|s| s == set) {
                            Some(at) => at,
                            None => {
                                sets.push(set.clone());
                                sets.len() - 1
                            }
                        };
                        (at, Arc::clone(expr))
                    })
                    .collect(),
            })
            .collect();
        DecodeScreen {
            key_columns: columns.keys.iter().map(name).collect(),
            value_sets: sets
                .iter()
                .map(|set| set.iter().map(|k| name(&columns.values[*k])).collect())
                .collect(),
            rules,
        }
    }

    /// For each row of `batch`, the rules whose conditions (as `conditions` picks them for a
    /// rule; a rule without one passes) hold on it. A condition that cannot be evaluated holds.
    fn judge<'r>(
        &'r self,
        batch: &RecordBatch,
        conditions: impl Fn(&'r RuleConditions) -> Vec<&'r Arc<dyn PhysicalExpr>>,
    ) -> Vec<RuleBits> {
        let rows = batch.num_rows();
        let mut every_rule = vec![0u64; self.rules.len().div_ceil(64)];
        for r in 0..self.rules.len() {
            every_rule[r / 64] |= 1 << (r % 64);
        }
        let mut out = vec![every_rule; rows];
        // Many rules share a condition (made one by `Prescreen::share`): each is judged once.
        let mut judged: HashMap<*const (), Option<BooleanArray>> = HashMap::new();
        for (r, rule) in self.rules.iter().enumerate() {
            for expr in conditions(rule) {
                let pass = judged
                    .entry(Arc::as_ptr(expr) as *const ())
                    .or_insert_with(|| {
                        expr.evaluate(batch)
                            .and_then(|v| v.into_array(rows))
                            .ok()
                            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>().cloned())
                    });
                let Some(pass) = pass else { continue };
                for (row, bits) in out.iter_mut().enumerate() {
                    if !(pass.is_valid(row) && pass.value(row)) {
                        bits[r / 64] &= !(1u64 << (r % 64));
                    }
                }
            }
        }
        out
    }
}

impl ScreenJudge for DecodeScreen {
    fn rules(&self) -> usize {
        self.rules.len()
    }

    fn key_columns(&self) -> &[String] {
        &self.key_columns
    }

    fn value_sets(&self) -> &[Vec<String>] {
        &self.value_sets
    }

    fn judge_keys(&self, keys: &RecordBatch) -> Vec<RuleBits> {
        self.judge(keys, |rule| rule.keys.iter().collect())
    }

    fn rules_of_set(&self, set: usize) -> RuleBits {
        let mut bits = vec![0u64; self.rules.len().div_ceil(64)];
        for (r, rule) in self.rules.iter().enumerate() {
            if rule.values.iter().any(|(s, _)| *s == set) {
                bits[r / 64] |= 1 << (r % 64);
            }
        }
        bits
    }

    fn judge_values(&self, set: usize, values: &RecordBatch) -> Vec<RuleBits> {
        self.judge(values, |rule| {
            rule.values
                .iter()
                .filter(|(s, _)| *s == set)
                .map(|(_, e)| e)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audithound_models::TableKind;
    use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
    use datafusion::arrow::datatypes::Schema;

    fn screen_of(sql: &str) -> Prescreen {
        let (ctx, plan) = crate::test_plans::audit_plan(sql);
        let columns = ScreenedColumns::of(TableKind::Audit);
        Prescreen::for_plan(&ctx.state(), &plan, TableKind::Audit, "audit", &columns)
            .expect("a screen")
    }

    /// A batch of the named columns of the audit table, from one array each.
    fn batch_of(columns: &[(&str, ArrayRef)]) -> RecordBatch {
        let schema = TableKind::Audit.schema();
        let fields: Vec<_> = columns
            .iter()
            .map(|(n, _)| schema.field_with_name(n).expect("column").clone())
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.iter().map(|(_, a)| Arc::clone(a)).collect(),
        )
        .expect("batch")
    }

    #[test]
    fn a_rule_passes_where_all_its_conditions_hold_and_rules_without_one_pass() {
        let writes = screen_of(
            "SELECT ts FROM audit WHERE verb = 'create' AND resource = 'pods' \
             AND NOT is_system_principal(user_name)",
        );
        let failures = screen_of("SELECT ts FROM audit WHERE response_code IN (401, 403)");
        let columns = ScreenedColumns::of(TableKind::Audit);
        let screen = DecodeScreen::new(&[&writes, &failures], &columns, &TableKind::Audit.schema());
        assert_eq!(screen.rules(), 2);
        assert_eq!(screen.value_sets(), &[vec!["user_name".to_string()]]);
        assert_eq!(screen.rules_of_set(0), vec![0b01]);

        // Key combinations: one for each rule, and one for neither.
        let keys: Vec<(&str, ArrayRef)> = screen
            .key_columns()
            .iter()
            .map(|name| {
                let column: ArrayRef = match name.as_str() {
                    "verb" => Arc::new(StringArray::from(vec!["create", "get", "get"])),
                    "resource" => Arc::new(StringArray::from(vec!["pods", "pods", "pods"])),
                    "response_code" => Arc::new(Int32Array::from(vec![201, 403, 200])),
                    other => datafusion::arrow::array::new_null_array(
                        TableKind::Audit
                            .schema()
                            .field_with_name(other)
                            .expect("column")
                            .data_type(),
                        3,
                    ),
                };
                (name.as_str(), column)
            })
            .collect();
        assert_eq!(
            screen.judge_keys(&batch_of(&keys)),
            vec![vec![0b01], vec![0b10], vec![0b00]]
        );
        // The user name: only the first rule has a condition on it, which a missing name
        // passes (an unknown user is no system principal), as it passes the rule's own filter.
        let users = batch_of(&[(
            "user_name",
            Arc::new(StringArray::from(vec![
                Some("alice"),
                Some("system:kube-scheduler"),
                None,
            ])),
        )]);
        assert_eq!(
            screen.judge_values(0, &users),
            vec![vec![0b11], vec![0b10], vec![0b11]]
        );
    }
}
