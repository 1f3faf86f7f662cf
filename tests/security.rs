//! The security rules end to end, through the `stratus` CLI as an operator runs it:
//! outputs confined to the allowed prefix, inputs only from the allow-list (refused by the
//! planner, and again by the worker for a plan made without the list), and no signed URL
//! or key in the ledger, reports or logs. The unit tests of `access_policy` and `redact`
//! cover the rules case by case; these check they are applied where it matters.

mod support;

use support::stratus;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use stratus_ports::{Ledger, SqliteLedger, TaskState};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn synth(dir: &Path) -> PathBuf {
    stratus_synth::generate(&support::small_scenes(2), &dir.join("inputs"), &|_, _| {}).unwrap().catalog
}

/// `save-tasks` of `input` into `location`, product `product`, with `env`.
fn plan(input: &Path, location: &str, product: &str, env: &[(&str, &str)]) -> Output {
    stratus(
        &[
            "save-tasks",
            "--input",
            input.to_str().unwrap(),
            "--grid",
            "epsg:6933;240;100",
            "--year",
            "2021",
            "--plugin",
            "pq",
            "--product-name",
            product,
            "--run-id",
            "s",
            "--chunk-size",
            "64",
            "--location",
            location,
        ],
        env,
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn outputs_outside_the_allowed_prefix_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path());
    let allowed = dir.path().join("allowed");
    let elsewhere = dir.path().join("elsewhere");
    let env = [("STRATUS_ALLOWED_OUTPUTS", allowed.to_str().unwrap())];
    for (location, says) in [
        (elsewhere.display().to_string(), "STRATUS_ALLOWED_OUTPUTS"),
        (format!("{}/../elsewhere", allowed.display()), "'..'"),
        (format!("{}/%2e%2e/elsewhere", allowed.display()), "percent-encoded"),
        ("s3://another-bucket/products".to_string(), "STRATUS_ALLOWED_OUTPUTS"),
        ("/vsimem/products".to_string(), "GDAL virtual"),
    ] {
        let o = plan(&catalog, &location, "s_pq", &env);
        let out = text(&o);
        assert!(!o.status.success(), "{location} was accepted:\n{out}");
        assert!(out.contains("refused") && out.contains(says), "{location}: the error should say '{says}':\n{out}");
    }
    // A product name or version is a path segment: no separators, no '..'.
    for product in ["../escape", "a/b", "ok%2f..", ".hidden"] {
        let o = plan(&catalog, allowed.to_str().unwrap(), product, &env);
        assert!(!o.status.success(), "product {product} was accepted");
        assert!(text(&o).contains("plain name"), "{}", text(&o));
    }
    assert!(!elsewhere.exists(), "a refused run wrote outside the allowed prefix");
    assert!(files(&allowed).is_empty(), "a refused run left files: {:?}", files(&allowed));
    // Inside the prefix it plans.
    let o = plan(&catalog, &allowed.join("products").display().to_string(), "s_pq", &env);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn inputs_outside_the_allow_list_are_refused_by_the_planner_and_again_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path());
    let other = dir.path().join("other-inputs");
    let env = [("STRATUS_ALLOWED_INPUTS", other.to_str().unwrap())];
    let out = dir.path().join("out");
    let o = plan(&catalog, out.to_str().unwrap(), "s_pq", &env);
    assert!(!o.status.success(), "a source outside the allow-list was planned");
    assert!(text(&o).contains("refused") && text(&o).contains("STRATUS_ALLOWED_INPUTS"), "{}", text(&o));

    // A plan made without the list (or tampered with in the ledger) meets the worker's check.
    let o = plan(&catalog, out.to_str().unwrap(), "s_pq", &[]);
    assert!(o.status.success(), "{}", text(&o));
    stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("s", None).unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        assert_eq!((t.state, t.attempts), (TaskState::Failed, 1), "refusals are not retried: {t:?}");
        let why = t.error.unwrap_or_default();
        assert!(why.contains("refused") && why.contains("dataset '"), "{why}");
    }
    assert!(
        files(&out.join("s_pq")).iter().all(|p| !p.to_string_lossy().ends_with(".tif")),
        "refused tiles wrote bands"
    );
}

