//! A product's outputs as odc-stats' downstream systems expect them, checked by
//! independent tools, offline, in the pinned odc-stats venv (`scripts/odc-stats-venv.sh
//! install`, which `make test` runs):
//! - every STAC item and the product's Collection against the STAC schemas (pystac's
//!   validator) and every band with `rio cogeo validate`;
//! - every eo3 dataset document with eodatasets3's `eo3-validate --thorough`, against the
//!   product definition the planner wrote (it opens each band);
//! - the checksum files with `sha1sum -c`;
//! - and the product indexes into an Open Data Cube (datacube on PostgreSQL, started by
//!   `scripts/odc-index.sh`) and loads back through `datacube.load` pixel-identical to
//!   the COGs.

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

/// Plan and run `plugin` over the small synthetic scenes; `product`: the run file's
/// product section, `extra`: more run-file lines. The run's context.
fn make_product(dir: &Path, plugin: &str, product: &str, extra: &str) -> Context {
    let inputs = dir.join("inputs");
    stratus_synth::generate(&support::small_scenes(4), &inputs, &|_, _| {}).unwrap();
    let yaml = format!(
        "inputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: {plugin}\nproduct: {product}\nchunk_size: 64\n{extra}",
        inputs.join("catalog.json").display(),
    );
    let cfg = RunConfig::from_yaml(&yaml, "test config").unwrap();
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    let plan = save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let report = run_plan(&ctx, &plan.run_id, &RunOptions::new(2, Arc::new(AtomicBool::new(false))), &Silent).unwrap();
    // A split tile runs as its parts and an assembly.
    assert!(report.failed.is_empty() && report.processed >= plan.tasks, "{report:?}");
    ctx
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

/// `scripts/parity/validate_products.py` on `dir`: every STAC document against the core
/// schemas and the extension schemas vendored in tests/data/stac-schemas (each extension
/// a document declares must have its schema there), every COG with rio-cogeo. Its counts.
fn validate_stac_and_cogs(dir: &Path) -> serde_json::Value {
    let report = run_ok(
        Command::new(venv_tool("python"))
            .arg(root().join("scripts/parity/validate_products.py"))
            .arg(dir)
            .arg("--schemas")
            .arg(root().join("tests/data/stac-schemas")),
        "validate_products.py",
    );
    let counts: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    eprintln!("validate_products.py: {counts}");
    assert_eq!(counts["extensions_without_schema"], serde_json::json!([]), "vendor their schemas: {counts}");
    counts
}

/// Validate the product in `product` (its bands `bands` a tile) with the three tools.
fn validate(product: &Path, name: &str, bands: u64) {
    // STAC items and Collection, and the COGs.
    let counts = validate_stac_and_cogs(product);
    let items = counts["items"].as_u64().unwrap();
    assert!(items >= 6 && counts["collections"] == 1 && counts["catalogs"] == 0, "{counts}");
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
        let has = |suffix: &str| {
            std::fs::read_dir(sha1.parent().unwrap())
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(suffix))
        };
        let extras = has("_thumbnail.jpg") as u64 + has("_rgba.tif") as u64;
        assert_eq!(listing.lines().count() as u64, bands + 3 + extras, "{listing}");
        run_ok(Command::new("sha1sum").arg("-c").arg(&sha1).current_dir(sha1.parent().unwrap()), "sha1sum -c");
    }
}

