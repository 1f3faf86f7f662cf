//! Exactly once under adversity, through the `stratus` CLI on the embedded store, as an
//! outside reviewer tried it: refused work is not retried and completes the run once; a
//! duplicate of a failed task's message changes nothing; a console-style redrive (the
//! dead-lettered messages moved back, the ledger untouched) runs each failed task once
//! and completes the run once more; a dispatcher that stopped between marking tasks
//! queued and sending their messages does not strand them.

mod support;

use support::stratus;

use std::path::Path;
use std::process::Output;
use stratus_engine::Context;
use stratus_ports::{TaskQueue, TaskState};

fn ok(o: Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{text}");
    text
}

/// A small plan at `location`; returns its task ids.
fn plan(dir: &Path, location: &str) -> Vec<String> {
    let catalog = stratus_synth::generate(&support::small_scenes(2), &dir.join("inputs"), &|_, _| {}).unwrap().catalog;
    ok(stratus(
        &[
            "save-tasks",
            "--input",
            catalog.to_str().unwrap(),
            "--grid",
            "epsg:6933;240;100",
            "--year",
            "2021",
            "--plugin",
            "pq",
            "--product-name",
            "eo",
            "--run-id",
            "eo",
            "--chunk-size",
            "64",
            "--location",
            location,
        ],
        &[],
    ));
    let ctx = Context::embedded(location, None).unwrap();
    ctx.ledger.tasks("eo", None).unwrap().into_iter().map(|t| t.task_id).collect()
}

/// Consume the run's queue; `expect_ok` says whether every task should end done (the CLI
/// exits non-zero when some failed).
fn from_queue(location: &str, env: &[(&str, &str)], expect_ok: bool) -> String {
    let o = stratus(&["run", "eo", "--from-queue", "--workers", "1", "--idle-exit", "1", "--location", location], env);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.success(), expect_ok, "{text}");
    text
}

#[test]
fn refused_work_fails_once_completes_once_and_a_console_redrive_runs_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    let tasks = plan(dir.path(), &location);
    assert!(tasks.len() >= 2, "{tasks:?}");
    let ctx = Context::embedded(&location, None).unwrap();
    let queue = ctx.embedded_queue("eo", 3).unwrap();

    // Inputs refused by the allow-list: a permanent failure, on the first attempt.
    ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    let nowhere = dir.path().join("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    from_queue(&location, &[("STRATUS_ALLOWED_INPUTS", nowhere.to_str().unwrap())], false);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.failed as usize, run.completions), (tasks.len(), 1), "{:?}", run.counts);
    for t in ctx.ledger.tasks("eo", None).unwrap() {
        assert_eq!(t.attempts, 1, "{}: a refused task is attempted once", t.task_id);
        assert!(t.dead_lettered, "{}: its message went on to the dead-letter queue", t.task_id);
        assert!(t.error.unwrap_or_default().contains("refused"));
    }
    assert_eq!(queue.depth().unwrap().dead_letter as usize, tasks.len());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(find(dir.path(), "summary.json").expect("a run summary")).unwrap())
            .unwrap();
    assert_eq!(summary["this_invocation"]["failed"].as_array().unwrap().len(), tasks.len(), "{summary}");

    // Console-style redrive: only the queue, the ledger untouched. Each failed task runs
    // once (no allow-list now), and the run completes once more.
    assert_eq!(queue.redrive().unwrap(), tasks.len());
    from_queue(&location, &[], true);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (tasks.len(), 2), "{:?}", run.counts);
    assert!(ctx.ledger.tasks("eo", None).unwrap().iter().all(|t| t.attempts == 1));

    // Duplicates of done tasks' messages change nothing.
    let bodies: Vec<String> =
        tasks.iter().map(|t| serde_json::json!({"run_id": "eo", "task_id": t}).to_string()).collect();
    queue.send_batch(&bodies).unwrap();
    from_queue(&location, &[], true);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (tasks.len(), 2));
    assert_eq!(queue.depth().unwrap().visible + queue.depth().unwrap().dead_letter, 0);
}

#[test]
fn a_failed_tasks_duplicate_message_leaves_it_failed_and_completes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    let tasks = plan(dir.path(), &location);
    let ctx = Context::embedded(&location, None).unwrap();
    let queue = ctx.embedded_queue("eo", 3).unwrap();
    let nowhere = dir.path().join("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    let refuse = [("STRATUS_ALLOWED_INPUTS", nowhere.to_str().unwrap())];
    ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    // Two copies of every message: the second arrives while the first is handled or
    // after the task failed.
    let bodies: Vec<String> =
        tasks.iter().map(|t| serde_json::json!({"run_id": "eo", "task_id": t}).to_string()).collect();
    queue.send_batch(&bodies).unwrap();
    from_queue(&location, &refuse, false);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.failed as usize, run.completions), (tasks.len(), 1), "{:?}", run.counts);
    assert!(ctx.ledger.tasks("eo", None).unwrap().iter().all(|t| t.attempts == 1 && t.state == TaskState::Failed));
}

