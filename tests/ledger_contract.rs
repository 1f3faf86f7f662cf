//! The same ledger contract checked on both ledgers: the embedded SQLite one and the
//! DynamoDB one (against moto). Concurrent workers with duplicate delivery, leases,
//! failures and resets, completion firing exactly once per completion.

mod support;

use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stratus_aws::provision::{create_stack, StackSpec};
use stratus_aws::{DynamoLedger, S3BlobStore};
use stratus_ports::ledger::ResetScope;
use stratus_ports::*;

const LEASE: Duration = Duration::from_secs(60);
const NO_DOCS: &Vec<serde_json::Value> = &Vec::new();

fn plan(l: &dyn Ledger, run: &str, n: usize) -> Vec<String> {
    // Task i uses datasets i and i+1: neighbouring tasks share one document.
    let docs: Vec<serde_json::Value> = (0..=n).map(|i| json!({"id": format!("d{i}")})).collect();
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            task_id: format!("t{i:03}"),
            index: i,
            summary: json!({"i": i}),
            datasets: vec![i as u32, i as u32 + 1],
        })
        .collect();
    l.create_run(
        &NewRun { run_id: run.into(), config: json!({"k": 1}), config_digest: "d".into() },
        &tasks,
        &docs,
        false,
    )
    .unwrap();
    tasks.into_iter().map(|t| t.task_id).collect()
}

fn concurrent_workers(l: &dyn Ledger, run: &str, n: usize) {
    let ids = plan(l, run, n);
    let fired = AtomicI64::new(0);
    let completed = AtomicI64::new(0);
    std::thread::scope(|s| {
        for w in 0..6 {
            let (ids, fired, completed) = (&ids, &fired, &completed);
            s.spawn(move || {
                let me = format!("worker-{w}");
                // Every worker tries every task, twice (duplicate delivery).
                for _round in 0..2 {
                    for id in ids.iter() {
                        if let ClaimOutcome::Claimed { .. } = l.claim(run, id, &me, LEASE, false, false).unwrap() {
                            let t = l.complete(run, id, &me, &json!({"by": me})).unwrap();
                            assert!(t.applied);
                            completed.fetch_add(1, Ordering::SeqCst);
                            if t.completion_fired {
                                fired.fetch_add(1, Ordering::SeqCst);
                            }
                            assert!(!l.complete(run, id, &me, &json!({})).unwrap().applied, "duplicate completion");
                        }
                    }
                }
            });
        }
    });
    assert_eq!(completed.load(Ordering::SeqCst), n as i64, "each task completed exactly once");
    assert_eq!(fired.load(Ordering::SeqCst), 1, "completion fired exactly once");
    let r = l.run(run).unwrap().unwrap();
    assert_eq!((r.counts.done, r.counts.pending, r.counts.running), (n as u64, 0, 0));
    assert_eq!(r.completions, 1);
    assert!(l.tasks(run, None).unwrap().iter().all(|t| t.state == TaskState::Done && t.attempts == 1));
}

