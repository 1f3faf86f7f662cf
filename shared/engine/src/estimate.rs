//! What a run will cost before it starts: invocations, GB-seconds, S3 requests and bytes,
//! queue and ledger requests, dollars, and wall time at a concurrency, from the per-task
//! estimates of [`crate::sizing`].
//!
//! Prices are AWS on-demand list prices (us-west-2, x86, as published in 2025); every one
//! can be overridden by name (`stratus estimate --price lambda_gb_second=0.0000133`).

use crate::sizing::{Executor, Sizer, TaskEstimate};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Unit prices in USD. Names are what `--price NAME=VALUE` accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// Lambda compute, per GB-second of configured memory.
    pub lambda_gb_second: f64,
    /// Lambda, per request.
    pub lambda_request: f64,
    /// Fargate, per vCPU-hour and per GB-hour (the container worker).
    pub fargate_vcpu_hour: f64,
    pub fargate_gb_hour: f64,
    /// S3 Standard, per GET and per PUT request.
    pub s3_get: f64,
    pub s3_put: f64,
    /// S3 Standard storage, per GB-month (the outputs, one month).
    pub s3_gb_month: f64,
    /// SQS standard queue, per request.
    pub sqs_request: f64,
    /// DynamoDB on demand, per write and per read request unit.
    pub dynamodb_write: f64,
    pub dynamodb_read: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            lambda_gb_second: 0.000_016_666_7,
            lambda_request: 0.20 / 1e6,
            fargate_vcpu_hour: 0.040_48,
            fargate_gb_hour: 0.004_445,
            s3_get: 0.0004 / 1000.0,
            s3_put: 0.005 / 1000.0,
            s3_gb_month: 0.023,
            sqs_request: 0.40 / 1e6,
            dynamodb_write: 1.25 / 1e6,
            dynamodb_read: 0.25 / 1e6,
        }
    }
}

impl Prices {
    /// Apply `NAME=VALUE` overrides.
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<Prices, String> {
        let mut v = serde_json::to_value(&self).expect("prices serialise");
        for o in overrides {
            let (k, val) = o.split_once('=').ok_or_else(|| format!("price '{o}': use NAME=VALUE"))?;
            let val: f64 = val.trim().parse().map_err(|_| format!("price '{o}': '{val}' is not a number"))?;
            match v.get_mut(k.trim()) {
                Some(slot) if val >= 0.0 => *slot = serde_json::json!(val),
                Some(_) => return Err(format!("price '{o}' is negative")),
                None => {
                    let names: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                    return Err(format!("no price named '{k}' (known: {})", names.join(", ")));
                }
            }
        }
        self = serde_json::from_value(v).expect("same shape");
        Ok(self)
    }
}

