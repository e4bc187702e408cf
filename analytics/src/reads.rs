//! Which columns the rules may read, known before any query is planned.
//!
//! A decoder that leaves the other columns null copies less (the authorization reason and the
//! annotations are a third of an audit event's text, and no built-in rule reads them), and the
//! rules see exactly the values they would otherwise. The answer comes from the words of each
//! query: a column is read only if its name appears as a word, so the set is a superset of what
//! the plans read. Only `*` (other than `count(*)`) and `NATURAL` joins read columns without
//! naming them; a query with either reads every column.

use std::collections::{BTreeMap, BTreeSet};

use audithound_models::TableKind;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::engine::{RuleConfig, rule_sql};
use crate::rules::RulePack;

/// The names among `columns` that `sql` may read, or `None` when it may read all of them (or
/// does not tokenize; planning will then report the error).
pub fn columns_named<'c>(sql: &str, columns: &[&'c str]) -> Option<BTreeSet<&'c str>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let tokens: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut named = BTreeSet::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Mul => {
                let counted = i > 0
                    && matches!(tokens[i - 1], Token::LParen)
                    && matches!(tokens.get(i + 1), Some(Token::RParen));
                if !counted {
                    return None;
                }
            }
            Token::Word(w) if w.keyword == Keyword::NATURAL => return None,
            Token::Word(w) => {
                // Unquoted identifiers fold to lower case; comparing without case keeps a
                // quoted `"Verb"` (a different column, which does not exist) on the safe side.
                if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(&w.value)) {
                    named.insert(*c);
                }
            }
            _ => {}
        }
    }
    Some(named)
}

/// The columns of `table` that `sql` may read, or `None` when it may read all of them.
pub fn table_columns_named(sql: &str, table: TableKind) -> Option<BTreeSet<String>> {
    let schema = table.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let named = columns_named(sql, &columns)?;
    Some(named.into_iter().map(str::to_string).collect())
}

/// The columns of `table` that the rules of `pack` that run under `config` may read, or `None`
/// when one of them may read every column. A rule whose parameters do not resolve counts as
/// reading everything (it will not compile, and says why then).
pub fn pack_columns(
    pack: &RulePack,
    config: &RuleConfig,
    table: TableKind,
) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for rule in pack.rules() {
        if !rule.spec.enabled || config.disabled.iter().any(|d| d == &rule.spec.id) {
            continue;
        }
        let sql = rule_sql(rule, config, &BTreeMap::new()).ok()?;
        all.extend(table_columns_named(&sql, table)?);
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["verb", "user_name", "reason", "annotations", "ts"];

    fn named(sql: &str) -> Option<Vec<&'static str>> {
        columns_named(sql, COLUMNS).map(|s| s.into_iter().collect())
    }

    #[test]
    fn named_columns_are_read_and_others_are_not() {
        assert_eq!(
            named("SELECT ts, user_name FROM audit WHERE verb = 'create'"),
            Some(vec!["ts", "user_name", "verb"])
        );
    }

    #[test]
    fn words_inside_string_literals_and_comments_are_not_columns() {
        assert_eq!(
            named("SELECT ts FROM audit WHERE verb = 'reason' -- annotations\n"),
            Some(vec!["ts", "verb"])
        );
    }

    #[test]
    fn case_quotes_and_qualifiers_do_not_hide_a_column() {
        assert_eq!(
            named(r#"SELECT a.TS, "user_name" FROM audit a WHERE a.Reason IS NOT NULL"#),
            Some(vec!["reason", "ts", "user_name"])
        );
    }

    #[test]
    fn count_star_reads_no_column_but_a_star_reads_all() {
        assert_eq!(
            named("SELECT max(ts) AS ts, count( * ) AS n FROM audit"),
            Some(vec!["ts"])
        );
        assert_eq!(named("SELECT * FROM audit"), None);
        assert_eq!(named("SELECT a.* FROM audit a"), None);
        assert_eq!(named("SELECT ts * 2 FROM audit"), None);
        assert_eq!(
            named("SELECT a.ts FROM audit a NATURAL JOIN audit_window b"),
            None
        );
    }

    fn pack_with(user_rules: &[(&str, &str)]) -> RulePack {
        let mut sources = crate::rules::builtin_sources();
        for (id, sql) in user_rules {
            sources.push(crate::rules::RuleSource {
                origin: format!("{id}.yaml"),
                text: format!(
                    "id: {id}\ntitle: t\nseverity: low\ntechniques: [T1609]\nsql: |\n  {sql}\n"
                ),
                base_dir: None,
            });
        }
        let (pack, errors) = RulePack::assemble(&sources, &audithound_models::Catalog::embedded());
        assert!(errors.is_empty(), "{errors:?}");
        pack
    }

    #[test]
    fn a_pack_reads_what_any_running_rule_names_and_everything_if_one_reads_all() {
        let config = RuleConfig::default();
        let builtin = pack_columns(&pack_with(&[]), &config, TableKind::Audit).expect("named");
        assert!(!builtin.contains("reason"), "{builtin:?}");

        let naming = pack_with(&[("site-reason", "SELECT ts, reason FROM audit")]);
        let with_reason = pack_columns(&naming, &config, TableKind::Audit).expect("named");
        assert!(with_reason.contains("reason") && with_reason.is_superset(&builtin));

        let star = pack_with(&[("site-star", "SELECT * FROM audit")]);
        assert_eq!(pack_columns(&star, &config, TableKind::Audit), None);
        // A rule that does not run reads nothing.
        let disabled = RuleConfig {
            disabled: vec!["site-star".into()],
            ..RuleConfig::default()
        };
        assert_eq!(
            pack_columns(&star, &disabled, TableKind::Audit),
            Some(builtin)
        );
    }

    #[test]
    fn sql_that_does_not_tokenize_reads_everything() {
        assert_eq!(named("SELECT 'unterminated FROM audit"), None);
    }
}
