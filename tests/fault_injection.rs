//! The pipeline under injected faults: `scripts/fault_proxy.py` between the `stratus` CLI
//! (the AWS SDK clients and GDAL's `/vsis3/` reads) and moto, failing requests with 500s,
//! 503 SlowDown, silent timeouts, connections dropped after the request took effect, and
//! truncated bodies.
//!
//! - At a 5% fault rate a full run (plan, publish, workers) completes once, and every
//!   output band is byte for byte the same as a fault-free run's; the retries are in the
//!   logs.
//! - With every request for one input failing, exactly the tiles that read it fail, each
//!   with a reason that names it, and every other tile is done.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use stratus_aws::{DynamoLedger, S3BlobStore};
use stratus_ports::{BlobStore, Ledger, TaskState};
use stratus_testkit::stack::{create_stack, Stack, StackSpec};
use support::fault_proxy::FaultProxy;

/// Seconds a received task message stays invisible (also the task lease).
const VISIBILITY_S: &str = "8";

struct Setup {
    stack: Stack,
    bucket: S3BlobStore,
    ledger: DynamoLedger,
    run_file: String,
    _dir: tempfile::TempDir,
}

fn setup(prefix: &str, max_receives: u32) -> Setup {
    support::moto::moto();
    let aws = stratus_serverless::aws().unwrap();
    let stack = create_stack(&aws, &StackSpec { prefix: prefix.into(), max_receives, visibility_s: 8 }).unwrap();
    let bucket = S3BlobStore::open(aws.clone(), &format!("s3://{}", stack.bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_file = support::s3::inputs_and_run_file(&bucket, &stack.bucket, "RUN", "gm-s2", dir.path());
    let run_file = format!(
        "{run_file}plugin_config: {{bands: [B02, B03, B04, B08, B11, B12]}}\njob_queue_max_lease: 8\nrenew_safety_margin: 3\n"
    );
    Setup { ledger: DynamoLedger::new(aws, &stack.table, None), stack, bucket, run_file, _dir: dir }
}

/// Plan, publish and work run `run_id` (outputs under `products-{run_id}`) with every AWS
/// and GDAL request going to `endpoint`; the workers' logs.
fn run_pipeline(s: &Setup, endpoint: &str, run_id: &str) -> String {
    let location = format!("s3://{}/products-{run_id}", s.stack.bucket);
    let text = s
        .run_file
        .replace("run_id: RUN", &format!("run_id: {run_id}"))
        .replace(&format!("s3://{}/products'", s.stack.bucket), &format!("{location}'"));
    let file = s._dir.path().join(format!("{run_id}.yaml"));
    std::fs::write(&file, text).unwrap();
    let stratus = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(args)
            .env("STRATUS_AWS_ENDPOINT", endpoint)
            // A silent connection is abandoned after 3 s (the proxy holds it 6 s).
            .env("STRATUS_AWS_ATTEMPT_TIMEOUT_S", "3")
            .env("GDAL_HTTP_TIMEOUT", "3")
            .env("GDAL_HTTP_RETRY_DELAY", "0.2")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let table = s.stack.table.as_str();
    let (ok, log) = stratus(&["save-tasks", "--config", file.to_str().unwrap(), "--table", table]);
    assert!(ok, "planning {run_id}:\n{log}");
    let mut logs = log;
    let (ok, log) =
        stratus(&["publish-tasks", run_id, "--queue", &s.stack.task_queue, "--location", &location, "--table", table]);
    assert!(ok, "publishing {run_id}:\n{log}");
    logs.push_str(&log);
    // Workers until the queue stays empty (failed attempts come back after the visibility).
    let (_, log) = stratus(&[
        "worker",
        "--from-sqs",
        &s.stack.task_queue,
        "--location",
        &location,
        "--table",
        table,
        "--visibility",
        VISIBILITY_S,
        "--idle-exit",
        "20",
    ]);
    logs.push_str(&log);
    logs
}

/// Every output band of a run: relative key -> bytes.
fn bands(s: &Setup, run_id: &str) -> Vec<(String, Vec<u8>)> {
    let prefix = format!("products-{run_id}/");
    s.bucket
        .list(&prefix)
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".tif") && !k.contains("/_"))
        .map(|k| (k[prefix.len()..].to_string(), s.bucket.get(&k).unwrap()))
        .collect()
}