#[test]
fn pixel_quality_outputs_validate_with_pystac_eo3_validate_rio_cogeo_and_sha1sum() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    make_product(
        dir.path(),
        "pq",
        "{name: t_meta_pq, version: 1.0.0, producer: example.org, collections_site: collections.example.org, preview_image_ows_style: {name: clear, index_function: {function: datacube_ows.band_utils.single_band, mapped_bands: true, kwargs: {band: clear}}, needed_bands: [clear], color_ramp: [{value: 0, color: '#000000'}, {value: 6, color: '#ffffff'}]}}",
        &format!("location: '{}'\n", out.display()),
    );
    validate(&out.join("t_meta_pq/1.0.0"), "t_meta_pq", 4);
    let (eo3, item) = first_metadata(&out.join("t_meta_pq/1.0.0"));
    assert!(eo3["properties"]["eo:cloud_cover"].is_number(), "inherited from the first input: {}", eo3["properties"]);
    // The item declares the eo extension for it (validate_products.py checked the field
    // against the extension's schema).
    assert!(item["properties"]["eo:cloud_cover"].is_number(), "{}", item["properties"]);
    let exts = item["stac_extensions"].as_array().unwrap();
    assert!(exts.iter().any(|e| e.as_str().is_some_and(|e| e.contains("/eo/v1.1.0/"))), "{exts:?}");
    // The thumbnail odc-stats draws from preview_image_ows_style: a JPEG a tenth of the
    // tile's size, listed in the eo3 document (eo3-validate opened it) and the item.
    let name = eo3["accessories"]["thumbnail"]["path"].as_str().expect("a thumbnail accessory").to_string();
    assert!(name.ends_with("_thumbnail.jpg") && item["assets"]["thumbnail"]["type"] == "image/jpeg", "{name}");
    let (w, h) =
        (eo3["grids"]["default"]["shape"][1].as_u64().unwrap(), eo3["grids"]["default"]["shape"][0].as_u64().unwrap());
    let jpg =
        support::files_with_extension(&out, "jpg").into_iter().find(|p| p.ends_with(&name)).expect("the thumbnail");
    let ds = gdal::Dataset::open(&jpg).unwrap();
    assert_eq!(ds.raster_size(), (w.div_ceil(10) as usize, h.div_ceil(10) as usize));
    assert_eq!((ds.driver().short_name(), ds.raster_count()), ("JPEG".to_string(), 3));
}

/// The first tile's eo3 document and STAC item under a product's folder.
fn first_metadata(product: &Path) -> (serde_json::Value, serde_json::Value) {
    let files: Vec<PathBuf> = support::files_with_extension(product, "yaml")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".odc-metadata.yaml"))
        .collect();
    let yaml = files.first().expect("an eo3 document");
    let eo3: serde_json::Value = serde_norway::from_str(&std::fs::read_to_string(yaml).unwrap()).unwrap();
    let item = yaml.to_string_lossy().replace(".odc-metadata.yaml", ".stac-item.json");
    let item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(item).unwrap()).unwrap();
    (eo3, item)
}

/// What `stratus synth` writes validates too: its catalogues, the Collections their
/// items link to, the items and their COGs.
#[test]
fn synthetic_inputs_validate_with_pystac_and_rio_cogeo() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let spec = stratus_synth::SynthSpec { truth: true, ..support::small_scenes(2) };
    stratus_synth::generate(&spec, &inputs, &|_, _| {}).unwrap();
    let counts = validate_stac_and_cogs(&inputs);
    let items = counts["items"].as_u64().unwrap();
    // Each scene and its cloud-free twin; a catalogue and a Collection for each set.
    assert!(items >= 4 && counts["catalogs"] == 2 && counts["collections"] == 2, "{counts}");
    assert_eq!(counts["cogs"].as_u64(), Some(items * 7), "{counts}");
}

/// A throwaway Open Data Cube index, stopped when dropped.
struct OdcIndex {
    dir: tempfile::TempDir,
    url: String,
}

impl OdcIndex {
    fn start() -> OdcIndex {
        let dir = tempfile::tempdir().unwrap();
        let url = run_ok(
            Command::new(root().join("scripts/odc-index.sh")).arg("start").arg(dir.path()),
            "scripts/odc-index.sh start",
        );
        OdcIndex { url: url.trim().to_string(), dir }
    }
}

impl Drop for OdcIndex {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/odc-index.sh")).arg("stop").arg(self.dir.path()).output();
    }
}

/// Index `product` into an Open Data Cube and load each band back: pixel-identical.
fn index_and_load(product: &Path, name: &str) -> serde_json::Value {
    let index = OdcIndex::start();
    let docs = support::files_with_extension(product, "yaml")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".odc-metadata.yaml"))
        .collect::<Vec<_>>();
    let report = run_ok(
        Command::new(venv_tool("python"))
            .arg(root().join("scripts/parity/odc_index.py"))
            .arg(&index.url)
            .arg(product.join(format!("{name}.odc-product.yaml")))
            .args(&docs),
        "odc_index.py",
    );
    serde_json::from_str(report.trim()).unwrap()
}

