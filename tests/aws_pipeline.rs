//! The serverless pipeline against a real AWS-protocol server (moto): synthetic inputs in
//! S3, the ledger in DynamoDB, the queues in SQS, driven through the real handler
//! functions with events shaped as Lambda delivers them. Lambda's SQS event source mapping
//! is played by `deliver`: receive a batch, hand it to the handler, delete the records it
//! did not report as failed.

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_aws::{Aws, DynamoLedger, S3BlobStore, SqsQueue};
use stratus_ports::ledger::ResetScope;
use stratus_ports::{BlobStore, Ledger, TaskQueue, TaskState};
use stratus_serverless::Deployment;
use stratus_testkit::stack::{create_stack, Stack, StackSpec};

/// Seconds a received message stays invisible in these tests (also the task lease).
const LEASE_S: u64 = 4;

fn aws() -> Arc<Aws> {
    support::moto::moto();
    stratus_serverless::aws().unwrap()
}

struct Env {
    stack: Stack,
    dep: Deployment,
    bucket: S3BlobStore,
    tasks: SqsQueue,
    container_tasks: SqsQueue,
    dispatch: SqsQueue,
    completion: SqsQueue,
    ledger: DynamoLedger,
    run_id: String,
    _dir: tempfile::TempDir,
}

/// A stack named `prefix`, synthetic inputs uploaded under `inputs/`, and a run file
/// uploaded under `runs/` (not yet planned).
fn setup(prefix: &str) -> Env {
    setup_with(prefix, "pq")
}

fn setup_with(prefix: &str, plugin: &str) -> Env {
    setup_run_file(prefix, plugin, "")
}

/// A stack and a run file (`extra` appended to it).
fn setup_run_file(prefix: &str, plugin: &str, extra: &str) -> Env {
    let aws = aws();
    let stack = create_stack(&aws, &StackSpec { prefix: prefix.into(), max_receives: 3, visibility_s: LEASE_S as u32 })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bucket = S3BlobStore::open(aws.clone(), &format!("s3://{}", stack.bucket)).unwrap();
    let run_id = format!("{prefix}-{plugin}");
    let run_file = support::s3::inputs_and_run_file(&bucket, &stack.bucket, &run_id, plugin, dir.path());
    let run_file = format!("{run_file}job_queue_max_lease: {LEASE_S}\nrenew_safety_margin: 2\n");
    let run_file = if plugin == "gm-s2" {
        // The synthetic scenes carry six of Sentinel-2's ten geomedian bands.
        format!("{run_file}plugin_config: {{bands: [B02, B03, B04, B08, B11, B12]}}\n")
    } else {
        run_file
    };
    bucket.put("runs/pq-2021.yaml", format!("{run_file}{extra}").as_bytes()).unwrap();
    let dep = Deployment {
        ports: Arc::new(stratus_serverless::AwsPorts),
        table: stack.table.clone(),
        task_queue: stack.task_queue.clone(),
        container_queue: stack.container_queue.clone(),
        dispatch_queue: stack.dispatch_queue.clone(),
        completion_queue: stack.completion_queue.clone(),
        scheduled_run_file: None,
        page_size: 3,
        deadline_margin: Duration::from_secs(30),
    };
    Env {
        tasks: SqsQueue::open(aws.clone(), &stack.task_queue).unwrap(),
        container_tasks: SqsQueue::open(aws.clone(), &stack.container_queue).unwrap(),
        dispatch: SqsQueue::open(aws.clone(), &stack.dispatch_queue).unwrap(),
        completion: SqsQueue::open(aws.clone(), &stack.completion_queue).unwrap(),
        ledger: DynamoLedger::new(aws.clone(), &stack.table, None),
        stack,
        dep,
        bucket,
        run_id,
        _dir: dir,
    }
}

