//! The embedded store: ledger and queues in one SQLite file (WAL, so several worker
//! processes can share it). Every state change is one IMMEDIATE transaction whose UPDATE
//! is conditional on the current state; counters move in the same transaction.

use crate::error::{PortError, Result};
use crate::ledger::{
    decompress_doc, gave_up_reason, payload_text, ClaimOptions, ClaimOutcome, DatasetDocs, Ledger, NewRun, NewTask,
    RerunFailed, ResetScope, RunCounts, RunRecord, TaskRecord, TaskState, TileReconciled, Transition,
};
use crate::queue::{QueueDepth, Received, TaskQueue};
use crate::worker_id::owner_is_dead_local_process;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;
/// What a claim reads of a task: state, owner, lease end, attempts, dead-lettered (and by
/// which dispatch).
type ClaimRow = (String, Option<String>, Option<i64>, i64, bool, Option<String>, bool, i64);

fn system_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    total INTEGER NOT NULL,
    pending INTEGER NOT NULL, queued INTEGER NOT NULL DEFAULT 0, running INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    completion_armed INTEGER NOT NULL DEFAULT 1,
    completions INTEGER NOT NULL DEFAULT 0,
    completions_sent INTEGER NOT NULL DEFAULT 0,
    completions_handled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until INTEGER,
    error TEXT,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL,
    result TEXT,
    updated_at TEXT NOT NULL,
    dispatched INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (run_id, state, idx);
-- A plan's dataset documents, once each; a task's payload lists the indices it uses.
CREATE TABLE IF NOT EXISTS datasets (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    doc_zstd BLOB NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    receiver TEXT,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, dead, visible_at);
"#;

/// Columns added since the first release: a store file made by an older version gets them.
const ADDED_COLUMNS: [(&str, &str); 7] = [
    ("tasks", "dead_letter_dispatch TEXT"),
    ("runs", "completions_sent INTEGER NOT NULL DEFAULT 0"),
    ("runs", "completions_handled INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "dispatched INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "dead_lettered INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "parts INTEGER NOT NULL DEFAULT 0"),
    ("tasks", "blocked INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, def) in ADDED_COLUMNS {
        let name = def.split_whitespace().next().expect("a column definition starts with its name");
        let have: bool = conn
            .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?
            .exists(params![name])?;
        if !have {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {def}"))?;
        }
    }
    Ok(())
}

/// One connection to the embedded store file, shared by the threads of a process.
#[derive(Clone)]
pub struct Db {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    clock: Clock,
}

impl Db {
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| PortError::Io { path: dir.display().to_string(), source })?;
        }
        let err = |source| PortError::Sqlite { path: path.display().to_string(), source };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        add_missing_columns(&conn).map_err(err)?;
        Ok(Db { path, conn: Arc::new(Mutex::new(conn)), clock: Arc::new(system_ms) })
    }

    /// Replace the clock (tests of visibility timeouts and leases).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Db {
        self.clock = Arc::new(clock);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> PortError + '_ {
        move |source| PortError::Sqlite { path: self.path.display().to_string(), source }
    }

    /// Run `f` in an IMMEDIATE transaction (takes the write lock up front, so concurrent
    /// writers queue instead of failing on upgrade).
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.err())?;
        let out = f(&tx)?;
        tx.commit().map_err(self.err())?;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }
}

/// The least string above every string that starts with `prefix`, so that a prefix is a
/// key range the primary key answers (`prefix <= id < prefix_end`). Ids are ASCII.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0x7f {
            end.push(last + 1);
            break;
        }
    }
    if end.is_empty() {
        return "\u{7f}".into();
    }
    String::from_utf8(end).unwrap_or_default()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The embedded ledger.
#[derive(Clone)]
pub struct SqliteLedger {
    db: Db,
}

impl SqliteLedger {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(Db::open(path)?))
    }
}

fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn parse_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
}