#[test]
fn signed_urls_and_keys_never_reach_the_ledger_the_report_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    // One real item, its assets moved to signed URLs on a port nobody listens on.
    let item_path = files(&dir.path().join("inputs"))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "json") && std::fs::read_to_string(p).unwrap().contains("\"Feature\"")
        })
        .expect("a synthetic item");
    let mut item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&item_path).unwrap()).unwrap();
    for (key, asset) in item["assets"].as_object_mut().unwrap() {
        asset["href"] = format!(
            "https://127.0.0.1:9/cogs/{key}.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261122&X-Amz-Signature=SECRETSIGNATURE"
        )
        .into();
    }
    let signed = dir.path().join("signed.json");
    std::fs::write(&signed, item.to_string()).unwrap();
    let out = dir.path().join("out");
    // A loopback host is read only when its origin is allowed by name.
    let allow = format!("https://127.0.0.1:9,{}", dir.path().display());
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];
    let o = plan(&signed, out.to_str().unwrap(), "s_pq", &env);
    assert!(o.status.success(), "{}", text(&o));
    let run =
        stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &[("RUST_LOG", "debug"), env[0]]);
    let logs = text(&run);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("s", None).unwrap();
    assert!(tasks.iter().all(|t| t.state != TaskState::Done), "unreachable inputs cannot make a tile");
    let errors: Vec<String> = tasks.iter().filter_map(|t| t.error.clone()).collect();
    assert!(errors.iter().any(|e| e.contains("127.0.0.1:9")), "the reason names the input: {errors:?}");
    let mut places = vec![("logs".to_string(), logs), ("ledger errors".to_string(), errors.join("\n"))];
    for f in files(&out) {
        // The ledger's store holds the plan's inputs as given (the worker must read them);
        // everything written for people (reports, STAC, plan files) must not.
        if !f.starts_with(out.join("_stratus")) {
            places.push((f.display().to_string(), String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned()));
        }
    }
    // Under input_policy: skip, each unreadable input is logged as it is left out: at the
    // default log level too, without its signature. Inputs a server says are not there
    // are skipped (an unreachable server is transient: the tile is retried, not made
    // without them).
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let server = support::http_files::serve(empty, &["/cogs"], vec![]);
    let gone = dir.path().join("signed-gone.json");
    std::fs::write(&gone, item.to_string().replace("https://127.0.0.1:9", &server.base)).unwrap();
    let allow2 = format!("{},{}", server.base, dir.path().display());
    let env = [("STRATUS_ALLOWED_INPUTS", allow2.as_str())];
    let out2 = dir.path().join("out-skip");
    let mut args = vec!["save-tasks", "--input", gone.to_str().unwrap(), "--grid", "epsg:6933;240;100"];
    args.extend(["--year", "2021", "--plugin", "pq", "--product-name", "s_pq", "--run-id", "s"]);
    args.extend(["--chunk-size", "64", "--input-policy", "skip", "--location", out2.to_str().unwrap()]);
    assert!(stratus(&args, &env).status.success());
    let run = stratus(&["run", "s", "--location", out2.to_str().unwrap(), "--workers", "1"], &env);
    places.push(("logs of a run that skips inputs".into(), text(&run)));
    assert!(text(&run).contains("skipping unreadable input"), "{}", text(&run));
    for (place, content) in places {
        for secret in ["SECRETSIGNATURE", "AKIAIOSFODNN7EXAMPLE"] {
            let line = content.lines().find(|l| l.contains(secret));
            assert!(line.is_none(), "{secret} leaked into {place}: {}", line.unwrap_or_default());
        }
    }
}

/// The synthetic items' assets as (item file, asset key, absolute local path).
fn assets(inputs: &Path) -> Vec<(PathBuf, String, PathBuf)> {
    let mut out = Vec::new();
    for f in files(inputs) {
        if f.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        if item["type"] != "Feature" {
            continue;
        }
        for (key, a) in item["assets"].as_object().unwrap() {
            let href = a["href"].as_str().unwrap();
            let path = stratus_core::stac_input::resolve_href(href, Some(f.to_str().unwrap()));
            out.push((f.clone(), key.clone(), PathBuf::from(path)));
        }
    }
    out
}

#[test]
fn a_vrt_named_tif_and_a_symlink_out_of_the_allow_list_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = synth(dir.path());
    let inputs = dir.path().join("inputs");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let all = assets(&inputs);
    // An allowed SCL.tif whose content is a VRT pointing at a file outside the list.
    let (_, _, scl) = all.iter().find(|(_, k, _)| k == "scl").expect("an SCL asset").clone();
    let real = outside.join("SCL-real.tif");
    std::fs::copy(&scl, &real).unwrap();
    let info = std::process::Command::new("gdal_translate")
        .args(["-q", "-of", "VRT", real.to_str().unwrap(), scl.with_extension("vrt").to_str().unwrap()])
        .status()
        .expect("gdal_translate (GDAL's tools are installed by scripts/setup.sh)");
    assert!(info.success());
    std::fs::rename(scl.with_extension("vrt"), &scl).unwrap();
    let out = dir.path().join("out");
    let allow = format!("{},{}", inputs.display(), out.display());
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];
    let o = plan(&catalog, out.to_str().unwrap(), "s_pq", &env);
    assert!(o.status.success(), "{}", text(&o));
    stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let failed: Vec<String> =
        ledger.tasks("s", Some(TaskState::Failed)).unwrap().into_iter().filter_map(|t| t.error).collect();
    assert!(!failed.is_empty(), "the VRT was read");
    assert!(failed.iter().all(|e| e.contains("SCL.tif") && e.contains("STRATUS_INPUT_DRIVERS")), "{failed:?}");

    // A B04.tif that is a symbolic link to a file outside the list: the planner refuses its
    // item, naming the link.
    let (_, _, b04) = all.iter().find(|(_, k, _)| k == "red").expect("a B04 asset").clone();
    let real = outside.join("B04-real.tif");
    std::fs::rename(&b04, &real).unwrap();
    std::os::unix::fs::symlink(&real, &b04).unwrap();
    let out2 = dir.path().join("out2");
    let o = plan(&catalog, out2.to_str().unwrap(), "s_pq", &env);
    assert!(text(&o).contains("symbolic link"), "{}", text(&o));
}