/// Receive up to `max` messages as Lambda's event source mapping does, call `handler`
/// with the SQS event, delete the records it did not report. Returns the record count.
fn deliver(queue: &SqsQueue, max: usize, handler: &dyn Fn(&Value) -> Value) -> usize {
    let msgs = queue.receive(max, Duration::from_secs(LEASE_S), Duration::from_secs(1)).unwrap();
    if msgs.is_empty() {
        return 0;
    }
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt, "body": m.body,
                "attributes": {"ApproximateReceiveCount": m.receive_count.to_string(), "SentTimestamp": "1763780400000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1763780400001"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}", queue.name()), "awsRegion": "us-east-1"
            })
        })
        .collect();
    let response = handler(&json!({ "Records": records }));
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect())
        .unwrap_or_default();
    for m in &msgs {
        if !failed.contains(&m.message_id.as_str()) {
            queue.delete(&m.receipt).unwrap();
        }
    }
    msgs.len()
}

fn dispatcher(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| serde_json::to_value(stratus_serverless::dispatcher::handle(dep, e).unwrap()).unwrap()
}
fn worker(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| {
        let deadline = Instant::now() + Duration::from_secs(600);
        serde_json::to_value(stratus_serverless::worker::handle(dep, e, deadline).unwrap()).unwrap()
    }
}
fn mosaic(dep: &Deployment) -> impl Fn(&Value) -> Value + '_ {
    move |e| serde_json::to_value(stratus_serverless::mosaic::handle(dep, e).unwrap()).unwrap()
}

/// Deliver from `queue` until `done()` holds (or fail after `timeout`).
fn drain_until(queue: &SqsQueue, handler: &dyn Fn(&Value) -> Value, done: &dyn Fn() -> bool, timeout: Duration) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "queue {} did not reach the expected state in {timeout:?}", queue.name());
        deliver(queue, 3, handler);
    }
}

/// Deliver task messages to the worker handler until the run's counts satisfy `done`.
fn run_workers_until(env: &Env, done: &dyn Fn(&stratus_ports::RunCounts) -> bool) {
    let check = || done(&env.ledger.run(&env.run_id).unwrap().unwrap().counts);
    drain_until(&env.tasks, &worker(&env.dep), &check, Duration::from_secs(300));
}

fn plan_and_dispatch(env: &Env) -> usize {
    let event = support::s3::s3_notification(&env.stack.bucket, "runs/pq-2021.yaml");
    let out = stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    let tasks = out["planned"][0]["tasks"].as_u64().unwrap() as usize;
    assert!(tasks >= 4, "expected several tiles, planned {out}");
    assert_eq!(out["planned"][0]["pages"].as_u64().unwrap() as usize, tasks.div_ceil(3));
    // A duplicate notification plans nothing new and the dispatcher sends nothing twice.
    let again =
        stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    assert_eq!(again["planned"][0]["unchanged"], true);
    while deliver(&env.dispatch, 10, &dispatcher(&env.dep)) > 0 {}
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!(run.counts.queued as usize, tasks, "every task queued exactly once: {:?}", run.counts);
    let depth = env.tasks.depth().unwrap();
    assert_eq!(depth.visible as usize, tasks, "one message per task: {depth:?}");
    tasks
}

/// The completion messages waiting on the completion queue (left there for the mosaic).
fn completion_messages(env: &Env) -> Vec<Value> {
    let mut out = Vec::new();
    let mut receipts = Vec::new();
    loop {
        let got = env.completion.receive(10, Duration::from_secs(30), Duration::from_secs(1)).unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            out.push(serde_json::from_str(&m.body).unwrap());
            receipts.push(m.receipt);
        }
    }
    for r in receipts {
        env.completion.extend_visibility(&r, Duration::ZERO).unwrap();
    }
    out
}