#[test]
fn tasks_stranded_between_marking_and_sending_are_sent_by_the_next_publish() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    let tasks = plan(dir.path(), &location);
    let ctx = Context::embedded(&location, None).unwrap();
    // A dispatcher that marked every task queued and stopped before sending.
    assert_eq!(ctx.ledger.mark_queued("eo", &tasks).unwrap().len(), tasks.len());
    let out = ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    assert!(out.contains(&tasks.len().to_string()), "{out}");
    from_queue(&location, &[], true);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions), (tasks.len(), 1), "{:?}", run.counts);
    // Sent once: nothing is left to publish.
    let out = ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    assert!(ctx.ledger.tasks("eo", Some(TaskState::Queued)).unwrap().is_empty(), "{out}");
}

fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// A completion queue whose first `fail` sends fail (a throttled or unreachable SQS).
struct FlakyQueue {
    inner: stratus_ports::SqliteQueue,
    fail: std::sync::atomic::AtomicU32,
}

impl TaskQueue for FlakyQueue {
    fn send_batch(&self, bodies: &[String]) -> stratus_ports::error::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return Err(stratus_ports::PortError::Remote {
                service: "SQS".into(),
                op: "SendMessageBatch".into(),
                why: "injected: unreachable".into(),
                transient: false,
            });
        }
        self.inner.send_batch(bodies)
    }
    fn receive(
        &self,
        max: usize,
        visibility: std::time::Duration,
        wait: std::time::Duration,
    ) -> stratus_ports::error::Result<Vec<stratus_ports::Received>> {
        self.inner.receive(max, visibility, wait)
    }
    fn extend_visibility(&self, receipt: &str, visibility: std::time::Duration) -> stratus_ports::error::Result<()> {
        self.inner.extend_visibility(receipt, visibility)
    }
    fn delete(&self, receipt: &str) -> stratus_ports::error::Result<()> {
        self.inner.delete(receipt)
    }
    fn depth(&self) -> stratus_ports::error::Result<stratus_ports::QueueDepth> {
        self.inner.depth()
    }
    fn redrive(&self) -> stratus_ports::error::Result<usize> {
        self.inner.redrive()
    }
    fn max_receives(&self) -> u32 {
        self.inner.max_receives()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}

/// Handle every message of the run's task queue in this process, as a consumer does,
/// with `completion` as the completion queue; returns how many receives were made.
fn consume(ctx: &Context, completion: &dyn TaskQueue) -> usize {
    use stratus_engine::consumer::{Disposition, TaskHandler};
    // Receives to spare beyond the two failed sends. With exactly three, one extra
    // receive (a transient retry, likeliest under the rest of `make test` in parallel)
    // dead-letters the last task's message before its completion goes out: seen once
    // (2026-12-07, completions_sent 0), not reproduced in eight runs alone.
    let queue = ctx.embedded_queue("eo", 5).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers =
        TaskHandler::new(std::sync::Arc::new(stratus_engine::context::EmbeddedRuns(ctx.clone())), stop, false, None);
    let mut receives = 0;
    loop {
        let msgs = queue.receive(1, std::time::Duration::from_secs(60), std::time::Duration::ZERO).unwrap();
        let Some(msg) = msgs.into_iter().next() else {
            // A receive that moved a spent message to the dead-letter queue returns none.
            if queue.depth().unwrap().visible == 0 {
                return receives;
            }
            continue;
        };
        receives += 1;
        let handled = workers.handle(&msg, &queue, &|| {}, Some(completion));
        match handled.disposition {
            Disposition::Delete => queue.delete(&msg.receipt).unwrap(),
            // Come back at once (the test's clock does not wait out backoffs).
            _ => queue.extend_visibility(&msg.receipt, std::time::Duration::ZERO).unwrap(),
        }
    }
}

#[test]
fn a_completion_whose_send_fails_or_whose_sender_dies_is_sent_by_the_next_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    let tasks = plan(dir.path(), &location);
    let ctx = Context::embedded(&location, None).unwrap();
    ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    let db = stratus_ports::sqlite::Db::open(dir.path().join("completions.sqlite")).unwrap();
    let completion = FlakyQueue {
        inner: stratus_ports::SqliteQueue::new(db, "done", 3),
        fail: std::sync::atomic::AtomicU32::new(2),
    };
    let receives = consume(&ctx, &completion);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.counts.done as usize, run.completions, run.completions_sent), (tasks.len(), 1, 1));
    assert!(receives > tasks.len(), "the last task's message came back until its completion was sent");
    assert_eq!(completion.inner.depth().unwrap().visible, 1, "one completion message");

    // A worker killed after the last task's end, before sending: its message comes back
    // (it was never deleted), and whoever handles it sends the completion.
    let last = tasks.last().unwrap();
    ctx.ledger.reset("eo", stratus_ports::ledger::ResetScope::Done, Some(std::slice::from_ref(last))).unwrap();
    let opts = stratus_ports::ClaimOptions::new(std::time::Duration::from_secs(60));
    assert!(matches!(
        ctx.ledger.claim("eo", last, "doomed", &opts).unwrap(),
        stratus_ports::ClaimOutcome::Claimed { .. }
    ));
    assert!(ctx.ledger.complete("eo", last, "doomed", &serde_json::json!({})).unwrap().completion_fired);
    ctx.embedded_queue("eo", 3)
        .unwrap()
        .send_batch(&[serde_json::json!({"run_id": "eo", "task_id": last}).to_string()])
        .unwrap();
    consume(&ctx, &completion);
    let run = ctx.ledger.run("eo").unwrap().unwrap();
    assert_eq!((run.completions, run.completions_sent), (2, 2));
    assert_eq!(completion.inner.depth().unwrap().visible, 2);
}

