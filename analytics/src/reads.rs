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

/// The union of `columns_named` over several queries: `None` as soon as one reads everything.
pub fn columns_named_by_all<'s, 'c>(
    queries: impl IntoIterator<Item = &'s str>,
    columns: &[&'c str],
) -> Option<BTreeSet<&'c str>> {
    let mut all = BTreeSet::new();
    for sql in queries {
        all.extend(columns_named(sql, columns)?);
    }
    Some(all)
}

/// The columns of `table` that the rules of `pack` that run under `config` may read, or `None`
/// when one of them may read every column. A rule whose parameters do not resolve counts as
/// reading everything (it will not compile, and says why then).
pub fn pack_columns(
    pack: &RulePack,
    config: &RuleConfig,
    table: TableKind,
) -> Option<BTreeSet<String>> {
    let schema = table.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut queries = Vec::new();
    for rule in pack.rules() {
        if !rule.spec.enabled || config.disabled.iter().any(|d| d == &rule.spec.id) {
            continue;
        }
        queries.push(rule_sql(rule, config, &BTreeMap::new()).ok()?);
    }
    let named = columns_named_by_all(queries.iter().map(String::as_str), &columns)?;
    Some(named.into_iter().map(str::to_string).collect())
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

    #[test]
    fn a_union_is_none_when_any_query_reads_everything() {
        let some =
            columns_named_by_all(["SELECT ts FROM audit", "SELECT verb FROM audit"], COLUMNS);
        assert_eq!(some.map(|s| s.len()), Some(2));
        assert_eq!(
            columns_named_by_all(["SELECT ts FROM audit", "SELECT * FROM audit"], COLUMNS),
            None
        );
    }

    #[test]
    fn sql_that_does_not_tokenize_reads_everything() {
        assert_eq!(named("SELECT 'unterminated FROM audit"), None);
    }
}
