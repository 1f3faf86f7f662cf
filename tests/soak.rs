//! The chaos soak: a run of many small tiles on the embedded store while worker processes
//! are killed with SIGKILL at random points, task messages are duplicated at random, and a
//! few inputs are poisoned. At the end, compared with a calm run of the same plan:
//! - every healthy tile is done exactly once, its bands byte-identical to the calm run's;
//! - every poisoned tile failed, once, with a reason naming the poisoned input;
//! - the run's completion fired once per arm (the first end, and once more if tiles whose
//!   attempts were all killed had to be run again);
//! - no task is left queued or running, and no scratch directory or half-written output
//!   is left behind.
//!
//! `make test` runs a short soak; `make soak` a long one (SOAK_KILLS, SOAK_WORKERS,
//! SOAK_SEED), which prints its figures as one JSON line for BENCHMARKS.md.

mod support;

use support::stratus;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stratus_engine::Context;
use stratus_ports::{Ledger, TaskQueue, TaskState};

const RUN: &str = "soak";

/// A small deterministic generator (the soak's seed is printed, so a failure replays).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

fn plan(catalog: &Path, location: &str) {
    let o = stratus(
        &[
            "save-tasks",
            "--input",
            catalog.to_str().unwrap(),
            "--grid",
            "epsg:6933;240;64",
            "--year",
            "2021",
            "--plugin",
            "pq",
            "--product-name",
            "soak",
            "--run-id",
            RUN,
            "--chunk-size",
            "64",
            "--location",
            location,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every output band under `root`: path relative to it -> bytes.
fn bands(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "tif") {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn leftovers(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)) {
            out.push(p.clone());
        }
        if p.is_dir() {
            out.extend(leftovers(&p, prefix));
        }
    }
    out
}

/// After the chaos: every task ended, none above the attempt cap; the ids of those the
/// cap failed (all their attempts killed), which the operator retries.
fn settled_and_gave_up(ledger: &dyn Ledger, run: &str) -> Vec<String> {
    let tasks = ledger.tasks(run, None).unwrap();
    let unended: Vec<_> = tasks.iter().filter(|t| !matches!(t.state, TaskState::Done | TaskState::Failed)).collect();
    assert!(unended.is_empty(), "tasks left unended: {unended:?}");
    for t in &tasks {
        assert!(t.attempts <= 2, "{}: {} attempts, above the cap", t.task_id, t.attempts);
    }
    tasks
        .iter()
        .filter(|t| t.state == TaskState::Failed && t.error.as_deref().is_some_and(|e| e.starts_with("gave up")))
        .map(|t| t.task_id.clone())
        .collect()
}

struct Soak {
    workers: usize,
    kills: usize,
    duplicate_rate: f64,
    seed: u64,
}

#[derive(Debug, Default)]
struct Figures {
    tasks: usize,
    poisoned_tasks: usize,
    kills: usize,
    duplicates: usize,
    gave_up_and_rerun: usize,
    worker_processes: usize,
    completions: u64,
    seconds: f64,
}

fn soak(cfg: &Soak) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let catalog =
        stratus_synth::generate(&support::small_scenes(3), &dir.path().join("inputs"), &|_, _| {}).unwrap().catalog;
    // Poison one input: its tiles must fail, naming it; the others must not notice.
    let poisoned = {
        let mut all: Vec<PathBuf> = leftovers(&dir.path().join("inputs"), "SCL.tif");
        all.sort();
        let p = all.into_iter().next().expect("an SCL input");
        std::fs::write(&p, b"II*\0 poisoned: not a GeoTIFF").unwrap();
        p
    };

    // The calm run: one worker process, no interference.
    let calm = dir.path().join("calm");
    plan(&catalog, calm.to_str().unwrap());
    stratus(&["run", RUN, "--location", calm.to_str().unwrap(), "--workers", "2"], &[]);
    let calm_ctx = Context::embedded(calm.to_str().unwrap(), None).unwrap();
    let calm_tasks = calm_ctx.ledger.tasks(RUN, None).unwrap();
    let calm_failed: BTreeSet<String> =
        calm_tasks.iter().filter(|t| t.state == TaskState::Failed).map(|t| t.task_id.clone()).collect();
    assert!(!calm_failed.is_empty() && calm_failed.len() < calm_tasks.len(), "the poison touches some tiles, not all");
    assert!(calm_tasks.iter().all(|t| t.state != TaskState::Running && t.state != TaskState::Pending));

    // The chaos run.
    let started = Instant::now();
    let chaos = dir.path().join("chaos");
    let scratch = dir.path().join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let location = chaos.to_str().unwrap().to_string();
    plan(&catalog, &location);
    assert!(stratus(&["publish-tasks", RUN, "--location", &location], &[]).status.success());
    let ctx = Context::embedded(&location, None).unwrap();
    let queue = ctx.embedded_queue(RUN, 3).unwrap();
    let ids: Vec<String> = ctx.ledger.tasks(RUN, None).unwrap().into_iter().map(|t| t.task_id).collect();
    let mut rng = Lcg(cfg.seed);
    let mut figures = Figures { tasks: ids.len(), poisoned_tasks: calm_failed.len(), ..Default::default() };
    let duplicate = |rng: &mut Lcg, figures: &mut Figures| {
        let bodies: Vec<String> = ids
            .iter()
            .filter(|_| rng.chance(cfg.duplicate_rate))
            .map(|t| serde_json::json!({"run_id": RUN, "task_id": t}).to_string())
            .collect();
        figures.duplicates += bodies.len();
        queue.send_batch(&bodies).unwrap();
    };
    duplicate(&mut rng, &mut figures);
    let spawn = |figures: &mut Figures| -> Child {
        figures.worker_processes += 1;
        Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(["run", RUN, "--from-queue", "--workers", "1", "--idle-exit", "2", "--location", &location])
            .env("TMPDIR", &scratch)
            .env("RUST_LOG", "warn")
            .env_remove("STRATUS_ALLOWED_INPUTS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<Child> = (0..cfg.workers).map(|_| spawn(&mut figures)).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "the soak did not settle in 10 minutes: {figures:?}");
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        workers.retain_mut(|w| w.try_wait().unwrap().is_none());
        if workers.is_empty() {
            break;
        }
        if figures.kills < cfg.kills {
            let i = rng.below(workers.len() as u64) as usize;
            let mut victim = workers.swap_remove(i);
            victim.kill().unwrap(); // SIGKILL
            victim.wait().unwrap();
            figures.kills += 1;
            if rng.chance(0.3) {
                duplicate(&mut rng, &mut figures);
            }
            workers.push(spawn(&mut figures));
        }
    }

    // Tiles whose attempts were all killed gave up (the ledger's attempt cap): an
    // operator's retry of those, then a calm worker.
    let gave_up = settled_and_gave_up(ctx.ledger.as_ref(), RUN);
    let mut arms = 1;
    if !gave_up.is_empty() {
        figures.gave_up_and_rerun = gave_up.len();
        arms += 1;
        ctx.ledger.reset(RUN, stratus_ports::ledger::ResetScope::Failed, Some(&gave_up)).unwrap();
        assert!(stratus(&["publish-tasks", RUN, "--location", &location], &[]).status.success());
        let mut w = spawn(&mut figures);
        w.wait().unwrap();
    }
    figures.seconds = started.elapsed().as_secs_f64();

    // Compared with the calm run.
    let run = ctx.ledger.run(RUN).unwrap().unwrap();
    figures.completions = run.completions;
    let tasks = ctx.ledger.tasks(RUN, None).unwrap();
    for t in &tasks {
        if calm_failed.contains(&t.task_id) {
            assert_eq!(t.state, TaskState::Failed, "{} reads the poisoned input", t.task_id);
            let why = t.error.clone().unwrap_or_default();
            assert!(why.contains(poisoned.to_str().unwrap()), "{}: the reason names the input: {why}", t.task_id);
        } else {
            assert_eq!(t.state, TaskState::Done, "{}: {:?}", t.task_id, t.error);
        }
    }
    assert_eq!(run.completions, arms, "one completion per arm: {figures:?}");
    let (a, b) = (bands(&calm), bands(&chaos));
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same bands");
    for (k, bytes) in &a {
        assert!(bytes == &b[k], "{k} differs from the calm run's");
    }
    assert_eq!(queue.depth().unwrap().visible + queue.depth().unwrap().in_flight, 0, "messages left");
    assert!(
        leftovers(&scratch, "stratus-tile-").is_empty(),
        "scratch left: {:?}",
        leftovers(&scratch, "stratus-tile-")
    );
    assert!(leftovers(&chaos, ".stratus-partial-").is_empty(), "partial outputs left behind");
    figures
}

fn report(f: &Figures, cfg: &Soak) {
    println!(
        "{}",
        serde_json::json!({
            "soak": "embedded", "seed": cfg.seed, "tasks": f.tasks, "poisoned_tasks": f.poisoned_tasks,
            "worker_processes": f.worker_processes, "kills": f.kills, "duplicates": f.duplicates,
            "gave_up_and_rerun": f.gave_up_and_rerun, "completions": f.completions, "seconds": f.seconds,
        })
    );
}

#[test]
fn chaos_soak_short() {
    let cfg = Soak { workers: 3, kills: 6, duplicate_rate: 0.5, seed: 7 };
    let f = soak(&cfg);
    report(&f, &cfg);
    assert!(f.kills >= 3, "the soak killed too little to mean anything: {f:?}");
}

/// `make soak`: longer, with its figures printed for BENCHMARKS.md.
#[test]
#[ignore]
fn chaos_soak_long() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let cfg = Soak {
        workers: env("SOAK_WORKERS", 4) as usize,
        kills: env("SOAK_KILLS", 60) as usize,
        duplicate_rate: 0.5,
        seed: env("SOAK_SEED", 20261127),
    };
    let f = soak(&cfg);
    report(&f, &cfg);
}

