//! Helpers shared by the system tests: the `stratus` binary, and the workspace's test kit
//! (`shared/testkit`) under the names the tests use.

#[allow(unused_imports)] // not every test binary uses every helper
pub use stratus_testkit::{fault_proxy, http_files, moto, s3, small_scenes, stac_api};

/// Run the `stratus` CLI with `args` and `env`, without the allow-lists of the
/// environment the tests run in.
#[allow(dead_code)] // not every test binary uses it
pub fn stratus(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env_remove("STRATUS_ALLOWED_OUTPUTS")
        .env_remove("STRATUS_ALLOWED_INPUTS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Every file under `dir` (recursively) whose extension is `ext`, sorted.
#[allow(dead_code)] // not every test binary uses it
pub fn files_with_extension(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The small synthetic scenes (`small_scenes(dates)`) generated under `dir`, as a
/// catalogue would hold their items: absolute asset hrefs, no links.
#[allow(dead_code)] // not every test binary uses it
pub fn synthetic_items(dir: &std::path::Path, dates: usize) -> Vec<serde_json::Value> {
    let out = dir.join("synth");
    stratus_synth::generate(&small_scenes(dates), &out, &|_, _| {}).unwrap();
    let mut items = Vec::new();
    for p in files_with_extension(&out, "json") {
        let Ok(mut item) = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&p).unwrap()) else {
            continue;
        };
        if item["type"] != "Feature" {
            continue;
        }
        for asset in item["assets"].as_object_mut().unwrap().values_mut() {
            let href = asset["href"].as_str().unwrap().trim_start_matches("./").to_string();
            asset["href"] = serde_json::json!(p.parent().unwrap().join(href).display().to_string());
        }
        item["links"] = serde_json::json!([]);
        items.push(item);
    }
    items
}
