//! A product's outputs as odc-stats' downstream systems expect them, checked by
//! independent tools, offline, in the pinned odc-stats venv (`scripts/odc-stats-venv.sh
//! install`, which `make test` runs):
//! - every STAC item and the product's Collection against the STAC schemas (pystac's
//!   validator) and every band with `rio cogeo validate`;
//! - every eo3 dataset document with eodatasets3's `eo3-validate --thorough`, against the
//!   product definition the planner wrote (it opens each band);
//! - the checksum files with `sha1sum -c`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use stratus_engine::config::RunConfig;
use stratus_engine::planner::save_tasks;
use stratus_engine::runner::{run_plan, RunOptions, Silent};
use stratus_engine::Context;
use stratus_raster::GdalCrsTransform;

/// The workspace's root (tests run from the CLI's package).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_tool(name: &str) -> PathBuf {
    let tool = root().join(".venv-odc-stats/bin").join(name);
    assert!(tool.exists(), "{} is missing: run `scripts/odc-stats-venv.sh install` (make test does)", tool.display());
    tool
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Plan and run `plugin` over the small synthetic scenes (`extra`: more run-file lines);
/// the product's folder.
fn make_product(dir: &Path, plugin: &str, product: &str, extra: &str) -> PathBuf {
    let inputs = dir.join("inputs");
    stratus_synth::generate(&support::small_scenes(4), &inputs, &|_, _| {}).unwrap();
    let out = dir.join("out");
    let yaml = format!(
        "inputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: {plugin}\nproduct: {{name: {product}, version: 1.0.0, producer: example.org, maturity: final, collections_site: collections.example.org}}\nlocation: '{}'\nchunk_size: 64\n{extra}",
        inputs.join("catalog.json").display(),
        out.display()
    );
    let cfg = RunConfig::from_yaml(&yaml, "test config").unwrap();
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let report = run_plan(&ctx, &plan.run_id, &RunOptions::new(2, Arc::new(AtomicBool::new(false))), &Silent).unwrap();
    // A split tile runs as its parts and an assembly.
    assert!(report.failed.is_empty() && report.processed >= plan.tasks, "{report:?}");
    out.join(product).join("1.0.0")
}

/// Copy a folder's tree (to look at a test's outputs after it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Validate the product in `product` (its bands `bands` a tile) with the three tools.
fn validate(product: &Path, name: &str, bands: u64) {
    // STAC items and Collection, and the COGs.
    let report = run_ok(
        Command::new(venv_tool("python")).arg(root().join("scripts/parity/validate_products.py")).arg(product),
        "validate_products.py",
    );
    let counts: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    eprintln!("validate_products.py: {counts}");
    let items = counts["items"].as_u64().unwrap();
    assert!(items >= 6 && counts["collections"] == 1, "{counts}");
    assert_eq!(counts["cogs"].as_u64(), Some(items * bands), "{counts}");

    // eo3 documents against the product definition, each band opened.
    let docs = support::files_with_extension(product, "yaml")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".odc-metadata.yaml"))
        .collect::<Vec<_>>();
    assert_eq!(docs.len() as u64, items);
    let doc: serde_json::Value = serde_norway::from_str(&std::fs::read_to_string(&docs[0]).unwrap()).unwrap();
    assert!(!doc["lineage"]["level3"].as_array().unwrap().is_empty(), "{doc}");
    if let Ok(keep) = std::env::var("STRATUS_KEEP_TEST_OUTPUT") {
        copy_dir(product, &Path::new(&keep).join(name));
    }
    let definition = product.join(format!("{name}.odc-product.yaml"));
    run_ok(
        Command::new(venv_tool("eo3-validate"))
            .args(["--thorough", "--warnings-as-errors"])
            .arg(&definition)
            .args(&docs),
        "eo3-validate",
    );

    // Checksums of every file of each tile, its STAC item included.
    for sha1 in support::files_with_extension(product, "sha1") {
        let listing = std::fs::read_to_string(&sha1).unwrap();
        assert_eq!(listing.lines().count() as u64, bands + 3, "{listing}");
        run_ok(Command::new("sha1sum").arg("-c").arg(&sha1).current_dir(sha1.parent().unwrap()), "sha1sum -c");
    }
}

#[test]
fn pixel_quality_outputs_validate_with_pystac_eo3_validate_rio_cogeo_and_sha1sum() {
    let dir = tempfile::tempdir().unwrap();
    validate(&make_product(dir.path(), "pq", "t_meta_pq", ""), "t_meta_pq", 4);
}

/// A geomedian (int16, uint16 and float32 bands, NaN nodata) with its tiles split in
/// parts: the assembled tiles carry their parts' lineage.
#[test]
fn split_geomedian_outputs_validate_with_pystac_eo3_validate_rio_cogeo_and_sha1sum() {
    let dir = tempfile::tempdir().unwrap();
    let config = "{bands: [B02, B03, B04, B08, B11, B12]}";
    let product =
        make_product(dir.path(), "gm-s2", "t_meta_gm", &format!("plugin_config: {config}\nlambda: {{parts: 2}}\n"));
    let config: serde_json::Value = serde_norway::from_str(config).unwrap();
    let bands = stratus_stats::build_statistic("gm-s2", &config).unwrap().output_bands().len();
    validate(&product, "t_meta_gm", bands as u64);
}
