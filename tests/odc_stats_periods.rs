//! Periods against odc-stats itself: every day from late 2018 to early 2022, binned by each
//! of odc-stats' frequencies with and without temporal ranges, by odc-stats' own binning
//! functions (a pinned odc-stats in `.venv-odc-stats`, which `scripts/odc-stats-venv.sh
//! install` makes; `make test` runs it) and by ours. The task periods of every date must
//! be the same. Names are compared as periods: odc-stats writes some periods two ways
//! (`2019-07--P1Y` for annual-fy, `2019-07-01--P2Y` for `all` over a range from July),
//! ours one way, and both parse to the same period.

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use stratus_core::binning::temporal_bins;
use stratus_core::period::whole_years;
use stratus_core::{Frequency, Period};

const FREQUENCIES: [&str; 10] = [
    "annual",
    "annual-fy",
    "semiannual",
    "seasonal",
    "quartely",
    "3month-seasons",
    "rolling-3months",
    "nov-mar",
    "apr-oct",
    "all",
];

/// Ranges as run files give them: none, whole years, a mid-year start, a range ending
/// mid-year, and one starting mid-month.
const RANGES: [Option<&str>; 5] =
    [None, Some("2020--P1Y"), Some("2019-07--P2Y"), Some("2020-03--P9M"), Some("2020-01-15--P6M")];

fn odc_stats_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-odc-stats/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/odc-stats-venv.sh install` (make test does) to install the pinned odc-stats",
        python.display()
    );
    python
}

/// odc-stats' periods of each date, per case.
fn theirs(cases: &[Value]) -> Vec<BTreeMap<String, Vec<String>>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(odc_stats_python())
        .arg(root.join("scripts/parity/odc_stats_periods.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the odc-stats venv's python runs");
    child.stdin.take().unwrap().write_all(serde_json::to_string(cases).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "odc-stats binning failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Ours: the planner's rule (`temporal_bins`), with `all` without a range spanning the
/// data's whole years, as the planner names it once the data is read.
fn ours(frequency: &str, range: Option<&str>, dates: &[NaiveDate]) -> BTreeMap<String, Vec<String>> {
    let f: Frequency = frequency.parse().unwrap();
    let range: Option<Period> = range.map(|r| r.parse().unwrap());
    let all = range.or_else(|| Some(whole_years(*dates.first().unwrap(), *dates.last().unwrap())));
    dates
        .iter()
        .map(|d| {
            let mut labels: Vec<String> =
                temporal_bins(f, *d, range, all).iter().map(|p| canonical(frequency, p)).collect();
            labels.sort();
            (d.to_string(), labels)
        })
        .collect()
}

/// A period's name for comparing. odc-stats names a rolling window by its start month
/// only (`2020-01--P3M` for the window from 15 January), which does not parse back to the
/// window; ours keeps the day (`2020-01-15--P3M`). Rolling windows are compared by
/// odc-stats' name, the others by our canonical one.
fn canonical(frequency: &str, p: &Period) -> String {
    let label = p.label();
    match label.split_once("--") {
        Some((start, dur)) if frequency == "rolling-3months" && start.len() == 10 => format!("{}--{dur}", &start[..7]),
        _ => label,
    }
}

/// odc-stats' name of a period as ours (see [`canonical`]).
fn canonical_theirs(frequency: &str, label: &str) -> String {
    if frequency == "rolling-3months" {
        return label.to_string();
    }
    let p: Period = label.parse().unwrap_or_else(|e| panic!("odc-stats' period '{label}': {e}"));
    canonical(frequency, &p)
}

#[test]
fn every_date_falls_in_the_periods_odc_stats_gives_it() {
    let first = NaiveDate::from_ymd_opt(2018, 10, 1).unwrap();
    let dates: Vec<NaiveDate> = (0..1278).map(|i| first + Duration::days(i)).collect();
    let texts: Vec<String> = dates.iter().map(|d| d.to_string()).collect();
    let mut cases = Vec::new();
    for f in FREQUENCIES {
        for r in RANGES {
            // odc-stats needs a range for these (as we do).
            if r.is_none() && (f == "3month-seasons" || f == "rolling-3months") {
                continue;
            }
            cases.push(json!({"frequency": f, "temporal_range": r, "dates": texts}));
        }
    }
    let reference: Vec<BTreeMap<String, Vec<String>>> = theirs(&cases)
        .into_iter()
        .zip(&cases)
        .map(|(dates, case)| {
            let f = case["frequency"].as_str().unwrap();
            dates
                .into_iter()
                .map(|(d, labels)| {
                    let mut labels: Vec<String> = labels.iter().map(|l| canonical_theirs(f, l)).collect();
                    labels.sort();
                    (d, labels)
                })
                .collect()
        })
        .collect();
    let mut report = Vec::new();
    let mut binned = 0;
    for (case, want) in cases.iter().zip(&reference) {
        let (f, r) = (case["frequency"].as_str().unwrap(), case["temporal_range"].as_str());
        let got = ours(f, r, &dates);
        binned += want.values().filter(|v| !v.is_empty()).count();
        let differ: Vec<_> = want.iter().filter(|(d, w)| got.get(*d) != Some(*w)).collect();
        if !differ.is_empty() {
            let (d, w) = differ[0];
            report.push(format!(
                "{f} {r:?}: {} of {} dates differ, e.g. {d}: odc-stats {w:?}, ours {:?}",
                differ.len(),
                dates.len(),
                got[d]
            ));
        }
    }
    assert!(binned > 10_000, "{binned} dated bins compared");
    assert!(report.is_empty(), "periods differ from odc-stats':\n{}", report.join("\n"));
}