#[test]
fn full_run_through_the_handlers_writes_every_tile_once_and_completes_once() {
    let env = setup("full");
    let tasks = plan_and_dispatch(&env);

    // A batch with a malformed body and an unknown task next to real ones: only the bad
    // records are reported; the others are processed.
    env.tasks
        .send_batch(&[
            "{not json".to_string(),
            json!({"run_id": env.run_id, "task_id": "x+099/y+099/2021--P1Y"}).to_string(),
        ])
        .unwrap();
    run_workers_until(&env, &|c| c.done as usize == tasks);
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.counts.failed, run.completions), (tasks, 0, 1), "{:?}", run.counts);

    // Every tile's bands and STAC item are in S3.
    for t in env.ledger.tasks(&env.run_id, None).unwrap() {
        let id: stratus_core::TaskId = t.task_id.parse().unwrap();
        let layout = stratus_engine::layout::Layout::new("t_pq", "1.0.0");
        let item = env.bucket.get(&format!("products/{}", layout.stac_key(&id))).unwrap();
        let item: Value = serde_json::from_slice(&item).unwrap();
        assert!(item["assets"]["clear"]["href"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{}/products/", env.stack.bucket)));
    }

    // Duplicate delivery of a done task: nothing is rewritten, counters unchanged, no
    // second completion.
    let first = env.ledger.tasks(&env.run_id, None).unwrap().remove(0);
    let body = json!({"run_id": env.run_id, "task_id": first.task_id}).to_string();
    env.tasks.send_batch(&[body.clone(), body]).unwrap();
    while deliver(&env.tasks, 10, &worker(&env.dep)) > 0 {}
    let after = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((after.counts.clone(), after.completions), (run.counts.clone(), 1));
    assert_eq!(env.ledger.task(&env.run_id, &first.task_id).unwrap().unwrap().attempts, first.attempts);

    // The two bad messages go to the dead-letter queue after their receives.
    let started = Instant::now();
    while env.tasks.depth().unwrap().dead_letter < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "malformed and unknown-task messages never dead-lettered");
        deliver(&env.tasks, 10, &worker(&env.dep));
    }
    assert_eq!(env.tasks.depth().unwrap().dead_letter, 2);

    // Exactly one completion message; the mosaic function builds the mosaic from it.
    let completions = completion_messages(&env);
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["run_id"], env.run_id.as_str());
    while deliver(&env.completion, 10, &mosaic(&env.dep)) > 0 {}
    let report: Value = serde_json::from_slice(
        &env.bucket.get(&format!("products/t_pq/1.0.0/_runs/{}/mosaic/mosaic.json", env.run_id)).unwrap(),
    )
    .unwrap();
    assert_eq!(report["bands"].as_array().unwrap().len(), 4, "{report}");
    let url = report["bands"][0]["url"].as_str().unwrap();
    let ds = gdal::Dataset::open(stratus_raster::paths::gdal_path(url)).unwrap();
    assert!(ds.raster_size().0 > 10, "mosaic {url} opens through /vsis3/");
    assert!(env.bucket.head(&format!("products/t_pq/1.0.0/_runs/{}/summary.json", env.run_id)).unwrap().is_some());
    // `status` finds the report where the run's own record puts it, whatever --location says.
    let status = support::stratus(
        &["status", &env.run_id, "--location", &format!("s3://{}", env.stack.bucket), "--table", &env.stack.table],
        &[],
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let report = format!("report: s3://{}/products/t_pq/1.0.0/_runs/{}/report.html", env.stack.bucket, env.run_id);
    assert!(text.contains(&report), "expected '{report}' in:\n{text}");
}

