//! The same ledger contract checked on both ledgers: the embedded SQLite one and the
//! DynamoDB one (against moto). Concurrent workers with duplicate delivery, leases,
//! failures and resets, completion firing exactly once per completion.

use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stratus_aws::{DynamoLedger, S3BlobStore};
use stratus_ports::ledger::ResetScope;
use stratus_ports::*;
use stratus_testkit::stack::{create_stack, StackSpec};

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
            parts: 0,
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
                        if let ClaimOutcome::Claimed { .. } = l.claim(run, id, &me, &ClaimOptions::new(LEASE)).unwrap()
                        {
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
    l.claim(run, "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
    let t = l.fail(run, "t000", "w", "transient", false, None).unwrap();
    assert!(t.applied && !t.completion_fired);
    assert_eq!(l.task(run, "t000").unwrap().unwrap().state, TaskState::Pending);
    l.claim(run, "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
    l.fail(run, "t000", "w", "corrupt input B04.tif", true, None).unwrap();
    let task = l.task(run, "t000").unwrap().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Failed, 2));
    assert_eq!(task.error.as_deref(), Some("corrupt input B04.tif"));
    // A short lease lapses: another worker takes over; the first cannot finish. (Long
    // enough to outlast the next call on a loaded moto: 300 ms did not, once in CI.)
    assert_eq!(
        l.claim(run, "t001", "a", &ClaimOptions::new(Duration::from_secs(3))).unwrap(),
        ClaimOutcome::Claimed { attempt: 1, parts: 0 }
    );
    assert!(matches!(l.claim(run, "t001", "b", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::Busy { .. }));
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        l.claim(run, "t001", "b", &ClaimOptions::new(LEASE)).unwrap(),
        ClaimOutcome::Claimed { attempt: 2, parts: 0 }
    );
    assert!(!l.complete(run, "t001", "a", &json!({})).unwrap().applied);
    assert!(!l.heartbeat(run, "t001", "a", LEASE).unwrap());
    assert!(l.heartbeat(run, "t001", "b", LEASE).unwrap());
    assert!(!l.complete(run, "t001", "b", &json!({})).unwrap().completion_fired);
    // Release gives a task back without counting the attempt.
    l.claim(run, "t002", "w", &ClaimOptions::new(LEASE)).unwrap();
    assert!(l.release(run, "t002", "w").unwrap());
    assert_eq!(l.task(run, "t002").unwrap().unwrap().attempts, 0);
    l.claim(run, "t002", "w", &ClaimOptions::new(LEASE)).unwrap();
    assert!(l.complete(run, "t002", "w", &json!({"ok": 1})).unwrap().completion_fired);
    assert_eq!(l.task(run, "t002").unwrap().unwrap().result, Some(json!({"ok": 1})));
    assert_eq!(l.claim(run, "t000", "w", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::AlreadyFailed);
    // Queued tasks whose messages were never sent go back to pending.
    // Redrive: failed -> pending, and the completion fires again when it is done.
    assert_eq!(l.reset(run, ResetScope::Failed, None).unwrap(), vec!["t000"]);
    let c = l.run(run).unwrap().unwrap().counts;
    assert_eq!((c.pending, c.failed, c.done), (1, 0, 2));
    assert_eq!(l.mark_queued(run, &["t000".to_string(), "t001".to_string()]).unwrap(), vec!["t000"]);
    assert_eq!(l.reset(run, ResetScope::Queued, None).unwrap(), vec!["t000"]);
    l.claim(run, "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
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
    stratus_testkit::moto::moto();
    let aws = stratus_aws::Aws::shared().unwrap();
    let stack = create_stack(&aws, &StackSpec { prefix: prefix.into(), max_receives: 3, visibility_s: 30 }).unwrap();
    let overflow = S3BlobStore::open(aws.clone(), &format!("s3://{}/state", stack.bucket)).unwrap();
    DynamoLedger::new(aws, &stack.table, Some(Arc::new(overflow)))
}

/// A run of two split tiles, `a` (4 parts) and `b` (2 parts), and one whole tile `c`.
fn plan_split(l: &dyn Ledger, run: &str) {
    let mut tasks = Vec::new();
    for (tile, k) in [("a", 4u32), ("b", 2)] {
        for p in 0..k {
            tasks.push(NewTask {
                task_id: format!("{tile}/part-{p}"),
                index: tasks.len(),
                summary: json!({}),
                datasets: vec![],
                parts: 0,
            });
        }
        tasks.push(NewTask {
            task_id: tile.into(),
            index: tasks.len(),
            summary: json!({}),
            datasets: vec![],
            parts: k,
        });
    }
    tasks.push(NewTask { task_id: "c".into(), index: tasks.len(), summary: json!({}), datasets: vec![], parts: 0 });
    l.create_run(&NewRun { run_id: run.into(), config: json!({}), config_digest: "d".into() }, &tasks, NO_DOCS, false)
        .unwrap();
}

fn run_once(l: &dyn Ledger, run: &str, task: &str) -> Transition {
    let opts = ClaimOptions::new(LEASE);
    // The claim reports how many parts the task was split into, as planned.
    let parts = l.task(run, task).unwrap().unwrap().parts;
    assert_eq!(l.claim(run, task, "w", &opts).unwrap(), ClaimOutcome::Claimed { attempt: 1, parts }, "{task}");
    l.complete(run, task, "w", &json!({})).unwrap()
}

/// A split tile waits for its parts (no claim starts it, no publish sends it); when the
/// last part is done exactly one reconcile releases it, even with the parts ending at once;
/// a failed part fails the tile with its reason, and a retry runs the parts before the tile.
fn split_tiles(l: &(dyn Ledger + Sync), run: &str) {
    plan_split(l, run);
    let opts = ClaimOptions::new(LEASE);
    assert!(l.tasks(run, None).unwrap().iter().filter(|t| t.parts > 0).all(|t| t.blocked));
    assert_eq!(l.claim(run, "a", "w", &opts).unwrap(), ClaimOutcome::Blocked);
    let sent = l.mark_queued(run, &["a".into(), "c".into(), "a/part-0".into()]).unwrap();
    assert_eq!(sent, vec!["c".to_string(), "a/part-0".to_string()], "a blocked tile is not sent");
    assert_eq!(l.reconcile_tile(run, "a").unwrap(), TileReconciled::Waiting);
    assert_eq!(l.reconcile_tile(run, "c").unwrap(), TileReconciled::Unchanged, "not a split tile");

    // The four parts of `a` end at once, each followed by its reconcile: one release.
    let opts_ref = &opts;
    let released: Vec<TileReconciled> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|p| {
                s.spawn(move || {
                    let opts = opts_ref;
                    let task = format!("a/part-{p}");
                    assert!(
                        l.claim(run, &task, &format!("w{p}"), opts).unwrap()
                            == ClaimOutcome::Claimed { attempt: 1, parts: 0 }
                    );
                    assert!(l.complete(run, &task, &format!("w{p}"), &json!({})).unwrap().applied);
                    l.reconcile_tile(run, "a").unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(released.iter().filter(|r| **r == TileReconciled::Released).count(), 1, "{released:?}");
    assert_eq!(l.reconcile_tile(run, "a").unwrap(), TileReconciled::Unchanged, "released once");
    assert!(!l.task(run, "a").unwrap().unwrap().blocked);
    assert_eq!(l.mark_queued(run, &["a".into()]).unwrap(), vec!["a".to_string()], "a released tile is sent");
    assert!(run_once(l, run, "a").applied);

    // `b`: one part fails; the tile fails with its reason and stays blocked.
    assert!(run_once(l, run, "b/part-0").applied);
    assert_eq!(l.claim(run, "b/part-1", "w", &opts).unwrap(), ClaimOutcome::Claimed { attempt: 1, parts: 0 });
    assert!(l.fail(run, "b/part-1", "w", "input gone", true, None).unwrap().applied);
    match l.reconcile_tile(run, "b").unwrap() {
        TileReconciled::Failed { reason, completion_fired } => {
            assert!(reason.contains("b/part-1") && reason.contains("input gone"), "{reason}");
            assert!(!completion_fired, "c has not ended");
        }
        other => panic!("expected the tile to fail, got {other:?}"),
    }
    let b = l.task(run, "b").unwrap().unwrap();
    assert_eq!((b.state, b.blocked), (TaskState::Failed, true));
    assert_eq!(l.reconcile_tile(run, "b").unwrap(), TileReconciled::Unchanged, "failed once");
    let t = run_once(l, run, "c");
    assert!(t.completion_fired, "every task has ended: a, its parts, b (failed), its parts, c");

    // Retry: the failed part and the tile go back to pending; the tile waits for the part.
    let mut reset = l.reset(run, ResetScope::Failed, None).unwrap();
    reset.sort();
    assert_eq!(reset, vec!["b".to_string(), "b/part-1".to_string()]);
    assert_eq!(l.claim(run, "b", "w", &opts).unwrap(), ClaimOutcome::Blocked);
    assert!(run_once(l, run, "b/part-1").applied);
    assert_eq!(l.reconcile_tile(run, "b").unwrap(), TileReconciled::Released);
    assert!(run_once(l, run, "b").completion_fired, "the run completes again, once");
    assert_eq!(l.run(run).unwrap().unwrap().completions, 2);

    // A part failed again, then run again by a new local run of the plan (which claims
    // failed tasks): the failed tile is not claimable; the part's reconcile re-arms it
    // and, its parts all done, releases it.
    let rerun = ClaimOptions { rerun_done: true, ..ClaimOptions::new(LEASE) };
    for task in ["b/part-0", "b/part-1", "b"] {
        assert!(matches!(l.claim(run, task, "w", &rerun).unwrap(), ClaimOutcome::Claimed { .. }), "{task}");
    }
    assert!(l.fail(run, "b", "w", "assembly: disk full", true, None).unwrap().applied);
    assert!(l.complete(run, "b/part-0", "w", &json!({})).unwrap().applied);
    assert!(l.fail(run, "b/part-1", "w", "input gone again", true, None).unwrap().applied);
    assert_eq!(l.reconcile_tile(run, "b").unwrap(), TileReconciled::Unchanged, "b failed by itself, released");
    let always = ClaimOptions { rerun_failed: RerunFailed::Always, ..ClaimOptions::new(LEASE) };
    assert!(matches!(l.claim(run, "b/part-1", "w", &always).unwrap(), ClaimOutcome::Claimed { .. }));
    assert!(l.complete(run, "b/part-1", "w", &json!({})).unwrap().applied);
    assert!(
        matches!(l.claim(run, "b", "w", &always).unwrap(), ClaimOutcome::Claimed { parts: 2, .. }),
        "released before"
    );
    assert!(l.complete(run, "b", "w", &json!({})).unwrap().applied);
}

#[test]
fn sqlite_split_tiles() {
    let (_d, l) = sqlite();
    split_tiles(&l, "r");
}

#[test]
fn dynamodb_split_tiles() {
    split_tiles(&dynamodb("split"), "r");
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
    let task =
        NewTask { task_id: "t000".into(), index: 0, summary: json!({}), datasets: (0..20_000).collect(), parts: 0 };
    l.create_run(&NewRun { run_id: "big".into(), config: json!({}), config_digest: "d".into() }, &[task], &docs, false)
        .unwrap();
    assert!(payload.to_string().len() > 400_000);
    assert_eq!(l.payload("big", "t000").unwrap(), payload);
    // Overwriting a run replaces its tasks.
    plan_overwrite(&l);
}

fn plan_overwrite(l: &DynamoLedger) {
    let tasks = vec![NewTask { task_id: "t111".into(), index: 0, summary: json!({}), datasets: vec![], parts: 0 }];
    l.create_run(&NewRun { run_id: "big".into(), config: json!({}), config_digest: "e".into() }, &tasks, NO_DOCS, true)
        .unwrap();
    let ids: Vec<String> = l.tasks("big", None).unwrap().into_iter().map(|t| t.task_id).collect();
    assert_eq!(ids, vec!["t111"]);
    assert_eq!(l.run("big").unwrap().unwrap().counts.total, 1);
}

// ---------------------------------------------------------------------------------------
// The ledger as a state machine under property tests: random interleavings of several
// workers' claims (with live or already-expired leases, with or without --overwrite),
// heartbeats, completions, failures, releases, redeliveries (a claim again), publishing
// and resets (retry, redrive, stale recovery), checked step by step against a reference
// model: same outcomes, same task states, counters equal to the states, and the run's
// completion firing exactly once per transition to "all ended".

mod state_machine {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    const TASKS: usize = 3;
    const WORKERS: usize = 3;

    #[derive(Debug, Clone)]
    enum Op {
        /// `redrive`: a queue's first delivery of a message with this dispatch id (a
        /// failed task runs again only if dead-lettered by that same dispatch).
        Claim {
            w: usize,
            t: usize,
            expired_lease: bool,
            overwrite: bool,
            redrive: Option<u8>,
        },
        Heartbeat {
            w: usize,
            t: usize,
        },
        Complete {
            w: usize,
            t: usize,
        },
        Fail {
            w: usize,
            t: usize,
            final_attempt: bool,
        },
        Release {
            w: usize,
            t: usize,
        },
        MarkQueued {
            t: usize,
        },
        MarkDispatched {
            t: usize,
        },
        MarkDeadLettered {
            t: usize,
            dispatch: u8,
        },
        Reset {
            scope: u8,
        },
    }

    /// The attempt cap the model's claims use (small, so random runs reach it).
    const CAP: u32 = 3;

    fn op() -> impl Strategy<Value = Op> {
        let w = 0..WORKERS;
        let t = 0..TASKS;
        prop_oneof![
            4 => (w.clone(), t.clone(), prop::bool::weighted(0.3), prop::bool::weighted(0.1), prop::option::of(0u8..2))
                .prop_map(|(w, t, expired_lease, overwrite, redrive)| Op::Claim { w, t, expired_lease, overwrite, redrive }),
            1 => (w.clone(), t.clone()).prop_map(|(w, t)| Op::Heartbeat { w, t }),
            4 => (w.clone(), t.clone()).prop_map(|(w, t)| Op::Complete { w, t }),
            2 => (w.clone(), t.clone(), any::<bool>()).prop_map(|(w, t, final_attempt)| Op::Fail { w, t, final_attempt }),
            1 => (w, t.clone()).prop_map(|(w, t)| Op::Release { w, t }),
            1 => t.clone().prop_map(|t| Op::MarkQueued { t }),
            1 => t.clone().prop_map(|t| Op::MarkDispatched { t }),
            1 => (t, 0u8..2).prop_map(|(t, dispatch)| Op::MarkDeadLettered { t, dispatch }),
            1 => (0u8..4).prop_map(|scope| Op::Reset { scope }),
        ]
    }

    #[derive(Debug, Clone)]
    struct ModelTask {
        state: TaskState,
        owner: Option<usize>,
        live: bool,
        attempts: u32,
        dispatched: bool,
        /// Dead-lettered by the message of this dispatch.
        dead_lettered: Option<u8>,
    }

    /// What the ledger must do, written as plainly as possible.
    #[derive(Debug)]
    struct Model {
        tasks: Vec<ModelTask>,
        armed: bool,
        completions: u64,
    }

    #[derive(Debug, PartialEq)]
    enum Out {
        Claim(ClaimOutcome),
        Applied(bool),
        Transition(Transition),
        Ids(Vec<String>),
    }

    fn id(t: usize) -> String {
        format!("t{t:03}")
    }
    fn worker(w: usize) -> String {
        format!("worker-{w}")
    }
    const SCOPES: [ResetScope; 4] = [ResetScope::Failed, ResetScope::Done, ResetScope::Stale, ResetScope::Queued];

    impl Model {
        fn new() -> Model {
            let t = ModelTask {
                state: TaskState::Pending,
                owner: None,
                live: false,
                attempts: 0,
                dispatched: false,
                dead_lettered: None,
            };
            Model { tasks: vec![t; TASKS], armed: true, completions: 0 }
        }
        fn all_ended(&self) -> bool {
            self.tasks.iter().all(|t| matches!(t.state, TaskState::Done | TaskState::Failed))
        }
        fn maybe_fire(&mut self) -> bool {
            let fire = self.armed && self.all_ended();
            if fire {
                self.armed = false;
                self.completions += 1;
            }
            fire
        }
        fn owned(&self, w: usize, t: usize) -> bool {
            self.tasks[t].state == TaskState::Running && self.tasks[t].owner == Some(w)
        }
        fn apply(&mut self, op: &Op) -> Out {
            match *op {
                Op::Claim { w, t, expired_lease, overwrite, redrive } => {
                    let task = &self.tasks[t];
                    let claimable = match task.state {
                        TaskState::Pending | TaskState::Queued => true,
                        TaskState::Done if overwrite => true,
                        TaskState::Failed if overwrite || (redrive.is_some() && task.dead_lettered == redrive) => true,
                        TaskState::Done => return Out::Claim(ClaimOutcome::AlreadyDone),
                        TaskState::Failed => return Out::Claim(ClaimOutcome::AlreadyFailed),
                        TaskState::Running => task.owner == Some(w) || !task.live,
                    };
                    if !claimable {
                        return Out::Claim(ClaimOutcome::Busy { owner: worker(task.owner.unwrap()) });
                    }
                    let rerun = matches!(task.state, TaskState::Done | TaskState::Failed);
                    if rerun {
                        self.armed = true;
                    }
                    if task.state == TaskState::Failed && !overwrite {
                        // A redrive: the run's other dead-lettered tasks go pending too.
                        for (i, other) in self.tasks.iter_mut().enumerate() {
                            if i != t && other.state == TaskState::Failed && other.dead_lettered.is_some() {
                                *other = ModelTask {
                                    state: TaskState::Pending,
                                    attempts: 0,
                                    owner: None,
                                    live: false,
                                    dispatched: false,
                                    dead_lettered: None,
                                };
                            }
                        }
                    }
                    let task = &self.tasks[t];
                    let attempts = if rerun { 0 } else { task.attempts };
                    let task = &mut self.tasks[t];
                    if attempts >= CAP {
                        task.state = TaskState::Failed;
                        task.owner = None;
                        task.dispatched = false;
                        task.dead_lettered = None;
                        let completion_fired = self.maybe_fire();
                        return Out::Claim(ClaimOutcome::GaveUp { attempts, completion_fired });
                    }
                    *task = ModelTask {
                        state: TaskState::Running,
                        owner: Some(w),
                        live: !expired_lease,
                        attempts: attempts + 1,
                        dispatched: false,
                        dead_lettered: None,
                    };
                    Out::Claim(ClaimOutcome::Claimed { attempt: attempts + 1, parts: 0 })
                }
                Op::Heartbeat { w, t } => {
                    let ok = self.owned(w, t);
                    if ok {
                        self.tasks[t].live = true;
                    }
                    Out::Applied(ok)
                }
                Op::Complete { w, t } => {
                    if !self.owned(w, t) {
                        return Out::Transition(Transition::default());
                    }
                    self.tasks[t].state = TaskState::Done;
                    let fired = self.maybe_fire();
                    Out::Transition(Transition { applied: true, completion_fired: fired })
                }
                Op::Fail { w, t, final_attempt } => {
                    if !self.owned(w, t) {
                        return Out::Transition(Transition::default());
                    }
                    let task = &mut self.tasks[t];
                    task.state = if final_attempt { TaskState::Failed } else { TaskState::Pending };
                    task.owner = None;
                    task.dead_lettered = None;
                    let fired = final_attempt && self.maybe_fire();
                    Out::Transition(Transition { applied: true, completion_fired: fired })
                }
                Op::Release { w, t } => {
                    let ok = self.owned(w, t);
                    if ok {
                        let task = &mut self.tasks[t];
                        task.state = TaskState::Pending;
                        task.owner = None;
                        task.attempts -= 1;
                    }
                    Out::Applied(ok)
                }
                Op::MarkQueued { t } => {
                    let task = &mut self.tasks[t];
                    match task.state {
                        TaskState::Pending => {
                            task.state = TaskState::Queued;
                            task.dispatched = false;
                            Out::Ids(vec![id(t)])
                        }
                        // Stranded by a dispatcher that stopped before sending: send again.
                        TaskState::Queued if !task.dispatched => Out::Ids(vec![id(t)]),
                        _ => Out::Ids(vec![]),
                    }
                }
                Op::MarkDispatched { t } => {
                    let task = &mut self.tasks[t];
                    if task.state == TaskState::Queued {
                        task.dispatched = true;
                    }
                    Out::Applied(true)
                }
                Op::MarkDeadLettered { t, dispatch } => {
                    let task = &mut self.tasks[t];
                    let ok = task.state == TaskState::Failed;
                    if ok {
                        task.dead_lettered = Some(dispatch);
                    }
                    Out::Applied(ok)
                }
                Op::Reset { scope } => {
                    let mut ids = Vec::new();
                    for (i, task) in self.tasks.iter_mut().enumerate() {
                        let hit = match SCOPES[scope as usize] {
                            ResetScope::Failed => task.state == TaskState::Failed,
                            ResetScope::Done => task.state == TaskState::Done,
                            ResetScope::Stale => task.state == TaskState::Running && !task.live,
                            ResetScope::Queued => task.state == TaskState::Queued && !task.dispatched,
                        };
                        if hit {
                            if matches!(task.state, TaskState::Done | TaskState::Failed) {
                                self.armed = true;
                                task.attempts = 0;
                            }
                            task.state = TaskState::Pending;
                            task.owner = None;
                            task.dispatched = false;
                            task.dead_lettered = None;
                            ids.push(id(i));
                        }
                    }
                    Out::Ids(ids)
                }
            }
        }
    }

    fn run_on(l: &dyn Ledger, run: &str, op: &Op) -> Out {
        let lease = |expired: bool| if expired { Duration::ZERO } else { LEASE };
        match *op {
            Op::Claim { w, t, expired_lease, overwrite, redrive } => {
                let opts = ClaimOptions {
                    lease: lease(expired_lease),
                    rerun_done: overwrite,
                    rerun_failed: if overwrite {
                        RerunFailed::Always
                    } else if let Some(d) = redrive {
                        RerunFailed::IfDeadLettered(format!("dispatch-{d}"))
                    } else {
                        RerunFailed::Never
                    },
                    max_attempts: CAP,
                };
                Out::Claim(l.claim(run, &id(t), &worker(w), &opts).unwrap())
            }
            Op::Heartbeat { w, t } => Out::Applied(l.heartbeat(run, &id(t), &worker(w), LEASE).unwrap()),
            Op::Complete { w, t } => Out::Transition(l.complete(run, &id(t), &worker(w), &json!({"w": w})).unwrap()),
            Op::Fail { w, t, final_attempt } => {
                Out::Transition(l.fail(run, &id(t), &worker(w), "injected", final_attempt, None).unwrap())
            }
            Op::Release { w, t } => Out::Applied(l.release(run, &id(t), &worker(w)).unwrap()),
            Op::MarkQueued { t } => Out::Ids(l.mark_queued(run, &[id(t)]).unwrap()),
            Op::MarkDispatched { t } => {
                l.mark_dispatched(run, &[id(t)]).unwrap();
                Out::Applied(true)
            }
            Op::MarkDeadLettered { t, dispatch } => {
                Out::Applied(l.mark_dead_lettered(run, &id(t), Some(&format!("dispatch-{dispatch}"))).unwrap())
            }
            Op::Reset { scope } => {
                let mut ids = l.reset(run, SCOPES[scope as usize], None).unwrap();
                ids.sort();
                Out::Ids(ids)
            }
        }
    }

    fn check(l: &dyn Ledger, run: &str, ops: &[Op]) -> Result<(), TestCaseError> {
        plan(l, run, TASKS);
        let mut model = Model::new();
        for (step, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let got = run_on(l, run, op);
            prop_assert_eq!(&got, &expected, "step {} {:?}", step, op);
            let tasks = l.tasks(run, None).unwrap();
            for (t, m) in tasks.iter().zip(&model.tasks) {
                prop_assert_eq!(t.state, m.state, "step {} {:?}: task {}", step, op, &t.task_id);
                prop_assert_eq!(t.attempts, m.attempts, "step {} {:?}: attempts of {}", step, op, &t.task_id);
                prop_assert!(t.attempts <= CAP, "step {} {:?}: attempts of {} above the cap", step, op, &t.task_id);
                prop_assert_eq!(t.dispatched, m.dispatched, "step {} {:?}: dispatched {}", step, op, &t.task_id);
                prop_assert_eq!(
                    t.dead_lettered,
                    m.dead_lettered.is_some(),
                    "step {} {:?}: dead-lettered {}",
                    step,
                    op,
                    &t.task_id
                );
            }
            let r = l.run(run).unwrap().unwrap();
            for s in TaskState::ALL {
                let n = tasks.iter().filter(|t| t.state == s).count() as u64;
                prop_assert_eq!(r.counts.get(s), n, "step {} {:?}: counter {} vs task states", step, op, s);
            }
            prop_assert_eq!(r.counts.total, TASKS as u64);
            prop_assert_eq!(r.completions, model.completions, "step {} {:?}: completions", step, op);
        }
        Ok(())
    }

    fn explore(cases: u32, ledger: &dyn Ledger, prefix: &str) {
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let n = std::sync::atomic::AtomicUsize::new(0);
        runner
            .run(&prop::collection::vec(op(), 1..40), |ops| {
                // A fresh run per case (and per shrinking step) on the same ledger.
                let run = format!("{prefix}-{}", n.fetch_add(1, Ordering::Relaxed));
                check(ledger, &run, &ops)
            })
            .unwrap();
    }

    #[test]
    fn sqlite_ledger_follows_the_model() {
        let (_d, l) = sqlite();
        explore(300, &l, "prop");
    }

    #[test]
    fn dynamodb_ledger_follows_the_model() {
        explore(40, &dynamodb("prop"), "prop");
    }
}
