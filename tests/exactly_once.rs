//! Exactly once under adversity, through the `stratus` CLI on the embedded store, as an
//! outside reviewer tried it: refused work is not retried and completes the run once; a
//! duplicate of a failed task's message changes nothing; a console-style redrive (the
//! dead-lettered messages moved back, the ledger untouched) runs each failed task once
//! and completes the run once more; a dispatcher that stopped between marking tasks
//! queued and sending their messages does not strand them.

mod support;

use std::path::Path;
use std::process::Output;
use stratus_engine::Context;
use stratus_ports::{TaskQueue, TaskState};

fn stratus(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env_remove("STRATUS_ALLOWED_OUTPUTS")
        .env_remove("STRATUS_ALLOWED_INPUTS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

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
