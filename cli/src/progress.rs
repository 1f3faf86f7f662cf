//! A progress bar with ETA for long runs (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use stratus_engine::runner::Progress;
use stratus_engine::worker::{TaskOutcome, TaskReport};

pub struct Bar(ProgressBar);

impl Bar {
    pub fn new() -> Bar {
        let pb = ProgressBar::hidden();
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tiles  ETA {eta}  {msg}")
                .unwrap()
                .progress_chars("=> "),
        );
        Bar(pb)
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.0.enable_steady_tick(std::time::Duration::from_millis(250));
    }
    fn advance(&self, r: &TaskReport) {
        let what = match &r.outcome {
            TaskOutcome::Done(_) => "done",
            TaskOutcome::SkippedExisting | TaskOutcome::AlreadyDone => "already complete",
            TaskOutcome::Failed { .. } | TaskOutcome::AlreadyFailed => "FAILED",
            TaskOutcome::Busy { .. } => "held by another worker",
            TaskOutcome::Superseded => "taken over by another worker",
            TaskOutcome::Interrupted => "interrupted",
            TaskOutcome::Blocked => "waiting for its parts",
        };
        if matches!(r.outcome, TaskOutcome::Failed { .. }) {
            self.0.println(format!("  {} failed", r.task_id));
        }
        self.0.set_message(format!("{} {what}", r.task_id));
        self.0.inc(1);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