fn row_to_task(r: &rusqlite::Row) -> rusqlite::Result<TaskRecord> {
    let state: String = r.get(3)?;
    Ok(TaskRecord {
        run_id: r.get(0)?,
        task_id: r.get(1)?,
        index: r.get::<_, i64>(2)? as usize,
        state: TaskState::parse(&state).unwrap_or(TaskState::Pending),
        attempts: r.get::<_, i64>(4)? as u32,
        owner: r.get(5)?,
        error: r.get(6)?,
        summary: parse_json(&r.get::<_, String>(7)?),
        result: r.get::<_, Option<String>>(8)?.map(|s| parse_json(&s)),
        updated_at: r.get(9)?,
        dispatched: r.get(10)?,
        dead_lettered: r.get(11)?,
        parts: r.get::<_, i64>(12)? as u32,
        blocked: r.get(13)?,
    })
}

const TASK_COLS: &str =
    "run_id, task_id, idx, state, attempts, owner, error, summary, result, updated_at, dispatched, \
                         dead_lettered, parts, blocked";

/// Move one task from `from` to `to` (conditionally) and the counters with it. Returns
/// whether it applied.
fn move_state(
    tx: &rusqlite::Transaction,
    run: &str,
    task: &str,
    from: TaskState,
    to: TaskState,
    set: &str,
    extra: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<bool> {
    // Both marks belong to the state being left.
    let sql = format!(
        "UPDATE tasks SET state = ?1, updated_at = ?2, dispatched = 0, dead_lettered = 0, dead_letter_dispatch = NULL {set}
         WHERE run_id = ?3 AND task_id = ?4 AND state = ?5"
    );
    let now = now_text();
    let (to_s, from_s) = (to.as_str(), from.as_str());
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&to_s, &now, &run, &task, &from_s];
    p.extend_from_slice(extra);
    let n = tx.execute(&sql, p.as_slice())?;
    if n == 1 && from != to {
        tx.execute(
            &format!(
                "UPDATE runs SET {f} = {f} - 1, {t} = {t} + 1 WHERE run_id = ?1",
                f = from.as_str(),
                t = to.as_str()
            ),
            params![run],
        )?;
        // Leaving `done` or `failed` re-arms the completion.
        if matches!(from, TaskState::Done | TaskState::Failed) {
            tx.execute("UPDATE runs SET completion_armed = 1 WHERE run_id = ?1", params![run])?;
        }
    }
    Ok(n == 1)
}

/// Fire the completion if every task has ended and it is armed: exactly one caller wins.
fn maybe_complete(tx: &rusqlite::Transaction, run: &str) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE runs SET completion_armed = 0, completions = completions + 1
         WHERE run_id = ?1 AND completion_armed = 1 AND done + failed = total",
        params![run],
    )?;
    Ok(n == 1)
}

