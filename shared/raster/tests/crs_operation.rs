//! The coordinate operation chosen from odc-stats' `transform_code` / `area_of_interest`
//! is odc-stats' own: `odc.stats.io.choose_transform_path` (pyproj's TransformerGroup),
//! run in the pinned odc-stats venv (`scripts/odc-stats-venv.sh install`, which `make
//! test` runs) by `scripts/parity/choose_transform.py`, gives the same PROJ string; and
//! the read path's transform follows it.

use std::path::PathBuf;
use std::process::Command;
use stratus_core::GeoBox;
use stratus_raster::crs_operation::CrsOperation;
use stratus_raster::read::coords::PixelTransform;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// odc-stats' choice: (the PROJ string or its error, the candidates' transformation codes).
fn odc_stats_choice(src: &str, dst: &str, op: &CrsOperation) -> (Result<String, String>, Vec<String>) {
    let python = root().join(".venv-odc-stats/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/odc-stats-venv.sh install` (make test does)",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(root().join("scripts/parity/choose_transform.py")).args([src, dst]);
    if let Some(code) = &op.transform_code {
        cmd.args(["--code", code]);
    }
    if let Some(aoi) = op.area_of_interest {
        cmd.arg("--aoi").args(aoi.map(|v| v.to_string()));
    }
    let out = cmd.output().expect("choose_transform.py runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes = v["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    match v["operation"].as_str() {
        Some(op) => (Ok(op.to_string()), codes),
        None => (Err(v["error"].as_str().unwrap_or_default().to_string()), codes),
    }
}

#[test]
fn operations_are_the_ones_odc_stats_chooses() {
    let aoi = Some([129.0, -26.0, 134.0, -24.0]);
    // UTM 52S (WGS 84) onto the GDA94 and GDA2020 Albers grids: each has several candidate
    // operations (different WGS 84 realisations' links).
    let mut compared = 0;
    for (src, dst) in [("EPSG:32752", "EPSG:3577"), ("EPSG:32752", "EPSG:9473")] {
        let by_area = CrsOperation { transform_code: None, area_of_interest: aoi };
        let (theirs, codes) = odc_stats_choice(src, dst, &by_area);
        assert_eq!(by_area.choose(src, dst).unwrap(), Some(theirs.unwrap()), "{src} -> {dst} over {aoi:?}");
        assert!(codes.len() >= 2, "{src} -> {dst}: several candidates expected, found {codes:?}");
        for code in codes {
            // odc-stats names them AUTHORITY:CODE or INVERSE(AUTHORITY):CODE; a config gives EPSG:CODE.
            let code = format!("EPSG:{}", code.rsplit(':').next().unwrap());
            for area in [None, aoi] {
                let op = CrsOperation { transform_code: Some(code.clone()), area_of_interest: area };
                let (theirs, _) = odc_stats_choice(src, dst, &op);
                assert_eq!(op.choose(src, dst).unwrap(), Some(theirs.unwrap()), "{src} -> {dst} with {op:?}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 8, "{compared}");
    // A transformation no candidate uses: odc-stats refuses it, and so do we, naming the
    // candidates.
    let op = CrsOperation { transform_code: Some("EPSG:8447".into()), area_of_interest: None };
    let (theirs, _) = odc_stats_choice("EPSG:32752", "EPSG:9473", &op);
    assert!(theirs.is_err(), "{theirs:?}");
    let e = op.choose("EPSG:32752", "EPSG:9473").unwrap_err().to_string();
    assert!(e.contains("EPSG:8447") && e.contains("9690"), "{e}");
    // Neither setting: PROJ's default, as odc-stats leaves GDAL to choose.
    assert_eq!(CrsOperation::default().choose("EPSG:32752", "EPSG:3577").unwrap(), None);
}

#[test]
fn the_read_path_transforms_with_the_chosen_operation() {
    // An au-30-like window on GDA2020 Albers, a UTM 52S (WGS 84) source at 30 m.
    let window = GeoBox { epsg: 9473, left: 0.0, top: -2_700_000.0, resolution: 30.0, width: 100, height: 100 };
    let src_gt = [600_000.0, 30.0, 0.0, 7_300_000.0, 0.0, -30.0];
    let wkt = "EPSG:32752";
    let at = |op: &CrsOperation| {
        let t = PixelTransform::new(&window, &src_gt, wkt, Some(32752), op).unwrap();
        let (mut x, mut y) = (vec![50.5], vec![50.5]);
        t.exact(&mut x, &mut y);
        (x[0], y[0])
    };
    let default = at(&CrsOperation::default());
    let helmert = at(&CrsOperation { transform_code: Some("EPSG:9690".into()), area_of_interest: None });
    let null = at(&CrsOperation { transform_code: Some("EPSG:8450".into()), area_of_interest: None });
    // WGS 84 to GDA2020 (3), a Helmert transformation of about 1.5 m, moves the point by a
    // few hundredths of a 30 m pixel from the null transformation (GDA2020 to WGS 84 (2)).
    let shift = ((helmert.0 - null.0).powi(2) + (helmert.1 - null.1).powi(2)).sqrt();
    assert!(shift > 0.01 && shift < 0.2, "shift {shift} px: {helmert:?} vs {null:?}");
    assert!(default.0.is_finite() && default.1.is_finite());
}
