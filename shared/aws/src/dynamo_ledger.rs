//! The ledger on DynamoDB. One table, two item kinds under one partition per run:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | run | `RUN#{run}` | `#RUN` | config, digest, `total`, one counter per state, `ended`, `armed`, `completions` |
//! | task | `RUN#{run}` | `TASK#{task id}` | `idx`, `st`, `attempts`, `owner`, `lease_until` (ms), `error`, `summary`, `payload` or `payload_key`, `result` |
//!
//! Every state change is a TransactWriteItems of two updates: the task's, conditional on
//! its current state (and owner), and the run's counters. They commit together or not at
//! all, so the counters always equal the task states. The completion is a conditional
//! update of the run item (`armed AND ended = total`): exactly one caller wins it. Leaving
//! `done`/`failed` re-arms it.
//!
//! Every conditional write also records a unique operation token (`op_token` on the task,
//! `fired_token` on the run). A write whose response was lost is retried (by the SDK or
//! here) and then fails its own condition, because the first attempt took effect; reading
//! the token back tells "mine, applied" from "someone else's", so a retry never reports a
//! transition (or a completion) as not made when it was. Task payloads (dataset lists) larger than fits in an item go
//! to an S3 manifest named by `payload_key`. Runs carry an optional TTL (`expires_at`).

use crate::client::{remote_error, Aws};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, TransactWriteItem, Update, WriteRequest};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use stratus_ports::ledger::ResetScope;
use stratus_ports::{
    gave_up_reason, payload_text, BlobStore, ClaimOptions, ClaimOutcome, DatasetDocs, Ledger, NewRun, NewTask,
    PortError, RerunFailed, RunCounts, RunRecord, TaskRecord, TaskState, TileReconciled, Transition,
};

type Result<T> = std::result::Result<T, PortError>;
type Item = HashMap<String, AttributeValue>;

/// Payloads above this many bytes go to the overflow store (items are limited to 400 KB).
const INLINE_PAYLOAD_LIMIT: usize = 300_000;
const WRITES_IN_FLIGHT: usize = 8;
/// What a task record is read from (everything but its payload).
const TASK_ATTRIBUTES: &str = "task_id, idx, st, attempts, owner, lease_until, error, summary, result, updated_at, \
                               dispatched, dead_lettered, parts, blocked";
const TRANSACTION_ATTEMPTS: u32 = 12;

pub struct DynamoLedger {
    aws: Arc<Aws>,
    table: String,
    /// Where payloads too big for an item go (`_stratus/payloads/{run}/...`).
    overflow: Option<Arc<dyn BlobStore>>,
    /// Seconds a run's items live after creation (DynamoDB TTL), if set.
    ttl: Option<Duration>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn run_pk(run: &str) -> AttributeValue {
    s(format!("RUN#{run}"))
}
const RUN_SK: &str = "#RUN";
fn task_sk(task: &str) -> AttributeValue {
    s(format!("TASK#{task}"))
}
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
/// A token unique to one ledger operation (process, time, sequence).
fn op_token() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{seq}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}
fn get_bool(item: &Item, k: &str) -> bool {
    item.get(k).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
}
fn json_of(item: &Item, k: &str) -> serde_json::Value {
    get_s(item, k).and_then(|t| serde_json::from_str(t).ok()).unwrap_or(serde_json::Value::Null)
}

/// The counter attribute of a state.
fn counter(st: TaskState) -> &'static str {
    st.as_str()
}

fn is_terminal(st: TaskState) -> bool {
    matches!(st, TaskState::Done | TaskState::Failed)
}

/// How a conditional write ended.
enum Write {
    Applied,
    TaskConditionFailed,
    RunConditionFailed,
}

