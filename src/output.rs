//! Rendering findings and rule listings for people (tables) and machines (JSON, NDJSON).

use std::io::Write;

use anyhow::Context;
use audithound_models::{Finding, Severity};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::Format;

/// Writes findings in the chosen format.
pub fn write_findings(
    out: &mut impl Write,
    findings: &[Finding],
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Ndjson => {
            for f in findings {
                serde_json::to_writer(&mut *out, f).context("writing findings")?;
                out.write_all(b"\n").context("writing findings")?;
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, findings).context("writing findings")?;
            out.write_all(b"\n").context("writing findings")?;
        }
        Format::Table => {
            if findings.is_empty() {
                writeln!(out, "No findings.").context("writing findings")?;
                return Ok(());
            }
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header([
                "time (UTC)",
                "severity",
                "rule",
                "who",
                "what",
                "count",
                "techniques",
            ]);
            for f in findings {
                let techniques: Vec<&str> = f.techniques.iter().map(|t| t.id.as_str()).collect();
                table.add_row([
                    f.first_seen.format("%Y-%m-%d %H:%M:%S").to_string(),
                    f.severity.to_string(),
                    f.rule_id.clone(),
                    format!(
                        "{}{}",
                        f.user.as_deref().unwrap_or("-"),
                        f.source_ip
                            .as_deref()
                            .map(|ip| format!("\n{ip}"))
                            .unwrap_or_default()
                    ),
                    f.explanation.clone(),
                    f.count.to_string(),
                    techniques.join(" "),
                ]);
            }
            writeln!(out, "{table}").context("writing findings")?;
        }
    }
    Ok(())
}

/// `critical 1, high 3, medium 0, low 2, info 0`.
pub fn severity_summary(findings: &[Finding]) -> String {
    Severity::ALL
        .iter()
        .rev()
        .map(|s| {
            format!(
                "{s} {}",
                findings.iter().filter(|f| f.severity == *s).count()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
