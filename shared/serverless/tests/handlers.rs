//! The four handlers on the embedded store (no moto, no AWS): each gets the Lambda event
//! its trigger sends, built from the sample events in `events/` with the real messages'
//! ids, receipts and bodies, and acts through the same ports as in Lambda. The moto tests
//! (`tests/aws_pipeline.rs`) run the same handlers on the AWS adapters.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_engine::Context;
use stratus_ports::{LocalBlobStore, Received, TaskQueue, TaskState};
use stratus_serverless::{Deployment, EmbeddedPorts, ServerlessError};
use stratus_synth::{Granule, SynthSpec};

/// The run file's key and bucket in `events/s3-run-file-created.json`.
const RUN_FILE: &str = "s3://stratus-dev-outputs/runs/gm-s2-2023.yaml";

struct Local {
    dep: Deployment,
    ctx: Context,
    _dir: tempfile::TempDir,
}

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Synthetic scenes, a run file where the sample S3 event says it is, and the functions'
/// deployment on the embedded store.
fn setup(run_id: &str, year: i32) -> Local {
    setup_with(run_id, year, "")
}

/// The same, with `extra` appended to the run file.
fn setup_with(run_id: &str, year: i32, extra: &str) -> Local {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let spec = SynthSpec {
        year,
        dates: 3,
        resolution: 240.0,
        granule_km: 40.0,
        truth: false,
        granules: vec![Granule {
            region_code: "35LKE".into(),
            epsg: 32735,
            centre_lon: 24.12,
            centre_lat: -14.83,
            day_offset: 0,
        }],
        ..SynthSpec::default()
    };
    stratus_synth::generate(&spec, &inputs, &|_, _| {}).unwrap();
    let location = dir.path().join("products");
    let bucket: PathBuf = dir.path().join("bucket");
    let run_file = format!(
        "run_id: {run_id}\ninputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: {year}--P1Y\nfrequency: annual\n\
         plugin: pq\nproduct: {{name: t_pq, version: 1.0.0}}\nlocation: '{}'\nchunk_size: 64\n{extra}",
        inputs.join("catalog.json").display(),
        location.display()
    );
    std::fs::create_dir_all(bucket.join("runs")).unwrap();
    std::fs::write(bucket.join("runs/gm-s2-2023.yaml"), run_file).unwrap();
    let ctx = Context::embedded(location.to_str().unwrap(), None).unwrap();
    let objects = Arc::new(LocalBlobStore::new(&bucket).unwrap());
    let dep = Deployment {
        ports: Arc::new(EmbeddedPorts { ctx: ctx.clone(), objects }),
        table: "embedded".into(),
        task_queue: "tasks".into(),
        container_queue: "container-tasks".into(),
        dispatch_queue: "dispatch".into(),
        completion_queue: "completion".into(),
        scheduled_run_file: Some(RUN_FILE.into()),
        page_size: 2,
        deadline_margin: Duration::from_secs(30),
    };
    Local { dep, ctx, _dir: dir }
}

/// The SQS event Lambda would deliver for `msgs`: the sample's record with each message's
/// id, receipt, body and receive count.
fn sqs_event(template: &str, msgs: &[Received]) -> Value {
    let prototype = sample(template)["Records"][0].clone();
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let mut r = prototype.clone();
            r["messageId"] = json!(m.message_id);
            r["receiptHandle"] = json!(m.receipt);
            r["body"] = json!(m.body);
            r["attributes"]["ApproximateReceiveCount"] = json!(m.receive_count.to_string());
            r
        })
        .collect();
    json!({ "Records": records })
}

fn queue(l: &Local, url: &str) -> Arc<dyn TaskQueue> {
    l.dep.ports.queue(url).unwrap()
}