// ---------------------------------------------------------------------------------------
// The same on moto: SQS, DynamoDB and S3 through the fault proxy (5xx, SlowDown, silent
// timeouts, dropped connections after the request took effect, truncated bodies), with
// container workers (`stratus worker --from-sqs`) killed at random, every message
// duplicated at random, and a poisoned input. Completion messages are counted by number.

struct Aws {
    stack: stratus_testkit::stack::Stack,
    bucket: stratus_aws::S3BlobStore,
    ledger: stratus_aws::DynamoLedger,
    run_file: String,
    dir: tempfile::TempDir,
}

fn aws_setup() -> Aws {
    use stratus_testkit::stack::{create_stack, StackSpec};
    support::moto::moto();
    let aws = stratus_serverless::aws().unwrap();
    let stack = create_stack(&aws, &StackSpec { prefix: "soak".into(), max_receives: 3, visibility_s: 8 }).unwrap();
    let bucket = stratus_aws::S3BlobStore::open(aws.clone(), &format!("s3://{}", stack.bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_file = support::s3::inputs_and_run_file(&bucket, &stack.bucket, "RUN", "pq", dir.path());
    // Smaller tiles than the pipeline tests': more of them.
    let run_file = format!("{run_file}job_queue_max_lease: 8\nrenew_safety_margin: 3\n").replace("240;100", "240;64");
    Aws { ledger: stratus_aws::DynamoLedger::new(aws, &stack.table, None), stack, bucket, run_file, dir }
}

impl Aws {
    fn location(&self, run_id: &str) -> String {
        format!("s3://{}/products-{run_id}", self.stack.bucket)
    }

    fn cli(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stratus"));
        c.args(args)
            .env("STRATUS_AWS_ENDPOINT", endpoint)
            .env("STRATUS_AWS_ATTEMPT_TIMEOUT_S", "3")
            .env("GDAL_HTTP_TIMEOUT", "3")
            .env("GDAL_HTTP_RETRY_DELAY", "0.2")
            .env("RUST_LOG", "warn")
            .env_remove("STRATUS_ALLOWED_INPUTS")
            .env_remove("STRATUS_ALLOWED_OUTPUTS");
        c
    }

    /// Plan and publish run `run_id` through `endpoint`.
    fn plan_and_publish(&self, endpoint: &str, run_id: &str) {
        let text = self
            .run_file
            .replace("run_id: RUN", &format!("run_id: {run_id}"))
            .replace(&format!("s3://{}/products'", self.stack.bucket), &format!("{}'", self.location(run_id)));
        let file = self.dir.path().join(format!("{run_id}.yaml"));
        std::fs::write(&file, text).unwrap();
        let table = self.stack.table.as_str();
        let o =
            self.cli(endpoint, &["save-tasks", "--config", file.to_str().unwrap(), "--table", table]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let location = self.location(run_id);
        let args =
            ["publish-tasks", run_id, "--queue", &self.stack.task_queue, "--location", &location, "--table", table];
        let o = self.cli(endpoint, &args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn worker(&self, endpoint: &str, run_id: &str) -> Child {
        let location = self.location(run_id);
        let args = [
            "worker",
            "--from-sqs",
            &self.stack.task_queue,
            "--completion-queue",
            &self.stack.completion_queue,
            "--location",
            &location,
            "--table",
            &self.stack.table,
            "--visibility",
            "8",
            "--idle-exit",
            "12",
        ];
        self.cli(endpoint, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    fn bands(&self, run_id: &str) -> BTreeMap<String, Vec<u8>> {
        use stratus_ports::BlobStore;
        let prefix = format!("products-{run_id}/");
        let keys = self.bucket.list(&prefix).unwrap();
        keys.into_iter()
            .filter(|k| k.ends_with(".tif") && !k.contains("/_"))
            .map(|k| (k[prefix.len()..].to_string(), self.bucket.get(&k).unwrap()))
            .collect()
    }

    /// Completion numbers received for `run_id` (the messages are consumed).
    fn completions(&self, run_id: &str) -> Vec<u64> {
        let aws = stratus_serverless::aws().unwrap();
        let q = stratus_aws::SqsQueue::open(aws, &self.stack.completion_queue).unwrap();
        let mut out = Vec::new();
        loop {
            let got = q.receive(10, Duration::from_secs(30), Duration::from_millis(500)).unwrap();
            if got.is_empty() {
                return out;
            }
            for m in got {
                let c = stratus_engine::messages::CompletionMessage::parse(&m.body).unwrap();
                if c.run_id == run_id {
                    out.push(c.completion);
                    q.delete(&m.receipt).unwrap();
                } else {
                    q.extend_visibility(&m.receipt, Duration::ZERO).unwrap();
                }
            }
        }
    }
}

#[test]
fn chaos_soak_on_moto_short() {
    use stratus_ports::BlobStore;
    let s = aws_setup();
    let moto = support::moto::moto().endpoint.clone();
    let inputs = s.bucket.list("inputs/").unwrap();
    let poisoned = inputs.iter().find(|k| k.contains("35LKE") && k.ends_with("/SCL.tif")).unwrap().clone();
    s.bucket.put(&poisoned, b"II*\0 poisoned: not a GeoTIFF").unwrap();

    // Calm.
    s.plan_and_publish(&moto, "calm");
    s.worker(&moto, "calm").wait().unwrap();
    let calm = s.ledger.tasks("calm", None).unwrap();
    let calm_failed: BTreeSet<String> =
        calm.iter().filter(|t| t.state == TaskState::Failed).map(|t| t.task_id.clone()).collect();
    assert!(!calm_failed.is_empty() && calm_failed.len() < calm.len(), "the poison touches some tiles, not all");
    assert!(calm.iter().all(|t| matches!(t.state, TaskState::Done | TaskState::Failed)));

    // Chaos.
    let started = Instant::now();
    let proxy = support::fault_proxy::FaultProxy::start(&moto, &["--rate", "0.03", "--seed", "5", "--hold-s", "6"]);
    s.plan_and_publish(&proxy.endpoint, "chaos");
    let aws = stratus_serverless::aws().unwrap();
    let tasks_q = stratus_aws::SqsQueue::open(aws, &s.stack.task_queue).unwrap();
    let ids: Vec<String> = s.ledger.tasks("chaos", None).unwrap().into_iter().map(|t| t.task_id).collect();
    let mut rng = Lcg(11);
    let mut figures = Figures { tasks: ids.len(), poisoned_tasks: calm_failed.len(), ..Default::default() };
    let dupes: Vec<String> = ids
        .iter()
        .filter(|_| rng.chance(0.7))
        .map(|t| serde_json::json!({"run_id": "chaos", "task_id": t}).to_string())
        .collect();
    figures.duplicates = dupes.len();
    tasks_q.send_batch(&dupes).unwrap();
    let mut workers: Vec<Child> = (0..2).map(|_| s.worker(&proxy.endpoint, "chaos")).collect();
    figures.worker_processes = 2;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "the soak did not settle: {figures:?}");
        std::thread::sleep(Duration::from_millis(500 + rng.below(3000)));
        workers.retain_mut(|w| w.try_wait().unwrap().is_none());
        if workers.is_empty() {
            break;
        }
        if figures.kills < 3 {
            let i = rng.below(workers.len() as u64) as usize;
            let mut victim = workers.swap_remove(i);
            victim.kill().unwrap();
            victim.wait().unwrap();
            figures.kills += 1;
            workers.push(s.worker(&proxy.endpoint, "chaos"));
            figures.worker_processes += 1;
        }
    }
    let gave_up = settled_and_gave_up(&s.ledger, "chaos");
    let mut arms = 1;
    if !gave_up.is_empty() {
        figures.gave_up_and_rerun = gave_up.len();
        arms += 1;
        s.ledger.reset("chaos", stratus_ports::ledger::ResetScope::Failed, Some(&gave_up)).unwrap();
        let (location, table) = (s.location("chaos"), s.stack.table.clone());
        let args =
            ["publish-tasks", "chaos", "--queue", &s.stack.task_queue, "--location", &location, "--table", &table];
        assert!(s.cli(&moto, &args).output().unwrap().status.success());
        s.worker(&moto, "chaos").wait().unwrap();
    }
    figures.seconds = started.elapsed().as_secs_f64();
    let stats = proxy.stats();
    let faults: u64 = stats["faults"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();

    let run = s.ledger.run("chaos").unwrap().unwrap();
    figures.completions = run.completions;
    for t in s.ledger.tasks("chaos", None).unwrap() {
        if calm_failed.contains(&t.task_id) {
            assert_eq!(t.state, TaskState::Failed, "{} reads the poisoned input", t.task_id);
            assert!(t.error.clone().unwrap_or_default().contains("SCL.tif"), "{:?}", t.error);
        } else {
            assert_eq!(t.state, TaskState::Done, "{}: {:?}", t.task_id, t.error);
        }
    }
    assert_eq!((run.completions, run.completions_sent), (arms, arms), "one completion per arm, each sent");
    let mut numbers = s.completions("chaos");
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers, (1..=arms).collect::<Vec<_>>(), "completion messages by number");
    let (a, b) = (s.bands("calm"), s.bands("chaos"));
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same bands");
    for (k, bytes) in &a {
        assert!(bytes == &b[k], "{k} differs from the calm run's");
    }
    println!(
        "{}",
        serde_json::json!({
            "soak": "moto", "tasks": figures.tasks, "poisoned_tasks": figures.poisoned_tasks,
            "worker_processes": figures.worker_processes, "kills": figures.kills, "duplicates": figures.duplicates,
            "faults_injected": faults, "requests": stats["requests"], "gave_up_and_rerun": figures.gave_up_and_rerun,
            "completions": figures.completions, "seconds": figures.seconds,
        })
    );
}
