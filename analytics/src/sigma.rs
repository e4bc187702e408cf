//! Sigma import: Sigma rules for Kubernetes audit logs, translated into audithound rules.
//!
//! Only rules whose `logsource` is Kubernetes audit (`product: kubernetes`, `service: audit`) are
//! translated. Field names of the audit Event map to typed columns of the `audit` table, or to JSON
//! extraction from the raw columns (`request_object`, `response_object`, `annotations`, and
//! `unknown_fields` for top-level fields that are not part of the Event, with a warning). Value
//! modifiers (`contains`, `startswith`, `endswith`, `re` with `i`/`m`/`s`, `all`, `cidr`, `exists`,
//! `gt`/`gte`/`lt`/`lte`, `cased`) and conditions (`and`, `or`, `not`, parentheses,
//! `1 of sel*`, `all of them`, ...) become SQL. A construct that cannot be translated
//! (keyword searches, aggregations, `timeframe`, encoding modifiers) is refused with the rule's
//! file, the construct and why. Sigma rules are reproduced as written: a field that no event can
//! carry, or a value that a field can never hold, is a warning, not a silent fix.

use std::collections::BTreeMap;
use std::path::Path;

use audithound_models::{Catalog, RuleSpec, Severity};
use serde_json::Value;

use crate::error::RuleError;

/// A translated Sigma rule and what the translation noticed.
#[derive(Debug, Clone)]
pub struct SigmaTranslation {
    /// The audithound rule.
    pub spec: RuleSpec,
    /// Problems of the Sigma rule itself that the translation kept (fields no event carries,
    /// values a field can never hold).
    pub warnings: Vec<String>,
}

/// Whether a YAML document looks like a Sigma rule (it has `logsource` and `detection`).
pub fn is_sigma(text: &str) -> bool {
    let has = |key: &str| {
        text.lines()
            .any(|l| l.starts_with(key) && l[key.len()..].trim_start().starts_with(':'))
    };
    has("logsource") && has("detection")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    List,
}

struct Target {
    expr: String,
    kind: Kind,
}