#[test]
fn poison_input_dead_letters_and_redrive_completes_the_run_again() {
    let env = setup("poison");
    let tasks = plan_and_dispatch(&env);
    // Corrupt one input COG: the tiles that read it fail every receive.
    let inputs = env.bucket.list("inputs/").unwrap();
    let victim = inputs.iter().find(|k| k.ends_with("/SCL.tif")).unwrap().clone();
    let good = env.bucket.get(&victim).unwrap();
    env.bucket.put(&victim, b"II*\0 this is not a GeoTIFF").unwrap();

    run_workers_until(&env, &|c| c.ended() as usize == tasks);
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert!(run.counts.failed >= 1 && run.counts.done >= 1, "{:?}", run.counts);
    assert_eq!(run.completions, 1);
    for t in env.ledger.tasks(&env.run_id, Some(TaskState::Failed)).unwrap() {
        // Two attempts of three receives: the last receive is kept to record a dead attempt.
        assert_eq!(t.attempts, 2, "two attempts before giving up");
        let reason = t.error.unwrap();
        assert!(reason.contains("SCL.tif"), "the reason names the input: {reason}");
    }
    // One more receive moves the exhausted messages to the dead-letter queue.
    let started = Instant::now();
    while env.tasks.depth().unwrap().dead_letter < run.counts.failed {
        assert!(started.elapsed() < Duration::from_secs(60), "failed tasks never reached the DLQ");
        deliver(&env.tasks, 10, &worker(&env.dep));
    }
    assert_eq!(completion_messages(&env).len(), 1);
    // The operator's view: counts, the dead-lettered messages and each failure's reason.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["status", &env.run_id, "--location", &format!("s3://{}/products", env.stack.bucket)])
        .args(["--table", &env.stack.table, "--queue", &env.stack.task_queue])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains(&format!("failed {}", run.counts.failed)), "{text}");
    assert!(text.contains(&format!("{} dead-lettered", run.counts.failed)), "{text}");
    assert!(text.contains("FAILED") && text.contains("SCL.tif"), "{text}");

    // Fix the input, redrive with the CLI, and let the workers finish.
    env.bucket.put(&victim, &good).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["redrive", &env.run_id, "--location", &format!("s3://{}/products", env.stack.bucket)])
        .args(["--table", &env.stack.table, "--queue", &env.stack.task_queue])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("redrove {} dead-lettered", run.counts.failed)), "{stdout}");
    run_workers_until(&env, &|c| c.done as usize == tasks);
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.failed, run.completions), (0, 2));
    let completions = completion_messages(&env);
    assert_eq!(completions.len(), 2, "the redrive's completion is sent too: {completions:?}");
    assert_eq!(completions.iter().filter(|c| c["completion"] == 2 && c["failed"] == 0).count(), 1);
    assert_eq!(env.tasks.depth().unwrap().dead_letter, 0);

    // A console-style redrive (messages moved back, ledger untouched) also retries: break
    // the input again so a tile fails for good, then redrive only the queue.
    env.bucket.put(&victim, b"II*\0 broken again").unwrap();
    // As a fresh Lambda sandbox would: no cached copy of the good file.
    stratus_raster::warp::forget_cached(&env.bucket.gdal_path(&victim));
    let failed_before = {
        let ids: Vec<String> = env.ledger.tasks(&env.run_id, None).unwrap().into_iter().map(|t| t.task_id).collect();
        env.ledger.reset(&env.run_id, ResetScope::Done, Some(&ids)).unwrap();
        // Without their STAC items the tiles are recomputed (and read the broken input).
        for key in env.bucket.list("products/").unwrap().iter().filter(|k| k.ends_with(".stac-item.json")) {
            env.bucket.delete(key).unwrap();
        }
        // As the dispatcher sends them: each with its dispatch id, which a redrive keeps.
        let bodies: Vec<String> =
            ids.iter().map(|t| stratus_engine::messages::TaskMessage::new(&env.run_id, t).body()).collect();
        env.tasks.send_batch(&bodies).unwrap();
        run_workers_until(&env, &|c| c.ended() as usize == tasks);
        env.ledger.run(&env.run_id).unwrap().unwrap().counts.failed
    };
    assert!(failed_before >= 1);
    let started = Instant::now();
    while env.tasks.depth().unwrap().dead_letter < failed_before {
        assert!(started.elapsed() < Duration::from_secs(60), "failed tasks never reached the DLQ");
        deliver(&env.tasks, 10, &worker(&env.dep));
    }
    env.bucket.put(&victim, &good).unwrap();
    stratus_raster::warp::forget_cached(&env.bucket.gdal_path(&victim));
    let completions_before = env.ledger.run(&env.run_id).unwrap().unwrap().completions;
    assert_eq!(env.tasks.redrive().unwrap(), failed_before as usize);
    run_workers_until(&env, &|c| c.done as usize == tasks);
    let after = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!(after.counts.failed, 0);
    assert!(after.completions > completions_before, "the run completed again after the console-style redrive");
}

