//! Shared exception lists: values that several rules allow alike, kept once.
//!
//! The built-in pack's `rules/lists/` holds them (the cluster's own components, say); a rule's
//! exception list names one with `list:` and holds its values too, and a config adds to a
//! shared list for every rule at once (`[rules.lists]`). This module only owns the lists; the
//! engine merges them into the rules' exceptions.

use std::sync::LazyLock;

use serde::Deserialize;

/// A list of allowed values that rules share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedList {
    /// The name rules and configs use.
    pub name: String,
    /// What the values are.
    pub description: String,
    /// The allowed values (patterns as in any exception list).
    pub values: Vec<String>,
}

/// The built-in list files: (file name, YAML text).
pub const BUILTIN_LISTS: &[(&str, &str)] = &[(
    "cluster-components.yaml",
    include_str!("../rules/lists/cluster-components.yaml"),
)];

static LISTS: LazyLock<Vec<SharedList>> = LazyLock::new(|| {
    BUILTIN_LISTS
        .iter()
        .filter_map(|(file, text)| match serde_yaml_ng::from_str(text) {
            Ok(list) => Some(list),
            Err(e) => {
                // A test reads every list, so this is never met in a build that passed them.
                tracing::error!("built-in list {file} does not parse: {e}");
                None
            }
        })
        .collect()
});

/// Every built-in shared list.
pub fn builtin() -> &'static [SharedList] {
    &LISTS
}

/// The built-in shared list of this name.
pub fn named(name: &str) -> Option<&'static SharedList> {
    builtin().iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_file_parses_and_is_embedded() {
        for (file, text) in BUILTIN_LISTS {
            let list: SharedList = serde_yaml_ng::from_str(text)
                .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
            assert!(!list.values.is_empty(), "{file}");
        }
        assert_eq!(builtin().len(), BUILTIN_LISTS.len());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/lists");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = BUILTIN_LISTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded, "add new list files to BUILTIN_LISTS");
    }

    #[test]
    fn cluster_components_are_namespace_and_full_repository() {
        let list = named("cluster_components").expect("the list");
        for value in &list.values {
            let (namespace, repository) = value.split_once(':').expect("namespace:repository");
            assert!(!namespace.is_empty() && !repository.is_empty(), "{value}");
            let first = repository.split('/').next().unwrap_or("");
            assert!(
                first.contains('.') || first.contains('*'),
                "{value}: the registry is written out"
            );
        }
    }
}
