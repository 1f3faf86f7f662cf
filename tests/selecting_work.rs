//! Selecting work as odc-stats users do: the tiles an area touches (`locate-grids`),
//! publishing and running only those (`--geojson-filter`), tile ranges (`--tiles
//! 0:3,2:4`), `run --dry-run` (per tile: new, complete, or would be overwritten), and the
//! frequencies beyond the annual ones.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use stratus_ports::{Ledger, SqliteLedger, TaskState};
use support::stratus;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

const GRID: &str = "epsg:6933;240;100";

fn plan(inputs: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["save-tasks", "--input", inputs.to_str().unwrap(), "--grid", GRID, "--plugin", "pq"];
    args.extend(["--product-name", "sel", "--run-id", "r", "--location", out.to_str().unwrap(), "--chunk-size", "64"]);
    args.extend(extra);
    ok(stratus(&args, &[]))
}

fn tiles_of(out: &Path) -> BTreeSet<(i32, i32)> {
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    ledger
        .tasks("r", None)
        .unwrap()
        .iter()
        .map(|t| {
            let id: stratus_core::TaskId = t.task_id.parse().unwrap();
            (id.tile.x, id.tile.y)
        })
        .collect()
}

/// A small square (degrees) around a point, as a GeoJSON Feature.
fn square(dir: &Path, name: &str, (lon, lat): (f64, f64), half: f64) -> std::path::PathBuf {
    let ring = [
        (lon - half, lat - half),
        (lon + half, lat - half),
        (lon + half, lat + half),
        (lon - half, lat + half),
        (lon - half, lat - half),
    ];
    let coords: Vec<[f64; 2]> = ring.iter().map(|&(x, y)| [x, y]).collect();
    let doc = serde_json::json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [coords]}});
    let path = dir.join(name);
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[test]
fn an_area_selects_tiles_to_locate_publish_and_run_and_dry_runs_say_what_would_happen() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    stratus_synth::generate(&support::small_scenes(2), &inputs, &|_, _| {}).unwrap();
    let out = dir.path().join("out");
    plan(&inputs, &out, &["--year", "2021"]);
    let all = tiles_of(&out);
    assert!(all.len() > 4, "{all:?}");

    // The tiles a small area around the western granule's centre touches.
    let area = square(dir.path(), "area.geojson", (23.82, -14.83), 0.05);
    let csv = dir.path().join("tiles.csv");
    let located =
        ok(stratus(&["locate-grids", area.to_str().unwrap(), "--grid", GRID, "--csv", csv.to_str().unwrap()], &[]));
    let in_area: BTreeSet<(i32, i32)> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| {
            let (x, y) = l.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert!(!in_area.is_empty() && in_area.len() < all.len() && in_area.is_subset(&all), "{located}");
    // odc-stats' name for the same option works too, and the CSV rows are what --tile takes.
    let first = in_area.iter().next().unwrap();
    let one = dir.path().join("one");
    plan(&inputs, &one, &["--year", "2021", "--tiles", &format!("{},{}", first.0, first.1)]);
    assert_eq!(tiles_of(&one), BTreeSet::from([*first]));

    // Nothing made yet: every tile is new.
    let dry = ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--dry-run"], &[]));
    assert!(dry.contains(&format!("{} tiles: {} to make, 0 complete", all.len(), all.len())), "{dry}");

    // Publishing and running with the area take only its tiles.
    let publish = ok(stratus(
        &[
            "publish-tasks",
            "r",
            "--location",
            out.to_str().unwrap(),
            "--geojson-filter",
            area.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
    ));
    assert!(publish.contains(&format!("would send {} task messages", in_area.len())), "{publish}");
    ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--geojson-filter", area.to_str().unwrap()], &[]));
    let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
    for t in ledger.tasks("r", None).unwrap() {
        let id: stratus_core::TaskId = t.task_id.parse().unwrap();
        let inside = in_area.contains(&(id.tile.x, id.tile.y));
        assert_eq!(t.state == TaskState::Done, inside, "{} is {}", t.task_id, t.state);
    }

    // Now the area's tiles are complete: skipped, or overwritten with --overwrite.
    let dry = ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--dry-run"], &[]));
    let done = in_area.len();
    assert!(dry.contains(&format!("{} to make, {done} complete (skipped), 0 to overwrite", all.len() - done)), "{dry}");
    assert_eq!(dry.lines().filter(|l| l.ends_with("complete: skipped")).count(), done, "{dry}");
    let dry = ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--dry-run", "--overwrite"], &[]));
    assert!(dry.contains(&format!("0 complete (skipped), {done} to overwrite")), "{dry}");

    // An area that touches no planned tile is an error, not "everything".
    let far = square(dir.path(), "far.geojson", (140.0, -30.0), 0.1);
    let o = stratus(&["run", "r", "--location", out.to_str().unwrap(), "--geojson-filter", far.to_str().unwrap()], &[]);
    assert!(!o.status.success() && text(&o).contains("no task of run 'r' is in the area"), "{}", text(&o));
    // An area that is not one is named.
    let point = dir.path().join("point.geojson");
    std::fs::write(&point, r#"{"type": "Point", "coordinates": [24, -14]}"#).unwrap();
    let o = stratus(&["locate-grids", point.to_str().unwrap(), "--grid", GRID], &[]);
    assert!(!o.status.success() && text(&o).contains("Point") && text(&o).contains("point.geojson"), "{}", text(&o));
}

#[test]
fn tile_ranges_and_the_other_frequencies_plan() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    stratus_synth::generate(&support::small_scenes(12), &inputs, &|_, _| {}).unwrap();
    let out = dir.path().join("all");
    plan(&inputs, &out, &["--year", "2021"]);
    let all = tiles_of(&out);
    // odc-stats' half-open ranges: the lowest planned x only, every y.
    let x0 = all.iter().map(|t| t.0).min().unwrap();
    let (y0, y1) = (all.iter().map(|t| t.1).min().unwrap(), all.iter().map(|t| t.1).max().unwrap());
    let ranged = dir.path().join("ranged");
    plan(&inputs, &ranged, &["--year", "2021", "--tiles", &format!("{x0}:{},{y0}:{}", x0 + 1, y1 + 1)]);
    let want: BTreeSet<(i32, i32)> = all.iter().filter(|t| t.0 == x0).copied().collect();
    assert_eq!(tiles_of(&ranged), want);

    let periods = |out: &Path| -> BTreeSet<String> {
        let ledger = SqliteLedger::open(out.join("_stratus/state.sqlite")).unwrap();
        ledger
            .tasks("r", None)
            .unwrap()
            .iter()
            .map(|t| t.task_id.parse::<stratus_core::TaskId>().unwrap().period.to_string())
            .collect()
    };
    for (frequency, range, check) in [
        ("monthly", "2021--P1Y", &(|p: &str| p.starts_with("2021-") && p.ends_with("--P1M")) as &dyn Fn(&str) -> bool),
        ("dekad", "2021--P1Y", &|p: &str| {
            p.ends_with("--P10D") || p.ends_with("--P11D") || p.ends_with("--P8D") || p.ends_with("--P9D")
        }),
        ("quartely", "2021--P1Y", &|p: &str| {
            ["2021-01--P3M", "2021-04--P3M", "2021-07--P3M", "2021-10--P3M"].contains(&p)
        }),
        ("3month-seasons", "2021-02--P1Y", &|p: &str| {
            ["2021-02--P3M", "2021-05--P3M", "2021-08--P3M", "2021-11--P3M"].contains(&p)
        }),
        ("nov-mar", "2021--P1Y", &|p: &str| p == "2020-11--P5M" || p == "2021-11--P5M"),
        ("apr-oct", "2021--P1Y", &|p: &str| p == "2021-04--P7M"),
    ] {
        let out = dir.path().join(frequency);
        plan(&inputs, &out, &["--frequency", frequency, "--temporal-range", range]);
        let got = periods(&out);
        assert!(!got.is_empty() && got.iter().all(|p| check(p)), "{frequency}: {got:?}");
    }
}

#[test]
fn an_area_of_interest_plans_its_tiles_and_masks_the_pixels_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    stratus_synth::generate(&support::small_scenes(2), &inputs, &|_, _| {}).unwrap();
    let whole = dir.path().join("whole");
    plan(&inputs, &whole, &["--year", "2021"]);
    // A small square: it touches a few tiles and covers only part of them.
    let area = square(dir.path(), "aoi.geojson", (23.82, -14.83), 0.05);
    let masked = dir.path().join("masked");
    plan(&inputs, &masked, &["--year", "2021", "--area-of-interest", area.to_str().unwrap()]);
    let (all, kept) = (tiles_of(&whole), tiles_of(&masked));
    assert!(!kept.is_empty() && kept.len() < all.len() && kept.is_subset(&all), "{kept:?} of {all:?}");
    for out in [&whole, &masked] {
        ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "2"], &[]));
    }
    // Every masked pixel is the unmasked run's value or nodata; some are each.
    let (mut same, mut blanked) = (0usize, 0usize);
    for f in support::files_with_extension(&masked, "tif") {
        let rel = f.strip_prefix(&masked).unwrap();
        let (a, nodata) = pixels(&f);
        let (b, _) = pixels(&whole.join(rel));
        let fill = nodata.unwrap_or(0.0);
        for (x, y) in a.iter().zip(&b) {
            if x == y && *x != fill {
                same += 1;
            } else {
                assert_eq!(*x, fill, "{}: a pixel neither the unmasked value nor nodata", rel.display());
                blanked += usize::from(y != x);
            }
        }
    }
    assert!(same > 0 && blanked > 0, "{same} kept, {blanked} masked");
}