#[test]
fn tasks_beyond_the_lambda_budget_go_to_the_container_queue_and_the_container_worker_runs_them() {
    // A Lambda of 128 MB fits no task: the plan sends every one to the container worker.
    let env = setup_run_file("sized", "pq", "lambda: {memory_mb: 128}\n");
    let event = support::s3::s3_notification(&env.stack.bucket, "runs/pq-2021.yaml");
    let out = stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    let tasks = out["planned"][0]["tasks"].as_u64().unwrap() as usize;
    for t in env.ledger.tasks(&env.run_id, None).unwrap() {
        assert_eq!(t.summary["executor"], "container", "{}", t.summary);
        let why = t.summary["estimate"]["reason"].as_str().unwrap();
        assert!(why.contains("memory") && why.contains("128 MB"), "{why}");
    }
    while deliver(&env.dispatch, 10, &dispatcher(&env.dep)) > 0 {}
    assert_eq!(env.tasks.depth().unwrap().visible, 0, "nothing on the Lambda worker's queue");
    assert_eq!(env.container_tasks.depth().unwrap().visible as usize, tasks, "every task on the container queue");
    // Started as the Terraform container task starts it, with the bucket's root as its
    // location, while the run's outputs go under `products/`: each run's own location wins.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["worker", "--from-sqs", &env.stack.container_queue])
        .args(["--location", &format!("s3://{}", env.stack.bucket), "--table", &env.stack.table])
        .args(["--idle-exit", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (tasks, 1), "{:?}", run.counts);
    let items: Vec<String> =
        env.bucket.list("").unwrap().into_iter().filter(|k| k.ends_with(".stac-item.json")).collect();
    assert_eq!(items.len(), tasks, "{items:?}");
    assert!(items.iter().all(|k| k.starts_with("products/")), "tiles written outside the run's location: {items:?}");
}

#[test]
fn killed_container_worker_leaves_its_message_which_reappears_and_completes() {
    // gm-s2 reads every band of every scene through /vsis3/: tiles take long enough to
    // kill one midway.
    let env = setup_with("killed", "gm-s2");
    let tasks = plan_and_dispatch(&env);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args([
            "worker",
            "--from-sqs",
            &env.stack.task_queue,
            "--location",
            &format!("s3://{}/products", env.stack.bucket),
        ])
        .args(["--table", &env.stack.table, "--visibility", &LEASE_S.to_string(), "--idle-exit", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let killed_task = loop {
        assert!(started.elapsed() < Duration::from_secs(120), "the worker never got going");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the container worker exited early: {err}");
        }
        // Freeze the worker, look at the ledger, and kill it only if it is mid-tile (so
        // the check cannot race the tile's end); otherwise let it go on.
        let signal = |sig: &str| {
            std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        };
        signal("-STOP");
        let running = env.ledger.tasks(&env.run_id, Some(TaskState::Running)).unwrap();
        let done = env.ledger.run(&env.run_id).unwrap().unwrap().counts.done;
        if done >= 1 && running.len() == 1 {
            child.kill().unwrap();
            child.wait().unwrap();
            break running[0].task_id.clone();
        }
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let task = env.ledger.task(&env.run_id, &killed_task).unwrap().unwrap();
    assert_eq!(task.state, TaskState::Running, "killed mid-tile: the task is left running");
    // Its message was not deleted: it reappears once the visibility timeout (and the
    // lease) have passed, and a worker finishes the tile.
    run_workers_until(&env, &|c| c.done as usize == tasks);
    let task = env.ledger.task(&env.run_id, &killed_task).unwrap().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Done, 2), "finished on its second attempt");
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.failed, run.completions), (0, 1));
}

