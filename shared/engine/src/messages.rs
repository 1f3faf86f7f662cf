//! The bodies of the messages between the parts: task messages (task queue), fan-out pages
//! (dispatch queue) and completion messages (completion queue). All JSON; parsing never
//! panics and says what is wrong with a body.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};

/// Longest body we accept (SQS allows 256 KB; ours are far smaller).
const MAX_BODY: usize = 256 * 1024;

/// One tile to process: the run and the task (the ledger has the rest), and the id of this
/// dispatch of it. A dead-letter queue redrive keeps a message's body, so the id tells the
/// task's own message, back from the dead-letter queue, from a duplicate (see
/// `RerunFailed::IfDeadLettered`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskMessage {
    pub run_id: String,
    pub task_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<String>,
}

/// A page of a run's tasks for the dispatcher to publish (plan order `first_index..`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FanOutPage {
    pub run_id: String,
    pub page: usize,
    pub first_index: usize,
    pub task_ids: Vec<String>,
    /// Which worker the page's tasks were sized for (and so which queue they go to).
    #[serde(default)]
    pub executor: crate::sizing::Executor,
}

/// Sent once each time a run's tasks have all ended (done + failed = total).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompletionMessage {
    pub run_id: String,
    /// 1 for the first completion, 2 after a redrive completed it again, ...
    pub completion: u64,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
}

/// A run id as it may appear in keys and paths: letters, digits, `-_.+`, no `..`.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 200
        && !run_id.contains("..")
        && run_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Config(format!(
            "run id '{}' is not valid: use letters, digits and - _ . + (at most 200)",
            run_id.chars().take(80).collect::<String>()
        )))
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<T> {
    if body.len() > MAX_BODY {
        return Err(EngineError::Config(format!("{what}: body of {} bytes is too large", body.len())));
    }
    serde_json::from_str(body).map_err(|e| {
        EngineError::Config(format!(
            "{what}: {e} (body starts '{}')",
            body.chars().take(120).collect::<String>().escape_debug()
        ))
    })
}

impl TaskMessage {
    /// A message for a new dispatch of a task (with a new dispatch id).
    pub fn new(run_id: &str, task_id: &str) -> TaskMessage {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dispatch = format!("{:x}-{:x}-{seq:x}", std::process::id(), nanos);
        TaskMessage { run_id: run_id.into(), task_id: task_id.into(), dispatch: Some(dispatch) }
    }

    pub fn parse(body: &str) -> Result<TaskMessage> {
        let m: TaskMessage = parse_json(body, "task message")?;
        check_run_id(&m.run_id)?;
        stratus_core::TilePart::parse_task_id(&m.task_id)?;
        Ok(m)
    }
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }
}

impl FanOutPage {
    pub fn parse(body: &str) -> Result<FanOutPage> {
        let p: FanOutPage = parse_json(body, "fan-out page")?;
        check_run_id(&p.run_id)?;
        for t in &p.task_ids {
            stratus_core::TilePart::parse_task_id(t)?;
        }
        Ok(p)
    }
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }
}

impl CompletionMessage {
    pub fn parse(body: &str) -> Result<CompletionMessage> {
        let m: CompletionMessage = parse_json(body, "completion message")?;
        check_run_id(&m.run_id)?;
        Ok(m)
    }
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_messages_round_trip_and_bad_bodies_are_named() {
        let m = TaskMessage::new("gm-2021", "x+003/y-004/2021--P1Y");
        assert_eq!(TaskMessage::parse(&m.body()).unwrap(), m);
        assert_ne!(m.dispatch, TaskMessage::new("gm-2021", "x+003/y-004/2021--P1Y").dispatch, "one id per dispatch");
        // Messages without a dispatch id (hand-written, or from before) still parse.
        assert_eq!(TaskMessage::parse(r#"{"run_id":"r","task_id":"x+003/y-004/2021--P1Y"}"#).unwrap().dispatch, None);
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"run_id":"r","task_id":"nonsense"}"#,
            r#"{"run_id":"../x","task_id":"x+003/y-004/2021--P1Y"}"#,
            r#"{"run_id":"r","task_id":"x+003/y-004/2021--P1Y","extra":1}"#,
        ] {
            assert!(TaskMessage::parse(bad).is_err(), "{bad}");
        }
        let err = TaskMessage::parse("garbage").unwrap_err().to_string();
        assert!(err.contains("task message") && err.contains("garbage"), "{err}");
    }

    #[test]
    fn pages_check_every_task_id() {
        let p = FanOutPage {
            run_id: "r".into(),
            page: 0,
            first_index: 0,
            task_ids: vec!["x+003/y-004/2021--P1Y".into(), "bad".into()],
            executor: Default::default(),
        };
        assert!(FanOutPage::parse(&p.body()).is_err());
        // Pages from before sizing (no executor) are Lambda pages.
        let old = r#"{"run_id":"r","page":0,"first_index":0,"task_ids":["x+003/y-004/2021--P1Y"]}"#;
        assert_eq!(FanOutPage::parse(old).unwrap().executor, crate::sizing::Executor::Lambda);
    }
}
