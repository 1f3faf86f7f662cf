//! STAC API search as an input, against a real STAC API server (stac-fastapi-pgstac on
//! PostgreSQL, started by scripts/stac-api.sh), loaded with the synthetic scenes and the
//! real catalogue items in tests/data/stac: a plan from the API equals the plan from the
//! same items as files, through pages, filters, areas, server failures and the
//! allow-list.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use stratus_ports::Ledger;
use support::{fault_proxy::FaultProxy, stac_api::stac_api, stratus};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The 22 Planetary Computer Sentinel-2 items of two African sites, in collection `c`.
fn real_items(c: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for f in ["site1-20200606-tall-strip-africa.geojson", "site2-2020_jun_jul-35MNM.geojson"] {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join("tests/data/stac").join(f)).unwrap()).unwrap();
        items.extend(doc["features"].as_array().unwrap().iter().cloned());
    }
    for i in &mut items {
        i["collection"] = json!(c);
    }
    items
}

/// The synthetic scenes as a catalogue would hold them: absolute hrefs, in collection `c`.
fn synthetic_items(dir: &Path, c: &str) -> Vec<Value> {
    let mut items = support::synthetic_items(dir, 4);
    for item in &mut items {
        item["collection"] = json!(c);
    }
    assert!(items.len() >= 8, "{} synthetic items", items.len());
    items
}

fn write_items(path: &Path, items: &[Value]) -> PathBuf {
    std::fs::write(path, json!({"type": "FeatureCollection", "features": items}).to_string()).unwrap();
    path.to_path_buf()
}

/// The inputs allowed: the API, the test's files, and the real items' blob storage.
fn allow(dir: &Path, api: &str) -> String {
    format!("{api},{},https://sentinel2l2a01.blob.core.windows.net", dir.display())
}

/// How a plan was planned: the grid, period and statistic besides the inputs.
struct Job {
    grid: &'static str,
    year: &'static str,
    plugin: &'static str,
}

const REAL: Job = Job { grid: "africa-60", year: "2020", plugin: "pq" };
const SYNTH: Job = Job { grid: "epsg:6933;240;100", year: "2021", plugin: "pq" };

/// Plan `inputs` into a fresh location; every task with its datasets (as the workers
/// get them), or the failed command.
fn plan(job: &Job, out: &Path, inputs: &[&str], env: &[(&str, &str)]) -> Result<BTreeMap<String, Value>, Output> {
    let mut args = vec!["save-tasks", "--grid", job.grid, "--year", job.year, "--plugin", job.plugin];
    args.extend(["--product-name", "api_test", "--run-id", "r", "--location", out.to_str().unwrap()]);
    args.extend(inputs);
    let o = stratus(&args, env);
    if !o.status.success() {
        return Err(o);
    }
    let ledger = stratus_ports::SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("r", None).unwrap();
    assert!(!tasks.is_empty(), "an empty plan: {}", text(&o));
    Ok(tasks.into_iter().map(|t| (t.task_id.clone(), ledger.payload("r", &t.task_id).unwrap())).collect())
}

fn planned(r: Result<BTreeMap<String, Value>, Output>) -> BTreeMap<String, Value> {
    r.unwrap_or_else(|o| panic!("planning failed: {}", text(&o)))
}

