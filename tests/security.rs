//! The security rules end to end, through the `stratus` CLI as an operator runs it:
//! outputs confined to the allowed prefix, inputs only from the allow-list (refused by the
//! planner, and again by the worker for a plan made without the list), and no signed URL
//! or key in the ledger, reports or logs. The unit tests of `access_policy` and `redact`
//! cover the rules case by case; these check they are applied where it matters.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use stratus_ports::{Ledger, SqliteLedger, TaskState};

fn stratus(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env_remove("STRATUS_ALLOWED_OUTPUTS")
        .env_remove("STRATUS_ALLOWED_INPUTS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn synth(dir: &Path) -> PathBuf {
    stratus_synth::generate(&support::small_scenes(2), &dir.join("inputs"), &|_, _| {}).unwrap().catalog
}

/// `save-tasks` of `input` into `location`, product `product`, with `env`.
fn plan(input: &Path, location: &str, product: &str, env: &[(&str, &str)]) -> Output {
    stratus(
        &[
            "save-tasks",
            "--input",
            input.to_str().unwrap(),
            "--grid",
            "epsg:6933;240;100",
            "--year",
            "2021",
            "--plugin",
            "pq",
            "--product-name",
            product,
            "--run-id",
            "s",
            "--chunk-size",
            "64",
            "--location",
            location,
        ],
        env,
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn outputs_outside_the_allowed_prefix_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path());
    let allowed = dir.path().join("allowed");
    let elsewhere = dir.path().join("elsewhere");
    let env = [("STRATUS_ALLOWED_OUTPUTS", allowed.to_str().unwrap())];
    for (location, says) in [
        (elsewhere.display().to_string(), "STRATUS_ALLOWED_OUTPUTS"),
        (format!("{}/../elsewhere", allowed.display()), "'..'"),
        (format!("{}/%2e%2e/elsewhere", allowed.display()), "percent-encoded"),
        ("s3://another-bucket/products".to_string(), "STRATUS_ALLOWED_OUTPUTS"),
        ("/vsimem/products".to_string(), "GDAL virtual"),
    ] {
        let o = plan(&catalog, &location, "s_pq", &env);
        let out = text(&o);
        assert!(!o.status.success(), "{location} was accepted:\n{out}");
        assert!(out.contains("refused") && out.contains(says), "{location}: the error should say '{says}':\n{out}");
    }
    // A product name or version is a path segment: no separators, no '..'.
    for product in ["../escape", "a/b", "ok%2f..", ".hidden"] {
        let o = plan(&catalog, allowed.to_str().unwrap(), product, &env);
        assert!(!o.status.success(), "product {product} was accepted");
        assert!(text(&o).contains("plain name"), "{}", text(&o));
    }
    assert!(!elsewhere.exists(), "a refused run wrote outside the allowed prefix");
    assert!(files(&allowed).is_empty(), "a refused run left files: {:?}", files(&allowed));
    // Inside the prefix it plans.
    let o = plan(&catalog, &allowed.join("products").display().to_string(), "s_pq", &env);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn inputs_outside_the_allow_list_are_refused_by_the_planner_and_again_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path());
    let other = dir.path().join("other-inputs");
    let env = [("STRATUS_ALLOWED_INPUTS", other.to_str().unwrap())];
    let out = dir.path().join("out");
    let o = plan(&catalog, out.to_str().unwrap(), "s_pq", &env);
    assert!(!o.status.success(), "a source outside the allow-list was planned");
    assert!(text(&o).contains("refused") && text(&o).contains("STRATUS_ALLOWED_INPUTS"), "{}", text(&o));

    // A plan made without the list (or tampered with in the ledger) meets the worker's check.
    let o = plan(&catalog, out.to_str().unwrap(), "s_pq", &[]);
    assert!(o.status.success(), "{}", text(&o));
    stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("s", None).unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        assert_eq!((t.state, t.attempts), (TaskState::Failed, 1), "refusals are not retried: {t:?}");
        let why = t.error.unwrap_or_default();
        assert!(why.contains("refused") && why.contains("dataset '"), "{why}");
    }
    assert!(
        files(&out.join("s_pq")).iter().all(|p| !p.to_string_lossy().ends_with(".tif")),
        "refused tiles wrote bands"
    );
}

#[test]
fn signed_urls_and_keys_never_reach_the_ledger_the_report_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    // One real item, its assets moved to signed URLs on a port nobody listens on.
    let item_path = files(&dir.path().join("inputs"))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "json") && std::fs::read_to_string(p).unwrap().contains("\"Feature\"")
        })
        .expect("a synthetic item");
    let mut item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&item_path).unwrap()).unwrap();
    for (key, asset) in item["assets"].as_object_mut().unwrap() {
        asset["href"] = format!(
            "https://127.0.0.1:9/cogs/{key}.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261122&X-Amz-Signature=SECRETSIGNATURE"
        )
        .into();
    }
    let signed = dir.path().join("signed.json");
    std::fs::write(&signed, item.to_string()).unwrap();
    let out = dir.path().join("out");
    let o = plan(&signed, out.to_str().unwrap(), "s_pq", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let run = stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &[("RUST_LOG", "debug")]);
    let logs = text(&run);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("s", None).unwrap();
    assert!(tasks.iter().all(|t| t.state != TaskState::Done), "unreachable inputs cannot make a tile");
    let errors: Vec<String> = tasks.iter().filter_map(|t| t.error.clone()).collect();
    assert!(errors.iter().any(|e| e.contains("127.0.0.1:9")), "the reason names the input: {errors:?}");
    let mut places = vec![("logs".to_string(), logs), ("ledger errors".to_string(), errors.join("\n"))];
    for f in files(&out) {
        // The ledger's store holds the plan's inputs as given (the worker must read them);
        // everything written for people (reports, STAC, plan files) must not.
        if !f.starts_with(out.join("_stratus")) {
            places.push((f.display().to_string(), String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned()));
        }
    }
    for (place, content) in places {
        for secret in ["SECRETSIGNATURE", "AKIAIOSFODNN7EXAMPLE"] {
            assert!(!content.contains(secret), "{secret} leaked into {place}");
        }
    }
}