/// Assumptions about requests and bytes, per task.
pub mod assumptions {
    /// GDAL reads a COG's header once per band and file (16 KB).
    pub const HEADER_BYTES: f64 = 16_384.0;
    /// Source COGs (deflate/zstd, 16-bit) compress to about this share of raw. Bytes are
    /// counted as if every band were at the output resolution: an upper bound.
    pub const SOURCE_COMPRESSION: f64 = 0.6;
    /// Output COGs (zstd) compress to about this share of raw.
    pub const OUTPUT_COMPRESSION: f64 = 0.5;
    /// Parts of a multipart upload (bytes).
    pub const PART_BYTES: f64 = 16.0 * 1024.0 * 1024.0;
    /// Ledger writes per task: plan, queued, claim (two items), heartbeat, complete (two).
    pub const LEDGER_WRITES: f64 = 8.0;
    /// Ledger reads per task: the task, its payload, the run.
    pub const LEDGER_READS: f64 = 3.0;
    /// Queue requests per task: send (batched by ten), receive, delete.
    pub const QUEUE_REQUESTS: f64 = 2.1;
    /// The container worker's size (vCPU, GB): an ECS/Fargate task.
    pub const CONTAINER_VCPUS: f64 = 4.0;
    pub const CONTAINER_GB: f64 = 30.0;
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEstimate {
    /// Ledger tasks: tiles, and the parts of split tiles.
    pub tasks: usize,
    /// Tiles split into parts, and their parts.
    #[serde(default)]
    pub split_tiles: usize,
    #[serde(default)]
    pub parts: usize,
    pub lambda_tasks: usize,
    pub container_tasks: usize,
    pub observations: u64,
    pub dataset_reads: u64,
    pub pixels: u64,
    pub lambda_invocations: u64,
    pub lambda_gb_seconds: f64,
    pub container_vcpu_hours: f64,
    pub s3_gets: u64,
    pub s3_get_bytes: f64,
    pub s3_puts: u64,
    /// Bytes kept (the products).
    pub s3_put_bytes: f64,
    /// Sub-tile parts' bands: written, read back once by the assembly, deleted.
    #[serde(default)]
    pub s3_scratch_bytes: f64,
    pub queue_requests: u64,
    pub ledger_writes: u64,
    pub ledger_reads: u64,
    pub usd_lambda: f64,
    pub usd_container: f64,
    pub usd_s3_requests: f64,
    pub usd_s3_storage_month: f64,
    pub usd_queue_and_ledger: f64,
    pub usd_total: f64,
    pub concurrency: usize,
    pub containers: usize,
    /// Wall time of the Lambda tasks at `concurrency`, and of the container tasks on
    /// `containers` workers (they run side by side).
    pub lambda_wall_seconds: f64,
    pub container_wall_seconds: f64,
    pub longest_task_seconds: f64,
    pub peak_memory_mb_max: u64,
}

impl RunEstimate {
    pub fn new(
        sizer: &Sizer,
        tasks: &[TaskEstimate],
        prices: &Prices,
        concurrency: usize,
        containers: usize,
    ) -> RunEstimate {
        use assumptions::*;
        let outputs = sizer.statistic.output_bands();
        // Chunks of a task: a whole tile's, or a part's (a part is whole chunks).
        let chunk_px = (sizer.chunk_size * sizer.chunk_size) as f64;
        let out_bytes_per_px: f64 = outputs.iter().map(|o| crate::sizing::dtype_bytes(o.dtype)).sum();
        let mut e = RunEstimate { concurrency, containers, ..Default::default() };
        let (mut lambda_s, mut container_s) = (0.0, 0.0);
        let gb = sizer.budget.memory_mb as f64 / 1024.0;
        for t in tasks {
            e.tasks += 1;
            e.observations += t.observations as u64;
            e.dataset_reads += t.datasets as u64;
            let px = t.pixels as f64;
            // An assembly makes no new pixels: its parts did.
            if t.assembles == 0 {
                e.pixels += t.pixels;
            }
            let n_chunks = (px / chunk_px).ceil().max(1.0);
            let files = crate::sizing::full_reads(t.observations, t.datasets) * t.bands as f64;
            // A header per file, then a ranged read per chunk it touches.
            e.s3_gets += (files * (1.0 + n_chunks)) as u64;
            e.s3_get_bytes += files * (HEADER_BYTES + px * 2.0 * SOURCE_COMPRESSION);
            let out_bytes = px * out_bytes_per_px * OUTPUT_COMPRESSION;
            let uploads: f64 = outputs.len() as f64 * (1.0 + (out_bytes / outputs.len() as f64 / PART_BYTES).ceil());
            e.s3_puts += (uploads + 1.0) as u64;
            if t.part {
                // Scratch: uploaded, read back once by the assembly, deleted (not stored).
                e.parts += 1;
                e.s3_scratch_bytes += out_bytes;
            } else {
                e.s3_put_bytes += out_bytes;
            }
            if t.assembles > 0 {
                e.split_tiles += 1;
                e.s3_gets += u64::from(t.assembles) * outputs.len() as u64;
            }
            e.longest_task_seconds = e.longest_task_seconds.max(t.lambda_seconds);
            e.peak_memory_mb_max = e.peak_memory_mb_max.max(t.peak_memory_mb);
            match t.executor {
                Executor::Lambda => {
                    e.lambda_tasks += 1;
                    e.lambda_invocations += 1;
                    e.lambda_gb_seconds += t.lambda_seconds * gb;
                    lambda_s += t.lambda_seconds;
                }
                Executor::Container => {
                    e.container_tasks += 1;
                    let secs = t.core_seconds / crate::sizing::speedup(CONTAINER_VCPUS);
                    e.container_vcpu_hours += secs * CONTAINER_VCPUS / 3600.0;
                    container_s += secs;
                }
            }
        }
        let n = e.tasks as f64;
        e.queue_requests = (n * QUEUE_REQUESTS).ceil() as u64;
        e.ledger_writes = (n * LEDGER_WRITES) as u64;
        e.ledger_reads = (n * LEDGER_READS) as u64;
        e.usd_lambda =
            e.lambda_gb_seconds * prices.lambda_gb_second + e.lambda_invocations as f64 * prices.lambda_request;
        e.usd_container = e.container_vcpu_hours * prices.fargate_vcpu_hour
            + e.container_vcpu_hours / CONTAINER_VCPUS * CONTAINER_GB * prices.fargate_gb_hour;
        e.usd_s3_requests = e.s3_gets as f64 * prices.s3_get + e.s3_puts as f64 * prices.s3_put;
        e.usd_s3_storage_month = e.s3_put_bytes / 1e9 * prices.s3_gb_month;
        e.usd_queue_and_ledger = e.queue_requests as f64 * prices.sqs_request
            + e.ledger_writes as f64 * prices.dynamodb_write
            + e.ledger_reads as f64 * prices.dynamodb_read;
        e.usd_total =
            e.usd_lambda + e.usd_container + e.usd_s3_requests + e.usd_s3_storage_month + e.usd_queue_and_ledger;
        let longest_lambda = tasks.iter().filter(|t| t.executor == Executor::Lambda).map(|t| t.lambda_seconds);
        e.lambda_wall_seconds = (lambda_s / concurrency.max(1) as f64).max(longest_lambda.fold(0.0, f64::max));
        e.container_wall_seconds = container_s / containers.max(1) as f64;
        e
    }

