//! Every sample event in events/ parses with the handlers' own parsers.

use aws_lambda_events::sqs::SqsEvent;
use std::path::PathBuf;
use stratus_engine::messages::{CompletionMessage, FanOutPage, TaskMessage};
use stratus_serverless::events::{planner_triggers, PlannerTrigger};

fn sample(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn bodies(name: &str) -> Vec<String> {
    let e: SqsEvent = serde_json::from_value(sample(name)).unwrap();
    e.records.into_iter().map(|r| r.body.unwrap()).collect()
}

#[test]
fn planner_events() {
    let run_file = PlannerTrigger::RunFile { bucket: "stratus-dev-outputs".into(), key: "runs/gm-s2-2023.yaml".into() };
    assert_eq!(planner_triggers(&sample("s3-run-file-created.json")).unwrap(), vec![run_file.clone()]);
    assert_eq!(planner_triggers(&sample("eventbridge-object-created.json")).unwrap(), vec![run_file]);
    match &planner_triggers(&sample("eventbridge-scheduled.json")).unwrap()[..] {
        [PlannerTrigger::Scheduled { time }] => assert_eq!(time.to_rfc3339(), "2027-01-01T02:00:00+00:00"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn queue_events() {
    assert_eq!(bodies("sqs-task-batch-1.json").len(), 1);
    let three = bodies("sqs-task-batch-3.json");
    assert_eq!(three.len(), 3);
    for b in &three {
        TaskMessage::parse(b).unwrap();
    }
    let page = FanOutPage::parse(&bodies("sqs-fan-out-page.json")[0]).unwrap();
    assert_eq!(page.task_ids.len(), 3);
    let done = CompletionMessage::parse(&bodies("sqs-completion.json")[0]).unwrap();
    assert_eq!(done.run_id, page.run_id);
}

#[test]
fn sample_run_file_is_valid_and_names_the_runs_in_the_messages() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/run-gm-s2-2023.yaml");
    let cfg = stratus_engine::RunConfig::from_yaml(&std::fs::read_to_string(p).unwrap(), "sample").unwrap();
    assert_eq!(cfg.run_id(), TaskMessage::parse(&bodies("sqs-task-batch-1.json")[0]).unwrap().run_id);
    let scheduled = stratus_serverless::planner::scheduled_config(cfg, chrono::Utc::now()).unwrap();
    assert!(scheduled.temporal_range.is_some());
}

/// events/local/ addresses the stack of `make local-aws`: one run, whose task ids are those
/// of its fan-out page, ending in its completion message.
#[test]
fn local_stack_events() {
    let run_file = PlannerTrigger::RunFile { bucket: "stratus-local-outputs".into(), key: "runs/local-pq.yaml".into() };
    assert_eq!(planner_triggers(&sample("local/s3-run-file-created.json")).unwrap(), vec![run_file]);
    let page = FanOutPage::parse(&bodies("local/sqs-fan-out-page.json")[0]).unwrap();
    assert_eq!(page.run_id, "local_pq-2021--P1Y");
    let tasks: Vec<TaskMessage> =
        bodies("local/sqs-task-batch-3.json").iter().map(|b| TaskMessage::parse(b).unwrap()).collect();
    assert_eq!(tasks.len(), 3);
    assert_eq!(bodies("local/sqs-task-batch-1.json"), bodies("local/sqs-task-batch-3.json")[..1]);
    for t in &tasks {
        assert_eq!(t.run_id, page.run_id);
        assert!(page.task_ids.contains(&t.task_id), "{} is not in the page", t.task_id);
    }
    let done = CompletionMessage::parse(&bodies("local/sqs-completion.json")[0]).unwrap();
    assert_eq!((done.run_id.as_str(), done.total), (page.run_id.as_str(), page.task_ids.len() as u64));
}