impl DynamoLedger {
    pub fn new(aws: Arc<Aws>, table: &str, overflow: Option<Arc<dyn BlobStore>>) -> DynamoLedger {
        DynamoLedger { aws, table: table.to_string(), overflow, ttl: None }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> DynamoLedger {
        self.ttl = Some(ttl);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(run: &str, sk: AttributeValue) -> Item {
        HashMap::from([("pk".to_string(), run_pk(run)), ("sk".to_string(), sk)])
    }

    fn run_to_record(item: &Item) -> RunRecord {
        let c = |k: &str| get_n(item, k).unwrap_or(0).max(0) as u64;
        RunRecord {
            run_id: get_s(item, "run_id").unwrap_or_default().to_string(),
            created_at: get_s(item, "created_at").unwrap_or_default().to_string(),
            config: json_of(item, "config"),
            config_digest: get_s(item, "config_digest").unwrap_or_default().to_string(),
            counts: RunCounts {
                total: c("total"),
                pending: c("pending"),
                queued: c("queued"),
                running: c("running"),
                done: c("done"),
                failed: c("failed"),
            },
            completions: c("completions"),
            completions_sent: c("completions_sent"),
            completions_handled: c("completions_handled"),
        }
    }

    fn task_to_record(run: &str, item: &Item) -> TaskRecord {
        TaskRecord {
            run_id: run.to_string(),
            task_id: get_s(item, "task_id").unwrap_or_default().to_string(),
            index: get_n(item, "idx").unwrap_or(0) as usize,
            state: get_s(item, "st").and_then(TaskState::parse).unwrap_or(TaskState::Pending),
            attempts: get_n(item, "attempts").unwrap_or(0) as u32,
            owner: get_s(item, "owner").map(str::to_string),
            error: get_s(item, "error").map(str::to_string),
            summary: json_of(item, "summary"),
            result: item.get("result").and_then(|v| v.as_s().ok()).and_then(|t| serde_json::from_str(t).ok()),
            updated_at: get_s(item, "updated_at").unwrap_or_default().to_string(),
            dispatched: get_bool(item, "dispatched"),
            dead_lettered: get_bool(item, "dead_lettered"),
            parts: get_n(item, "parts").unwrap_or(0) as u32,
            blocked: get_bool(item, "blocked"),
        }
    }

    async fn get_item(&self, key: Item, projection: Option<&str>) -> Result<Option<Item>> {
        let mut req = self.aws.dynamodb().get_item().table_name(&self.table).set_key(Some(key)).consistent_read(true);
        if let Some(p) = projection {
            // Attribute names are aliased: several are DynamoDB reserved words.
            let names: HashMap<String, String> =
                p.split(',').map(|a| (format!("#{}", a.trim()), a.trim().to_string())).collect();
            let expr: Vec<String> = names.keys().cloned().collect();
            req = req.projection_expression(expr.join(", ")).set_expression_attribute_names(Some(names));
        }
        let out = req.send().await.map_err(|e| remote_error("DynamoDB", "GetItem", e))?;
        Ok(out.item)
    }

    /// Every task item of a run (without payloads) whose id starts with `under` ("" for
    /// all), in plan order.
    async fn query_tasks(
        &self,
        run: &str,
        under: &str,
        state: Option<TaskState>,
        keys_only: bool,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        let attrs = if keys_only { "pk, sk" } else { TASK_ATTRIBUTES };
        let mut names: HashMap<String, String> = attrs.split(", ").map(|a| (format!("#{a}"), a.to_string())).collect();
        names.insert("#pkey".into(), "pk".into());
        names.insert("#skey".into(), "sk".into());
        let projection: Vec<String> = attrs.split(", ").map(|a| format!("#{a}")).collect();
        loop {
            let mut q = self
                .aws
                .dynamodb()
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pkey = :pk AND begins_with(#skey, :t)")
                .expression_attribute_values(":pk", run_pk(run))
                .expression_attribute_values(":t", s(format!("TASK#{under}")))
                .projection_expression(projection.join(", "))
                .set_exclusive_start_key(start.take());
            let mut names = names.clone();
            if let Some(st) = state {
                names.insert("#stf".into(), "st".into());
                q = q.filter_expression("#stf = :st").expression_attribute_values(":st", s(st.as_str()));
            }
            let out = q
                .set_expression_attribute_names(Some(names))
                .send()
                .await
                .map_err(|e| remote_error("DynamoDB", "Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        items.sort_by_key(|i| get_n(i, "idx").unwrap_or(0));
        Ok(items)
    }

    /// BatchWriteItem in 25s, several in flight, retrying unprocessed items.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
        let chunks: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
        let results: Vec<Result<()>> = futures::stream::iter(chunks)
            .map(|chunk| async move {
                let mut todo = chunk;
                for attempt in 0..10u32 {
                    let out = self
                        .aws
                        .dynamodb()
                        .batch_write_item()
                        .request_items(&self.table, todo)
                        .send()
                        .await
                        .map_err(|e| remote_error("DynamoDB", "BatchWriteItem", e))?;
                    todo = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                    if todo.is_empty() {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                }
                Err(PortError::Remote {
                    service: "DynamoDB".into(),
                    op: "BatchWriteItem".into(),
                    why: format!("{} items still unprocessed after 10 attempts (throttled?)", todo.len()),
                    transient: true,
                })
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// A transaction, retried on conflicts with other transactions. Condition failures
    /// are reported (which item), not retried.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Write> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let res = self.aws.dynamodb().transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match res {
                Ok(_) => return Ok(Write::Applied),
                Err(e) => e,
            };
            if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) =
                err.as_service_error()
            {
                let codes: Vec<&str> = c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                if codes.first() == Some(&"ConditionalCheckFailed") {
                    return Ok(Write::TaskConditionFailed);
                }
                if codes.contains(&"ConditionalCheckFailed") {
                    return Ok(Write::RunConditionFailed);
                }
                if codes.iter().any(|c| *c == "TransactionConflict" || *c == "ThrottlingError") || codes.is_empty() {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            }
            let e = remote_error("DynamoDB", "TransactWriteItems", err);
            if e.is_transient() && attempt + 1 < TRANSACTION_ATTEMPTS {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Err(e);
        }
        Err(PortError::Remote {
            service: "DynamoDB".into(),
            op: "TransactWriteItems".into(),
            why: format!("still conflicting after {TRANSACTION_ATTEMPTS} attempts"),
            transient: true,
        })
    }

    /// The run item's counters that decide whether a task's end is the run's last.
    async fn run_progress(&self, run: &str) -> Result<(i64, i64, bool)> {
        let item = self.get_item(Self::key(run, s(RUN_SK)), Some("total, ended, armed")).await?.ok_or_else(|| {
            PortError::Other(format!("ledger table '{}': run '{run}' is missing (deleted while it ran?)", self.table))
        })?;
        let armed = item.get("armed").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        Ok((get_n(&item, "total").unwrap_or(0), get_n(&item, "ended").unwrap_or(0), armed))
    }

    /// Move one task `from` -> `to` with its run's counters, atomically. `set` adds task
    /// attribute changes (an update expression fragment after the state's SET), `cond`
    /// extra conditions; `values` and `names` bind the `:value` and `#name` tokens they use.
    ///
    /// A move into `done`/`failed` that ends the run's last task fires the completion in
    /// the same transaction: the run update comes in two forms with complementary
    /// conditions (this is the last end and the completion is armed, or not), and the one
    /// the run's counters call for is tried first, the other if they changed meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn move_state(
        &self,
        run: &str,
        task: &str,
        from: TaskState,
        to: TaskState,
        set: &str,
        cond: &str,
        mut values: HashMap<String, AttributeValue>,
        mut names: HashMap<String, String>,
    ) -> Result<Transition> {
        values.insert(":from".into(), s(from.as_str()));
        values.insert(":to".into(), s(to.as_str()));
        values.insert(":now".into(), s(now_text()));
        values.insert(":nope".into(), AttributeValue::Bool(false));
        let token = op_token();
        values.insert(":tok".into(), s(&token));
        names.insert("#st".into(), "st".into());
        names.insert("#upd".into(), "updated_at".into());
        names.insert("#tok".into(), "op_token".into());
        // Both marks belong to the state being left.
        names.insert("#disp".into(), "dispatched".into());
        names.insert("#dlq".into(), "dead_lettered".into());
        names.insert("#dlqd".into(), "dead_letter_dispatch".into());
        values.insert(":none".into(), s(""));
        let task_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(run, task_sk(task))))
            .update_expression(format!(
                "SET #st = :to, #upd = :now, #tok = :tok, #disp = :nope, #dlq = :nope, #dlqd = :none{set}"
            ))
            .condition_expression(format!("#st = :from{cond}"))
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names(Some(names))
            .build()
            .map_err(|e| PortError::Other(format!("building a ledger update: {e}")))?;
        let task_item = TransactWriteItem::builder().update(task_update).build();
        if from == to {
            return match self.transact(vec![task_item]).await? {
                Write::Applied => Ok(Transition { applied: true, completion_fired: false }),
                _ => Ok(Transition {
                    applied: self.token_is(Self::key(run, task_sk(task)), "op_token", &token).await?,
                    completion_fired: false,
                }),
            };
        }
        let ends = is_terminal(to) && !is_terminal(from);
        // Which form of the run update to try first: the last end fires the completion.
        // The run's total never changes (an overwrite makes a new run), so the last end
        // is the one that finds `ended = total - 1`.
        let (mut fire, last) = if ends {
            let (total, ended, armed) = self.run_progress(run).await?;
            (armed && ended + 1 == total, total - 1)
        } else {
            (false, 0)
        };
        for _ in 0..4 {
            let run_item = self.run_update(run, from, to, ends.then_some(last), fire, &token)?;
            match self.transact(vec![task_item.clone(), run_item]).await? {
                Write::Applied => return Ok(Transition { applied: true, completion_fired: fire }),
                // Either the task was not in `from`, or an earlier attempt of this very
                // write took effect and only its response was lost.
                Write::TaskConditionFailed => {
                    let applied = self.token_is(Self::key(run, task_sk(task)), "op_token", &token).await?;
                    let fired = applied && self.token_is(Self::key(run, s(RUN_SK)), "fired_token", &token).await?;
                    return Ok(Transition { applied, completion_fired: fired });
                }
                // The run's counters moved between our read and write: the other form.
                Write::RunConditionFailed if ends => fire = !fire,
                Write::RunConditionFailed => break,
            }
        }
        Err(PortError::Other(format!(
            "ledger table '{}': the run item of '{run}' refused a counter update (was the run deleted while it ran?)",
            self.table
        )))
    }

    /// The run item's part of a task's move: its counters, and, when `fire`, the completion.
    fn run_update(
        &self,
        run: &str,
        from: TaskState,
        to: TaskState,
        ends_at_last: Option<i64>,
        fire: bool,
        token: &str,
    ) -> Result<TransactWriteItem> {
        let mut add = "#f :minus, #t :plus".to_string();
        let mut names = HashMap::from([
            ("#f".to_string(), counter(from).to_string()),
            ("#t".to_string(), counter(to).to_string()),
            ("#pkey".to_string(), "pk".to_string()),
        ]);
        let mut values = HashMap::from([(":minus".to_string(), n(-1)), (":plus".to_string(), n(1))]);
        let mut sets = Vec::new();
        let mut cond = "attribute_exists(#pkey)".to_string();
        if is_terminal(to) != is_terminal(from) {
            add.push_str(", #ended :e");
            names.insert("#ended".into(), "ended".into());
            values.insert(":e".into(), n(if is_terminal(to) { 1 } else { -1 }));
        }
        if is_terminal(from) {
            // Leaving done/failed re-arms the completion.
            sets.push("#armed = :yes");
            names.insert("#armed".into(), "armed".into());
            values.insert(":yes".into(), AttributeValue::Bool(true));
        }
        if let Some(last) = ends_at_last {
            names.insert("#armed".into(), "armed".into());
            values.insert(":yes".into(), AttributeValue::Bool(true));
            // Conditions see `ended` before the ADD: this end is the last when it is total - 1.
            values.insert(":last".into(), n(last));
            if fire {
                cond.push_str(" AND #armed = :yes AND #ended = :last");
                add.push_str(", #c :plus");
                names.insert("#c".into(), "completions".into());
                names.insert("#ft".into(), "fired_token".into());
                values.insert(":tok".into(), s(token));
                values.insert(":no".into(), AttributeValue::Bool(false));
                sets.push("#armed = :no");
                sets.push("#ft = :tok");
            } else {
                cond.push_str(" AND NOT (#armed = :yes AND #ended = :last)");
            }
        }
        let mut expr = format!("ADD {add}");
        if !sets.is_empty() {
            expr.push_str(&format!(" SET {}", sets.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(run, s(RUN_SK))))
            .update_expression(expr)
            .condition_expression(cond)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names(Some(names))
            .build()
            .map_err(|e| PortError::Other(format!("building a ledger update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Whether the item's `attr` holds `token` (a consistent read).
    async fn token_is(&self, key: Item, attr: &str, token: &str) -> Result<bool> {
        let item = self.get_item(key, Some(attr)).await?;
        Ok(item.as_ref().and_then(|i| get_s(i, attr)) == Some(token))
    }

    /// A transition out of `running` that only the owner may make.
    #[allow(clippy::too_many_arguments)]
    async fn move_owned(
        &self,
        run: &str,
        task: &str,
        worker: &str,
        to: TaskState,
        set: &str,
        mut values: HashMap<String, AttributeValue>,
        mut names: HashMap<String, String>,
    ) -> Result<Transition> {
        values.insert(":w".into(), s(worker));
        names.insert("#ow".into(), "owner".into());
        self.move_state(run, task, TaskState::Running, to, set, " AND #ow = :w", values, names).await
    }

    /// Every failed, dead-lettered task of the run but `except` -> pending (a redrive).
    async fn reset_dead_lettered(&self, run: &str, except: &str) -> Result<()> {
        let others: Vec<String> = self
            .query_tasks(run, "", Some(TaskState::Failed), false)
            .await?
            .iter()
            .filter(|i| get_bool(i, "dead_lettered"))
            .filter_map(|i| get_s(i, "task_id").map(str::to_string))
            .filter(|id| id != except)
            .collect();
        let results: Vec<Result<Transition>> = futures::stream::iter(others)
            .map(|id| async move {
                let names = HashMap::from([
                    ("#ow".to_string(), "owner".to_string()),
                    ("#lu".to_string(), "lease_until".to_string()),
                    ("#at".to_string(), "attempts".to_string()),
                ]);
                let values =
                    HashMap::from([(":zero".to_string(), n(0)), (":yes".to_string(), AttributeValue::Bool(true))]);
                self.move_state(
                    run,
                    &id,
                    TaskState::Failed,
                    TaskState::Pending,
                    ", #at = :zero REMOVE #ow, #lu",
                    " AND #dlq = :yes",
                    values,
                    names,
                )
                .await
            })
            .buffered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<_>>>().map(|_| ())
    }

    /// One `UpdateItem` of `key` with `update` if `cond` holds: false if it did not.
    /// `names` and `values` bind the `#name` and `:value` tokens both use.
    async fn update_if(
        &self,
        key: Item,
        update: &str,
        cond: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
        what: &str,
    ) -> Result<bool> {
        let names = names.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let values = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let res = self
            .aws
            .dynamodb()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(remote_error("DynamoDB", &format!("UpdateItem({what})"), e)),
        }
    }

    /// Raise a run's counter mark to `n` (never lowers it; nothing if the run is gone).
    async fn raise_mark(&self, run: &str, attr: &str, value: u64) -> Result<()> {
        let cond = "attribute_exists(#pkey) AND (attribute_not_exists(#a) OR #a < :v)";
        let names = [("#a", attr), ("#pkey", "pk")];
        self.update_if(Self::key(run, s(RUN_SK)), "SET #a = :v", cond, &names, vec![(":v", n(value))], "run mark")
            .await
            .map(|_| ())
    }

    fn payload_key(run: &str, task: &str) -> String {
        use sha2::Digest;
        let h = hex::encode(&sha2::Sha256::digest(task.as_bytes())[..12]);
        format!("_stratus/payloads/{run}/{h}.json")
    }

    async fn delete_run_items(&self, run: &str) -> Result<()> {
        let mut keys = self.query_tasks(run, "", None, true).await?;
        keys.push(Self::key(run, s(RUN_SK)));
        let requests = keys
            .into_iter()
            .map(|k| {
                WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(k)).build().expect("key is set"))
                    .build()
            })
            .collect();
        self.batch_write(requests).await
    }
}

fn backoff(attempt: u32) -> Duration {
    // 20 ms doubling to ~1.3 s, with jitter so conflicting writers spread out.
    let base = 20u64 << attempt.min(6);
    let jitter = (now_ms() as u64).wrapping_mul(2_654_435_761) % base.max(1);
    Duration::from_millis(base + jitter)
}

impl Ledger for DynamoLedger {
    fn create_run(&self, run: &NewRun, tasks: &[NewTask], docs: &dyn DatasetDocs, overwrite: bool) -> Result<()> {
        self.aws.block_on(async {
            let existing = self.get_item(Self::key(&run.run_id, s(RUN_SK)), Some("pk")).await?;
            if existing.is_some() && !overwrite {
                return Err(PortError::RunExists(run.run_id.clone()));
            }
            // Also clears tasks a crashed earlier plan of this run left without a run item.
            self.delete_run_items(&run.run_id).await?;
            let expires = self.ttl.map(|t| chrono::Utc::now().timestamp() + t.as_secs() as i64);
            let now = now_text();
            let mut requests = Vec::with_capacity(tasks.len());
            for t in tasks {
                let mut item: Item = Self::key(&run.run_id, task_sk(&t.task_id));
                item.insert("task_id".into(), s(&t.task_id));
                item.insert("idx".into(), n(t.index));
                item.insert("st".into(), s(TaskState::Pending.as_str()));
                item.insert("attempts".into(), n(0));
                item.insert("summary".into(), s(t.summary.to_string()));
                item.insert("updated_at".into(), s(&now));
                if t.parts > 0 {
                    item.insert("parts".into(), n(t.parts));
                    item.insert("blocked".into(), AttributeValue::Bool(true));
                }
                let payload =
                    payload_text(&t.datasets.iter().map(|&i| docs.doc(i)).collect::<Result<Vec<String>>>()?);
                if payload.len() > INLINE_PAYLOAD_LIMIT {
                    let store = self.overflow.as_ref().ok_or_else(|| {
                        PortError::Other(format!(
                            "task {}: its dataset list ({} bytes) is too big for a DynamoDB item and no manifest store is configured",
                            t.task_id,
                            payload.len()
                        ))
                    })?;
                    let key = Self::payload_key(&run.run_id, &t.task_id);
                    let store = store.clone();
                    let (k, p) = (key.clone(), payload.into_bytes());
                    tokio::task::spawn_blocking(move || store.put(&k, &p))
                        .await
                        .map_err(|e| PortError::Other(format!("payload upload: {e}")))??;
                    item.insert("payload_key".into(), s(key));
                } else {
                    item.insert("payload".into(), s(payload));
                }
                if let Some(e) = expires {
                    item.insert("expires_at".into(), n(e));
                }
                requests.push(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().expect("item is set"))
                        .build(),
                );
            }
            self.batch_write(requests).await?;
            // The run item goes last: a run that exists has all its tasks.
            let total = tasks.len();
            let mut item: Item = Self::key(&run.run_id, s(RUN_SK));
            item.insert("run_id".into(), s(&run.run_id));
            item.insert("created_at".into(), s(&now));
            item.insert("config".into(), s(run.config.to_string()));
            item.insert("config_digest".into(), s(&run.config_digest));
            item.insert("total".into(), n(total));
            item.insert("pending".into(), n(total));
            for st in ["queued", "running", "done", "failed", "ended", "completions"] {
                item.insert(st.into(), n(0));
            }
            item.insert("armed".into(), AttributeValue::Bool(total > 0));
            if let Some(e) = expires {
                item.insert("expires_at".into(), n(e));
            }
            self.aws
                .dynamodb()
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| remote_error("DynamoDB", "PutItem(run)", e))?;
            Ok(())
        })
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.aws.block_on(async {
            Ok(self.get_item(Self::key(run_id, s(RUN_SK)), None).await?.map(|i| Self::run_to_record(&i)))
        })
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        self.aws.block_on(async {
            let mut out = Vec::new();
            let mut pages = self
                .aws
                .dynamodb()
                .scan()
                .table_name(&self.table)
                .filter_expression("#skey = :run")
                .expression_attribute_names("#skey", "sk")
                .expression_attribute_values(":run", s(RUN_SK))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| remote_error("DynamoDB", "Scan", e))?;
                out.extend(page.items().iter().map(Self::run_to_record));
            }
            out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
            Ok(out)
        })
    }

    fn tasks(&self, run_id: &str, state: Option<TaskState>) -> Result<Vec<TaskRecord>> {
        self.aws.block_on(async {
            Ok(self
                .query_tasks(run_id, "", state, false)
                .await?
                .iter()
                .map(|i| Self::task_to_record(run_id, i))
                .collect())
        })
    }

    fn tasks_under(&self, run_id: &str, prefix: &str) -> Result<Vec<TaskRecord>> {
        self.aws.block_on(async {
            Ok(self
                .query_tasks(run_id, prefix, None, false)
                .await?
                .iter()
                .map(|i| Self::task_to_record(run_id, i))
                .collect())
        })
    }

    fn task(&self, run_id: &str, task_id: &str) -> Result<Option<TaskRecord>> {
        self.aws.block_on(async {
            let item = self.get_item(Self::key(run_id, task_sk(task_id)), Some(TASK_ATTRIBUTES)).await?;
            Ok(item.map(|i| Self::task_to_record(run_id, &i)))
        })
    }

    fn payload(&self, run_id: &str, task_id: &str) -> Result<serde_json::Value> {
        let item =
            self.aws.block_on(self.get_item(Self::key(run_id, task_sk(task_id)), Some("payload, payload_key")))?;
        let item = item.ok_or_else(|| PortError::TaskNotFound { run: run_id.into(), task: task_id.into() })?;
        let text = match (get_s(&item, "payload"), get_s(&item, "payload_key")) {
            (Some(p), _) => p.to_string(),
            (None, Some(key)) => {
                let store = self.overflow.as_ref().ok_or_else(|| {
                    PortError::Other(format!(
                        "task {task_id}: payload is in manifest '{key}' but no manifest store is configured"
                    ))
                })?;
                String::from_utf8_lossy(&store.get(key)?).into_owned()
            }
            (None, None) => return Err(PortError::Other(format!("task {task_id}: no payload in the ledger"))),
        };
        serde_json::from_str(&text).map_err(|e| PortError::Other(format!("task {task_id}: corrupt payload: {e}")))
    }

    fn mark_queued(&self, run_id: &str, task_ids: &[String]) -> Result<Vec<String>> {
        self.aws.block_on(async {
            let results: Vec<Result<Option<String>>> = futures::stream::iter(task_ids)
                .map(|t| async move {
                    // A blocked tile is not sent: its release sends it.
                    let moved = self
                        .move_state(
                            run_id,
                            t,
                            TaskState::Pending,
                            TaskState::Queued,
                            "",
                            " AND (attribute_not_exists(#blk) OR #blk = :nope)",
                            HashMap::new(),
                            HashMap::from([("#blk".to_string(), "blocked".to_string())]),
                        )
                        .await?
                        .applied;
                    // Already queued but never dispatched: stranded, send it now.
                    let stranded = !moved
                        && self
                            .get_item(Self::key(run_id, task_sk(t)), Some("st, dispatched"))
                            .await?
                            .is_some_and(|i| get_s(&i, "st") == Some("queued") && !get_bool(&i, "dispatched"));
                    Ok((moved || stranded).then(|| t.clone()))
                })
                .buffered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            Ok(results.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
        })
    }

    fn mark_dispatched(&self, run_id: &str, task_ids: &[String]) -> Result<()> {
        self.aws.block_on(async {
            let results: Vec<Result<bool>> = futures::stream::iter(task_ids)
                .map(|t| {
                    let values = vec![(":yes", AttributeValue::Bool(true)), (":queued", s("queued"))];
                    const NAMES: [(&str, &str); 2] = [("#d", "dispatched"), ("#st", "st")];
                    let key = Self::key(run_id, task_sk(t));
                    self.update_if(key, "SET #d = :yes", "#st = :queued", &NAMES, values, "dispatched")
                })
                .buffered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<_>>>().map(|_| ())
        })
    }

    fn mark_dead_lettered(&self, run_id: &str, task_id: &str, dispatch: Option<&str>) -> Result<bool> {
        let names = [("#dlq", "dead_lettered"), ("#dlqd", "dead_letter_dispatch"), ("#st", "st")];
        let values = vec![
            (":yes", AttributeValue::Bool(true)),
            (":d", s(dispatch.unwrap_or_default())),
            (":failed", s("failed")),
        ];
        let key = Self::key(run_id, task_sk(task_id));
        self.aws.block_on(self.update_if(
            key,
            "SET #dlq = :yes, #dlqd = :d",
            "#st = :failed",
            &names,
            values,
            "dead-lettered",
        ))
    }

    fn mark_completion_sent(&self, run_id: &str, n_: u64) -> Result<()> {
        self.aws.block_on(self.raise_mark(run_id, "completions_sent", n_))
    }

    fn mark_completion_handled(&self, run_id: &str, n_: u64) -> Result<()> {
        self.aws.block_on(self.raise_mark(run_id, "completions_handled", n_))
    }

    fn claim(&self, run_id: &str, task_id: &str, worker: &str, opts: &ClaimOptions) -> Result<ClaimOutcome> {
        self.aws.block_on(async {
            for _ in 0..5 {
                let item = self
                    .get_item(
                        Self::key(run_id, task_sk(task_id)),
                        Some("st, owner, lease_until, attempts, dead_lettered, dead_letter_dispatch, blocked, parts"),
                    )
                    .await?
                    .ok_or_else(|| PortError::TaskNotFound { run: run_id.into(), task: task_id.into() })?;
                let state = get_s(&item, "st").and_then(TaskState::parse).unwrap_or(TaskState::Pending);
                // A split tile runs only when released (a failed one too: its parts run first).
                if get_bool(&item, "blocked") {
                    return Ok(ClaimOutcome::Blocked);
                }
                let attempts = get_n(&item, "attempts").unwrap_or(0) as u32;
                let dead_lettered = get_bool(&item, "dead_lettered");
                let dead_letter_dispatch = get_s(&item, "dead_letter_dispatch").filter(|d| !d.is_empty());
                let now = now_ms();
                let mut values = HashMap::new();
                let names = HashMap::from([
                    ("#ow".to_string(), "owner".to_string()),
                    ("#lu".to_string(), "lease_until".to_string()),
                    ("#at".to_string(), "attempts".to_string()),
                    ("#er".to_string(), "error".to_string()),
                ]);
                let rerun_failed = match &opts.rerun_failed {
                    RerunFailed::Never => false,
                    RerunFailed::Always => true,
                    RerunFailed::IfDeadLettered(d) => dead_lettered && dead_letter_dispatch == Some(d.as_str()),
                };
                let mut cond = String::new();
                match state {
                    TaskState::Pending | TaskState::Queued => {}
                    TaskState::Done if opts.rerun_done => {}
                    TaskState::Failed if rerun_failed => {
                        if let RerunFailed::IfDeadLettered(d) = &opts.rerun_failed {
                            // The run's other dead-lettered tasks go back to pending first,
                            // so the run completes once, after the last of them.
                            self.reset_dead_lettered(run_id, task_id).await?;
                            // The mark is consumed by this claim: one redrive, one run.
                            cond = " AND #dlq = :yes AND #dlqd = :d".into();
                            values.insert(":yes".into(), AttributeValue::Bool(true));
                            values.insert(":d".into(), s(d));
                        }
                    }
                    // The completion fires in the same transaction as the last task's end.
                    TaskState::Done => return Ok(ClaimOutcome::AlreadyDone),
                    TaskState::Failed => return Ok(ClaimOutcome::AlreadyFailed),
                    TaskState::Running => {
                        let owner = get_s(&item, "owner").unwrap_or_default().to_string();
                        let until = get_n(&item, "lease_until");
                        if owner != worker && until.is_some_and(|u| u > now) {
                            return Ok(ClaimOutcome::Busy { owner });
                        }
                        // Take over an expired lease only if nobody else did meanwhile.
                        cond = " AND #ow = :old_owner".into();
                        values.insert(":old_owner".into(), s(owner));
                        if let Some(u) = until {
                            cond.push_str(" AND #lu = :old_until");
                            values.insert(":old_until".into(), n(u));
                        }
                    }
                }
                // Running an ended task again starts a fresh attempt budget.
                let attempts = if is_terminal(state) { 0 } else { attempts };
                cond.push_str(" AND (attribute_not_exists(#at) OR #at = :old_at)");
                values.insert(":old_at".into(), n(get_n(&item, "attempts").unwrap_or(0)));
                if attempts >= opts.max_attempts {
                    values.insert(":err".into(), s(gave_up_reason(attempts)));
                    let t = self
                        .move_state(
                            run_id,
                            task_id,
                            state,
                            TaskState::Failed,
                            ", #er = :err REMOVE #ow, #lu",
                            &cond,
                            values,
                            names,
                        )
                        .await?;
                    if t.applied {
                        return Ok(ClaimOutcome::GaveUp { attempts, completion_fired: t.completion_fired });
                    }
                    continue;
                }
                values.insert(":w".into(), s(worker));
                values.insert(":until".into(), n(now + opts.lease.as_millis() as i64));
                values.insert(":next".into(), n(attempts + 1));
                let applied = self
                    .move_state(
                        run_id,
                        task_id,
                        state,
                        TaskState::Running,
                        ", #ow = :w, #lu = :until, #at = :next REMOVE #er",
                        &cond,
                        values,
                        names,
                    )
                    .await?
                    .applied;
                if applied {
                    return Ok(ClaimOutcome::Claimed {
                        attempt: attempts + 1,
                        parts: get_n(&item, "parts").unwrap_or(0) as u32,
                    });
                }
                // Someone moved it between our read and write: look again.
            }
            let owner = self
                .get_item(Self::key(run_id, task_sk(task_id)), Some("owner"))
                .await?
                .and_then(|i| get_s(&i, "owner").map(str::to_string))
                .unwrap_or_default();
            Ok(ClaimOutcome::Busy { owner })
        })
    }

    fn heartbeat(&self, run_id: &str, task_id: &str, worker: &str, lease: Duration) -> Result<bool> {
        let names = [("#lu", "lease_until"), ("#st", "st"), ("#ow", "owner")];
        let values =
            vec![(":until", n(now_ms() + lease.as_millis() as i64)), (":running", s("running")), (":w", s(worker))];
        let key = Self::key(run_id, task_sk(task_id));
        let cond = "#st = :running AND #ow = :w";
        self.aws.block_on(self.update_if(key, "SET #lu = :until", cond, &names, values, "heartbeat"))
    }

    fn complete(&self, run_id: &str, task_id: &str, worker: &str, result: &serde_json::Value) -> Result<Transition> {
        self.aws.block_on(async {
            let values = HashMap::from([(":res".to_string(), s(result.to_string()))]);
            let names = HashMap::from([
                ("#res".to_string(), "result".to_string()),
                ("#lu".to_string(), "lease_until".to_string()),
            ]);
            self.move_owned(run_id, task_id, worker, TaskState::Done, ", #res = :res REMOVE #lu", values, names).await
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
        self.aws.block_on(async {
            let to = if final_attempt { TaskState::Failed } else { TaskState::Pending };
            let values = HashMap::from([
                (":res".to_string(), s(result.cloned().unwrap_or(serde_json::Value::Null).to_string())),
                (":err".to_string(), s(reason)),
            ]);
            let names = HashMap::from([
                ("#res".to_string(), "result".to_string()),
                ("#lu".to_string(), "lease_until".to_string()),
                ("#er".to_string(), "error".to_string()),
            ]);
            self.move_owned(run_id, task_id, worker, to, ", #res = :res, #er = :err REMOVE #lu", values, names).await
        })
    }

    fn release(&self, run_id: &str, task_id: &str, worker: &str) -> Result<bool> {
        self.aws.block_on(async {
            let values = HashMap::from([(":one".to_string(), n(-1))]);
            let names = HashMap::from([
                ("#at".to_string(), "attempts".to_string()),
                ("#lu".to_string(), "lease_until".to_string()),
            ]);
            Ok(self
                .move_owned(run_id, task_id, worker, TaskState::Pending, " ADD #at :one REMOVE #lu", values, names)
                .await?
                .applied)
        })
    }

    fn reconcile_tile(&self, run_id: &str, tile_id: &str) -> Result<TileReconciled> {
        self.aws.block_on(async {
            let key = Self::key(run_id, task_sk(tile_id));
            let tile = self
                .get_item(key.clone(), Some("st, blocked, parts"))
                .await?
                .ok_or_else(|| PortError::TaskNotFound { run: run_id.into(), task: tile_id.into() })?;
            let parts = get_n(&tile, "parts").unwrap_or(0);
            if parts == 0 {
                return Ok(TileReconciled::Unchanged);
            }
            let mut state = get_s(&tile, "st").and_then(TaskState::parse).unwrap_or(TaskState::Pending);
            let blocked = get_bool(&tile, "blocked");
            // A consistent query after the caller's own part transition: of two parts ending
            // at once, the later query sees both.
            let items = self.query_tasks(run_id, &format!("{tile_id}/part-"), None, false).await?;
            if let Some(f) = items.iter().find(|i| get_s(i, "st") == Some(TaskState::Failed.as_str())) {
                let waiting = matches!(state, TaskState::Pending | TaskState::Queued);
                if !waiting {
                    return Ok(TileReconciled::Unchanged);
                }
                let reason = format!(
                    "part {} failed: {}",
                    get_s(f, "task_id").unwrap_or_default(),
                    get_s(f, "error").unwrap_or("(no reason recorded)")
                );
                let values = HashMap::from([(":err".to_string(), s(&reason))]);
                let names = HashMap::from([
                    ("#er".to_string(), "error".to_string()),
                    ("#ow".to_string(), "owner".to_string()),
                    ("#lu".to_string(), "lease_until".to_string()),
                ]);
                let t = self
                    .move_state(
                        run_id,
                        tile_id,
                        state,
                        TaskState::Failed,
                        ", #er = :err REMOVE #ow, #lu",
                        "",
                        values,
                        names,
                    )
                    .await?;
                return Ok(if t.applied {
                    TileReconciled::Failed { reason, completion_fired: t.completion_fired }
                } else {
                    TileReconciled::Unchanged
                });
            }
            if state == TaskState::Failed && blocked {
                // Failed by a part that has run again since (a retry): the tile waits again.
                let names = HashMap::from([
                    ("#ow".to_string(), "owner".to_string()),
                    ("#lu".to_string(), "lease_until".to_string()),
                    ("#at".to_string(), "attempts".to_string()),
                    ("#er".to_string(), "error".to_string()),
                ]);
                let values = HashMap::from([(":zero".to_string(), n(0))]);
                let set = ", #at = :zero REMOVE #ow, #lu, #er";
                self.move_state(run_id, tile_id, TaskState::Failed, TaskState::Pending, set, "", values, names).await?;
                state = TaskState::Pending;
            }
            let waiting = matches!(state, TaskState::Pending | TaskState::Queued);
            let all_done =
                items.len() as i64 == parts && items.iter().all(|i| get_s(i, "st") == Some(TaskState::Done.as_str()));
            if all_done && blocked && waiting {
                let released = self
                    .update_if(
                        key,
                        "SET #blk = :no",
                        "#blk = :yes",
                        &[("#blk", "blocked")],
                        vec![(":no", AttributeValue::Bool(false)), (":yes", AttributeValue::Bool(true))],
                        "release tile",
                    )
                    .await?;
                return Ok(if released { TileReconciled::Released } else { TileReconciled::Unchanged });
            }
            Ok(if blocked && !all_done { TileReconciled::Waiting } else { TileReconciled::Unchanged })
        })
    }

    fn reset(&self, run_id: &str, scope: ResetScope, task_ids: Option<&[String]>) -> Result<Vec<String>> {
        let from = match scope {
            ResetScope::Failed => TaskState::Failed,
            ResetScope::Done => TaskState::Done,
            ResetScope::Stale => TaskState::Running,
            ResetScope::Queued => TaskState::Queued,
        };
        self.aws.block_on(async {
            let now = now_ms();
            let candidates: Vec<Item> = self
                .query_tasks(run_id, "", Some(from), false)
                .await?
                .into_iter()
                .filter(|i| {
                    let id = get_s(i, "task_id").unwrap_or_default();
                    task_ids.is_none_or(|ids| ids.iter().any(|x| x == id))
                })
                // Only expired leases count as stale: owners run on other machines.
                .filter(|i| scope != ResetScope::Stale || get_n(i, "lease_until").is_none_or(|u| u <= now))
                .filter(|i| scope != ResetScope::Queued || !get_bool(i, "dispatched"))
                .collect();
            let results: Vec<Result<Option<String>>> = futures::stream::iter(candidates)
                .map(|i| async move {
                    let id = get_s(&i, "task_id").unwrap_or_default().to_string();
                    let mut names = HashMap::from([
                        ("#ow".to_string(), "owner".to_string()),
                        ("#lu".to_string(), "lease_until".to_string()),
                    ]);
                    let mut values = HashMap::new();
                    // The condition re-checks what made it a candidate, in the same write.
                    let cond = match scope {
                        ResetScope::Stale => {
                            values.insert(":now_ms".to_string(), n(now));
                            values.insert(":old_owner".to_string(), s(get_s(&i, "owner").unwrap_or_default()));
                            " AND #ow = :old_owner AND (attribute_not_exists(#lu) OR #lu <= :now_ms)"
                        }
                        ResetScope::Queued => {
                            values.insert(":yes".to_string(), AttributeValue::Bool(true));
                            " AND NOT #disp = :yes"
                        }
                        ResetScope::Failed | ResetScope::Done => "",
                    };
                    // Ended tasks start again with a fresh attempt budget.
                    let set = if is_terminal(from) {
                        names.insert("#at".to_string(), "attempts".to_string());
                        values.insert(":zero".to_string(), n(0));
                        ", #at = :zero REMOVE #ow, #lu"
                    } else {
                        " REMOVE #ow, #lu"
                    };
                    let ok = self.move_state(run_id, &id, from, TaskState::Pending, set, cond, values, names).await?;
                    Ok(ok.applied.then_some(id))
                })
                .buffered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            Ok(results.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
        })
    }
}