/// Translates one Sigma rule. `origin` (its path) names it in errors and gives the rule id.
pub fn translate(
    origin: &str,
    text: &str,
    catalog: &Catalog,
) -> Result<SigmaTranslation, RuleError> {
    let refuse = |construct: &str, why: &str| RuleError::Sigma {
        origin: origin.to_string(),
        construct: construct.to_string(),
        reason: why.to_string(),
    };
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.to_string(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let str_of = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let logsource = doc.get("logsource").cloned().unwrap_or(Value::Null);
    let product = logsource
        .get("product")
        .and_then(Value::as_str)
        .unwrap_or("");
    let service = logsource
        .get("service")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !product.eq_ignore_ascii_case("kubernetes") || !service.eq_ignore_ascii_case("audit") {
        return Err(refuse(
            "logsource",
            &format!(
                "product `{product}`, service `{service}`: only Kubernetes audit rules (product: kubernetes, service: audit) are translated"
            ),
        ));
    }
    let title = str_of("title").ok_or_else(|| refuse("title", "a Sigma rule needs a title"))?;
    let detection = doc
        .get("detection")
        .and_then(Value::as_object)
        .ok_or_else(|| refuse("detection", "missing or not a map"))?;
    if detection.contains_key("timeframe") {
        return Err(refuse(
            "timeframe",
            "time-window correlations are not translated; write a windowed audithound rule",
        ));
    }

    let mut warnings = Vec::new();
    let mut selections: BTreeMap<String, String> = BTreeMap::new();
    for (name, body) in detection {
        if name == "condition" {
            continue;
        }
        let sql = selection_sql(name, body, &mut warnings)
            .map_err(|(construct, why)| refuse(&construct, &why))?;
        selections.insert(name.clone(), sql);
    }
    let conditions: Vec<String> = match detection.get("condition") {
        Some(Value::String(c)) => vec![c.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => return Err(refuse("condition", "missing or not a string")),
    };
    let mut parts = Vec::new();
    for c in &conditions {
        parts.push(
            Condition::new(c, &selections)
                .parse()
                .map_err(|why| refuse(&format!("condition `{c}`"), &why))?,
        );
    }
    let predicate = if parts.len() == 1 {
        parts.remove(0)
    } else {
        format!("({})", parts.join(") OR ("))
    };

    let mut techniques = Vec::new();
    let mut tags = vec!["sigma".to_string()];
    for tag in doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let lower = tag.to_ascii_lowercase();
        match lower.strip_prefix("attack.t") {
            Some(num) if num.starts_with(|c: char| c.is_ascii_digit()) => {
                let id = format!("T{}", num.to_ascii_uppercase());
                catalog
                    .get(&id)
                    .map_err(|e| refuse(&format!("tag `{tag}`"), &e.to_string()))?;
                techniques.push(id);
            }
            _ => tags.push(tag.to_string()),
        }
    }
    let severity = match str_of("level")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("informational") | Some("info") => Severity::Info,
        Some("low") => Severity::Low,
        Some("medium") | None => Severity::Medium,
        Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        Some(other) => return Err(refuse("level", &format!("unknown level `{other}`"))),
    };
    let status = str_of("status").unwrap_or_default();
    let mut metadata = BTreeMap::new();
    for key in [
        "id",
        "author",
        "references",
        "date",
        "modified",
        "status",
        "falsepositives",
        "license",
    ] {
        if let Some(v) = doc.get(key) {
            let name = if key == "id" { "sigma_id" } else { key };
            metadata.insert(name.to_string(), v.clone());
        }
    }
    metadata.insert("translated_from".into(), Value::String("sigma".into()));
    let stem = Path::new(origin)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rule");
    let id = format!(
        "sigma-{}",
        stem.replace(['_', ' ', '.'], "-").to_ascii_lowercase()
    );
    let mut description = str_of("description").unwrap_or_default().trim().to_string();
    if !warnings.is_empty() {
        description.push_str(&format!(
            "\n\nTranslation warnings: {}",
            warnings.join("; ")
        ));
    }
    let sql = format!(
        "SELECT ts, audit_id, cluster, user_name, source_ip, user_agent, verb, resource, subresource, namespace, name\nFROM audit\nWHERE {predicate}\n"
    );
    Ok(SigmaTranslation {
        spec: RuleSpec {
            id,
            title: title.clone(),
            description,
            severity,
            techniques,
            tags,
            enabled: !matches!(status.as_str(), "deprecated" | "unsupported"),
            window: None,
            dedup: None,
            exceptions: Vec::new(),
            params: BTreeMap::new(),
            explanation: Some(format!(
                "Sigma \"{title}\": {{user_name}} {{verb}} {{resource}} {{namespace}}/{{name}} from {{source_ip}}"
            )),
            sql,
            tests: Vec::new(),
            metadata,
        },
        warnings: warnings
            .into_iter()
            .map(|w| format!("{origin}: {w}"))
            .collect(),
    })
}

type Refusal = (String, String);

/// One search identifier: a map (AND of its fields) or a list of maps (OR).
fn selection_sql(name: &str, body: &Value, warnings: &mut Vec<String>) -> Result<String, Refusal> {
    match body {
        Value::Object(map) => map_sql(name, map, warnings),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let parts = items
                .iter()
                .filter_map(Value::as_object)
                .map(|m| map_sql(name, m, warnings))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("({})", parts.join(" OR ")))
        }
        Value::Array(_) | Value::String(_) => Err((
            format!("search identifier `{name}`"),
            "keyword searches over the whole event are not translated: name the field to match"
                .into(),
        )),
        _ => Err((
            format!("search identifier `{name}`"),
            "must be a map of fields or a list of maps".into(),
        )),
    }
}