impl Ledger for SqliteLedger {
    fn create_run(&self, run: &NewRun, tasks: &[NewTask], docs: &dyn DatasetDocs, overwrite: bool) -> Result<()> {
        let e = self.db.err();
        self.db.write(|tx| {
            let exists: bool = tx
                .query_row("SELECT 1 FROM runs WHERE run_id = ?1", params![run.run_id], |_| Ok(true))
                .optional()
                .map_err(&e)?
                .unwrap_or(false);
            if exists && !overwrite {
                return Err(PortError::RunExists(run.run_id.clone()));
            }
            tx.execute("DELETE FROM tasks WHERE run_id = ?1", params![run.run_id]).map_err(&e)?;
            tx.execute("DELETE FROM datasets WHERE run_id = ?1", params![run.run_id]).map_err(&e)?;
            tx.execute("DELETE FROM runs WHERE run_id = ?1", params![run.run_id]).map_err(&e)?;
            tx.execute(
                "INSERT INTO runs (run_id, created_at, config, config_digest, total, pending, completion_armed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                params![run.run_id, now_text(), json_text(&run.config), run.config_digest, tasks.len() as i64, !tasks.is_empty()],
            )
            .map_err(&e)?;
            let mut ins = tx
                .prepare("INSERT INTO tasks (run_id, task_id, idx, state, summary, payload, updated_at, parts, blocked) VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8)")
                .map_err(&e)?;
            let now = now_text();
            for t in tasks {
                let refs = serde_json::to_string(&t.datasets).expect("indices serialise");
                ins.execute(params![
                    run.run_id,
                    t.task_id,
                    t.index as i64,
                    json_text(&t.summary),
                    refs,
                    now,
                    t.parts,
                    t.parts > 0
                ])
                .map_err(&e)?;
            }
            let mut ins = tx.prepare("INSERT INTO datasets (run_id, idx, doc_zstd) VALUES (?1, ?2, ?3)").map_err(&e)?;
            for i in 0..docs.count() as u32 {
                ins.execute(params![run.run_id, i, docs.doc_zstd(i)?]).map_err(&e)?;
            }
            Ok(())
        })
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self.runs_where(Some(run_id))?.into_iter().next())
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        self.runs_where(None)
    }

    fn tasks(&self, run_id: &str, state: Option<TaskState>) -> Result<Vec<TaskRecord>> {
        let e = self.db.err();
        self.db.read(|c| {
            let sql =
                format!("SELECT {TASK_COLS} FROM tasks WHERE run_id = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY idx");
            let mut st = c.prepare(&sql).map_err(&e)?;
            let rows = st.query_map(params![run_id, state.map(|s| s.as_str())], row_to_task).map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
    }

    fn tasks_under(&self, run_id: &str, prefix: &str) -> Result<Vec<TaskRecord>> {
        let e = self.db.err();
        self.db.read(|c| {
            let sql = format!(
                "SELECT {TASK_COLS} FROM tasks WHERE run_id = ?1 AND task_id >= ?2 AND task_id < ?3 ORDER BY idx"
            );
            let mut st = c.prepare(&sql).map_err(&e)?;
            let rows = st.query_map(params![run_id, prefix, prefix_end(prefix)], row_to_task).map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
    }

    fn task(&self, run_id: &str, task_id: &str) -> Result<Option<TaskRecord>> {
        let e = self.db.err();
        self.db.read(|c| {
            c.query_row(
                &format!("SELECT {TASK_COLS} FROM tasks WHERE run_id = ?1 AND task_id = ?2"),
                params![run_id, task_id],
                row_to_task,
            )
            .optional()
            .map_err(&e)
        })
    }

    fn payload(&self, run_id: &str, task_id: &str) -> Result<serde_json::Value> {
        let e = self.db.err();
        let corrupt = |why: String| PortError::Other(format!("task {task_id}: corrupt payload: {why}"));
        let text = self.db.read(|c| {
            let refs: Option<String> = c
                .query_row(
                    "SELECT payload FROM tasks WHERE run_id = ?1 AND task_id = ?2",
                    params![run_id, task_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&e)?;
            let refs = refs.ok_or_else(|| PortError::TaskNotFound { run: run_id.into(), task: task_id.into() })?;
            let refs: Vec<u32> = serde_json::from_str(&refs).map_err(|err| corrupt(err.to_string()))?;
            let mut get =
                c.prepare_cached("SELECT doc_zstd FROM datasets WHERE run_id = ?1 AND idx = ?2").map_err(&e)?;
            let docs: Vec<String> = refs
                .iter()
                .map(|i| {
                    let bytes: Vec<u8> = get.query_row(params![run_id, i], |r| r.get(0)).map_err(&e)?;
                    decompress_doc(&bytes)
                })
                .collect::<Result<_>>()?;
            Ok(payload_text(&docs))
        })?;
        serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))
    }

    fn mark_queued(&self, run_id: &str, task_ids: &[String]) -> Result<Vec<String>> {
        let e = self.db.err();
        self.db.write(|tx| {
            let mut to_send = Vec::new();
            for t in task_ids {
                let blocked = tx
                    .prepare_cached("SELECT 1 FROM tasks WHERE run_id = ?1 AND task_id = ?2 AND blocked = 1")
                    .and_then(|mut st| st.exists(params![run_id, t]))
                    .map_err(&e)?;
                if blocked {
                    continue;
                }
                let moved = move_state(tx, run_id, t, TaskState::Pending, TaskState::Queued, "", &[]).map_err(&e)?;
                let stranded = !moved
                    && tx
                        .prepare_cached(
                            "SELECT 1 FROM tasks WHERE run_id = ?1 AND task_id = ?2 AND state = 'queued' AND dispatched = 0",
                        )
                        .and_then(|mut st| st.exists(params![run_id, t]))
                        .map_err(&e)?;
                if moved || stranded {
                    to_send.push(t.clone());
                }
            }
            Ok(to_send)
        })
    }

    fn mark_dispatched(&self, run_id: &str, task_ids: &[String]) -> Result<()> {
        let e = self.db.err();
        self.db.write(|tx| {
            let mut st = tx
                .prepare_cached(
                    "UPDATE tasks SET dispatched = 1 WHERE run_id = ?1 AND task_id = ?2 AND state = 'queued'",
                )
                .map_err(&e)?;
            for t in task_ids {
                st.execute(params![run_id, t]).map_err(&e)?;
            }
            Ok(())
        })
    }

    fn mark_dead_lettered(&self, run_id: &str, task_id: &str, dispatch: Option<&str>) -> Result<bool> {
        let e = self.db.err();
        self.db.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE tasks SET dead_lettered = 1, dead_letter_dispatch = ?3 WHERE run_id = ?1 AND task_id = ?2 AND state = 'failed'",
                    params![run_id, task_id, dispatch],
                )
                .map_err(&e)?;
            Ok(n == 1)
        })
    }

    fn mark_completion_sent(&self, run_id: &str, n: u64) -> Result<()> {
        self.raise_run_mark(run_id, "completions_sent", n)
    }

    fn mark_completion_handled(&self, run_id: &str, n: u64) -> Result<()> {
        self.raise_run_mark(run_id, "completions_handled", n)
    }

    fn claim(&self, run_id: &str, task_id: &str, worker: &str, opts: &ClaimOptions) -> Result<ClaimOutcome> {
        let e = self.db.err();
        let now = self.db.now();
        let until = now + opts.lease.as_millis() as i64;
        self.db.write(|tx| {
            let row: Option<ClaimRow> = tx
                .query_row(
                    "SELECT state, owner, lease_until, attempts, dead_lettered, dead_letter_dispatch, blocked, parts FROM tasks WHERE run_id = ?1 AND task_id = ?2",
                    params![run_id, task_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
                )
                .optional()
                .map_err(&e)?;
            let Some((state, owner, lease_until, attempts, dead_lettered, dead_letter_dispatch, blocked, parts)) = row else {
                return Err(PortError::TaskNotFound { run: run_id.into(), task: task_id.into() });
            };
            let state = TaskState::parse(&state).unwrap_or(TaskState::Pending);
            // A split tile runs only when released (a failed one too: its parts run first).
            if blocked {
                return Ok(ClaimOutcome::Blocked);
            }
            let rerun_failed = match &opts.rerun_failed {
                RerunFailed::Never => false,
                RerunFailed::Always => true,
                RerunFailed::IfDeadLettered(d) => dead_lettered && dead_letter_dispatch.as_deref() == Some(d.as_str()),
            };
            let from = match state {
                TaskState::Pending | TaskState::Queued => state,
                TaskState::Done if opts.rerun_done => state,
                TaskState::Failed if rerun_failed => state,
                // The completion is fired in the same transaction as the last task's end.
                TaskState::Done => return Ok(ClaimOutcome::AlreadyDone),
                TaskState::Failed => return Ok(ClaimOutcome::AlreadyFailed),
                TaskState::Running => {
                    let owner = owner.unwrap_or_default();
                    let expired = lease_until.is_none_or(|u| u <= now);
                    if owner != worker && !expired && !owner_is_dead_local_process(&owner) {
                        return Ok(ClaimOutcome::Busy { owner });
                    }
                    state
                }
            };
            if from == TaskState::Failed && matches!(opts.rerun_failed, RerunFailed::IfDeadLettered(_)) {
                // A redrive brings back every dead-lettered message of the run, one at a
                // time: the first to arrive sets all their tasks pending in one step, so
                // the run completes once, after the last of them, not once per task.
                tx.execute(
                    "UPDATE runs SET failed = failed - (SELECT COUNT(*) FROM tasks WHERE run_id = ?1 AND task_id <> ?2 AND state = 'failed' AND dead_lettered = 1),
                                     pending = pending + (SELECT COUNT(*) FROM tasks WHERE run_id = ?1 AND task_id <> ?2 AND state = 'failed' AND dead_lettered = 1)
                     WHERE run_id = ?1",
                    params![run_id, task_id],
                )
                .map_err(&e)?;
                tx.execute(
                    "UPDATE tasks SET state = 'pending', attempts = 0, owner = NULL, lease_until = NULL, dead_lettered = 0, dead_letter_dispatch = NULL, updated_at = ?3
                     WHERE run_id = ?1 AND task_id <> ?2 AND state = 'failed' AND dead_lettered = 1",
                    params![run_id, task_id, now_text()],
                )
                .map_err(&e)?;
            }
            // Running an ended task again starts a fresh attempt budget.
            let rerun = matches!(from, TaskState::Done | TaskState::Failed);
            let attempts = if rerun { 0 } else { attempts as u32 };
            if attempts >= opts.max_attempts {
                let reason = gave_up_reason(attempts);
                let applied = move_state(
                    tx,
                    run_id,
                    task_id,
                    from,
                    TaskState::Failed,
                    ", owner = NULL, lease_until = NULL, error = ?6",
                    &[&reason],
                )
                .map_err(&e)?;
                debug_assert!(applied);
                let completion_fired = maybe_complete(tx, run_id).map_err(&e)?;
                return Ok(ClaimOutcome::GaveUp { attempts, completion_fired });
            }
            let ok = move_state(
                tx,
                run_id,
                task_id,
                from,
                TaskState::Running,
                ", owner = ?6, lease_until = ?7, attempts = ?8, error = NULL",
                &[&worker, &until, &(attempts + 1)],
            )
            .map_err(&e)?;
            debug_assert!(ok);
            Ok(ClaimOutcome::Claimed { attempt: attempts + 1, parts: parts as u32 })
        })
    }

    fn heartbeat(&self, run_id: &str, task_id: &str, worker: &str, lease: Duration) -> Result<bool> {
        let e = self.db.err();
        let until = self.db.now() + lease.as_millis() as i64;
        self.db.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE tasks SET lease_until = ?1 WHERE run_id = ?2 AND task_id = ?3 AND state = 'running' AND owner = ?4",
                    params![until, run_id, task_id, worker],
                )
                .map_err(&e)?;
            Ok(n == 1)
        })
    }

    fn complete(&self, run_id: &str, task_id: &str, worker: &str, result: &serde_json::Value) -> Result<Transition> {
        let e = self.db.err();
        let text = json_text(result);
        self.db.write(|tx| {
            let applied = move_state_owned(
                tx,
                run_id,
                task_id,
                worker,
                TaskState::Done,
                ", result = ?7, lease_until = NULL",
                &text,
            )
            .map_err(&e)?;
            let fired = applied && maybe_complete(tx, run_id).map_err(&e)?;
            Ok(Transition { applied, completion_fired: fired })
        })
    }

    fn fail(
        &self,
        run_id: &str,
        task_id: &str,
        worker: &str,
        reason: &str,
        final_attempt: bool,
        result: Option<&serde_json::Value>,
    ) -> Result<Transition> {
        let e = self.db.err();
        let to = if final_attempt { TaskState::Failed } else { TaskState::Pending };
        let text = result.map(json_text).unwrap_or_else(|| "null".into());
        self.db.write(|tx| {
            let applied = move_state_owned(tx, run_id, task_id, worker, to, ", result = ?7, lease_until = NULL", &text)
                .map_err(&e)?;
            if applied {
                tx.execute(
                    "UPDATE tasks SET error = ?1 WHERE run_id = ?2 AND task_id = ?3",
                    params![reason, run_id, task_id],
                )
                .map_err(&e)?;
            }
            let fired = applied && final_attempt && maybe_complete(tx, run_id).map_err(&e)?;
            Ok(Transition { applied, completion_fired: fired })
        })
    }

    fn release(&self, run_id: &str, task_id: &str, worker: &str) -> Result<bool> {
        let e = self.db.err();
        self.db.write(|tx| {
            let applied = move_state_owned(
                tx,
                run_id,
                task_id,
                worker,
                TaskState::Pending,
                ", attempts = MAX(attempts - 1, 0), lease_until = NULL, result = ?7",
                "null",
            )
            .map_err(&e)?;
            Ok(applied)
        })
    }

    fn reconcile_tile(&self, run_id: &str, tile_id: &str) -> Result<TileReconciled> {
        let e = self.db.err();
        let prefix = format!("{tile_id}/part-");
        let upper = prefix_end(&prefix);
        self.db.write(|tx| {
            let tile: Option<(String, bool, i64)> = tx
                .query_row(
                    "SELECT state, blocked, parts FROM tasks WHERE run_id = ?1 AND task_id = ?2",
                    params![run_id, tile_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(&e)?;
            let Some((state, blocked, parts)) = tile else {
                return Err(PortError::TaskNotFound { run: run_id.into(), task: tile_id.into() });
            };
            let state = TaskState::parse(&state).unwrap_or(TaskState::Pending);
            if parts == 0 {
                return Ok(TileReconciled::Unchanged);
            }
            let rows: Vec<(String, String, Option<String>)> = {
                let mut st = tx
                    .prepare_cached(
                        "SELECT task_id, state, error FROM tasks WHERE run_id = ?1 AND task_id >= ?2 AND task_id < ?3 ORDER BY idx",
                    )
                    .map_err(&e)?;
                let rows = st
                    .query_map(params![run_id, prefix, upper], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(&e)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(&e)?;
                rows
            };
            let mut state = state;
            if let Some((part, _, why)) = rows.iter().find(|(_, s, _)| s == "failed") {
                let waiting = matches!(state, TaskState::Pending | TaskState::Queued);
                if !waiting {
                    return Ok(TileReconciled::Unchanged);
                }
                let reason = format!("part {part} failed: {}", why.as_deref().unwrap_or("(no reason recorded)"));
                let applied = move_state(
                    tx,
                    run_id,
                    tile_id,
                    state,
                    TaskState::Failed,
                    ", error = ?6, owner = NULL, lease_until = NULL",
                    &[&reason],
                )
                .map_err(&e)?;
                if !applied {
                    return Ok(TileReconciled::Unchanged);
                }
                let completion_fired = maybe_complete(tx, run_id).map_err(&e)?;
                return Ok(TileReconciled::Failed { reason, completion_fired });
            }
            if state == TaskState::Failed && blocked {
                // Failed by a part that has run again since (a retry): the tile waits again.
                move_state(
                    tx,
                    run_id,
                    tile_id,
                    TaskState::Failed,
                    TaskState::Pending,
                    ", attempts = 0, owner = NULL, lease_until = NULL, error = NULL",
                    &[],
                )
                .map_err(&e)?;
                state = TaskState::Pending;
            }
            let waiting = matches!(state, TaskState::Pending | TaskState::Queued);
            let all_done = rows.len() as i64 == parts && rows.iter().all(|(_, s, _)| s == "done");
            if all_done && blocked && waiting {
                let n = tx
                    .execute(
                        "UPDATE tasks SET blocked = 0 WHERE run_id = ?1 AND task_id = ?2 AND blocked = 1",
                        params![run_id, tile_id],
                    )
                    .map_err(&e)?;
                return Ok(if n == 1 { TileReconciled::Released } else { TileReconciled::Unchanged });
            }
            Ok(if blocked && !all_done { TileReconciled::Waiting } else { TileReconciled::Unchanged })
        })
    }

    fn reset(&self, run_id: &str, scope: ResetScope, task_ids: Option<&[String]>) -> Result<Vec<String>> {
        let e = self.db.err();
        let now = self.db.now();
        let from = match scope {
            ResetScope::Failed => TaskState::Failed,
            ResetScope::Done => TaskState::Done,
            ResetScope::Stale => TaskState::Running,
            ResetScope::Queued => TaskState::Queued,
        };
        // Ended tasks start again with a fresh attempt budget; a stale one keeps its count
        // (its attempt died: the cap must see it).
        let set = match scope {
            ResetScope::Failed | ResetScope::Done => ", owner = NULL, lease_until = NULL, attempts = 0",
            ResetScope::Stale | ResetScope::Queued => ", owner = NULL, lease_until = NULL",
        };
        let wanted = |id: &str| task_ids.is_none_or(|ids| ids.iter().any(|x| x == id));
        // Candidates are read and moved in one transaction, so a lease renewed or a
        // message sent meanwhile is seen.
        self.db.write(|tx| {
            let candidates: Vec<(String, Option<String>, Option<i64>, bool)> = {
                let mut st = tx
                    .prepare(
                        "SELECT task_id, owner, lease_until, dispatched FROM tasks WHERE run_id = ?1 AND state = ?2 ORDER BY idx",
                    )
                    .map_err(&e)?;
                let rows = st
                    .query_map(params![run_id, from.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(&e)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?
            };
            let mut out = Vec::new();
            for (id, owner, until, dispatched) in &candidates {
                if !wanted(id) {
                    continue;
                }
                match scope {
                    ResetScope::Stale => {
                        let expired = until.is_none_or(|u| u <= now);
                        if !expired && !owner.as_deref().is_some_and(owner_is_dead_local_process) {
                            continue;
                        }
                    }
                    ResetScope::Queued if *dispatched => continue,
                    _ => {}
                }
                if move_state(tx, run_id, id, from, TaskState::Pending, set, &[]).map_err(&e)? {
                    out.push(id.clone());
                }
            }
            Ok(out)
        })
    }
}

/// A transition out of `running` that only the task's owner may make.
fn move_state_owned(
    tx: &rusqlite::Transaction,
    run: &str,
    task: &str,
    worker: &str,
    to: TaskState,
    set: &str,
    text: &str,
) -> rusqlite::Result<bool> {
    let owner: Option<Option<String>> = tx
        .query_row(
            "SELECT owner FROM tasks WHERE run_id = ?1 AND task_id = ?2 AND state = 'running'",
            params![run, task],
            |r| r.get(0),
        )
        .optional()?;
    match owner {
        Some(Some(o)) if o == worker => {}
        _ => return Ok(false),
    }
    // ?6 is unused by the owned transitions; keep positions aligned with move_state.
    move_state(tx, run, task, TaskState::Running, to, set, &[&worker, &text])
}

impl SqliteLedger {
    /// Raise a run's counter mark to `n` (never lowers it).
    fn raise_run_mark(&self, run_id: &str, column: &str, n: u64) -> Result<()> {
        let e = self.db.err();
        self.db.write(|tx| {
            tx.execute(
                &format!("UPDATE runs SET {column} = MAX({column}, ?1) WHERE run_id = ?2"),
                params![n as i64, run_id],
            )
            .map_err(&e)?;
            Ok(())
        })
    }

    fn runs_where(&self, run_id: Option<&str>) -> Result<Vec<RunRecord>> {
        let e = self.db.err();
        self.db.read(|c| {
            let mut st = c
                .prepare(
                    "SELECT run_id, created_at, config, config_digest, total, pending, queued, running, done, failed, completions,
                            completions_sent, completions_handled
                     FROM runs WHERE (?1 IS NULL OR run_id = ?1) ORDER BY created_at",
                )
                .map_err(&e)?;
            let rows = st
                .query_map(params![run_id], |r| {
                    Ok(RunRecord {
                        run_id: r.get(0)?,
                        created_at: r.get(1)?,
                        config: parse_json(&r.get::<_, String>(2)?),
                        config_digest: r.get(3)?,
                        counts: RunCounts {
                            total: r.get::<_, i64>(4)? as u64,
                            pending: r.get::<_, i64>(5)? as u64,
                            queued: r.get::<_, i64>(6)? as u64,
                            running: r.get::<_, i64>(7)? as u64,
                            done: r.get::<_, i64>(8)? as u64,
                            failed: r.get::<_, i64>(9)? as u64,
                        },
                        completions: r.get::<_, i64>(10)? as u64,
                        completions_sent: r.get::<_, i64>(11)? as u64,
                        completions_handled: r.get::<_, i64>(12)? as u64,
                    })
                })
                .map_err(&e)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)
        })
    }
}

/// An embedded queue (and its dead-letter queue) in the store file.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    name: String,
    max_receives: u32,
}

impl SqliteQueue {
    pub fn new(db: Db, name: &str, max_receives: u32) -> Self {
        Self { db, name: name.to_string(), max_receives: max_receives.max(1) }
    }
}

fn new_receipt(id: i64, n: i64) -> String {
    format!("{id}:{n}:{}", std::process::id())
}

impl TaskQueue for SqliteQueue {
    fn send_batch(&self, bodies: &[String]) -> Result<()> {
        let e = self.db.err();
        let now = self.db.now();
        self.db.write(|tx| {
            let mut st =
                tx.prepare("INSERT INTO messages (queue, body, visible_at) VALUES (?1, ?2, ?3)").map_err(&e)?;
            for b in bodies {
                st.execute(params![self.name, b, now]).map_err(&e)?;
            }
            Ok(())
        })
    }

    fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Received>> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got = self.receive_once(max, visibility)?;
            if !got.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(100).min(wait));
        }
    }

    fn extend_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        let e = self.db.err();
        let until = self.db.now() + visibility.as_millis() as i64;
        self.db.write(|tx| {
            let n = tx
                .execute("UPDATE messages SET visible_at = ?1 WHERE receipt = ?2 AND dead = 0", params![until, receipt])
                .map_err(&e)?;
            if n == 0 {
                return Err(PortError::Other(format!(
                    "receipt '{receipt}' is no longer valid (message redelivered or deleted)"
                )));
            }
            Ok(())
        })
    }

    fn delete(&self, receipt: &str) -> Result<()> {
        let e = self.db.err();
        // Like SQS, deleting with a stale receipt is not an error.
        self.db
            .write(|tx| tx.execute("DELETE FROM messages WHERE receipt = ?1", params![receipt]).map(|_| ()).map_err(&e))
    }

    fn depth(&self) -> Result<QueueDepth> {
        let e = self.db.err();
        let now = self.db.now();
        self.db.read(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(dead = 0 AND visible_at <= ?2), 0), COALESCE(SUM(dead = 0 AND visible_at > ?2), 0), COALESCE(SUM(dead = 1), 0)
                 FROM messages WHERE queue = ?1",
                params![self.name, now],
                |r| Ok(QueueDepth { visible: r.get::<_, i64>(0)? as u64, in_flight: r.get::<_, i64>(1)? as u64, dead_letter: r.get::<_, i64>(2)? as u64 }),
            )
            .map_err(&e)
        })
    }

    fn redrive(&self) -> Result<usize> {
        let e = self.db.err();
        let now = self.db.now();
        self.db.write(|tx| {
            tx.execute(
                "UPDATE messages SET dead = 0, receive_count = 0, receipt = NULL, receiver = NULL, visible_at = ?2 WHERE queue = ?1 AND dead = 1",
                params![self.name, now],
            )
            .map_err(&e)
        })
    }

    fn max_receives(&self) -> u32 {
        self.max_receives
    }

    fn name(&self) -> String {
        format!("embedded:{}", self.name)
    }
}