/// A geomedian (int16, uint16 and float32 bands, NaN nodata) with its tiles split in
/// parts: the assembled tiles carry their parts' lineage, and the product indexes into
/// an Open Data Cube.
#[test]
fn split_geomedian_outputs_validate_with_pystac_eo3_validate_rio_cogeo_and_sha1sum() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = "{bands: [B02, B03, B04, B08, B11, B12]}";
    // Named as odc-stats names them: its output_location template (the version dashed),
    // short name, region code format and maturity.
    let ctx = make_product(
        dir.path(),
        "gm-s2",
        "{name: t_meta_gm, short_name: tmg, version: 1.0.0, maturity: final, region_code_format: 'x{x:03d}y{y:03d}', inherit_skip_properties: [eo:cloud_cover], preview_image_ows_style: {name: simple_rgb, components: {red: {B04: 1.0}, green: {B03: 1.0}, blue: {B02: 1.0}}, scale_range: [0, 3000]}}",
        // odc-stats' RGBA preview: its RGB options in plugin_config, asked for by an
        // `rgba` entry in cog_opts' overrides.
        &format!(
            "output_location: '{}/{{product}}/{{version}}'\nplugin_config: {{bands: [B02, B03, B04, B08, B11, B12], rgb_bands: [B04, B03, B02], rgb_clamp: 3000}}\ncog_opts: {{overrides: {{rgba: {{compress: deflate}}}}}}\nlambda: {{parts: 2}}\n",
            out.display()
        ),
    );
    let product = out.join("t_meta_gm/1-0-0");
    let names = ctx.output.list("t_meta_gm/1-0-0/").unwrap();
    assert!(
        // An odc-stats run file without aux_names: odc-stats' gm-s2 names (SMAD).
        names.iter().any(|k| k == "t_meta_gm/1-0-0/x095/y-78/2021--P1Y/tmg_x095y-78_2021--P1Y_final_SMAD.tif"),
        "odc-stats' names: {names:?}"
    );
    // Inherited from the inputs, as eodatasets3 does for odc-stats: the platforms of every
    // part's inputs, the constellation; eo:cloud_cover skipped as the product says.
    let (eo3, item) = first_metadata(&product);
    let props = &eo3["properties"];
    assert_eq!(props["eo:platform"], "sentinel-2a,sentinel-2b", "{props}");
    assert_eq!(props["eo:constellation"], "sentinel-2", "{props}");
    assert!(props.get("eo:cloud_cover").is_none(), "skipped: {props}");
    assert_eq!(item["properties"]["platform"], "sentinel-2a,sentinel-2b");
    assert_eq!(item["properties"]["constellation"], "sentinel-2");
    let config: serde_json::Value = serde_norway::from_str(config).unwrap();
    let bands = stratus_stats::build_statistic("gm-s2", &config).unwrap().output_bands().len();
    validate(&product, "t_meta_gm", bands as u64);
    // Each tile's RGBA preview, against odc-algo's to_rgba on the same bands.
    let previews = support::files_with_extension(&product, "tif")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("_rgba.tif"))
        .collect::<Vec<_>>();
    assert_eq!(previews.len(), 6, "{previews:?}");
    for rgba in &previews {
        let band = |b: &str| PathBuf::from(rgba.to_string_lossy().replace("_rgba.tif", &format!("_{b}.tif")));
        let report = run_ok(
            Command::new(venv_tool("python"))
                .arg(root().join("scripts/parity/compare_rgba.py"))
                .arg(rgba)
                .args([band("B04"), band("B03"), band("B02")])
                .arg("3000"),
            "compare_rgba.py",
        );
        let r: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
        assert!(r["pixels"].as_u64() > Some(0) && r["identical"] == r["pixels"], "{}: {r}", rgba.display());
        assert_eq!(r["colours"], serde_json::json!(["red", "green", "blue", "alpha"]), "{r}");
        assert!(r["cog_valid"] == true && r["opaque"].as_u64() > Some(0), "{r}");
    }
    let loaded = index_and_load(&product, "t_meta_gm");
    eprintln!("odc_index.py: {loaded}");
    assert_eq!(loaded["datasets"].as_u64(), Some(6), "{loaded}");
    assert_eq!(loaded["bands"].as_u64(), Some(6 * bands as u64), "{loaded}");
}