fn map_sql(
    name: &str,
    map: &serde_json::Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<String, Refusal> {
    if map.is_empty() {
        return Err((
            format!("search identifier `{name}`"),
            "empty selection".into(),
        ));
    }
    let parts = map
        .iter()
        .map(|(key, value)| field_sql(key, value, warnings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("({})", parts.join(" AND ")))
}

fn field_sql(key: &str, value: &Value, warnings: &mut Vec<String>) -> Result<String, Refusal> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default().trim();
    let modifiers: Vec<String> = parts.map(|m| m.trim().to_ascii_lowercase()).collect();
    let construct = || format!("field `{key}`");
    for m in &modifiers {
        if ![
            "contains",
            "startswith",
            "endswith",
            "re",
            "i",
            "m",
            "s",
            "all",
            "cidr",
            "exists",
            "gt",
            "gte",
            "lt",
            "lte",
            "cased",
        ]
        .contains(&m.as_str())
        {
            return Err((construct(), format!("the modifier `{m}` is not supported")));
        }
    }
    let target = map_field(field, warnings);
    let values: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if values.is_empty() {
        return Err((construct(), "empty list of values".into()));
    }
    let has = |m: &str| modifiers.iter().any(|x| x == m);
    let mut conds = Vec::new();
    for v in &values {
        conds.push(
            value_sql(field, &target, &modifiers, v, warnings).map_err(|why| (construct(), why))?,
        );
    }
    let joiner = if has("all") { " AND " } else { " OR " };
    Ok(if conds.len() == 1 {
        conds.remove(0)
    } else {
        format!("({})", conds.join(joiner))
    })
}

/// Where a Sigma field of the audit Event lives in the `audit` table.
fn map_field(field: &str, warnings: &mut Vec<String>) -> Target {
    let col = |c: &str, kind| Target {
        expr: c.to_string(),
        kind,
    };
    match field {
        "verb" => col("verb", Kind::Text),
        "auditID" => col("audit_id", Kind::Text),
        "stage" => col("stage", Kind::Text),
        "level" => col("level", Kind::Text),
        "requestURI" => col("request_uri", Kind::Text),
        "userAgent" => col("user_agent", Kind::Text),
        "sourceIPs" => col("source_ips", Kind::List),
        "user.username" => col("user_name", Kind::Text),
        "user.groups" => col("user_groups", Kind::List),
        "impersonatedUser.username" => col("impersonated_user", Kind::Text),
        "impersonatedUser.groups" => col("impersonated_groups", Kind::List),
        "objectRef.resource" => col("resource", Kind::Text),
        "objectRef.subresource" => col("subresource", Kind::Text),
        "objectRef.namespace" => col("namespace", Kind::Text),
        "objectRef.name" => col("name", Kind::Text),
        "objectRef.apiGroup" => col("api_group", Kind::Text),
        "objectRef.apiVersion" => col("api_version", Kind::Text),
        "responseStatus.code" => col("response_code", Kind::Int),
        "responseStatus.reason" => col("response_reason", Kind::Text),
        "responseStatus.message" => col("response_message", Kind::Text),
        _ => {
            if let Some(key) = field.strip_prefix("annotations.") {
                return Target {
                    expr: format!("json_key(annotations, {})", quote(key)),
                    kind: Kind::Text,
                };
            }
            for (prefix, column) in [
                ("requestObject", "request_object"),
                ("responseObject", "response_object"),
            ] {
                if field == prefix {
                    return col(column, Kind::Text);
                }
                if let Some(path) = field.strip_prefix(prefix).and_then(|p| p.strip_prefix('.')) {
                    return Target {
                        expr: json_path(column, path),
                        kind: Kind::Text,
                    };
                }
            }
            let known_event_field = [
                "user.uid",
                "user.extra",
                "objectRef.uid",
                "objectRef.resourceVersion",
                "responseStatus.status",
                "requestReceivedTimestamp",
                "stageTimestamp",
                "kind",
                "apiVersion",
                "metadata",
            ]
            .iter()
            .any(|f| field == *f || field.starts_with(&format!("{f}.")));
            warnings.push(if known_event_field {
                format!("field `{field}` is part of the audit Event but audithound does not keep it; the rule reads it from unknown_fields and will not match")
            } else {
                format!("field `{field}` is not part of a Kubernetes audit Event; only events that carry it as an extra top-level field can match")
            });
            Target {
                expr: json_path("unknown_fields", field),
                kind: Kind::Text,
            }
        }
    }
}

fn json_path(column: &str, path: &str) -> String {
    let keys: Vec<String> = path.split('.').map(quote).collect();
    if keys.len() == 1 {
        format!("json_key({column}, {})", keys[0])
    } else {
        format!("json_get({column}, {})", keys.join(", "))
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn value_sql(
    field: &str,
    target: &Target,
    modifiers: &[String],
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let has = |m: &str| modifiers.iter().any(|x| x == m);
    let e = &target.expr;
    if has("exists") {
        let want = value.as_bool().ok_or("`exists` needs true or false")?;
        return Ok(match (target.kind, want) {
            (Kind::List, true) => format!("coalesce(cardinality({e}), 0) > 0"),
            (Kind::List, false) => format!("coalesce(cardinality({e}), 0) = 0"),
            (_, true) => format!("{e} IS NOT NULL"),
            (_, false) => format!("{e} IS NULL"),
        });
    }
    if value.is_null() {
        return Ok(format!("{e} IS NULL"));
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err("values must be strings, numbers, booleans or null".into()),
    };
    for (m, op) in [("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")] {
        if has(m) {
            let n: f64 = text
                .parse()
                .map_err(|_| format!("`{m}` needs a number, got `{text}`"))?;
            return Ok(format!("try_cast({e} AS DOUBLE) {op} {n}"));
        }
    }
    if has("cidr") {
        return Ok(format!("ip_in_cidrs({e}, {})", quote(&text)));
    }
    if has("re") {
        let flags: String = ["i", "m", "s"].iter().filter(|f| has(f)).copied().collect();
        let re = quote(&text);
        return Ok(match (target.kind, flags.is_empty()) {
            (Kind::List, true) => format!("list_any_regex({e}, {re})"),
            (Kind::List, false) => format!(
                "list_any_regex({e}, {})",
                quote(&format!("(?{flags}){text}"))
            ),
            (Kind::Int, _) => format!(
                "regexp_like(CAST({e} AS VARCHAR), {re}{})",
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(", '{flags}'")
                }
            ),
            (Kind::Text, true) => format!("regexp_like({e}, {re})"),
            (Kind::Text, false) => format!("regexp_like({e}, {re}, '{flags}')"),
        });
    }
    let (prefix, suffix) = match (has("contains"), has("startswith"), has("endswith")) {
        (true, _, _) => ("*", "*"),
        (_, true, _) => ("", "*"),
        (_, _, true) => ("*", ""),
        _ => ("", ""),
    };
    let pattern = format!("{prefix}{text}{suffix}");
    let cased = has("cased");
    match target.kind {
        Kind::Int => {
            if let Ok(n) = pattern.parse::<i64>() {
                return Ok(format!("{e} = {n}"));
            }
            if pattern == "*" {
                return Ok(format!("{e} IS NOT NULL"));
            }
            warnings.push(format!(
                "field `{field}` holds a number, so the value `{text}` can never match"
            ));
            Ok(format!(
                "CAST({e} AS VARCHAR) {} {}",
                if cased { "LIKE" } else { "ILIKE" },
                quote(&sigma_to_like(&pattern))
            ))
        }
        Kind::Text => {
            if pattern == "*" {
                return Ok(format!("{e} IS NOT NULL"));
            }
            Ok(format!(
                "{e} {} {}",
                if cased { "LIKE" } else { "ILIKE" },
                quote(&sigma_to_like(&pattern))
            ))
        }
        Kind::List => {
            if pattern == "*" {
                return Ok(format!("coalesce(cardinality({e}), 0) > 0"));
            }
            let re = sigma_to_regex(&pattern);
            Ok(format!(
                "list_any_regex({e}, {})",
                quote(&if cased { re } else { format!("(?i){re}") })
            ))
        }
    }
}

/// A Sigma value with `*`/`?` wildcards (and `\` escapes) as a LIKE pattern with `\` escapes.
fn sigma_to_like(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                let next = chars.next().unwrap_or('\\');
                if next == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(next);
                }
            }
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Sigma value with wildcards as an anchored regular expression.
fn sigma_to_regex(s: &str) -> String {
    let mut out = String::from("^");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                let next = chars.next().unwrap_or('\\');
                out.push_str(&regex::escape(&next.to_string()));
            }
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// A recursive-descent parser of Sigma conditions: `not` binds tighter than `and`, `and` than `or`.
struct Condition<'s> {
    tokens: Vec<String>,
    pos: usize,
    selections: &'s BTreeMap<String, String>,
}