impl SqliteQueue {
    fn receive_once(&self, max: usize, visibility: Duration) -> Result<Vec<Received>> {
        let e = self.db.err();
        let now = self.db.now();
        let until = now + visibility.as_millis() as i64;
        let me = format!("{}", std::process::id());
        self.db.write(|tx| {
            // In-flight messages of a local receiver process that died become visible now.
            let mut dead_rx = tx
                .prepare("SELECT id, receiver FROM messages WHERE queue = ?1 AND dead = 0 AND visible_at > ?2 AND receiver IS NOT NULL")
                .map_err(&e)?;
            let orphans: Vec<i64> = dead_rx
                .query_map(params![self.name, now], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(&e)?
                .filter_map(|r| r.ok())
                .filter(|(_, rx)| owner_is_dead_local_process(rx))
                .map(|(id, _)| id)
                .collect();
            drop(dead_rx);
            for id in orphans {
                tx.execute("UPDATE messages SET visible_at = ?1 WHERE id = ?2", params![now, id]).map_err(&e)?;
            }
            let mut out = Vec::new();
            let mut st = tx
                .prepare("SELECT id, body, receive_count FROM messages WHERE queue = ?1 AND dead = 0 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3")
                .map_err(&e)?;
            let ready: Vec<(i64, String, i64)> = st
                .query_map(params![self.name, now, (max * 4).max(max) as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(&e)?
                .collect::<rusqlite::Result<_>>()
                .map_err(&e)?;
            drop(st);
            for (id, body, count) in ready {
                if out.len() >= max {
                    break;
                }
                if count >= self.max_receives as i64 {
                    // Received too often without being deleted: dead-letter it.
                    tx.execute("UPDATE messages SET dead = 1, receipt = NULL, receiver = NULL WHERE id = ?1", params![id]).map_err(&e)?;
                    tracing::warn!(queue = %self.name, message_id = id, receives = count, "message dead-lettered after too many receives");
                    continue;
                }
                let receipt = new_receipt(id, count + 1);
                let receiver = format!("{}:{}:rx", hostname::get().map(|h| h.to_string_lossy().to_string()).unwrap_or_default(), me);
                tx.execute(
                    "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2, receiver = ?3 WHERE id = ?4",
                    params![until, receipt, receiver, id],
                )
                .map_err(&e)?;
                out.push(Received { message_id: id.to_string(), body, receipt, receive_count: (count + 1) as u32 });
            }
            Ok(out)
        })
    }
}
