//! Errors of the analytics crate.

use std::path::PathBuf;

/// Why a rule was refused. Every variant says which file (or built-in) and which rule, so an
/// operator can fix it; the other rules keep running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The file is not valid YAML or not a rule document.
    #[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// File (or `builtin:<name>`) the rule came from.
        origin: String,
        /// Line of the problem, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The metadata is wrong: unknown technique, bad duration, a column that the query does not
    /// return, a duplicate id.
    #[error("{origin}: rule `{rule_id}`: {message}")]
    Invalid {
        /// File the rule came from.
        origin: String,
        /// The rule's id.
        rule_id: String,
        /// What is wrong.
        message: String,
    },
    /// The SQL does not parse or plan (unknown column, table, function, or a statement that is
    /// not a query).
    #[error("{origin}:{line}: rule `{rule_id}`: SQL error: {message}")]
    Sql {
        /// File the rule came from.
        origin: String,
        /// Line of the `sql:` key in the file.
        line: usize,
        /// The rule's id.
        rule_id: String,
        /// DataFusion's message.
        message: String,
    },
    /// A Sigma rule uses a construct that cannot be translated.
    #[error("{origin}: Sigma {construct} cannot be translated: {reason}")]
    Sigma {
        /// The Sigma file.
        origin: String,
        /// The construct (field, modifier, condition, logsource).
        construct: String,
        /// Why.
        reason: String,
    },
    /// A rule directory or file could not be read.
    #[error("cannot read rules from `{}`: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
}

/// A failure while evaluating rules on a batch.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// DataFusion failed executing a rule's plan.
    #[error("rule `{rule_id}` failed: {message}")]
    Execution {
        /// The rule.
        rule_id: String,
        /// DataFusion's message.
        message: String,
    },
    /// The engine's runtime could not start.
    #[error("cannot start the rule engine: {0}")]
    Runtime(String),
}