#[test]
fn eventbridge_object_created_and_scheduled_events_plan_runs() {
    let mut env = setup("ebridge");
    let deadline = || Instant::now() + Duration::from_secs(600);
    let created = json!({
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2026-11-22T03:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{}", env.stack.bucket)],
        "detail": {"version": "0", "bucket": {"name": env.stack.bucket}, "object": {"key": "runs/pq-2021.yaml", "size": 512},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}
    });
    let out = stratus_serverless::planner::handle(&env.dep, &created, deadline()).unwrap();
    assert_eq!(out["planned"][0]["run_id"], env.run_id.as_str());
    assert!(out["planned"][0]["tasks"].as_u64().unwrap() >= 4);

    // A schedule plans the period that ended before it fired, under the derived run id.
    env.dep.scheduled_run_file = Some(format!("s3://{}/runs/pq-2021.yaml", env.stack.bucket));
    let scheduled = json!({
        "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2022-01-01T02:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/stratus-planner-schedule"], "detail": {}
    });
    let out = stratus_serverless::planner::handle(&env.dep, &scheduled, deadline()).unwrap();
    assert_eq!(out["planned"][0]["run_id"], "t_pq-2021--P1Y");
    assert!(env.ledger.run("t_pq-2021--P1Y").unwrap().is_some());

    // Not a planner event: a clear error, nothing planned.
    let err = stratus_serverless::planner::handle(&env.dep, &json!({"Records": "nope"}), deadline()).unwrap_err();
    assert!(matches!(err, stratus_serverless::ServerlessError::Event(_)), "{err}");
    let err = err.to_string();
    assert!(err.contains("S3 event"), "{err}");
}