impl<'s> Condition<'s> {
    fn new(text: &str, selections: &'s BTreeMap<String, String>) -> Self {
        let mut tokens = Vec::new();
        let mut cur = String::new();
        for c in text.chars() {
            match c {
                '(' | ')' | '|' => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                    tokens.push(c.to_string());
                }
                c if c.is_whitespace() => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            tokens.push(cur);
        }
        Condition {
            tokens,
            pos: 0,
            selections,
        }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn parse(mut self) -> Result<String, String> {
        if self.tokens.iter().any(|t| t == "|") {
            return Err("aggregations (`| count() ...`) are not translated; write a windowed audithound rule".into());
        }
        let e = self.or()?;
        match self.peek() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected `{t}`")),
        }
    }

    fn or(&mut self) -> Result<String, String> {
        let mut parts = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.next();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" OR "))
        })
    }

    fn and(&mut self) -> Result<String, String> {
        let mut parts = vec![self.not()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.next();
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("({})", parts.join(" AND "))
        })
    }

    fn not(&mut self) -> Result<String, String> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.next();
            return Ok(format!("(NOT coalesce({}, false))", self.not()?));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<String, String> {
        let t = self.next().ok_or("the condition ends too early")?;
        if t == "(" {
            let e = self.or()?;
            return match self.next().as_deref() {
                Some(")") => Ok(e),
                _ => Err("missing `)`".into()),
            };
        }
        let lower = t.to_ascii_lowercase();
        if matches!(lower.as_str(), "1" | "any" | "all")
            && self.peek().is_some_and(|n| n.eq_ignore_ascii_case("of"))
        {
            self.next();
            let pattern = self.next().ok_or("`of` needs a pattern or `them`")?;
            let names: Vec<&String> = if pattern.eq_ignore_ascii_case("them") {
                self.selections
                    .keys()
                    .filter(|k| !k.starts_with('_'))
                    .collect()
            } else {
                self.selections
                    .keys()
                    .filter(|k| glob_matches(&pattern, k))
                    .collect()
            };
            if names.is_empty() {
                return Err(format!("`{pattern}` names no search identifier"));
            }
            let parts: Vec<String> = names.iter().map(|n| self.selections[*n].clone()).collect();
            let joiner = if lower == "all" { " AND " } else { " OR " };
            return Ok(format!("({})", parts.join(joiner)));
        }
        match self.selections.get(&t) {
            Some(sql) => Ok(sql.clone()),
            None => Err(format!("unknown search identifier `{t}`")),
        }
    }
}

fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.starts_with(pre)
                && name[pre.len()..].ends_with(post)
                && name.len() >= pre.len() + post.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(detection: &str) -> Result<SigmaTranslation, RuleError> {
        let text = format!(
            "title: T\nid: 0\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n{detection}\nlevel: high\ntags:\n  - attack.t1609\n  - attack.execution\n"
        );
        translate("rules/test_rule.yml", &text, &Catalog::embedded())
    }

    #[test]
    fn fields_and_modifiers_become_sql() {
        let t = tr("  sel:\n    verb: create\n    objectRef.resource|startswith: 'pod'\n    requestURI|contains|all: ['a', 'b']\n    sourceIPs|cidr: 10.0.0.0/8\n  condition: sel").unwrap();
        let sql = &t.spec.sql;
        assert!(sql.contains("verb ILIKE 'create'"), "{sql}");
        assert!(sql.contains("resource ILIKE 'pod%'"), "{sql}");
        assert!(
            sql.contains("(request_uri ILIKE '%a%' AND request_uri ILIKE '%b%')"),
            "{sql}"
        );
        assert!(
            sql.contains("ip_in_cidrs(source_ips, '10.0.0.0/8')"),
            "{sql}"
        );
        assert_eq!(t.spec.techniques, ["T1609"]);
        assert_eq!(t.spec.severity, Severity::High);
        assert_eq!(t.spec.id, "sigma-test-rule");
        assert!(t.spec.tags.contains(&"attack.execution".to_string()));
    }

    #[test]
    fn conditions_with_quantifiers_not_and_parentheses() {
        let t = tr("  sel_a:\n    verb: get\n  sel_b:\n    verb: list\n  filter:\n    user.username|startswith: 'system:'\n  condition: (1 of sel_*) and not filter").unwrap();
        let sql = &t.spec.sql;
        assert!(
            sql.contains("((verb ILIKE 'get') OR (verb ILIKE 'list'))"),
            "{sql}"
        );
        assert!(
            sql.contains("NOT coalesce((user_name ILIKE 'system:%'), false)"),
            "{sql}"
        );
        let t = tr("  a:\n    verb: get\n  b:\n    verb: list\n  condition: all of them").unwrap();
        assert!(
            t.spec
                .sql
                .contains("((verb ILIKE 'get') AND (verb ILIKE 'list'))"),
            "{}",
            t.spec.sql
        );
    }

    #[test]
    fn wildcards_and_escapes_become_like_patterns() {
        assert_eq!(sigma_to_like("a*b?c"), "a%b_c");
        assert_eq!(sigma_to_like("100%_x"), "100\\%\\_x");
        assert_eq!(sigma_to_like("lit\\*star"), "lit*star");
        assert_eq!(sigma_to_regex("system:*"), "^system:.*$");
    }

    #[test]
    fn untranslatable_constructs_are_refused_with_the_reason() {
        let e = tr("  keywords:\n    - 'evil'\n  condition: keywords").unwrap_err();
        assert!(e.to_string().contains("keyword searches"), "{e}");
        let e = tr("  sel:\n    verb|base64: create\n  condition: sel").unwrap_err();
        assert!(e.to_string().contains("`base64`"), "{e}");
        let e = tr("  sel:\n    verb: create\n  condition: sel | count() by user.username > 5")
            .unwrap_err();
        assert!(e.to_string().contains("aggregations"), "{e}");
        let e = tr("  sel:\n    verb: create\n  condition: sel and missing").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown search identifier `missing`"),
            "{e}"
        );
        let e = translate("x.yml", "title: T\nlogsource:\n  product: windows\ndetection:\n  s:\n    a: b\n  condition: s\n", &Catalog::embedded()).unwrap_err();
        assert!(e.to_string().contains("only Kubernetes audit rules"), "{e}");
    }

    #[test]
    fn fields_no_event_carries_and_impossible_values_are_warnings() {
        let t = tr("  sel:\n    hostPath: '*'\n    responseStatus.code: 'ALLOW'\n  condition: sel")
            .unwrap();
        assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("`hostPath` is not part of a Kubernetes audit Event"));
        assert!(t.warnings[1].contains("`ALLOW` can never match"));
        assert!(
            t.spec
                .sql
                .contains("json_key(unknown_fields, 'hostPath') IS NOT NULL"),
            "{}",
            t.spec.sql
        );
    }
}