#[test]
fn http_inputs_are_read_through_the_egress_guard_which_refuses_redirects_out_of_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let inputs = dir.path().join("inputs");
    // Elsewhere: another origin (a loopback port nobody allowed); the guard must not reach it.
    let elsewhere = support::http_files::serve(inputs.clone(), &["/"], vec![]);
    let scl_rel = |p: &Path| p.strip_prefix(&inputs).unwrap().display().to_string();
    let all = assets(&inputs);
    let scl = all.iter().find(|(_, k, _)| k == "scl").map(|(_, _, p)| scl_rel(p)).unwrap();
    let server = support::http_files::serve(
        inputs.clone(),
        &["/cogs", "/private"],
        vec![
            // Same origin, a path outside the allowed prefix.
            (format!("/cogs/{scl}"), format!("/private/{scl}")),
        ],
    );
    // Items rewritten to HTTP hrefs, as NDJSON (whose hrefs the planner checks too).
    let write_items = |name: &str| {
        let mut lines = Vec::new();
        let mut seen = HashSet::new();
        for (f, _, _) in &all {
            if !seen.insert(f.clone()) {
                continue;
            }
            let mut item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            for a in item["assets"].as_object_mut().unwrap().values_mut() {
                let path =
                    stratus_core::stac_input::resolve_href(a["href"].as_str().unwrap(), Some(f.to_str().unwrap()));
                let rel = scl_rel(Path::new(&path));
                a["href"] = format!("{}/cogs/{rel}", server.base).into();
            }
            lines.push(item.to_string());
        }
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            lines.join(
                "
",
            ) + "
",
        )
        .unwrap();
        p
    };
    let items = write_items("items.ndjson");
    let allow = format!("{}/cogs,{}", server.base, dir.path().display());
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];

    // Without the origin named, a loopback host is refused at planning.
    let o = plan(
        &items,
        dir.path().join("out0").to_str().unwrap(),
        "s_pq",
        &[("STRATUS_ALLOWED_INPUTS", dir.path().to_str().unwrap())],
    );
    assert!(text(&o).contains("loopback"), "{}", text(&o));

    let out = dir.path().join("out");
    let o = plan(&items, out.to_str().unwrap(), "s_pq", &env);
    assert!(o.status.success(), "{}", text(&o));
    stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    let tasks = ledger.tasks("s", None).unwrap();
    let hits = server.hits.lock().unwrap().clone();
    // Tiles whose inputs are plain files on the allowed prefix are made through the guard;
    // the SCL redirect to /private was refused before it was requested.
    assert!(hits.iter().any(|h| h.starts_with("/cogs/")), "nothing was read over HTTP");
    assert!(!hits.iter().any(|h| h.starts_with("/private/")), "the redirect was followed: {hits:?}");
    let failed: Vec<String> =
        tasks.iter().filter(|t| t.state == TaskState::Failed).filter_map(|t| t.error.clone()).collect();
    assert!(!failed.is_empty() && failed.iter().all(|e| e.contains("SCL.tif")), "{failed:?}");
    drop(hits);

    // The same with a redirect to another origin: refused, and that origin never hears of it.
    let other = support::http_files::serve(
        inputs.clone(),
        &["/cogs"],
        vec![(format!("/cogs/{scl}"), format!("{}/{scl}", elsewhere.base))],
    );
    let mut lines = std::fs::read_to_string(&items).unwrap().replace(&server.base, &other.base);
    lines.push('\n');
    let items2 = dir.path().join("items2.ndjson");
    std::fs::write(&items2, lines).unwrap();
    let allow = format!("{}/cogs,{}", other.base, dir.path().display());
    let env = [("STRATUS_ALLOWED_INPUTS", allow.as_str())];
    let out = dir.path().join("out2");
    assert!(plan(&items2, out.to_str().unwrap(), "s_pq", &env).status.success());
    stratus(&["run", "s", "--location", out.to_str().unwrap(), "--workers", "1"], &env);
    assert!(other.hits.lock().unwrap().iter().any(|h| h.ends_with("SCL.tif")), "the redirecting href was requested");
    assert!(elsewhere.hits.lock().unwrap().is_empty(), "the guard let a redirect reach another origin");
}
