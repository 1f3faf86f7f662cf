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