fn pixels(path: &Path) -> (Vec<f64>, Option<f64>) {
    let ds = gdal::Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    let (w, h) = ds.raster_size();
    (band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().data().to_vec(), band.no_data_value())
}

/// odc-dscache's long form with rectangular tiles (`ROWSxCOLUMNS`): the same pixel
/// lattice as square tiles, cut differently, so every pixel is made once either way.
#[test]
fn rectangular_tiles_make_the_same_pixels_as_square_ones() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    stratus_synth::generate(&support::small_scenes(2), &inputs, &|_, _| {}).unwrap();
    let mut totals = Vec::new();
    for (name, grid, size) in [("square", GRID, (100, 100)), ("rect", "epsg:6933;-240x240;50x100", (100, 50))] {
        let out = dir.path().join(name);
        let args =
            ["save-tasks", "--input", inputs.to_str().unwrap(), "--grid", grid, "--plugin", "pq", "--year", "2021"];
        let mut args = args.to_vec();
        args.extend([
            "--product-name",
            "sel",
            "--run-id",
            "r",
            "--location",
            out.to_str().unwrap(),
            "--chunk-size",
            "64",
        ]);
        ok(stratus(&args, &[]));
        ok(stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "2"], &[]));
        let (mut sum, mut files) = (0u64, 0);
        for p in
            support::files_with_extension(&out, "tif").iter().filter(|p| p.to_string_lossy().ends_with("_total.tif"))
        {
            let ds = gdal::Dataset::open(p).unwrap();
            assert_eq!(ds.raster_size(), size, "{}: columns x rows of a tile", p.display());
            let px = ds.rasterband(1).unwrap().read_as::<u16>((0, 0), size, size, None).unwrap();
            sum += px.data().iter().map(|&v| v as u64).sum::<u64>();
            files += 1;
        }
        assert!(files > 0 && sum > 0, "{name}: {files} tiles");
        totals.push((files, sum));
    }
    assert!(totals[1].0 > totals[0].0, "half-height tiles: more of them {totals:?}");
    assert_eq!(totals[0].1, totals[1].1, "every observation counted once on either grid");
}
