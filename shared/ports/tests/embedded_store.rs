//! The embedded ledger and queue under concurrent workers, redelivery and crashes.

use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stratus_ports::ledger::ResetScope;
use stratus_ports::sqlite::Db;
use stratus_ports::*;

fn plan(ledger: &SqliteLedger, run: &str, n: usize) -> Vec<String> {
    let docs: Vec<serde_json::Value> = (0..n).map(|i| json!({"i": i})).collect();
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            task_id: format!("t{i:03}"),
            index: i,
            summary: json!({}),
            datasets: vec![i as u32],
            parts: 0,
        })
        .collect();
    ledger
        .create_run(&NewRun { run_id: run.into(), config: json!({}), config_digest: "d".into() }, &tasks, &docs, false)
        .unwrap();
    tasks.into_iter().map(|t| t.task_id).collect()
}

const LEASE: Duration = Duration::from_secs(60);

#[test]
fn create_refuses_overwrite_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(dir.path().join("s.db")).unwrap();
    plan(&l, "r", 3);
    let again = l.create_run(
        &NewRun { run_id: "r".into(), config: json!({}), config_digest: "d".into() },
        &[],
        &Vec::new(),
        false,
    );
    assert!(matches!(again, Err(PortError::RunExists(_))));
    let c = l.run("r").unwrap().unwrap().counts;
    assert_eq!((c.total, c.pending), (3, 3));
    assert_eq!(l.payload("r", "t001").unwrap(), json!({"datasets": [{"i": 1}]}));
}