fn dataset_ids(plan: &BTreeMap<String, Value>) -> std::collections::BTreeSet<String> {
    plan.values()
        .flat_map(|p| p["datasets"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_plan_from_the_api_equals_the_plan_from_the_same_items_as_files() {
    let api = stac_api();
    let dir = tempfile::tempdir().unwrap();
    let real = write_items(&dir.path().join("real.json"), &real_items("same-real"));
    let synth = write_items(&dir.path().join("synth.json"), &synthetic_items(dir.path(), "same-synth"));
    api.load(&[&real, &synth]);
    let allow = allow(dir.path(), &api.url);
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];

    for (job, file, collection) in [(&REAL, &real, "same-real"), (&SYNTH, &synth, "same-synth")] {
        let from_files = planned(plan(
            job,
            &dir.path().join(format!("{collection}-files")),
            &["--input", file.to_str().unwrap()],
            &env,
        ));
        // Small pages, so that the plan is read through many `next` links.
        for page_size in ["500", "3"] {
            let out = dir.path().join(format!("{collection}-api-{page_size}"));
            let search = ["--stac-api", &api.url, "--collections", collection, "--page-size", page_size];
            let from_api = planned(plan(job, &out, &search, &env));
            assert_eq!(
                from_api.keys().collect::<Vec<_>>(),
                from_files.keys().collect::<Vec<_>>(),
                "{collection}: the same tasks"
            );
            for (task, payload) in &from_files {
                assert_eq!(&from_api[task], payload, "{collection}, pages of {page_size}: task {task}'s datasets");
            }
        }
    }

    // The plan from the API runs: every synthetic tile is made.
    let out = dir.path().join("same-synth-api-3");
    let run = stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    assert!(run.status.success(), "{}", text(&run));
    let ledger = stratus_ports::SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("r", None).unwrap();
    assert!(tasks.iter().all(|t| t.state == stratus_ports::TaskState::Done), "{}", text(&run));

    // The same search from a run file.
    let run_file = dir.path().join("run.yaml");
    std::fs::write(
        &run_file,
        format!(
            "inputs:\n  - stac_api: {}\n    collections: [same-real]\n    limit: 4\ngrid: africa-60\nfrequency: annual\n\
             temporal_range: 2020--P1Y\nplugin: pq\nproduct: {{name: api_test}}\nrun_id: r\nlocation: {}\n",
            api.url,
            dir.path().join("from-run-file").display()
        ),
    )
    .unwrap();
    let o = stratus(&["save-tasks", "--config", run_file.to_str().unwrap()], &env);
    assert!(o.status.success(), "{}", text(&o));
    let ledger = stratus_ports::SqliteLedger::open(dir.path().join("from-run-file/_stratus/state.sqlite")).unwrap();
    let from_run_file: BTreeMap<String, Value> = ledger
        .tasks("r", None)
        .unwrap()
        .into_iter()
        .map(|t| (t.task_id.clone(), ledger.payload("r", &t.task_id).unwrap()))
        .collect();
    let from_files =
        planned(plan(&REAL, &dir.path().join("real-files-again"), &["--input", real.to_str().unwrap()], &env));
    assert_eq!(from_run_file, from_files);
}

/// Whether a lon/lat point is inside an item's (multi)polygon footprint (even-odd rule).
fn contains(geometry: &Value, (x, y): (f64, f64)) -> bool {
    let polygons: Vec<Value> = match geometry["type"].as_str().unwrap() {
        "Polygon" => vec![geometry["coordinates"].clone()],
        "MultiPolygon" => geometry["coordinates"].as_array().unwrap().clone(),
        other => panic!("footprint type {other}"),
    };
    let mut inside = false;
    for polygon in &polygons {
        for ring in polygon.as_array().unwrap() {
            let pts: Vec<(f64, f64)> =
                ring.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
            for w in pts.windows(2) {
                let ((x1, y1), (x2, y2)) = (w[0], w[1]);
                if (y1 > y) != (y2 > y) && x < x1 + (y - y1) / (y2 - y1) * (x2 - x1) {
                    inside = !inside;
                }
            }
        }
    }
    inside
}

#[test]
fn filters_areas_and_dates_select_what_the_same_selection_of_files_does() {
    let api = stac_api();
    let dir = tempfile::tempdir().unwrap();
    let items = real_items("select");
    let all = write_items(&dir.path().join("all.json"), &items);
    api.load(&[&all]);
    let allow = allow(dir.path(), &api.url);
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];
    let mut n = 0;
    // The plan of the items `keep` picks, from a file, and the plan from the API with `search`.
    let mut check = |what: &str, keep: &dyn Fn(&Value) -> bool, search: &[&str]| {
        n += 1;
        let chosen: Vec<Value> = items.iter().filter(|i| keep(i)).cloned().collect();
        assert!(
            !chosen.is_empty() && chosen.len() < items.len(),
            "{what}: the selection must select ({})",
            chosen.len()
        );
        let file = write_items(&dir.path().join(format!("chosen-{n}.json")), &chosen);
        let from_files =
            planned(plan(&REAL, &dir.path().join(format!("files-{n}")), &["--input", file.to_str().unwrap()], &env));
        let mut args = vec!["--stac-api", api.url.as_str(), "--collections", "select", "--page-size", "4"];
        args.extend(search);
        let from_api = planned(plan(&REAL, &dir.path().join(format!("api-{n}")), &args, &env));
        let chosen_ids: std::collections::BTreeSet<String> =
            chosen.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(dataset_ids(&from_api), chosen_ids, "{what}");
        assert_eq!(from_api, from_files, "{what}");
    };
    let cloud = |i: &Value| i["properties"]["eo:cloud_cover"].as_f64().unwrap();
    check("CQL2 text", &|i| cloud(i) < 1.0, &["--filter", "eo:cloud_cover < 1"]);
    check(
        "CQL2 JSON",
        &|i| cloud(i) >= 1.0 && cloud(i) < 20.0,
        &[
            "--filter",
            r#"{"op": "and", "args": [{"op": ">=", "args": [{"property": "eo:cloud_cover"}, 1]}, {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}]}"#,
        ],
    );
    check("the query extension", &|i| cloud(i) < 1.0, &["--query", r#"{"eo:cloud_cover": {"lt": 1}}"#]);
    // Dates: the run's year by default; a search's own interval narrows it.
    check(
        "datetime",
        &|i| i["properties"]["datetime"].as_str().unwrap() < "2020-06-20",
        &["--datetime", "2020-01-01T00:00:00Z/2020-06-19T23:59:59Z"],
    );
    // Areas: the items whose footprint holds a point of MGRS tile 35MNM's west.
    let point = (27.1, -7.8);
    let at_point = |i: &Value| contains(&i["geometry"], point);
    let bbox = format!("{},{},{},{}", point.0 - 0.001, point.1 - 0.001, point.0 + 0.001, point.1 + 0.001);
    check("bbox", &at_point, &["--bbox", &bbox]);
    let area = dir.path().join("area.geojson");
    let square = json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
        [point.0 - 0.001, point.1 - 0.001], [point.0 + 0.001, point.1 - 0.001], [point.0 + 0.001, point.1 + 0.001],
        [point.0 - 0.001, point.1 + 0.001], [point.0 - 0.001, point.1 - 0.001]]]}});
    std::fs::write(&area, square.to_string()).unwrap();
    check("intersects", &at_point, &["--intersects", area.to_str().unwrap()]);

    // Dataset filters, applied to items as they stream in, whatever their source: an
    // ItemCollection, NDJSON and the API give the plan of the items the filter keeps.
    let clear = |i: &Value| cloud(i) < 1.0;
    let kept: Vec<Value> = items.iter().filter(|i| clear(i)).cloned().collect();
    let kept_file = write_items(&dir.path().join("kept.json"), &kept);
    let want = planned(plan(&REAL, &dir.path().join("kept"), &["--input", kept_file.to_str().unwrap()], &env));
    let ndjson = dir.path().join("all.ndjson");
    std::fs::write(&ndjson, items.iter().map(|i| i.to_string() + "\n").collect::<String>()).unwrap();
    let unique =
        |v: &[Value]| v.iter().map(|i| i["id"].as_str().unwrap()).collect::<std::collections::BTreeSet<_>>().len();
    for (what, input) in [
        ("ItemCollection", vec!["--input", all.to_str().unwrap()]),
        ("NDJSON", vec!["--input", ndjson.to_str().unwrap()]),
        ("STAC API", vec!["--stac-api", api.url.as_str(), "--collections", "select"]),
    ] {
        for filter in ["eo:cloud_cover < 1", r#"{"eo:cloud_cover": [0, 0.9999999]}"#] {
            let out = dir.path().join(format!("filtered-{}", n));
            n += 1;
            let mut args = input.clone();
            args.extend(["--dataset-filter", filter]);
            let mut cmd = vec!["save-tasks", "--grid", REAL.grid, "--year", REAL.year, "--plugin", REAL.plugin];
            cmd.extend(["--product-name", "api_test", "--run-id", "r", "--location", out.to_str().unwrap()]);
            cmd.extend(&args);
            let o = stratus(&cmd, &env);
            assert!(o.status.success(), "{what} {filter}: {}", text(&o));
            let got = planned(plan(&REAL, &dir.path().join(format!("filtered-again-{n}")), &args, &env));
            assert_eq!(got, want, "{what}, dataset filter {filter}");
            // The summary says how many items the filter left out (the files hold one
            // item twice; the API once).
            let dropped = if what == "STAC API" { unique(&items) - unique(&kept) } else { items.len() - kept.len() };
            assert!(text(&o).contains(&format!("left out {dropped} items")), "{what}: {}", text(&o));
        }
    }
    // A filter on a property an item lacks names the item and the property.
    let o = plan(
        &REAL,
        &dir.path().join("missing"),
        &["--input", all.to_str().unwrap(), "--dataset-filter", "gqa_abs_xy < 1"],
        &env,
    )
    .unwrap_err();
    assert!(text(&o).contains("gqa_abs_xy") && text(&o).contains("(item S2"), "{}", text(&o));
}

