//! The low-resolution mosaic and the run report on the embedded store: the mosaic against
//! an independent `gdalwarp` of the tile COGs, a tile with a missing band, and the report
//! opened in a real headless browser (Debian's chromium, installed by `make test`).

mod support;

use gdal::Dataset as GdalDataset;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use stratus_engine::config::RunConfig;
use stratus_engine::layout::Layout;
use stratus_engine::mosaic::{build_for_run, MosaicOptions};
use stratus_engine::planner::save_tasks;
use stratus_engine::runner::{run_plan, RunOptions, Silent};
use stratus_engine::Context;
use stratus_raster::GdalCrsTransform;

/// Synthetic inputs, planned and run with `plugin` into `dir/products`.
fn run(dir: &Path, plugin: &str, extra: &str) -> (Context, RunConfig) {
    let inputs = dir.join("inputs");
    stratus_synth::generate(&support::small_scenes(6), &inputs, &|_, _| {}).unwrap();
    let location = dir.join("products");
    let yaml = format!(
        "inputs: ['{}']\ngrid: 'epsg:6933;240;100'\ntemporal_range: 2021--P1Y\nfrequency: annual\nplugin: {plugin}\nproduct: {{name: t_{p}, version: 1.0.0}}\nlocation: '{}'\nchunk_size: 64\n{extra}",
        inputs.join("catalog.json").display(),
        location.display(),
        p = plugin.replace('-', "_"),
    );
    let cfg = RunConfig::from_yaml(&yaml, "test").unwrap();
    let ctx = Context::embedded(&cfg.location, None).unwrap();
    save_tasks(&cfg, &ctx, &GdalCrsTransform, false, false).unwrap();
    let r = run_plan(&ctx, &cfg.run_id(), &RunOptions::new(2, Arc::new(AtomicBool::new(false))), &Silent).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    (ctx, cfg)
}

fn read_f64(path: &str) -> (Vec<f64>, Option<f64>) {
    let ds = GdalDataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    (band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1, band.no_data_value())
}

