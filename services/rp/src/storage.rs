//! `rp storage`: what the database occupies, table by table and per owner, and the two figures
//! of docs/storage.md: projections ÷ event log, and growth since an earlier measurement.

use crate::Failure;
use crate::output::Output;
use rp_platform::config::PlatformConfig;
use rp_platform::storage::{self, Owner, StorageReport, mb};
use std::path::{Path, PathBuf};

/// The goals of docs/storage.md.
pub const GOAL_PROJECTIONS_PER_LOG: f64 = 3.0;
pub const GOAL_GROWTH: f64 = 1.3;

pub async fn show(
    config: &PlatformConfig,
    out: &Output,
    save: Option<PathBuf>,
    baseline: Option<PathBuf>,
) -> Result<(), Failure> {
    // Read the baseline first: a wrong path is the caller's mistake, found before any I/O.
    let before = match &baseline {
        Some(p) => Some(read_baseline(p)?),
        None => None,
    };
    let pool = rp_platform::db::connect(&config.database_url, 1)
        .await
        .map_err(Failure::infra)?;
    let report = storage::measure(&pool).await.map_err(Failure::infra)?;
    if report.tables.is_empty() {
        return Err(Failure::not_found(
            "no tables in the database's schema: run `rp migrate` (and start the services) first",
        ));
    }
    print(out, &report, before.as_ref());
    if let Some(p) = save {
        let json = serde_json::to_string_pretty(&report).map_err(Failure::infra)?;
        std::fs::write(&p, json)
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", p.display())))?;
        if !out.json() {
            println!("saved to {} (compare later with --baseline)", p.display());
        }
    }
    Ok(())
}

fn read_baseline(p: &Path) -> Result<StorageReport, Failure> {
    let raw = std::fs::read_to_string(p)
        .map_err(|e| Failure::usage(format!("cannot read the baseline {}: {e}", p.display())))?;
    serde_json::from_str(&raw).map_err(|e| {
        Failure::usage(format!(
            "{} is not a measurement saved by `rp storage --save`: {e}",
            p.display()
        ))
    })
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}"))
}

/// The per-table rows, the owners' totals and the ratios.
pub fn print(out: &Output, report: &StorageReport, before: Option<&StorageReport>) {
    let mut rows = Vec::new();
    for owner in Owner::ALL {
        for t in report.tables.iter().filter(|t| t.owner == owner) {
            let mut row = vec![
                owner.name().to_string(),
                t.table.clone(),
                t.rows.to_string(),
                t.dead_rows.to_string(),
            ];
            if out.json() {
                row.extend([t.heap, t.toast, t.indexes, t.total].map(|b| b.to_string()));
            } else {
                row.extend([t.heap, t.toast, t.indexes, t.total].map(mb));
            }
            if let Some(b) = before {
                let was = b.table(&t.table).map_or(0, |x| x.total);
                row.push(if out.json() { was.to_string() } else { mb(was) });
            }
            rows.push(row);
        }
    }
    let mut headers = vec![
        "OWNER", "TABLE", "ROWS", "DEAD", "HEAP", "TOAST", "INDEXES", "TOTAL",
    ];
    if before.is_some() {
        headers.push("BEFORE");
    }
    out.table(&headers, &rows);

    let per_log = report.projections_per_log();
    let growth = before.and_then(|b| report.growth_since(b));
    if out.json() {
        let mut m = serde_json::Map::new();
        m.insert("result".into(), "storage".into());
        for owner in Owner::ALL {
            m.insert(
                owner.name().replace(' ', "_"),
                report.owner_total(owner).into(),
            );
        }
        m.insert("projections".into(), report.projections().into());
        m.insert("total".into(), report.total().into());
        m.insert("projections_per_log".into(), per_log.into());
        m.insert("rest_per_log".into(), report.rest_per_log().into());
        if let Some(b) = before {
            m.insert("baseline_total".into(), b.total().into());
            m.insert("growth".into(), growth.into());
        }
        println!("{}", serde_json::Value::Object(m));
        return;
    }
    println!();
    for owner in Owner::ALL {
        let now = report.owner_total(owner);
        match before {
            Some(b) => println!(
                "{:<13} {:>10}  (was {})",
                owner.name(),
                mb(now),
                mb(b.owner_total(owner))
            ),
            None => println!("{:<13} {:>10}", owner.name(), mb(now)),
        }
    }
    println!("{:<13} {:>10}", "total", mb(report.total()));
    println!(
        "projections ÷ event log: {} (goal ≤ {GOAL_PROJECTIONS_PER_LOG}); everything but the log ÷ event log: {}",
        ratio(per_log),
        ratio(report.rest_per_log())
    );
    if let Some(b) = before {
        println!(
            "total now ÷ baseline: {} (goal ≤ {GOAL_GROWTH} after 30 days of daily syncs; baseline {})",
            ratio(growth),
            mb(b.total())
        );
    }
}