#[test]
fn split_tiles_run_as_parts_on_the_lambda_path_and_each_tile_is_assembled_once() {
    // Tiles of 100 pixels in chunks of 64: every tile as 2 x 2 parts. The geomedian, for
    // its morphology at part edges.
    let env = setup_run_file("split", "gm-s2", "lambda: {parts: 2}\n");
    let event = support::s3::s3_notification(&env.stack.bucket, "runs/pq-2021.yaml");
    let out = stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    let tiles = out["planned"][0]["tasks"].as_u64().unwrap() as usize;
    let all = tiles * 5;
    assert_eq!(env.ledger.tasks(&env.run_id, None).unwrap().len(), all, "4 parts and the tile, per tile");
    while deliver(&env.dispatch, 10, &dispatcher(&env.dep)) > 0 {}
    assert_eq!(env.tasks.depth().unwrap().visible as usize, tiles * 4, "only the parts are sent at first");
    run_workers_until(&env, &|c| c.done as usize == all);
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (all, 1), "{:?}", run.counts);
    let items: Vec<String> =
        env.bucket.list("products/").unwrap().into_iter().filter(|k| k.ends_with(".stac-item.json")).collect();
    assert_eq!(items.len(), tiles, "one item per tile: {items:?}");
    let scratch = env.bucket.list(&format!("products/t_pq/1.0.0/_runs/{}/parts/", env.run_id)).unwrap();
    assert!(scratch.is_empty(), "scratch parts left: {scratch:?}");
    // The operator sees tiles as units, and the parts with --tasks.
    let location = format!("s3://{}/products", env.stack.bucket);
    let status = support::stratus(
        &["status", &env.run_id, "--location", &location, "--table", &env.stack.table, "--tasks"],
        &[],
    );
    let text = String::from_utf8_lossy(&status.stdout);
    let tiles_line =
        format!("tiles: done {tiles}  failed 0  of {tiles}; {tiles} split into parts (0 waiting for them)");
    assert!(text.contains(&tiles_line), "expected '{tiles_line}' in:\n{text}");
    assert_eq!(text.matches("/part-").count(), tiles * 4, "{text}");
    // A late copy of a part's message after its tile was assembled rewrites nothing.
    let before = env.bucket.head(&items[0]).unwrap().unwrap();
    let part = env.ledger.tasks(&env.run_id, None).unwrap().into_iter().find(|t| t.task_id.contains("/part-")).unwrap();
    env.tasks.send_batch(&[stratus_engine::messages::TaskMessage::new(&env.run_id, &part.task_id).body()]).unwrap();
    while deliver(&env.tasks, 10, &worker(&env.dep)) > 0 {}
    assert_eq!(env.bucket.head(&items[0]).unwrap().unwrap(), before);
    assert_eq!(env.ledger.run(&env.run_id).unwrap().unwrap().completions, 1);
    assert_eq!(completion_messages(&env).len(), 1);

    // The same run unsplit, through the same handlers: every band has the same values.
    let split_file = String::from_utf8(env.bucket.get("runs/pq-2021.yaml").unwrap()).unwrap();
    let whole_file = split_file
        .replace(&format!("run_id: {}", env.run_id), "run_id: whole-gm")
        .replace("name: t_pq", "name: t_whole")
        .replace("lambda: {parts: 2}\n", "");
    assert!(whole_file.contains("run_id: whole-gm") && !whole_file.contains("parts"), "{whole_file}");
    env.bucket.put("runs/whole.yaml", whole_file.as_bytes()).unwrap();
    let event = support::s3::s3_notification(&env.stack.bucket, "runs/whole.yaml");
    stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    while deliver(&env.dispatch, 10, &dispatcher(&env.dep)) > 0 {}
    let whole_done = || {
        let c = env.ledger.run("whole-gm").unwrap().unwrap().counts;
        c.done == c.total
    };
    drain_until(&env.tasks, &worker(&env.dep), &whole_done, Duration::from_secs(300));
    let bands: Vec<String> = env
        .bucket
        .list("products/t_pq/1.0.0/")
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".tif") && !k.contains("/_runs/"))
        .collect();
    assert_eq!(bands.len(), tiles * 10, "10 bands per tile: {bands:?}");
    let pixels = |key: &str| {
        let ds = gdal::Dataset::open(stratus_raster::paths::gdal_path(&format!("s3://{}/{key}", env.stack.bucket)))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let (w, h) = ds.raster_size();
        ds.rasterband(1).unwrap().read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1
    };
    for key in &bands {
        let (split, whole) = (pixels(key), pixels(&key.replace("t_pq", "t_whole")));
        let differ = split.iter().zip(&whole).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!((split.len(), differ), (whole.len(), 0), "{key}: split and whole runs differ");
    }
}