/// Deliver up to `max` messages from `url` as Lambda's event source mapping does: the
/// handler gets the event; records it does not report as failed are deleted. Returns the
/// number delivered and the ids reported as failed.
fn deliver(
    l: &Local,
    url: &str,
    template: &str,
    max: usize,
    handler: &dyn Fn(&Value) -> Value,
) -> (usize, Vec<String>) {
    let q = queue(l, url);
    let msgs = q.receive(max, Duration::from_secs(60), Duration::ZERO).unwrap();
    if msgs.is_empty() {
        return (0, vec![]);
    }
    let response = handler(&sqs_event(template, &msgs));
    let failed: Vec<String> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    for m in msgs.iter().filter(|m| !failed.contains(&m.message_id)) {
        q.delete(&m.receipt).unwrap();
    }
    (msgs.len(), failed)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

fn dispatcher(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| serde_json::to_value(stratus_serverless::dispatcher::handle(dep, e).unwrap()).unwrap()
}
fn worker(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| serde_json::to_value(stratus_serverless::worker::handle(dep, e, deadline()).unwrap()).unwrap()
}
fn mosaic(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| serde_json::to_value(stratus_serverless::mosaic::handle(dep, e).unwrap()).unwrap()
}

#[test]
fn a_run_file_event_is_planned_dispatched_processed_and_mosaicked_once() {
    let l = setup("handlers-pq", 2021);
    let out = stratus_serverless::planner::handle(&l.dep, &sample("s3-run-file-created.json"), deadline()).unwrap();
    let planned = &out["planned"][0];
    assert_eq!(planned["run_id"], "handlers-pq", "{out}");
    assert_eq!(planned["source"], RUN_FILE);
    let tasks = planned["tasks"].as_u64().unwrap() as usize;
    assert!(tasks >= 2, "{out}");
    assert_eq!(planned["pages"].as_u64().unwrap() as usize, tasks.div_ceil(2), "pages of 2 tasks");

    // Every page dispatched once: each task's message on the task queue.
    while deliver(&l, "dispatch", "sqs-fan-out-page.json", 10, &dispatcher(&l.dep)).0 > 0 {}
    assert_eq!(queue(&l, "tasks").depth().unwrap().visible as usize, tasks);

    // Workers in batches of 3, as the sample event: every task done, nothing kept.
    loop {
        let (n, failed) = deliver(&l, "tasks", "sqs-task-batch-3.json", 3, &worker(&l.dep));
        assert!(failed.is_empty(), "{failed:?}");
        if n == 0 {
            break;
        }
    }
    let run = l.ctx.ledger.run("handlers-pq").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (tasks, 1), "{:?}", run.counts);
    let items = l.ctx.output.list("t_pq/").unwrap().into_iter().filter(|k| k.ends_with(".stac-item.json")).count();
    assert_eq!(items, tasks);

    // One completion message; the mosaic and report follow from it, once.
    let completion = queue(&l, "completion");
    assert_eq!(completion.depth().unwrap().visible, 1);
    let msgs = completion.receive(1, Duration::from_secs(60), Duration::ZERO).unwrap();
    let event = sqs_event("sqs-completion.json", &msgs);
    let response = mosaic(&l.dep)(&event);
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let report = "t_pq/1.0.0/_runs/handlers-pq/report.html";
    assert!(l.ctx.output.head(report).unwrap().is_some(), "no {report}");
    let first = l.ctx.output.head(report).unwrap().unwrap();
    // The same completion again (SQS delivers at least once) is acknowledged, not redone.
    std::thread::sleep(Duration::from_millis(1100));
    let again = mosaic(&l.dep)(&event);
    assert_eq!(again["batchItemFailures"], json!([]), "{again}");
    assert_eq!(l.ctx.output.head(report).unwrap().unwrap(), first, "the report was rewritten by a duplicate");
}

#[test]
fn a_scheduled_event_plans_the_period_that_just_ended() {
    let l = setup("handlers-scheduled", 2026);
    // The sample schedule fires at 2027-01-01T02:00Z: the annual run file plans 2026.
    let out = stratus_serverless::planner::handle(&l.dep, &sample("eventbridge-scheduled.json"), deadline()).unwrap();
    let run_id = out["planned"][0]["run_id"].as_str().unwrap().to_string();
    let run = l.ctx.ledger.run(&run_id).unwrap().unwrap_or_else(|| panic!("{out}"));
    let cfg = stratus_engine::config::RunRecordExt::run_config(&run).unwrap();
    assert_eq!(cfg.temporal_range.as_deref(), Some("2026--P1Y"), "{out}");
    assert!(out["planned"][0]["tasks"].as_u64().unwrap() > 0, "{out}");
}