fn tile_cogs(location: &Path, product: &str, band: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![location.join(product)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.ends_with("_runs") && !p.ends_with("_plan") {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(&format!("_{band}.tif")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// gdalwarp of the tile COGs to the mosaic's grid, for comparison.
fn gdalwarp(sources: &[PathBuf], dest: &Path, mosaic: &stratus_engine::mosaic::MosaicReport, r: &str) {
    let b = mosaic.bounds;
    let out = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-t_srs", &format!("EPSG:{}", mosaic.epsg), "-r", r])
        .args(["-te", &b[0].to_string(), &b[1].to_string(), &b[2].to_string(), &b[3].to_string()])
        .args(["-ts", &mosaic.width.to_string(), &mosaic.height.to_string()])
        .args(sources)
        .arg(dest)
        .output()
        .expect("gdalwarp (gdal-bin) is needed: scripts/setup.sh installs it");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn mosaic_matches_gdalwarp_and_reports_a_missing_band() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, cfg) = run(dir.path(), "gm-s2", "plugin_config: {bands: [B02, B03, B04, B08, B11, B12]}\n");
    let location = dir.path().join("products");
    let run_id = cfg.run_id();
    // Take one tile's count band away: the mosaic still completes and lists it.
    let counts = tile_cogs(&location, "t_gm_s2", "count");
    std::fs::remove_file(&counts[0]).unwrap();
    let m = build_for_run(&ctx, &run_id, &MosaicOptions { resolution: Some(960.0), ..Default::default() }).unwrap();
    assert_eq!(m.resolution, 960.0);
    assert!(m.missing.iter().any(|x| x.contains(": count: no such object")), "{:?}", m.missing);
    assert_eq!(m.missing.len(), 1, "{:?}", m.missing);
    let count_band = m.bands.iter().find(|b| b.band == "count").unwrap();
    assert_eq!(count_band.tiles, counts.len() - 1);

    // Continuous (average) and categorical (nearest) bands against gdalwarp.
    for (band, resampling, tolerance) in [("B04", "average", 1.0), ("count", "near", 0.0)] {
        let ours = m.bands.iter().find(|b| b.band == band).unwrap().url.clone();
        let theirs = dir.path().join(format!("gdalwarp_{band}.tif"));
        gdalwarp(&tile_cogs(&location, "t_gm_s2", band), &theirs, &m, resampling);
        let (a, nd) = read_f64(&ours);
        let (b, _) = read_f64(theirs.to_str().unwrap());
        assert_eq!(a.len(), b.len());
        let (mut compared, mut off) = (0, Vec::new());
        for (x, y) in a.iter().zip(&b) {
            if nd.is_some_and(|nd| *x == nd || *y == nd) || (band == "count" && (*x == 0.0 || *y == 0.0)) {
                continue;
            }
            compared += 1;
            if (x - y).abs() > tolerance {
                off.push((*x, *y));
            }
        }
        assert!(compared > a.len() / 3, "{band}: only {compared} of {} pixels compared", a.len());
        // Averages where a coarse pixel mixes valid and nodata source pixels depend on the
        // order GDAL visits sources in; everything else must agree.
        assert!(
            off.len() * 20 <= compared,
            "{band}: {} of {compared} pixels differ from gdalwarp by more than {tolerance}: {:?}",
            off.len(),
            &off[..off.len().min(10)]
        );
    }
    // RGB preview and a STAC item for the mosaic.
    let preview = m.preview.clone().expect("gm-s2 has red, green and blue");
    let png = GdalDataset::open(&preview).unwrap();
    assert_eq!(png.raster_count(), 4);
    let item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m.stac_item).unwrap()).unwrap();
    assert_eq!(item["properties"]["proj:epsg"], 6933);
    assert!(item["assets"]["B04"]["href"].as_str().unwrap().ends_with("_B04.tif"));
}

#[test]
fn run_report_opens_in_headless_chromium_without_errors_or_network() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
    let chromium = chromium.unwrap_or_else(|| {
        panic!("\n\nCHROMIUM IS NOT INSTALLED: this test opens the run report in a real browser.\nRun `scripts/setup.sh --test` (make test does it).\n\n")
    });
    let dir = tempfile::tempdir().unwrap();
    let (ctx, cfg) = run(dir.path(), "pq", "");
    let run_id = cfg.run_id();
    let m = build_for_run(&ctx, &run_id, &MosaicOptions { resolution: Some(480.0), ..Default::default() }).unwrap();
    let url = stratus_engine::report::write_report(&ctx, &run_id, Some(m)).unwrap();
    let html = std::fs::read_to_string(&url).unwrap();
    for external in ["href=\"http", "src=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "the report refers to an external resource ({external})");
    }
    let layout = Layout::new("t_pq", "1.0.0");
    assert!(ctx.output.head(&stratus_engine::report::report_keys(&layout, &run_id).1).unwrap().is_some());

    let shot = dir.path().join("report.png");
    let netlog = dir.path().join("netlog.json");
    let profile = dir.path().join("chromium-profile");
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--window-size=1200,1400", "--hide-scrollbars"])
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{url}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    // No request left the machine for the page: the only hosts in the network log are
    // the browser's own services (update checks and the like, which it tries whatever
    // page it shows; every name fails to resolve here).
    let log = std::fs::read_to_string(&netlog).expect("chromium wrote its network log");
    let browser_own = ["google.com", "googleapis.com", "gvt1.com", "gstatic.com"];
    for scheme in ["\"http://", "\"https://", "\"ws://", "\"wss://"] {
        for hit in log.split(scheme).skip(1) {
            let host = hit.split(['/', '"', ' ', ':', '?']).next().unwrap_or_default();
            assert!(
                browser_own.iter().any(|d| host == *d || host.ends_with(&format!(".{d}"))),
                "the report made a network request to {scheme}{host}"
            );
        }
    }
    if let Ok(keep) = std::env::var("STRATUS_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    // The screenshot shows the map: the done tiles' green outlines and the preview.
    let img = GdalDataset::open(&shot).unwrap();
    let (w, h) = img.raster_size();
    let rgb: Vec<Vec<u8>> = (1..=3)
        .map(|b| img.rasterband(b).unwrap().read_as::<u8>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1)
        .collect();
    let near = |i: usize, c: (u8, u8, u8)| {
        (rgb[0][i] as i32 - c.0 as i32).abs() < 30
            && (rgb[1][i] as i32 - c.1 as i32).abs() < 30
            && (rgb[2][i] as i32 - c.2 as i32).abs() < 30
    };
    let green = (0..w * h).filter(|&i| near(i, (0x2e, 0x9d, 0x4d))).count();
    let grey_levels: std::collections::HashSet<u8> =
        (0..w * h).filter(|&i| rgb[0][i] == rgb[1][i] && rgb[1][i] == rgb[2][i]).map(|i| rgb[0][i]).collect();
    assert!(green > 200, "tile outlines visible ({green} green pixels)");
    assert!(grey_levels.len() > 50, "the grey preview is visible ({} grey levels)", grey_levels.len());
}

#[test]
fn generate_mosaic_from_a_list_of_stac_items() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, cfg) = run(dir.path(), "pq", "");
    let location = dir.path().join("products");
    let items: Vec<PathBuf> = tile_cogs(&location, "t_pq", "clear")
        .iter()
        .map(|p| PathBuf::from(p.to_string_lossy().replace("_clear.tif", ".stac-item.json")))
        .collect();
    assert!(items.len() >= 4 && items.iter().all(|p| p.exists()));
    let out = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["generate-mosaic", "--location"])
        .arg(&location)
        .args(["--resolution", "960", "--items"])
        .args(&items)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same pixels as the run's own mosaic at the same resolution.
    let by_run =
        build_for_run(&ctx, &cfg.run_id(), &MosaicOptions { resolution: Some(960.0), ..Default::default() }).unwrap();
    let run_clear = by_run.bands.iter().find(|b| b.band == "clear").unwrap().url.clone();
    let items_clear = location.join("mosaic/t_pq_clear.tif");
    assert_eq!(read_f64(&run_clear).0, read_f64(items_clear.to_str().unwrap()).0);
}
