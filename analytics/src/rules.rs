//! Rule files: reading, parsing and checking their metadata, and assembling a rule pack from the
//! built-in rules and user directories (a user rule replaces a built-in one with the same id).
//!
//! Checking the SQL needs the engine and happens when the engine compiles the pack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use audithound_models::rule::parse_duration;
use audithound_models::{Catalog, RuleSpec, TechniqueRef};

use crate::builtin::BUILTIN_RULES;
use crate::error::RuleError;

/// The text of a rule file and where it came from.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Path of the file, or `builtin:<file name>`.
    pub origin: String,
    /// The YAML text.
    pub text: String,
    /// Directory that relative paths in the file (test fixtures) are relative to.
    pub base_dir: Option<PathBuf>,
}

/// A rule whose metadata has been checked.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    /// The rule as written.
    pub spec: RuleSpec,
    /// Where it came from.
    pub origin: String,
    /// Line of the `sql:` key, for error messages.
    pub sql_line: usize,
    /// Directory of the rule file, for test fixtures.
    pub base_dir: Option<PathBuf>,
    /// The techniques, resolved against the catalog.
    pub techniques: Vec<TechniqueRef>,
    /// Length of the window, for windowed rules.
    pub window: Option<Duration>,
    /// Deduplication period.
    pub dedup_period: Duration,
    /// What loading noticed without refusing the rule (Sigma translation warnings).
    pub warnings: Vec<String>,
}

/// How long matching rows of one incident keep merging when a rule does not say.
pub const DEFAULT_DEDUP_PERIOD: Duration = Duration::from_secs(600);

/// The built-in pack's sources.
pub fn builtin_sources() -> Vec<RuleSource> {
    BUILTIN_RULES
        .iter()
        .map(|(name, text)| RuleSource {
            origin: format!("builtin:{name}"),
            text: (*text).to_string(),
            base_dir: None,
        })
        .collect()
}

