//! The deployment artefacts, exercised for real against a moto server:
//!
//! - the function image (functions/Containerfile, built by `make test` from the debug
//!   binaries) runs the planner, the dispatcher and a worker through the Lambda runtime
//!   interface emulator (`scripts/invoke.sh`, as `make invoke` does), and the worker's tile
//!   is written and the ledger says done;
//! - `terraform apply` of infra/examples/local (the stratus-data module: bucket, ledger table,
//!   queues with DLQs) creates the resources a pipeline run then uses, by the names
//!   `terraform output` gives, through the operator's CLI; `terraform destroy` removes them.
//!
//! Needs podman and the image (make test builds it), and terraform with its AWS provider
//! (the second test says loudly when terraform is absent and checks nothing).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stratus_aws::{DynamoLedger, S3BlobStore, SqsQueue};
use stratus_ports::{BlobStore, Ledger, TaskQueue, TaskState};
use stratus_testkit::stack::{create_stack, StackSpec};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.current_dir(repo()).output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A Lambda SQS event of the next `count` real messages of `queue` (left in the queue).
fn sqs_event(queue_url: &str, count: usize, dir: &Path, name: &str) -> PathBuf {
    let out = run(Command::new(repo().join(".venv-moto/bin/python"))
        .arg("scripts/sqs_event.py")
        .arg(queue_url)
        .arg(count.to_string()));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn function_image_plans_dispatches_and_processes_a_task_through_the_runtime_interface_emulator() {
    let moto = support::moto::moto_for_containers();
    let aws = stratus_serverless::aws().unwrap();
    let podman = Command::new("podman").arg("--version").output();
    assert!(
        podman.map(|o| o.status.success()).unwrap_or(false),
        "\n\nPODMAN IS NOT INSTALLED: the function image cannot be tested. scripts/setup.sh --test installs it.\n\n"
    );
    let image = run(Command::new("scripts/container.sh").args([
        "podman",
        "image",
        "exists",
        "localhost/stratus-lambda:latest",
    ]));
    assert!(image.status.success());

    let stack = create_stack(&aws, &StackSpec { prefix: "img".into(), max_receives: 3, visibility_s: 30 }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = S3BlobStore::open(aws.clone(), &format!("s3://{}", stack.bucket)).unwrap();
    let run_id = "img-pq";
    let run_file = support::s3::inputs_and_run_file(&store, &stack.bucket, run_id, "pq", dir.path());
    store.put("runs/img-pq.yaml", run_file.as_bytes()).unwrap();

    let invoke = |function: &str, event: &Path| -> Value {
        let out = run(Command::new("scripts/invoke.sh")
            .arg(function)
            .arg(event)
            .env("STRATUS_AWS_ENDPOINT", &moto.endpoint)
            .env("STRATUS_TABLE", &stack.table)
            .env("STRATUS_TASK_QUEUE_URL", &stack.task_queue)
            .env("STRATUS_CONTAINER_QUEUE_URL", &stack.container_queue)
            .env("STRATUS_DISPATCH_QUEUE_URL", &stack.dispatch_queue)
            .env("STRATUS_COMPLETION_QUEUE_URL", &stack.completion_queue)
            .env("STRATUS_PAGE_SIZE", "100"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{function}: response is not JSON ({e}): {stdout}"))
    };

    // Planner, on the run file's S3 notification.
    let notification = dir.path().join("s3.json");
    let event = support::s3::s3_notification(&stack.bucket, "runs/img-pq.yaml");
    std::fs::write(&notification, event.to_string()).unwrap();
    let planned = invoke("planner", &notification);
    let tasks = planned["planned"][0]["tasks"].as_u64().unwrap();
    assert!(tasks >= 4, "planner response: {planned}");
    let ledger = DynamoLedger::new(aws.clone(), &stack.table, None);
    assert_eq!(ledger.run(run_id).unwrap().unwrap().counts.pending, tasks);

    // Dispatcher, on the fan-out page the planner sent.
    let page = sqs_event(&stack.dispatch_queue, 1, dir.path(), "page.json");
    let dispatched = invoke("dispatcher", &page);
    assert_eq!(dispatched["batchItemFailures"], serde_json::json!([]), "{dispatched}");
    let tasks_queue = SqsQueue::open(aws.clone(), &stack.task_queue).unwrap();
    assert_eq!(tasks_queue.depth().unwrap().visible as u64, tasks);

    // One worker invocation on one real task message: the tile is written, the ledger says done.
    let batch = sqs_event(&stack.task_queue, 1, dir.path(), "task.json");
    let body: Value = serde_json::from_str(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&batch).unwrap()).unwrap()["Records"][0]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let task_id = body["task_id"].as_str().unwrap().to_string();
    let worked = invoke("worker", &batch);
    assert_eq!(worked["batchItemFailures"], serde_json::json!([]), "{worked}");
    let task = ledger.task(run_id, &task_id).unwrap().unwrap();
    assert_eq!(task.state, TaskState::Done, "{task:?}");
    // Task x+093/y-078/2021--P1Y writes under PRODUCT/VERSION/x93/y-78/2021--P1Y/: that tile, and only it.
    let written = store.list("products/t_pq/1.0.0/").unwrap();
    let parts: Vec<&str> = task_id.split('/').collect();
    let index = |p: &str| p[1..].parse::<i32>().unwrap();
    let tile_dir = format!("products/t_pq/1.0.0/x{}/y{}/{}/", index(parts[0]), index(parts[1]), parts[2]);
    assert!(
        written.iter().any(|k| k.starts_with(&tile_dir) && k.ends_with(".tif"))
            && written.iter().any(|k| k.starts_with(&tile_dir) && k.ends_with(".json")),
        "no COG + STAC item under {tile_dir}: {written:?}"
    );
    assert!(written.iter().filter(|k| k.ends_with(".tif")).all(|k| k.starts_with(&tile_dir)), "{written:?}");
    let counts = ledger.run(run_id).unwrap().unwrap().counts;
    assert_eq!((counts.done, counts.queued), (1, tasks - 1), "{counts:?}");
}

/// `terraform` with the provider mirror (scripts/lib/terraform.sh); None when not installed.
fn terraform(args: &[&str], data_dir: &Path) -> Option<Output> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"source scripts/lib/terraform.sh; [ -n "$tf" ] || exit 99; exec "$tf" -chdir=infra/examples/local "$@""#)
        .arg("terraform")
        .args(args)
        .env("TF_DATA_DIR", data_dir)
        .env("TF_IN_AUTOMATION", "1")
        .current_dir(repo())
        .output()
        .unwrap();
    if out.status.code() == Some(99) {
        return None;
    }
    assert!(
        out.status.success(),
        "terraform {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

#[test]
fn terraform_apply_creates_what_a_pipeline_run_uses_then_destroy_removes_it() {
    let moto = support::moto::moto_for_containers();
    let aws = stratus_serverless::aws().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join(".terraform");
    let state = format!("-state={}", dir.path().join("terraform.tfstate").display());
    let vars = ["-var", &format!("endpoint={}", moto.endpoint), "-var", "name=stratus-tf"];
    if terraform(&["init", "-input=false", "-no-color"], &data_dir).is_none() {
        eprintln!(
            "\n##########################################################################\n\
             TERRAFORM NOT INSTALLED: infra/examples/local was NOT applied on this machine.\n\
             ##########################################################################\n"
        );
        return;
    }
    let mut apply = vec!["apply", "-auto-approve", "-input=false", "-no-color", &state];
    apply.extend(vars);
    terraform(&apply, &data_dir).unwrap();
    let out = terraform(&["output", "-json", &state], &data_dir).unwrap();
    let outputs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = |k: &str| outputs[k]["value"].clone();
    let bucket = value("bucket").as_str().unwrap().to_string();
    let table = value("table").as_str().unwrap().to_string();
    let task_queue = value("queue_urls")["tasks"].as_str().unwrap().to_string();
    let completion_queue = value("queue_urls")["completion"].as_str().unwrap().to_string();
    let task_dlq = value("dead_letter_queue_urls")["tasks"].as_str().unwrap().to_string();
    assert_eq!((bucket.as_str(), table.as_str()), ("stratus-tf-outputs", "stratus-tf-ledger"));

    // The queue Terraform made has the module's redrive policy (3 receives, then its DLQ).
    let tasks = SqsQueue::open(aws.clone(), &task_queue).unwrap();
    assert_eq!(tasks.max_receives(), 3);

    // A run through the operator's CLI on exactly these resources.
    let store = S3BlobStore::open(aws.clone(), &format!("s3://{bucket}")).unwrap();
    let run_file = support::s3::inputs_and_run_file(&store, &bucket, "tf-pq", "pq", dir.path());
    let run_path = dir.path().join("run.yaml");
    std::fs::write(&run_path, run_file).unwrap();
    let location = format!("s3://{bucket}/products");
    let stratus = |args: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_stratus")).args(args).env("STRATUS_TABLE", &table).env("NO_COLOR", "1"))
    };
    stratus(&["save-tasks", "--config", run_path.to_str().unwrap()]);
    stratus(&["publish-tasks", "tf-pq", "--location", &location, "--queue", &task_queue]);
    stratus(&[
        "worker",
        "--from-sqs",
        &task_queue,
        "--location",
        &location,
        "--completion-queue",
        &completion_queue,
        "--idle-exit",
        "3",
    ]);
    let ledger = DynamoLedger::new(aws.clone(), &table, None);
    let counts = ledger.run("tf-pq").unwrap().unwrap().counts;
    assert!(counts.total >= 4 && counts.done == counts.total, "{counts:?}");
    let completion = SqsQueue::open(aws.clone(), &completion_queue).unwrap();
    assert_eq!(completion.depth().unwrap().visible, 1, "one completion message");
    assert_eq!(SqsQueue::open(aws.clone(), &task_dlq).unwrap().depth().unwrap().visible, 0);
    let cogs = store.list("products/t_pq/1.0.0/").unwrap().iter().filter(|k| k.ends_with(".tif")).count();
    assert!(cogs as u64 >= counts.total, "{cogs} COGs for {} tiles", counts.total);

    let mut destroy = vec!["destroy", "-auto-approve", "-input=false", "-no-color", &state];
    destroy.extend(vars);
    terraform(&destroy, &data_dir).unwrap();
    assert!(S3BlobStore::open(aws.clone(), &format!("s3://{bucket}")).and_then(|s| s.list("")).is_err());
    assert!(SqsQueue::open(aws.clone(), &task_queue).is_err(), "the task queue is gone");
    assert!(DynamoLedger::new(aws, &table, None).run("tf-pq").is_err(), "the table is gone");
}