    /// The estimate as an operator reads it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let gb = |b: f64| b / 1e9;
        let _ = writeln!(
            s,
            "tasks: {} ({} on Lambda, {} on the container worker)",
            self.tasks, self.lambda_tasks, self.container_tasks
        );
        if self.split_tiles > 0 {
            let _ = writeln!(
                s,
                "split tiles: {} into {} parts (each part an invocation, each tile one more to assemble them; \
                 parts are scratch in S3 until then)",
                self.split_tiles, self.parts
            );
        }
        let _ = writeln!(
            s,
            "observations: {} task-days; dataset reads: {}; pixels: {:.2e}",
            self.observations, self.dataset_reads, self.pixels as f64
        );
        let _ = writeln!(
            s,
            "Lambda: {} invocations, {:.0} GB-s (${:.2}); container: {:.1} vCPU-h (${:.2})",
            self.lambda_invocations,
            self.lambda_gb_seconds,
            self.usd_lambda,
            self.container_vcpu_hours,
            self.usd_container
        );
        let _ = writeln!(
            s,
            "S3: {} GETs ({:.1} GB), {} PUTs ({:.1} GB): ${:.2} requests, ${:.2}/month storage",
            self.s3_gets,
            gb(self.s3_get_bytes),
            self.s3_puts,
            gb(self.s3_put_bytes),
            self.usd_s3_requests,
            self.usd_s3_storage_month
        );
        if self.s3_scratch_bytes > 0.0 {
            let _ = writeln!(
                s,
                "S3 scratch: {:.1} GB of sub-tile parts, written and read back once (counted in the requests)",
                gb(self.s3_scratch_bytes)
            );
        }
        let _ = writeln!(
            s,
            "SQS + DynamoDB: {} queue requests, {} ledger writes, {} reads: ${:.2}",
            self.queue_requests, self.ledger_writes, self.ledger_reads, self.usd_queue_and_ledger
        );
        let _ = writeln!(s, "total: ${:.2}", self.usd_total);
        let lambda = if self.lambda_tasks > 0 {
            format!("{} on {} concurrent Lambdas", human(self.lambda_wall_seconds), self.concurrency)
        } else {
            "no task fits Lambda".to_string()
        };
        let container = if self.container_tasks > 0 {
            format!("; {} on {} container workers", human(self.container_wall_seconds), self.containers)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "wall time: {lambda}{container} (longest task {:.0} s on Lambda's 6 vCPUs, peak task memory {} MB)",
            self.longest_task_seconds, self.peak_memory_mb_max
        );
        s
    }
}