/// Rule files (`*.yaml`, `*.yml`) in a directory and its subdirectories, or one file.
pub fn read_sources(path: &Path) -> Result<Vec<RuleSource>, RuleError> {
    let io = |e: std::io::Error| RuleError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mut files = Vec::new();
    if meta.is_dir() {
        collect_yaml(path, &mut files).map_err(io)?;
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).map_err(|e| RuleError::Io {
                path: f.clone(),
                message: e.to_string(),
            })?;
            Ok(RuleSource {
                origin: f.display().to_string(),
                base_dir: f.parent().map(Path::to_path_buf),
                text,
            })
        })
        .collect()
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            collect_yaml(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses one rule file and checks its metadata against the catalog.
///
/// Sigma rules (recognised by their `logsource` and `detection` keys) are translated first.
pub fn parse_rule(source: &RuleSource, catalog: &Catalog) -> Result<LoadedRule, RuleError> {
    parse_rule_with(source, catalog, true)
}

/// Parses a rule; without `tests` its test cases are not read (running a rule needs none of
/// them, and they are most of the built-in pack's text). If the text without them does not
/// parse, the whole text is parsed, so that any error is the one the full file gives.
fn parse_rule_with(
    source: &RuleSource,
    catalog: &Catalog,
    tests: bool,
) -> Result<LoadedRule, RuleError> {
    if !tests
        && !crate::sigma::is_sigma(&source.text)
        && let Some(text) = without_tests(&source.text)
        && let Ok(spec) = serde_yaml_ng::from_str::<RuleSpec>(&text)
    {
        return check_spec(spec, source, catalog);
    }
    if crate::sigma::is_sigma(&source.text) {
        let translated = crate::sigma::translate(&source.origin, &source.text, catalog)?;
        let mut rule = check_spec(translated.spec, source, catalog)?;
        rule.warnings = translated.warnings;
        return Ok(rule);
    }
    let spec: RuleSpec = serde_yaml_ng::from_str(&source.text).map_err(|e| RuleError::Parse {
        origin: source.origin.clone(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    check_spec(spec, source, catalog)
}

/// Checks a rule that did not come from YAML text (a Sigma translation, say) like any other.
pub fn check_loaded(
    spec: RuleSpec,
    source: &RuleSource,
    catalog: &Catalog,
) -> Result<LoadedRule, RuleError> {
    check_spec(spec, source, catalog)
}

fn check_spec(
    spec: RuleSpec,
    source: &RuleSource,
    catalog: &Catalog,
) -> Result<LoadedRule, RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        origin: source.origin.clone(),
        rule_id: spec.id.clone(),
        message,
    };
    if spec.id.trim().is_empty() || spec.id.chars().any(char::is_whitespace) {
        return Err(invalid("id must be non-empty and without spaces".into()));
    }
    if spec.sql.trim().is_empty() {
        return Err(invalid("sql is empty".into()));
    }
    let mut techniques = Vec::new();
    for id in &spec.techniques {
        let t = catalog.get(id).map_err(|e| invalid(e.to_string()))?;
        techniques.push(TechniqueRef::from(t));
    }
    let window = spec
        .window
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| invalid(format!("window: {e}")))?;
    let dedup_period = match &spec.dedup {
        Some(d) => {
            if d.key.is_empty() {
                return Err(invalid("dedup.key needs at least one column".into()));
            }
            parse_duration(&d.period).map_err(|e| invalid(format!("dedup.period: {e}")))?
        }
        None => window.unwrap_or(DEFAULT_DEDUP_PERIOD),
    };
    if window.is_some() && spec.dedup.is_none() {
        return Err(invalid(
            "a windowed rule needs `dedup` (the columns that identify one incident), or every batch would report it again".into(),
        ));
    }
    let reads_window = ["audit_window", "dns_window", "flow_window"]
        .iter()
        .any(|t| spec.sql.contains(t));
    if window.is_some() != reads_window {
        return Err(invalid(if window.is_some() {
            "a windowed rule reads its window table (`audit_window`, `dns_window` or `flow_window`)"
                .into()
        } else {
            "a window table (`audit_window`, `dns_window`, `flow_window`) needs a `window:` length"
                .into()
        }));
    }
    for e in &spec.exceptions {
        if e.name.trim().is_empty() {
            return Err(invalid("every exception list needs a name".into()));
        }
        if let Some(list) = &e.list
            && crate::shared_lists::named(list).is_none()
        {
            return Err(invalid(format!(
                "exception `{}` names shared list `{list}`, which does not exist (known: {})",
                e.name,
                crate::shared_lists::builtin()
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(LoadedRule {
        sql_line: key_line(&source.text, "sql"),
        origin: source.origin.clone(),
        base_dir: source.base_dir.clone(),
        techniques,
        window,
        dedup_period,
        warnings: Vec::new(),
        spec,
    })
}

/// The rule text with the lines of its top-level `tests:` block blanked (so that every other
/// line keeps its number), or `None` when it has no such block. The block ends at the next line
/// that starts a top-level key.
fn without_tests(text: &str) -> Option<String> {
    let starts_key = |line: &str| {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(line.len());
        name_end > 0
            && line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && line[name_end..]
                .trim_start_matches([' ', '\t'])
                .starts_with(':')
    };
    let mut out = String::with_capacity(text.len());
    let mut in_tests = false;
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if starts_key(line) {
            in_tests = line.starts_with("tests:");
            found |= in_tests;
        }
        if in_tests {
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    found.then_some(out)
}

/// Line (1-based) of a top-level key in a YAML text, or 1.
fn key_line(text: &str, key: &str) -> usize {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map_or(1, |i| i + 1)
}

/// Rules assembled from the built-in pack and user directories.
#[derive(Debug, Clone, Default)]
pub struct RulePack {
    rules: BTreeMap<String, LoadedRule>,
}

impl RulePack {
    /// Parses every source; later sources replace earlier rules with the same id. Rules that
    /// fail are returned as errors and left out.
    pub fn assemble(sources: &[RuleSource], catalog: &Catalog) -> (RulePack, Vec<RuleError>) {
        RulePack::assemble_with(sources, catalog, true)
    }

    fn assemble_with(
        sources: &[RuleSource],
        catalog: &Catalog,
        tests: bool,
    ) -> (RulePack, Vec<RuleError>) {
        let mut pack = RulePack::default();
        let mut errors = Vec::new();
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        for source in sources {
            match parse_rule_with(source, catalog, tests) {
                Ok(rule) => {
                    let id = rule.spec.id.clone();
                    if let Some(prev) = origins.get(&id) {
                        let both_user =
                            !prev.starts_with("builtin:") && !source.origin.starts_with("builtin:");
                        if both_user {
                            errors.push(RuleError::Invalid {
                                origin: source.origin.clone(),
                                rule_id: id.clone(),
                                message: format!(
                                    "duplicate id, also defined in {prev}; this one wins"
                                ),
                            });
                        }
                    }
                    origins.insert(id.clone(), source.origin.clone());
                    pack.rules.insert(id, rule);
                }
                Err(e) => errors.push(e),
            }
        }
        (pack, errors)
    }

    /// The built-in pack plus the rules under `dirs`, with their test cases.
    pub fn load(dirs: &[PathBuf], catalog: &Catalog) -> (RulePack, Vec<RuleError>) {
        RulePack::load_with(dirs, catalog, true)
    }

    /// The built-in pack plus the rules under `dirs`, to run them: their test cases are not
    /// read (`rules validate` and `rules test` read them).
    pub fn load_to_run(dirs: &[PathBuf], catalog: &Catalog) -> (RulePack, Vec<RuleError>) {
        RulePack::load_with(dirs, catalog, false)
    }

    fn load_with(dirs: &[PathBuf], catalog: &Catalog, tests: bool) -> (RulePack, Vec<RuleError>) {
        let mut sources = builtin_sources();
        let mut errors = Vec::new();
        for dir in dirs {
            match read_sources(dir) {
                Ok(s) => sources.extend(s),
                Err(e) => errors.push(e),
            }
        }
        let (pack, mut more) = RulePack::assemble_with(&sources, catalog, tests);
        errors.append(&mut more);
        (pack, errors)
    }

    /// Warnings of every rule (Sigma translations that kept a defect of the original).
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.rules.values().flat_map(|r| r.warnings.iter())
    }

    /// Every rule, ordered by id.
    pub fn rules(&self) -> impl Iterator<Item = &LoadedRule> {
        self.rules.values()
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&LoadedRule> {
        self.rules.get(id)
    }

    /// How many rules the pack holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the pack is empty.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Removes rules whose ids are not in `keep`.
    pub fn retain(&mut self, keep: impl Fn(&LoadedRule) -> bool) {
        self.rules.retain(|_, r| keep(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> RuleSource {
        RuleSource {
            origin: "test.yaml".into(),
            text: text.into(),
            base_dir: None,
        }
    }

    #[test]
    fn unknown_technique_is_refused_with_file_and_rule() {
        let err = parse_rule(
            &source(
                "id: r\ntitle: t\nseverity: high\ntechniques: [T9999]\nsql: SELECT ts FROM audit\n",
            ),
            &Catalog::embedded(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("test.yaml") && msg.contains("`r`") && msg.contains("T9999"),
            "{msg}"
        );
    }

    #[test]
    fn yaml_errors_carry_the_line() {
        let err = parse_rule(
            &source("id: r\ntitle: t\nseverity: [\n"),
            &Catalog::embedded(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RuleError::Parse { line: Some(_), .. }),
            "{err}"
        );
        let err = parse_rule(
            &source("id: r\ntitle: t\nseverity: urgent\nsql: x\n"),
            &Catalog::embedded(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("urgent"), "{err}");
    }

    #[test]
    fn rules_loaded_to_run_are_the_same_rules_without_their_tests() {
        let catalog = Catalog::embedded();
        let sources = builtin_sources();
        let (full, errors) = RulePack::assemble(&sources, &catalog);
        assert!(errors.is_empty(), "{errors:?}");
        let (to_run, errors) = RulePack::assemble_with(&sources, &catalog, false);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(full.rules.len(), to_run.rules.len());
        for (id, rule) in &full.rules {
            let run = &to_run.rules[id];
            assert!(run.spec.tests.is_empty(), "{id}: tests were read");
            let mut spec = rule.spec.clone();
            spec.tests.clear();
            assert_eq!(spec, run.spec, "{id}");
            assert_eq!(rule.sql_line, run.sql_line, "{id}");
        }
    }

    #[test]
    fn the_tests_block_is_blanked_wherever_it_stands() {
        let text = "id: r\ntests:\n- name: a\n  events: [{verb: get}]\nsql: |\n  SELECT ts\n  FROM audit\n";
        let cut = without_tests(text).expect("has tests");
        assert_eq!(cut, "id: r\n\n\n\nsql: |\n  SELECT ts\n  FROM audit\n");
        assert_eq!(
            cut.lines().count(),
            text.lines().count(),
            "line numbers are kept"
        );
        assert_eq!(without_tests("id: r\nsql: x\n"), None);
        // A key named like the block inside another value is not the block.
        assert_eq!(without_tests("id: r\nparams:\n  tests: [a]\n"), None);
        // Text that only parses whole is parsed whole, with the error it gives.
        let flow = source(
            "id: r\ntitle: t\nseverity: high\ntechniques: [T1609]\ntests: [\n{name: a, match: true,\nevents: []}]\nsql: SELECT ts FROM audit\n",
        );
        let whole = parse_rule_with(&flow, &Catalog::embedded(), true).map(|r| r.spec.id);
        let to_run = parse_rule_with(&flow, &Catalog::embedded(), false).map(|r| r.spec.id);
        assert_eq!(whole.is_ok(), to_run.is_ok());
    }

    #[test]
    fn windowed_rules_need_dedup_and_the_window_table() {
        let c = Catalog::embedded();
        let no_dedup =
            "id: r\ntitle: t\nseverity: low\nwindow: 5m\nsql: SELECT ts FROM audit_window\n";
        assert!(parse_rule(&source(no_dedup), &c).is_err());
        let ok = "id: r\ntitle: t\nseverity: low\nwindow: 5m\ndedup: {key: [user_name], period: 10m}\nsql: SELECT max(ts) AS ts, user_name FROM audit_window GROUP BY user_name\n";
        let rule = parse_rule(&source(ok), &c).unwrap();
        assert_eq!(rule.window, Some(Duration::from_secs(300)));
        assert_eq!(rule.sql_line, 6);
    }

    #[test]
    fn user_rules_replace_builtin_rules_with_the_same_id() {
        let c = Catalog::embedded();
        let builtin = RuleSource {
            origin: "builtin:a.yaml".into(),
            text: "id: a\ntitle: old\nseverity: low\nsql: SELECT ts FROM audit\n".into(),
            base_dir: None,
        };
        let user = RuleSource {
            origin: "mine/a.yaml".into(),
            text: "id: a\ntitle: new\nseverity: high\nsql: SELECT ts FROM audit\n".into(),
            base_dir: None,
        };
        let (pack, errors) = RulePack::assemble(&[builtin, user], &c);
        assert!(errors.is_empty());
        assert_eq!(pack.get("a").unwrap().spec.title, "new");
    }

    #[test]
    fn the_builtin_pack_parses() {
        let (pack, errors) = RulePack::assemble(&builtin_sources(), &Catalog::embedded());
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(pack.len() >= 50, "{} rules", pack.len());
    }
}
