//! The technique catalog: which attack techniques a finding can be tagged with.
//!
//! The data is embedded from `data/`: MITRE ATT&CK techniques whose platforms include Containers,
//! the Microsoft Threat Matrix for Kubernetes, and the ATT&CK Enterprise techniques that rules use
//! beyond the Containers platform. A rule that names an id missing here is refused at load.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

const MITRE_CONTAINERS_CSV: &str = include_str!("../data/mitre_containers.csv");
const MS_THREAT_MATRIX_CSV: &str = include_str!("../data/ms_threat_matrix.csv");
const ENTERPRISE_EXTRA_CSV: &str = include_str!("../data/enterprise_extra.csv");

/// The framework a technique id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Framework {
    /// MITRE ATT&CK (Enterprise, including the Containers platform).
    #[serde(rename = "MITRE ATT&CK")]
    MitreAttack,
    /// Microsoft Threat Matrix for Kubernetes.
    #[serde(rename = "Microsoft Threat Matrix for Kubernetes")]
    MsThreatMatrix,
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framework::MitreAttack => "MITRE ATT&CK",
            Framework::MsThreatMatrix => "Microsoft Threat Matrix for Kubernetes",
        })
    }
}

/// One technique of the catalog, with every tactic it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    /// The framework's id, e.g. `T1609` or `MS-TA9006`.
    pub id: String,
    /// The framework's name, e.g. `Container Administration Command`.
    pub name: String,
    /// Which framework the id belongs to.
    pub framework: Framework,
    /// The tactics the technique serves (a technique may serve several).
    pub tactics: Vec<String>,
    /// For Threat Matrix techniques, the ATT&CK ids they map to.
    pub mitre_ids: Vec<String>,
    /// Whether ATT&CK lists Containers among the technique's platforms.
    pub containers_platform: bool,
}

/// A technique id that the catalog does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown technique id `{0}` (not in the ATT&CK Containers, Threat Matrix or Enterprise catalog)"
)]
pub struct UnknownTechnique(pub String);

/// Every technique that rules may name, looked up by id.
#[derive(Debug, Clone)]
pub struct Catalog {
    techniques: BTreeMap<String, Technique>,
}

impl Catalog {
    /// The catalog embedded in the binary.
    pub fn embedded() -> Catalog {
        let mut techniques: BTreeMap<String, Technique> = BTreeMap::new();
        let mut add =
            |id: &str, name: &str, tactic: &str, framework, mitre_ids: Vec<String>, containers| {
                let entry = techniques
                    .entry(id.to_string())
                    .or_insert_with(|| Technique {
                        id: id.to_string(),
                        name: name.to_string(),
                        framework,
                        tactics: Vec::new(),
                        mitre_ids,
                        containers_platform: containers,
                    });
                if !tactic.is_empty() && !entry.tactics.iter().any(|t| t == tactic) {
                    entry.tactics.push(tactic.to_string());
                }
            };
        for fields in csv_rows(MITRE_CONTAINERS_CSV) {
            add(
                fields[0],
                fields[1],
                fields[2],
                Framework::MitreAttack,
                Vec::new(),
                true,
            );
        }
        for fields in csv_rows(ENTERPRISE_EXTRA_CSV) {
            add(
                fields[0],
                fields[1],
                fields[2],
                Framework::MitreAttack,
                Vec::new(),
                false,
            );
        }
        for fields in csv_rows(MS_THREAT_MATRIX_CSV) {
            let mitre_ids = fields
                .get(3)
                .map(|ids| {
                    ids.split(';')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            add(
                fields[0],
                fields[1],
                fields[2],
                Framework::MsThreatMatrix,
                mitre_ids,
                false,
            );
        }
        Catalog { techniques }
    }

    /// The technique with this id (case-insensitive), or an error naming the unknown id.
    pub fn get(&self, id: &str) -> Result<&Technique, UnknownTechnique> {
        let key = id.trim().to_ascii_uppercase();
        self.techniques
            .get(&key)
            .ok_or_else(|| UnknownTechnique(id.to_string()))
    }

    /// Every technique, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Technique> {
        self.techniques.values()
    }

    /// How many techniques the catalog holds.
    pub fn len(&self) -> usize {
        self.techniques.len()
    }

    /// Whether the catalog is empty (never, for the embedded one).
    pub fn is_empty(&self) -> bool {
        self.techniques.is_empty()
    }
}

/// The data rows of one of the embedded CSV files (no quoting is used in them).
fn csv_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_holds_every_containers_and_threat_matrix_technique() {
        let catalog = Catalog::embedded();
        let containers = catalog.iter().filter(|t| t.containers_platform).count();
        let matrix = catalog
            .iter()
            .filter(|t| t.framework == Framework::MsThreatMatrix)
            .count();
        assert_eq!(
            containers, 48,
            "ATT&CK v18.1 lists 48 techniques for Containers"
        );
        assert_eq!(matrix, 40, "the Threat Matrix has 40 current techniques");
    }

    #[test]
    fn technique_serving_several_tactics_keeps_them_all() {
        let catalog = Catalog::embedded();
        let hostpath = catalog.get("MS-TA9013").unwrap();
        assert_eq!(hostpath.name, "Writable hostPath mount");
        assert_eq!(hostpath.tactics.len(), 3);
        let valid = catalog.get("t1078").unwrap();
        assert_eq!(valid.name, "Valid Accounts");
    }

    #[test]
    fn enterprise_technique_used_by_rules_has_its_real_name() {
        let catalog = Catalog::embedded();
        let t = catalog.get("T1552.005").unwrap();
        assert_eq!(t.name, "Cloud Instance Metadata API");
        assert!(!t.containers_platform);
    }

    #[test]
    fn unknown_id_is_an_error() {
        let catalog = Catalog::embedded();
        assert_eq!(catalog.get("T9999"), Err(UnknownTechnique("T9999".into())));
    }
}