fn failures_resets_and_leases(l: &dyn Ledger, run: &str) {
    plan(l, run, 3);
    let again =
        l.create_run(&NewRun { run_id: run.into(), config: json!({}), config_digest: "d".into() }, &[], NO_DOCS, false);
    assert!(matches!(again, Err(PortError::RunExists(_))), "{again:?}");
    assert_eq!(l.payload(run, "t001").unwrap(), json!({"datasets": [{"id": "d1"}, {"id": "d2"}]}));
    // A retryable failure goes back to pending; the final one is recorded with its reason.
    l.claim(run, "t000", "w", LEASE, false, false).unwrap();
    let t = l.fail(run, "t000", "w", "transient", false, None).unwrap();
    assert!(t.applied && !t.completion_fired);
    assert_eq!(l.task(run, "t000").unwrap().unwrap().state, TaskState::Pending);
    l.claim(run, "t000", "w", LEASE, false, false).unwrap();
    l.fail(run, "t000", "w", "corrupt input B04.tif", true, None).unwrap();
    let task = l.task(run, "t000").unwrap().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Failed, 2));
    assert_eq!(task.error.as_deref(), Some("corrupt input B04.tif"));
    // A short lease lapses: another worker takes over; the first cannot finish.
    assert_eq!(
        l.claim(run, "t001", "a", Duration::from_millis(300), false, false).unwrap(),
        ClaimOutcome::Claimed { attempt: 1 }
    );
    assert!(matches!(l.claim(run, "t001", "b", LEASE, false, false).unwrap(), ClaimOutcome::Busy { .. }));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(l.claim(run, "t001", "b", LEASE, false, false).unwrap(), ClaimOutcome::Claimed { attempt: 2 });
    assert!(!l.complete(run, "t001", "a", &json!({})).unwrap().applied);
    assert!(!l.heartbeat(run, "t001", "a", LEASE).unwrap());
    assert!(l.heartbeat(run, "t001", "b", LEASE).unwrap());
    assert!(!l.complete(run, "t001", "b", &json!({})).unwrap().completion_fired);
    // Release gives a task back without counting the attempt.
    l.claim(run, "t002", "w", LEASE, false, false).unwrap();
    assert!(l.release(run, "t002", "w").unwrap());
    assert_eq!(l.task(run, "t002").unwrap().unwrap().attempts, 0);
    l.claim(run, "t002", "w", LEASE, false, false).unwrap();
    assert!(l.complete(run, "t002", "w", &json!({"ok": 1})).unwrap().completion_fired);
    assert_eq!(l.task(run, "t002").unwrap().unwrap().result, Some(json!({"ok": 1})));
    assert_eq!(l.claim(run, "t000", "w", LEASE, false, false).unwrap(), ClaimOutcome::AlreadyFailed);
    // Queued tasks whose messages were never sent go back to pending.
    // Redrive: failed -> pending, and the completion fires again when it is done.
    assert_eq!(l.reset(run, ResetScope::Failed, None).unwrap(), vec!["t000"]);
    let c = l.run(run).unwrap().unwrap().counts;
    assert_eq!((c.pending, c.failed, c.done), (1, 0, 2));
    assert_eq!(l.mark_queued(run, &["t000".to_string(), "t001".to_string()]).unwrap(), vec!["t000"]);
    assert_eq!(l.reset(run, ResetScope::Queued, None).unwrap(), vec!["t000"]);
    l.claim(run, "t000", "w", LEASE, false, false).unwrap();
    assert!(l.complete(run, "t000", "w", &json!({})).unwrap().completion_fired);
    let r = l.run(run).unwrap().unwrap();
    assert_eq!((r.completions, r.counts.done, r.counts.ended()), (2, 3, 3));
    assert_eq!(l.tasks(run, Some(TaskState::Done)).unwrap().len(), 3);
    assert!(l.runs().unwrap().iter().any(|x| x.run_id == run));
}

fn sqlite() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(dir.path().join("s.db")).unwrap();
    (dir, l)
}

fn dynamodb(prefix: &str) -> DynamoLedger {
    support::moto::moto();
    let aws = stratus_engine::context::aws().unwrap();
    let stack = create_stack(&aws, &StackSpec { prefix: prefix.into(), max_receives: 3, visibility_s: 30 }).unwrap();
    let overflow = S3BlobStore::open(aws.clone(), &format!("s3://{}/state", stack.bucket)).unwrap();
    DynamoLedger::new(aws, &stack.table, Some(Arc::new(overflow)))
}

#[test]
fn sqlite_concurrent_workers() {
    let (_d, l) = sqlite();
    concurrent_workers(&l, "r", 60);
}

#[test]
fn sqlite_failures_resets_and_leases() {
    let (_d, l) = sqlite();
    failures_resets_and_leases(&l, "r");
}

#[test]
fn dynamodb_concurrent_workers() {
    concurrent_workers(&dynamodb("conc"), "r", 30);
}

#[test]
fn dynamodb_failures_resets_and_leases() {
    failures_resets_and_leases(&dynamodb("fail"), "r");
}

#[test]
fn dynamodb_payloads_too_big_for_an_item_go_to_an_s3_manifest() {
    let l = dynamodb("big");
    let docs: Vec<serde_json::Value> =
        (0..20_000).map(|i| json!(format!("s3://bucket/some/long/prefix/dataset-{i:06}.json"))).collect();
    let payload = json!({ "datasets": docs });
    let task = NewTask { task_id: "t000".into(), index: 0, summary: json!({}), datasets: (0..20_000).collect() };
    l.create_run(&NewRun { run_id: "big".into(), config: json!({}), config_digest: "d".into() }, &[task], &docs, false)
        .unwrap();
    assert!(payload.to_string().len() > 400_000);
    assert_eq!(l.payload("big", "t000").unwrap(), payload);
    // Overwriting a run replaces its tasks.
    plan_overwrite(&l);
}

fn plan_overwrite(l: &DynamoLedger) {
    let tasks = vec![NewTask { task_id: "t111".into(), index: 0, summary: json!({}), datasets: vec![] }];
    l.create_run(&NewRun { run_id: "big".into(), config: json!({}), config_digest: "e".into() }, &tasks, NO_DOCS, true)
        .unwrap();
    let ids: Vec<String> = l.tasks("big", None).unwrap().into_iter().map(|t| t.task_id).collect();
    assert_eq!(ids, vec!["t111"]);
    assert_eq!(l.run("big").unwrap().unwrap().counts.total, 1);
}
