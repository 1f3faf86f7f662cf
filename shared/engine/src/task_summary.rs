//! What the planner records about each task (`TaskRecord::summary`), typed: where and
//! when it is, how much it reads, and what it was sized for.

use crate::sizing::{Executor, TaskEstimate};
use serde::{Deserialize, Serialize};
use stratus_ports::TaskRecord;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub period: String,
    pub x: i32,
    pub y: i32,
    pub datasets: usize,
    pub observation_days: usize,
    /// The worker it was sized for (plans from before sizing: Lambda).
    #[serde(default)]
    pub executor: Executor,
    /// Plans from before sizing carry none.
    #[serde(default)]
    pub estimate: Option<TaskEstimate>,
    /// A split tile: parts per side (its task assembles them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<u32>,
    /// A sub-tile part: which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<stratus_core::TilePart>,
}

impl TaskSummary {
    /// A task's summary (an unreadable one reads as empty: a plan from an old version).
    pub fn of(task: &TaskRecord) -> TaskSummary {
        serde_json::from_value(task.summary.clone()).unwrap_or_default()
    }

    /// The form the ledger stores.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a task summary serialises")
    }
}

/// A run's progress in tiles: a split tile counts once (its own task's state), its parts
/// apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TileProgress {
    pub tiles: stratus_ports::RunCounts,
    /// Tiles planned as parts.
    pub split: u64,
    /// Split tiles waiting for their parts.
    pub waiting: u64,
    pub parts: stratus_ports::RunCounts,
}

impl TileProgress {
    pub fn of(tasks: &[TaskRecord]) -> TileProgress {
        let mut p = TileProgress::default();
        for t in tasks {
            let is_part = matches!(stratus_core::TilePart::parse_task_id(&t.task_id), Ok((_, Some(_))));
            let counts = if is_part { &mut p.parts } else { &mut p.tiles };
            counts.add(t.state);
            if !is_part && t.parts > 0 {
                p.split += 1;
                p.waiting += u64::from(t.blocked && t.state == stratus_ports::TaskState::Pending);
            }
        }
        p
    }
}
