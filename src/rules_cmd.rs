//! `audithound rules list | validate | test`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use audithound_analytics::rules::{RuleSource, builtin_sources, read_sources};
use audithound_analytics::testing::run_rule_tests;
use audithound_analytics::{RuleConfig, RuleEngine, RulePack};
use audithound_models::Catalog;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::Format;

/// The `rules` subcommands.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// List the rules (built-in and from --rules directories).
    List {
        /// Extra rule directories or files.
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Output format (default: table on a terminal, NDJSON otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Check rule files: YAML, metadata, techniques and SQL. Exits non-zero on any error.
    Validate {
        /// Rule directories or files.
        #[arg(required = true, value_name = "DIR")]
        paths: Vec<PathBuf>,
    },
    /// Run the tests inside rule files: the built-in pack's and those of the given directories.
    Test {
        /// Rule directories or files whose tests to run besides the built-in pack's.
        #[arg(value_name = "DIR|FILE")]
        paths: Vec<PathBuf>,
        /// Run only the tests of the given paths, not the built-in pack's.
        #[arg(long)]
        no_builtin: bool,
    },
    /// Show the shared exception lists (the cluster's own components, ...): what rules allow
    /// through them, which rules use them, and what a config adds.
    Lists {
        /// Configuration file whose `[rules.lists]` additions to show.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Translate Sigma rules for Kubernetes audit logs into audithound rule files.
    ImportSigma {
        /// Sigma rule files or directories of them.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Write one rule file per rule here (default: print them to stdout).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Runs a `rules` subcommand.
pub fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::embedded();
    match command {
        RulesCommand::List { rules, format } => list(&rules, format, &catalog),
        RulesCommand::Validate { paths } => validate(&paths, &catalog),
        RulesCommand::Test { paths, no_builtin } => test(&paths, no_builtin, &catalog),
        RulesCommand::Lists { config } => lists(config.as_deref(), &catalog),
        RulesCommand::ImportSigma { paths, out } => import_sigma(&paths, out.as_deref(), &catalog),
    }
}

/// Prints every shared list: its description, the rules that use it, its values and what the
/// config adds (marked).
fn lists(config: Option<&std::path::Path>, catalog: &Catalog) -> anyhow::Result<ExitCode> {
    let config = crate::config::Config::load(config)?;
    let (pack, _) = RulePack::load(&[], catalog);
    let mut out = std::io::stdout().lock();
    for list in audithound_analytics::shared_lists::builtin() {
        let users: Vec<&str> = pack
            .rules()
            .filter(|r| {
                r.spec
                    .exceptions
                    .iter()
                    .any(|e| e.list.as_deref() == Some(list.name.as_str()))
            })
            .map(|r| r.spec.id.as_str())
            .collect();
        let added = config
            .rules
            .lists
            .get(&list.name)
            .cloned()
            .unwrap_or_default();
        writeln!(
            out,
            "{}: {} ({} values, {} from the config; used by {})",
            list.name,
            list.description.trim(),
            list.values.len() + added.len(),
            added.len(),
            users.join(", ")
        )?;
        for value in &list.values {
            writeln!(out, "  {value}")?;
        }
        for value in &added {
            writeln!(out, "  {value}  (config)")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(dirs: &[PathBuf], format: Option<Format>, catalog: &Catalog) -> anyhow::Result<ExitCode> {
    let (pack, errors) = RulePack::load(dirs, catalog);
    for e in &errors {
        eprintln!("audithound: rule error: {e}");
    }
    let stdout = std::io::stdout();
    let format = format.unwrap_or(if stdout.is_terminal() {
        Format::Table
    } else {
        Format::Ndjson
    });
    let mut out = stdout.lock();
    let rows: Vec<serde_json::Value> = pack
        .rules()
        .map(|r| {
            serde_json::json!({
                "id": r.spec.id, "title": r.spec.title, "severity": r.spec.severity,
                "techniques": r.techniques, "enabled": r.spec.enabled, "window": r.spec.window,
                "tags": r.spec.tags, "origin": r.origin, "tests": r.spec.tests.len(),
            })
        })
        .collect();
    match format {
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header(["id", "severity", "title", "techniques", "window"]);
            for r in pack.rules() {
                let techniques: Vec<&str> = r.techniques.iter().map(|t| t.id.as_str()).collect();
                table.add_row([
                    r.spec.id.clone(),
                    r.spec.severity.to_string(),
                    r.spec.title.clone(),
                    techniques.join(" "),
                    r.spec.window.clone().unwrap_or_default(),
                ]);
            }
            writeln!(out, "{table}")?;
            writeln!(out, "{} rules", pack.len())?;
        }
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Ndjson => {
            for r in rows {
                writeln!(out, "{r}")?;
            }
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<RuleSource>> {
    let mut sources = Vec::new();
    for p in paths {
        sources.extend(
            read_sources(p).with_context(|| format!("reading rules from `{}`", p.display()))?,
        );
    }
    Ok(sources)
}

fn validate(paths: &[PathBuf], catalog: &Catalog) -> anyhow::Result<ExitCode> {
    let sources = load_sources(paths)?;
    let (pack, mut errors) = RulePack::assemble(&sources, catalog);
    let (engine, compile_errors) = RuleEngine::new(&pack, &RuleConfig::default())?;
    errors.extend(compile_errors);
    for e in &errors {
        println!("error: {e}");
    }
    for w in pack.warnings() {
        println!("warning: {w}");
    }
    println!(
        "{} rule file(s), {} valid, {} error(s)",
        sources.len(),
        engine.rule_count() + pack.rules().filter(|r| !r.spec.enabled).count(),
        errors.len()
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn test(paths: &[PathBuf], no_builtin: bool, catalog: &Catalog) -> anyhow::Result<ExitCode> {
    let mut sources = if no_builtin {
        Vec::new()
    } else {
        builtin_sources()
    };
    sources.extend(load_sources(paths)?);
    let (pack, errors) = RulePack::assemble(&sources, catalog);
    let mut out = std::io::stdout().lock();
    let mut failed = errors.len();
    for e in &errors {
        writeln!(out, "FAIL {e}")?;
    }
    let mut passed = 0usize;
    let mut untested = Vec::new();
    for rule in pack.rules() {
        let results = run_rule_tests(rule, &RuleConfig::default());
        if results.is_empty() {
            untested.push(rule.spec.id.clone());
        }
        for r in results {
            if r.passed {
                passed += 1;
                writeln!(out, "ok   {} :: {} -- {}", r.rule_id, r.name, r.detail)?;
            } else {
                failed += 1;
                writeln!(out, "FAIL {} :: {} -- {}", r.rule_id, r.name, r.detail)?;
            }
        }
    }
    writeln!(
        out,
        "{passed} passed, {failed} failed, {} rule(s) without tests{}",
        untested.len(),
        if untested.is_empty() {
            String::new()
        } else {
            format!(": {}", untested.join(", "))
        }
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn import_sigma(
    paths: &[PathBuf],
    out: Option<&std::path::Path>,
    catalog: &Catalog,
) -> anyhow::Result<ExitCode> {
    let sources = load_sources(paths)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    let (mut written, mut refused) = (0usize, 0usize);
    for source in &sources {
        let translated =
            match audithound_analytics::sigma::translate(&source.origin, &source.text, catalog) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("refused: {e}");
                    refused += 1;
                    continue;
                }
            };
        for w in &translated.warnings {
            eprintln!("warning: {w}");
        }
        // The translation must load like any rule: techniques, SQL, columns.
        let check = RuleSource {
            origin: source.origin.clone(),
            text: String::new(),
            base_dir: None,
        };
        let loaded =
            audithound_analytics::rules::check_loaded(translated.spec.clone(), &check, catalog)
                .and_then(|rule| {
                    RuleEngine::single(&rule, &RuleConfig::default(), &Default::default())
                        .map(|_| ())
                });
        if let Err(e) = loaded {
            eprintln!("refused: {e}");
            refused += 1;
            continue;
        }
        let yaml = serde_yaml_ng::to_string(&translated.spec).context("serialising a rule")?;
        match out {
            Some(dir) => {
                let path = dir.join(format!("{}.yaml", translated.spec.id));
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => write!(stdout, "---\n{yaml}")?,
        }
        written += 1;
    }
    eprintln!("{written} rule(s) translated, {refused} refused");
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