#[test]
fn a_failed_part_on_moto_fails_its_tile_and_a_console_redrive_runs_the_part_then_the_tile() {
    let env = setup_run_file("splitpoison", "pq", "lambda: {parts: 2}\n");
    let event = support::s3::s3_notification(&env.stack.bucket, "runs/pq-2021.yaml");
    stratus_serverless::planner::handle(&env.dep, &event, Instant::now() + Duration::from_secs(600)).unwrap();
    let all = env.ledger.tasks(&env.run_id, None).unwrap().len();
    // One input broken before anything runs: the parts that read it fail every receive.
    let victim = env.bucket.list("inputs/").unwrap().into_iter().find(|k| k.ends_with("/SCL.tif")).unwrap();
    let good = env.bucket.get(&victim).unwrap();
    env.bucket.put(&victim, b"II*\0 this is not a GeoTIFF").unwrap();
    while deliver(&env.dispatch, 10, &dispatcher(&env.dep)) > 0 {}
    run_workers_until(&env, &|c| c.ended() as usize == all);
    let tasks = env.ledger.tasks(&env.run_id, Some(TaskState::Failed)).unwrap();
    let failed_parts = tasks.iter().filter(|t| t.task_id.contains("/part-")).count();
    assert!(failed_parts > 0 && tasks.len() > failed_parts, "parts and their tiles failed: {tasks:?}");
    for t in tasks.iter().filter(|t| !t.task_id.contains("/part-")) {
        let why = t.error.clone().unwrap_or_default();
        assert!(why.contains("/part-") && why.contains("SCL.tif"), "the tile names its part and the input: {why}");
    }
    assert_eq!(env.ledger.run(&env.run_id).unwrap().unwrap().completions, 1);
    // Their messages go on to the dead-letter queue (only parts had messages).
    let started = Instant::now();
    while (env.tasks.depth().unwrap().dead_letter as usize) < failed_parts {
        assert!(started.elapsed() < Duration::from_secs(60), "failed parts never reached the DLQ");
        deliver(&env.tasks, 10, &worker(&env.dep));
    }
    // Fixed, then a console-style redrive: the queue only, the ledger untouched.
    env.bucket.put(&victim, &good).unwrap();
    stratus_raster::warp::forget_cached(&env.bucket.gdal_path(&victim));
    assert_eq!(env.tasks.redrive().unwrap(), failed_parts);
    run_workers_until(&env, &|c| c.done as usize == all);
    let run = env.ledger.run(&env.run_id).unwrap().unwrap();
    assert_eq!((run.counts.failed, run.completions), (0, 2), "{:?}", run.counts);
    let tiles = env.ledger.tasks(&env.run_id, None).unwrap().iter().filter(|t| !t.task_id.contains("/part-")).count();
    let items = env.bucket.list("products/").unwrap().into_iter().filter(|k| k.ends_with(".stac-item.json")).count();
    assert_eq!(items, tiles, "every tile assembled once");
}

/// odc-stats' `s3_acl`: every object of the product carries the run's canned ACL.
#[test]
fn the_products_objects_carry_the_run_files_canned_acl() {
    let env = setup_run_file("acl", "pq", "s3_acl: public-read\n");
    let tasks = plan_and_dispatch(&env);
    run_workers_until(&env, &|c| c.done as usize == tasks);
    let s3 = aws();
    let grants_of = |key: &str| {
        let acl = s3
            .block_on(s3.s3().get_object_acl().bucket(&env.stack.bucket).key(key).send())
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        acl.grants()
            .iter()
            .filter_map(|g| {
                let who = g.grantee()?.uri().unwrap_or("owner").to_string();
                Some(format!("{who}:{}", g.permission()?.as_str()))
            })
            .collect::<Vec<_>>()
    };
    let layout = stratus_engine::layout::Layout::new("t_pq", "1.0.0");
    let mut checked = 0;
    for t in env.ledger.tasks(&env.run_id, None).unwrap() {
        let id: stratus_core::TaskId = t.task_id.parse().unwrap();
        for key in [layout.band_key(&id, "clear"), layout.stac_key(&id)] {
            let grants = grants_of(&format!("products/{key}"));
            assert!(
                grants.iter().any(|g| g == "http://acs.amazonaws.com/groups/global/AllUsers:READ"),
                "{key}: {grants:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} objects checked");
    // The product's own documents too: its Collection, eo3 definition, a tile's eo3 document.
    let first: stratus_core::TaskId = env.ledger.tasks(&env.run_id, None).unwrap()[0].task_id.parse().unwrap();
    for key in
        [layout.collection_key(), layout.product_definition_key(), layout.metadata_key(&first, "odc-metadata.yaml")]
    {
        let grants = grants_of(&format!("products/{key}"));
        assert!(grants.iter().any(|g| g.ends_with("AllUsers:READ")), "{key}: {grants:?}");
    }
    // The run file itself was put without it: the bucket's default.
    let grants = grants_of("runs/pq-2021.yaml");
    assert!(!grants.iter().any(|g| g.contains("AllUsers")), "{grants:?}");
}