#[test]
fn a_full_run_under_five_percent_faults_is_bit_identical_to_a_fault_free_run() {
    let s = setup("faults", 5);
    let moto = &support::moto::moto().endpoint;
    run_pipeline(&s, moto, "clean");
    let clean = s.ledger.run("clean").unwrap().unwrap();
    assert_eq!((clean.counts.done, clean.completions), (clean.counts.total, 1), "{:?}", clean.counts);

    let proxy = FaultProxy::start(moto, &["--rate", "0.05", "--seed", "11", "--hold-s", "6"]);
    let logs = run_pipeline(&s, &proxy.endpoint, "faulty");
    let stats = proxy.stats();
    eprintln!("fault proxy: {stats}");
    let faulty = s.ledger.run("faulty").unwrap().unwrap();
    assert_eq!(
        (faulty.counts.done, faulty.completions),
        (faulty.counts.total, 1),
        "every tile done, the completion fired once: {:?}\n{logs}",
        faulty.counts
    );
    let injected: u64 = stats["faults"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(injected >= 10, "too few faults injected to mean anything: {stats}");
    let kinds = stats["faults"].as_object().unwrap().values().filter(|v| v.as_u64().unwrap() > 0).count();
    assert!(kinds >= 4, "most fault kinds should have been injected: {stats}");
    // The retries are in the logs: the SDK's attempts, GDAL's own, and ours around reads.
    let count = |what: &str| logs.matches(what).count();
    eprintln!(
        "retries logged: {} AWS attempts, {} GDAL retries, {} input re-reads",
        count("AWS request attempt failed"),
        count("GDAL retry"),
        count("input read failed")
    );
    assert!(
        logs.contains("AWS request attempt failed")
            || logs.contains("GDAL retry")
            || logs.contains("input read failed"),
        "no retry in the logs:\n{logs}"
    );

    let (a, b) = (bands(&s, "clean"), bands(&s, "faulty"));
    assert!(!a.is_empty());
    assert_eq!(
        a.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        b.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "the same bands"
    );
    for ((key, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{key} differs between the fault-free and the faulty run");
    }
}

#[test]
fn an_input_that_always_fails_fails_only_the_tiles_that_read_it_naming_it() {
    let s = setup("poison", 2);
    let moto = &support::moto::moto().endpoint;
    // One date of the eastern granule (35LKE): it covers some tiles, not all.
    let inputs = s.bucket.list("inputs/").unwrap();
    let poisoned = inputs
        .iter()
        .find(|k| k.contains("35LKE") && k.ends_with(".tif") && k.contains("B04"))
        .unwrap_or_else(|| panic!("no 35LKE B04 input among {inputs:?}"))
        .clone();
    let proxy = FaultProxy::start(
        moto,
        &["--rate", "0", "--target", &poisoned, "--target-rate", "1", "--target-kinds", "500,503,drop,truncate"],
    );
    let logs = run_pipeline(&s, &proxy.endpoint, "poisoned");
    let tasks = s.ledger.tasks("poisoned", None).unwrap();
    let reads_it = |task: &str| {
        let payload = s.ledger.payload("poisoned", task).unwrap();
        payload["datasets"].as_array().unwrap().iter().any(|d| d.to_string().contains(&poisoned))
    };
    let expected: BTreeSet<String> = tasks.iter().filter(|t| reads_it(&t.task_id)).map(|t| t.task_id.clone()).collect();
    assert!(!expected.is_empty() && expected.len() < tasks.len(), "the input should touch some tiles, not all");
    for t in &tasks {
        if expected.contains(&t.task_id) {
            assert_eq!(t.state, TaskState::Failed, "{} reads the failing input:\n{logs}", t.task_id);
            let why = t.error.clone().unwrap_or_default();
            assert!(why.contains(&poisoned), "the reason should name the input {poisoned}: {why}");
        } else {
            assert_eq!(
                t.state,
                TaskState::Done,
                "{} does not read the failing input: {:?}\n{logs}",
                t.task_id,
                t.error
            );
        }
    }
    assert!(proxy.stats()["by_path_faults"].as_u64().unwrap() > 0);
}