#[test]
fn a_run_whose_tiles_all_failed_gets_its_report_once() {
    use stratus_engine::mosaic::{handle_completion, CompletionHandled, MosaicOptions};
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    plan(dir.path(), &location);
    ok(stratus(&["publish-tasks", "eo", "--location", &location], &[]));
    let nowhere = dir.path().join("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    from_queue(&location, &[("STRATUS_ALLOWED_INPUTS", nowhere.to_str().unwrap())], false);
    let ctx = Context::embedded(&location, None).unwrap();
    match handle_completion(&ctx, "eo", 1, &MosaicOptions::default()).unwrap() {
        CompletionHandled::Made { mosaic, report } => {
            assert!(mosaic.is_none(), "no tile is done: no mosaic");
            let html = std::fs::read_to_string(find(dir.path(), "report.html").expect("the HTML report")).unwrap();
            assert!(html.contains("refused"), "the report lists the failures: {report}");
        }
        other => panic!("{other:?}"),
    }
    assert!(find(dir.path(), "summary.json").is_some());
    // The same completion delivered again does nothing.
    assert!(matches!(
        handle_completion(&ctx, "eo", 1, &MosaicOptions::default()).unwrap(),
        CompletionHandled::AlreadyHandled { handled: 1 }
    ));
}

#[test]
fn save_tasks_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let catalog =
        stratus_synth::generate(&support::small_scenes(2), &dir.path().join("inputs"), &|_, _| {}).unwrap().catalog;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["save-tasks", "--input", catalog.to_str().unwrap(), "--grid", "epsg:6933;240;100", "--year", "2021"])
        .args(["--plugin", "pq", "--product-name", "eo", "--run-id", "eo", "--location"])
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A task another worker holds when its message comes for the last time (that worker was
/// killed and its lease has not lapsed yet: the soak found this): the message is not let
/// go to the dead-letter queue with the task unended; a fresh copy takes its place, and the
/// task ends once its holder's outcome is known.
#[test]
fn a_task_still_held_on_its_messages_last_receive_keeps_a_message() {
    use stratus_engine::consumer::{Disposition, TaskHandler};
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("out").display().to_string();
    let tasks = plan(dir.path(), &location);
    let ctx = Context::embedded(&location, None).unwrap();
    let held = tasks[0].clone();
    let opts = stratus_ports::ClaimOptions::new(std::time::Duration::from_secs(600));
    assert!(matches!(
        ctx.ledger.claim("eo", &held, "elsewhere", &opts).unwrap(),
        stratus_ports::ClaimOutcome::Claimed { .. }
    ));
    let queue = ctx.embedded_queue("eo", 3).unwrap();
    queue.send_batch(&[serde_json::json!({"run_id": "eo", "task_id": held}).to_string()]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handler =
        TaskHandler::new(std::sync::Arc::new(stratus_engine::context::EmbeddedRuns(ctx.clone())), stop, false, None);
    // More receives than the queue allows one message: each comes back at once.
    for _ in 0..7 {
        let msg = queue.receive(1, std::time::Duration::from_secs(60), std::time::Duration::ZERO).unwrap().remove(0);
        let handled = handler.handle(&msg, &queue, &|| {}, None);
        match handled.disposition {
            Disposition::Delete => queue.delete(&msg.receipt).unwrap(),
            _ => queue.extend_visibility(&msg.receipt, std::time::Duration::ZERO).unwrap(),
        }
    }
    let depth = queue.depth().unwrap();
    assert_eq!((depth.visible, depth.dead_letter), (1, 0), "one message, none dead-lettered: {depth:?}");
    assert_eq!(ctx.ledger.task("eo", &held).unwrap().unwrap().state, TaskState::Running);
    // The holder finishes: the message is acknowledged, nothing is left.
    assert!(ctx.ledger.complete("eo", &held, "elsewhere", &serde_json::json!({})).unwrap().applied);
    let msg = queue.receive(1, std::time::Duration::from_secs(60), std::time::Duration::ZERO).unwrap().remove(0);
    assert!(matches!(handler.handle(&msg, &queue, &|| {}, None).disposition, Disposition::Delete));
}