#[test]
fn a_bad_record_stays_in_the_queue_and_the_good_ones_in_its_batch_are_processed() {
    let l = setup("handlers-bad", 2021);
    stratus_serverless::planner::handle(&l.dep, &sample("s3-run-file-created.json"), deadline()).unwrap();
    while deliver(&l, "dispatch", "sqs-fan-out-page.json", 10, &dispatcher(&l.dep)).0 > 0 {}
    let tasks = queue(&l, "tasks");
    tasks.send_batch(&["{not json".to_string()]).unwrap();
    let msgs = tasks.receive(10, Duration::from_secs(60), Duration::ZERO).unwrap();
    let bad = msgs.iter().find(|m| m.body == "{not json").unwrap().message_id.clone();
    let response = worker(&l.dep)(&sqs_event("sqs-task-batch-3.json", &msgs));
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec![bad.as_str()], "{response}");
    let done = l.ctx.ledger.tasks("handlers-bad", Some(TaskState::Done)).unwrap().len();
    assert_eq!(done, msgs.len() - 1, "the batch's good records are processed");
}

#[test]
fn the_sample_task_event_for_a_run_that_is_not_here_is_kept_for_redelivery() {
    let l = setup("handlers-unknown", 2021);
    // events/sqs-task-batch-1.json names a run this store does not hold.
    let response = worker(&l.dep)(&sample("sqs-task-batch-1.json"));
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"], "059f36b4-87a3-44ab-83d2-661975830a7d",
        "{response}"
    );
}

#[test]
fn a_function_without_its_settings_names_the_missing_variable() {
    let mut l = setup("handlers-unset", 2021);
    l.dep.task_queue.clear();
    let err = stratus_serverless::worker::handle(&l.dep, &sample("sqs-task-batch-1.json"), deadline()).unwrap_err();
    assert!(matches!(&err, ServerlessError::Unset { env } if env == "STRATUS_TASK_QUEUE_URL"), "{err}");
    let err = stratus_serverless::planner::handle(&l.dep, &json!({"Records": "nope"}), deadline()).unwrap_err();
    assert!(matches!(err, ServerlessError::Event(_)), "{err}");
}

#[test]
fn split_tiles_run_as_parts_and_each_tile_is_assembled_once_from_the_queue() {
    // Tiles of 100 pixels in chunks of 64: 2 x 2 parts each.
    let l = setup_with("handlers-split", 2021, "lambda: {parts: 2}\n");
    let out = stratus_serverless::planner::handle(&l.dep, &sample("s3-run-file-created.json"), deadline()).unwrap();
    let tasks = out["planned"][0]["tasks"].as_u64().unwrap() as usize;
    let all = l.ctx.ledger.tasks("handlers-split", None).unwrap();
    let tiles: Vec<_> = all.iter().filter(|t| !t.task_id.contains("/part-")).collect();
    assert_eq!(all.len(), tiles.len() * 5, "4 parts and the tile, for each of {} tiles", tiles.len());
    assert_eq!(tasks, tiles.len());
    while deliver(&l, "dispatch", "sqs-fan-out-page.json", 10, &dispatcher(&l.dep)).0 > 0 {}
    // Only the parts are sent; each tile's message follows its last part.
    assert_eq!(queue(&l, "tasks").depth().unwrap().visible as usize, tiles.len() * 4);
    let mut delivered = 0;
    loop {
        let (n, failed) = deliver(&l, "tasks", "sqs-task-batch-3.json", 3, &worker(&l.dep));
        assert!(failed.is_empty(), "{failed:?}");
        if n == 0 {
            break;
        }
        delivered += n;
    }
    assert_eq!(delivered, tiles.len() * 5, "every part once, then every tile once");
    let run = l.ctx.ledger.run("handlers-split").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (all.len(), 1), "{:?}", run.counts);
    let items = l.ctx.output.list("t_pq/").unwrap().into_iter().filter(|k| k.ends_with(".stac-item.json")).count();
    assert_eq!(items, tiles.len(), "one STAC item per tile, none per part");
    assert!(l.ctx.output.list("t_pq/1.0.0/_runs/handlers-split/parts").unwrap().is_empty(), "scratch parts removed");
    assert_eq!(queue(&l, "completion").depth().unwrap().visible, 1);
}