#[test]
fn concurrent_workers_each_task_done_once_and_completion_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let l = SqliteLedger::open(&path).unwrap();
    let ids = plan(&l, "r", 60);
    let fired = Arc::new(AtomicI64::new(0));
    let completed = Arc::new(AtomicI64::new(0));
    std::thread::scope(|s| {
        for w in 0..6 {
            // Each worker has its own connection, like separate processes.
            let l = SqliteLedger::open(&path).unwrap();
            let ids = ids.clone();
            let fired = fired.clone();
            let completed = completed.clone();
            s.spawn(move || {
                let me = format!("worker-{w}");
                // Every worker tries every task, twice (duplicate delivery).
                for _round in 0..2 {
                    for id in &ids {
                        if let ClaimOutcome::Claimed { .. } = l.claim("r", id, &me, &ClaimOptions::new(LEASE)).unwrap()
                        {
                            let t = l.complete("r", id, &me, &json!({"by": me})).unwrap();
                            assert!(t.applied);
                            completed.fetch_add(1, Ordering::SeqCst);
                            if t.completion_fired {
                                fired.fetch_add(1, Ordering::SeqCst);
                            }
                            // A duplicate completion does nothing.
                            assert!(!l.complete("r", id, &me, &json!({})).unwrap().applied);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(completed.load(Ordering::SeqCst), 60, "each task completed exactly once");
    assert_eq!(fired.load(Ordering::SeqCst), 1, "completion fired exactly once");
    let r = l.run("r").unwrap().unwrap();
    assert_eq!((r.counts.done, r.counts.pending, r.counts.running), (60, 0, 0));
    assert_eq!(r.completions, 1);
    assert!(l.tasks("r", None).unwrap().iter().all(|t| t.state == TaskState::Done && t.attempts == 1));
}

#[test]
fn leases_expire_and_stale_owner_cannot_finish() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = now.clone();
    let db = Db::open(dir.path().join("s.db")).unwrap().with_clock(move || clock.load(Ordering::SeqCst));
    let l = SqliteLedger::new(db);
    plan(&l, "r", 1);
    assert_eq!(
        l.claim("r", "t000", "a", &ClaimOptions::new(LEASE)).unwrap(),
        ClaimOutcome::Claimed { attempt: 1, parts: 0 }
    );
    assert!(matches!(l.claim("r", "t000", "b", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::Busy { .. }));
    // Heartbeat keeps it.
    now.fetch_add(50_000, Ordering::SeqCst);
    assert!(l.heartbeat("r", "t000", "a", LEASE).unwrap());
    now.fetch_add(50_000, Ordering::SeqCst);
    assert!(matches!(l.claim("r", "t000", "b", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::Busy { .. }));
    // Lease lapses: b takes over; a's late completion is refused.
    now.fetch_add(61_000, Ordering::SeqCst);
    assert_eq!(
        l.claim("r", "t000", "b", &ClaimOptions::new(LEASE)).unwrap(),
        ClaimOutcome::Claimed { attempt: 2, parts: 0 }
    );
    assert!(!l.complete("r", "t000", "a", &json!({})).unwrap().applied);
    assert!(!l.heartbeat("r", "t000", "a", LEASE).unwrap());
    let t = l.complete("r", "t000", "b", &json!({})).unwrap();
    assert!(t.applied && t.completion_fired);
    assert_eq!(l.claim("r", "t000", "c", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::AlreadyDone);
}

#[test]
fn failures_retry_then_fail_and_reset_rearms_completion() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(dir.path().join("s.db")).unwrap();
    plan(&l, "r", 2);
    l.claim("r", "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
    let t = l.fail("r", "t000", "w", "transient", false, None).unwrap();
    assert!(t.applied && !t.completion_fired);
    assert_eq!(l.task("r", "t000").unwrap().unwrap().state, TaskState::Pending);
    l.claim("r", "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
    l.fail("r", "t000", "w", "corrupt input B04.tif", true, None).unwrap();
    let task = l.task("r", "t000").unwrap().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Failed, 2));
    assert_eq!(task.error.as_deref(), Some("corrupt input B04.tif"));
    l.claim("r", "t001", "w", &ClaimOptions::new(LEASE)).unwrap();
    assert!(l.complete("r", "t001", "w", &json!({})).unwrap().completion_fired);
    assert_eq!(l.claim("r", "t000", "w", &ClaimOptions::new(LEASE)).unwrap(), ClaimOutcome::AlreadyFailed);
    // Redrive: failed -> pending, and the completion fires again when it is done.
    assert_eq!(l.reset("r", ResetScope::Failed, None).unwrap(), vec!["t000"]);
    let c = l.run("r").unwrap().unwrap().counts;
    assert_eq!((c.pending, c.failed, c.done), (1, 0, 1));
    l.claim("r", "t000", "w", &ClaimOptions::new(LEASE)).unwrap();
    assert!(l.complete("r", "t000", "w", &json!({})).unwrap().completion_fired);
    assert_eq!(l.run("r").unwrap().unwrap().completions, 2);
}

#[test]
fn dead_local_owner_is_reclaimed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(dir.path().join("s.db")).unwrap();
    plan(&l, "r", 1);
    let host = hostname::get().unwrap().to_string_lossy().to_string();
    let dead = format!("{host}:{}:0", u32::MAX - 3);
    l.claim("r", "t000", &dead, &ClaimOptions::new(LEASE)).unwrap();
    assert_eq!(l.reset("r", ResetScope::Stale, None).unwrap(), vec!["t000"]);
    assert_eq!(
        l.claim("r", "t000", "me", &ClaimOptions::new(LEASE)).unwrap(),
        ClaimOutcome::Claimed { attempt: 2, parts: 0 }
    );
}

#[test]
fn queue_visibility_receive_counts_dlq_and_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let clock = now.clone();
    let db = Db::open(dir.path().join("s.db")).unwrap().with_clock(move || clock.load(Ordering::SeqCst));
    let q = SqliteQueue::new(db, "tasks", 3);
    q.send_batch(&["a".into(), "b".into()]).unwrap();
    let vis = Duration::from_secs(30);
    let got = q.receive(10, vis, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(q.depth().unwrap(), QueueDepth { visible: 0, in_flight: 2, dead_letter: 0 });
    // Invisible until the timeout; extending it keeps it hidden.
    now.fetch_add(20_000, Ordering::SeqCst);
    q.extend_visibility(&got[0].receipt, vis).unwrap();
    assert!(q.receive(10, vis, Duration::ZERO).unwrap().is_empty());
    q.delete(&got[1].receipt).unwrap();
    now.fetch_add(31_000, Ordering::SeqCst);
    let again = q.receive(10, vis, Duration::ZERO).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("a", 2));
    // The old receipt is stale.
    assert!(q.extend_visibility(&got[0].receipt, vis).is_err());
    now.fetch_add(31_000, Ordering::SeqCst);
    assert_eq!(q.receive(10, vis, Duration::ZERO).unwrap()[0].receive_count, 3);
    // A fourth receive dead-letters it instead of delivering.
    now.fetch_add(31_000, Ordering::SeqCst);
    assert!(q.receive(10, vis, Duration::ZERO).unwrap().is_empty());
    assert_eq!(q.depth().unwrap().dead_letter, 1);
    assert_eq!(q.redrive().unwrap(), 1);
    let back = q.receive(10, vis, Duration::ZERO).unwrap();
    assert_eq!((back.len(), back[0].receive_count), (1, 1));
}

#[test]
fn queue_concurrent_receivers_get_disjoint_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let q = SqliteQueue::new(Db::open(&path).unwrap(), "tasks", 3);
    q.send_batch(&(0..200).map(|i| i.to_string()).collect::<Vec<_>>()).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let q = SqliteQueue::new(Db::open(&path).unwrap(), "tasks", 3);
            let seen = &seen;
            s.spawn(move || loop {
                let got = q.receive(7, Duration::from_secs(60), Duration::ZERO).unwrap();
                if got.is_empty() {
                    break;
                }
                for m in got {
                    q.delete(&m.receipt).unwrap();
                    seen.lock().unwrap().push(m.body);
                }
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(seen, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
}
