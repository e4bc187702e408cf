//! Rule parameters: lists that a rule's SQL names as `${name}` and a config may override.
//!
//! `${name}` becomes a comma-separated list of SQL string literals, ready for `IN (${name})` or
//! a variadic function such as `ip_in_cidrs(source_ip, ${cluster_cidrs})`. An empty list becomes
//! `NULL`, so `x NOT IN (NULL)` and `ip_in_cidrs(ip, NULL)` are never true: a rule whose list is
//! unconfigured stays quiet instead of firing on everything.

use std::collections::BTreeMap;

/// Replaces every `${name}` in `sql` with the literal list of `params[name]`. Returns the names
/// that the SQL uses but `params` lacks, as an error.
pub fn substitute(sql: &str, params: &BTreeMap<String, Vec<String>>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut missing = Vec::new();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${` in SQL".into());
        };
        let name = after[..end].trim();
        match params.get(name) {
            Some(values) => out.push_str(&literal_list(values)),
            None => missing.push(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "unknown parameter(s) {}: declare them under `params:`",
            missing.join(", ")
        ))
    }
}

/// `['a', "b'c"]` → `'a', 'b''c'`; `[]` → `NULL`.
pub fn literal_list(values: &[String]) -> String {
    if values.is_empty() {
        return "NULL".into();
    }
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_quoted_literals_and_empty_lists_null() {
        let mut p = BTreeMap::new();
        p.insert(
            "regs".to_string(),
            vec!["ghcr.io".to_string(), "it's".to_string()],
        );
        p.insert("none".to_string(), vec![]);
        assert_eq!(
            substitute("a IN (${regs}) AND b NOT IN (${none})", &p).unwrap(),
            "a IN ('ghcr.io', 'it''s') AND b NOT IN (NULL)"
        );
    }

    #[test]
    fn unknown_parameters_are_named() {
        let err = substitute("x IN (${nope})", &BTreeMap::new()).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