/// The estimate of a planned run, from the per-task estimates its plan recorded.
pub fn estimate_run(
    ctx: &crate::Context,
    run_id: &str,
    prices: &Prices,
    concurrency: usize,
    containers: usize,
) -> crate::error::Result<RunEstimate> {
    use crate::error::EngineError;
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| EngineError::Config(format!("no run '{run_id}' in the ledger")))?;
    let cfg = crate::config::RunRecordExt::run_config(&run)?;
    let statistic = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)?;
    let sizer = Sizer::new(&cfg, statistic.as_ref())?;
    let tasks: Vec<TaskEstimate> = ctx
        .ledger
        .tasks(run_id, None)?
        .iter()
        .map(|t| {
            // Plans recorded before sizing existed carry only the counts.
            let s = crate::task_summary::TaskSummary::of(t);
            s.estimate.unwrap_or_else(|| sizer.estimate(s.observation_days, s.datasets))
        })
        .collect();
    Ok(RunEstimate::new(&sizer, &tasks, prices, concurrency, containers))
}

fn human(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunConfig;

    #[test]
    fn adds_up_tasks_and_prices_and_takes_overrides() {
        let cfg = RunConfig::from_yaml(
            "inputs: [x]\ngrid: africa-30\nplugin: gm-s2\nproduct: {name: p}\nlocation: /tmp/x\n",
            "t",
        )
        .unwrap();
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let sizer = Sizer::new(&cfg, gm.as_ref()).unwrap();
        let tasks: Vec<TaskEstimate> = (0..10).map(|_| sizer.estimate(40, 80)).collect();
        let e = RunEstimate::new(&sizer, &tasks, &Prices::default(), 5, 1);
        assert_eq!((e.tasks, e.lambda_tasks, e.lambda_invocations), (10, 10, 10));
        let one = tasks[0].lambda_seconds;
        assert!((e.lambda_gb_seconds - 10.0 * one * 10.0).abs() < 1e-6);
        assert!((e.lambda_wall_seconds - 2.0 * one).abs() < 1e-6, "10 tasks on 5 at a time");
        assert!(e.s3_gets >= 10 * 80 * 6 * 2);
        let total: f64 =
            e.usd_lambda + e.usd_container + e.usd_s3_requests + e.usd_s3_storage_month + e.usd_queue_and_ledger;
        assert!((e.usd_total - total).abs() < 1e-12 && e.usd_total > 0.0);
        let free = Prices::default().with_overrides(&["lambda_gb_second=0".into()]).unwrap();
        let cheaper = RunEstimate::new(&sizer, &tasks, &free, 5, 1);
        assert!(
            (e.usd_total - cheaper.usd_total - e.lambda_gb_seconds * Prices::default().lambda_gb_second).abs() < 1e-9
        );
        assert!(Prices::default().with_overrides(&["nope=1".into()]).unwrap_err().contains("lambda_gb_second"));
        assert!(Prices::default().with_overrides(&["s3_get=x".into()]).is_err());
        assert!(e.render().contains("total: $"));
    }

    #[test]
    fn split_tiles_count_their_parts_assemblies_and_scratch() {
        let cfg = RunConfig::from_yaml(
            "inputs: [x]\ngrid: africa-10\nplugin: gm-s2\nproduct: {name: p}\nlocation: /tmp/x\n",
            "t",
        )
        .unwrap();
        let gm = stratus_stats::build_statistic("gm-s2", &serde_json::Value::Null).unwrap();
        let sizer = Sizer::new(&cfg, gm.as_ref()).unwrap();
        let plan = sizer.plan_tile(150, 300);
        let k = plan.parts as usize;
        assert!(k >= 2);
        let invocations = plan.invocations();
        let e = RunEstimate::new(&sizer, &invocations, &Prices::default(), 1000, 1);
        assert_eq!((e.split_tiles, e.parts, e.tasks), (1, k * k, k * k + 1));
        assert_eq!((e.lambda_invocations as usize, e.container_tasks), (k * k + 1, 0));
        let whole = RunEstimate::new(&sizer, std::slice::from_ref(&plan.whole), &Prices::default(), 1000, 1);
        // The same products are stored; the parts are scratch on top.
        assert!((e.s3_put_bytes - whole.s3_put_bytes).abs() / whole.s3_put_bytes < 1e-9);
        assert!(e.s3_scratch_bytes > 0.9 * whole.s3_put_bytes, "{} vs {}", e.s3_scratch_bytes, whole.s3_put_bytes);
        assert!(e.render().contains(&format!("split tiles: 1 into {} parts", k * k)), "{}", e.render());
        // The same pixels and source reads as the whole tile, in parts.
        assert_eq!(e.pixels, whole.pixels);
        let gets_ratio = (e.s3_gets as f64) / (whole.s3_gets as f64);
        assert!((0.95..1.3).contains(&gets_ratio), "{} vs {}", e.s3_gets, whole.s3_gets);
    }
}