#[test]
fn failures_are_retried_refusals_named_and_the_allow_list_applies() {
    let api = stac_api();
    let dir = tempfile::tempdir().unwrap();
    let items = real_items("faults");
    let all = write_items(&dir.path().join("all.json"), &items);
    api.load(&[&all]);
    let from_files = planned(plan(
        &REAL,
        &dir.path().join("files"),
        &["--input", all.to_str().unwrap()],
        &[("STRATUS_ALLOWED_INPUTS", allow(dir.path(), &api.url).as_str())],
    ));

    // A server that fails two requests in five (503, 500, answers dropped or cut short):
    // every page is retried until it comes, and the plan is the same.
    let proxy = FaultProxy::start(&api.url, &["--rate", "0.4", "--seed", "3", "--kinds", "500,503,drop,truncate"]);
    let allow_proxy = allow(dir.path(), &proxy.endpoint);
    let env = [("STRATUS_ALLOWED_INPUTS", allow_proxy.as_str())];
    let search = ["--stac-api", proxy.endpoint.as_str(), "--collections", "faults", "--page-size", "2"];
    let from_api = planned(plan(&REAL, &dir.path().join("faulty"), &search, &env));
    assert_eq!(from_api, from_files);
    let faults: u64 = proxy.stats()["faults"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(faults >= 3, "the proxy faulted {faults} requests");

    // A search the server refuses (4xx): not retried, its answer shown.
    let bad =
        ["--stac-api", api.url.as_str(), "--collections", "faults", "--query", r#"{"eo:cloud_cover": {"under": 5}}"#];
    let allow_api = allow(dir.path(), &api.url);
    let o =
        plan(&REAL, &dir.path().join("refused"), &bad, &[("STRATUS_ALLOWED_INPUTS", allow_api.as_str())]).unwrap_err();
    let said = text(&o);
    assert!(said.contains(&api.url) && said.contains("400 Bad Request") && said.contains("'lt'"), "{said}");
    assert!(!said.contains("retrying"), "a refusal is not retried: {said}");

    // Not on the allow-list: the API's host (loopback, allowed only by name) is refused.
    let o = plan(
        &REAL,
        &dir.path().join("not-allowed"),
        &search,
        &[("STRATUS_ALLOWED_INPUTS", dir.path().to_str().unwrap())],
    )
    .unwrap_err();
    assert!(text(&o).contains("STRATUS_ALLOWED_INPUTS") && text(&o).contains(&proxy.endpoint), "{}", text(&o));
    // Items whose assets are outside the allow-list are refused as the files' would be.
    let no_blobs = format!("{},{}", api.url, dir.path().display());
    let search = ["--stac-api", api.url.as_str(), "--collections", "faults"];
    let o =
        plan(&REAL, &dir.path().join("assets-not-allowed"), &search, &[("STRATUS_ALLOWED_INPUTS", no_blobs.as_str())])
            .unwrap_err();
    assert!(text(&o).contains("sentinel2l2a01.blob.core.windows.net") && text(&o).contains("(item S2"), "{}", text(&o));
}

#[test]
fn bad_searches_are_refused_before_any_request_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (args, expect) in [
        (vec!["--stac-api", "http://127.0.0.1:9", "--filter", "(eo:cloud_cover < 3"], "not CQL2 text"),
        (vec!["--stac-api", "http://127.0.0.1:9", "--bbox", "10,5,11,1"], "south <= north"),
        (vec!["--stac-api", "http://127.0.0.1:9", "--query", "[1]"], "give a JSON object"),
        (vec!["--stac-api", "http://127.0.0.1:9", "--intersects", "/nonexistent/area.geojson"], "--intersects"),
        (vec!["--collections", "x"], "--stac-api"),
    ] {
        let o = plan(&REAL, &out, &args, &[("STRATUS_ALLOWED_INPUTS", "http://127.0.0.1:9")]).unwrap_err();
        assert!(text(&o).contains(expect), "{args:?}: {}", text(&o));
    }
    // In a run file, a mistyped key of a search is named.
    let run_file = dir.path().join("run.yaml");
    std::fs::write(
        &run_file,
        "inputs:\n  - stac_api: http://127.0.0.1:9\n    collection: [a]\ngrid: africa-60\nplugin: pq\nproduct: {name: x}\nlocation: out\n",
    )
    .unwrap();
    let o = stratus(&["save-tasks", "--config", run_file.to_str().unwrap()], &[]);
    assert!(text(&o).contains("unknown field `collection`") && text(&o).contains("STAC API input"), "{}", text(&o));
}
