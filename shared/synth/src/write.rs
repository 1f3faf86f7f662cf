//! Writing synthetic scenes as COGs with Earth Search-style STAC items and a static
//! catalog (written last: its presence means the set is complete).

use crate::scene::{granule_grid, render, GranuleGrid, Scene};
use crate::spec::{SynthSpec, BANDS};
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use stratus_raster::{write_cog, CogOptions};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SynthError {
    #[error(transparent)]
    Core(#[from] stratus_core::CoreError),
    #[error(transparent)]
    Raster(#[from] stratus_raster::RasterError),
    #[error("writing '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid synthetic spec: {0}")]
    Spec(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    pub items: usize,
    pub catalog: PathBuf,
    pub truth_catalog: Option<PathBuf>,
    /// The same set was already there; nothing was written.
    pub reused: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.display().to_string(), source }
}

/// Acquisition times: `dates` overpasses spread over the year at about 08:40 UTC.
pub fn acquisition_times(spec: &SynthSpec) -> Vec<chrono::DateTime<Utc>> {
    let start = NaiveDate::from_ymd_opt(spec.year, 1, 3).unwrap();
    let step = 360.0 / spec.dates as f64;
    (0..spec.dates)
        .map(|t| {
            let day = start + Duration::days((t as f64 * step).round() as i64);
            let secs = 8 * 3600 + 40 * 60 + (crate::field::mix(spec.seed ^ t as u64) % 600) as i64;
            Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap()) + Duration::seconds(secs)
        })
        .collect()
}

fn baseline(date: NaiveDate) -> (&'static str, u16) {
    if date >= NaiveDate::from_ymd_opt(2022, 1, 25).unwrap() {
        ("04.00", 1000)
    } else {
        ("03.01", 0)
    }
}

fn item_id(grid: &GranuleGrid, t: usize, when: chrono::DateTime<Utc>) -> String {
    format!(
        "S2{}_{}_{}_0_L2A",
        if t.is_multiple_of(2) { 'A' } else { 'B' },
        grid.granule.region_code,
        when.format("%Y%m%d")
    )
}

fn ring_value(ring: &[(f64, f64)]) -> Value {
    json!([ring.iter().map(|(x, y)| json!([x, y])).collect::<Vec<_>>()])
}

#[allow(clippy::too_many_arguments)]
fn item_json(
    spec: &SynthSpec,
    grid: &GranuleGrid,
    id: &str,
    collection: &str,
    when: chrono::DateTime<Utc>,
    baseline: &str,
    cloud: f64,
) -> Value {
    let gb = &grid.geobox;
    let proj = json!({"proj:shape": [gb.height, gb.width], "proj:transform": [gb.resolution, 0.0, gb.left, 0.0, -gb.resolution, gb.top, 0.0, 0.0, 1.0]});
    let cog = "image/tiff; application=geotiff; profile=cloud-optimized";
    let mut assets = serde_json::Map::new();
    for (band, key) in BANDS {
        let mut a = json!({
            "href": format!("./{band}.tif"), "type": cog, "roles": ["data", "reflectance"],
            "eo:bands": [{"name": band, "common_name": key}],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0}],
        });
        a.as_object_mut().unwrap().extend(proj.as_object().unwrap().clone());
        assets.insert(key.to_string(), a);
    }
    let mut scl = json!({"href": "./SCL.tif", "type": cog, "roles": ["data"], "raster:bands": [{"nodata": 0, "data_type": "uint8"}]});
    scl.as_object_mut().unwrap().extend(proj.as_object().unwrap().clone());
    assets.insert("scl".into(), scl);
    let rc = &grid.granule.region_code;
    let xs: Vec<f64> = grid.footprint.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = grid.footprint.iter().map(|p| p.1).collect();
    let min = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    json!({
        "type": "Feature",
        "stac_version": crate::STAC_VERSION,
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
        ],
        "id": id,
        "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": ring_value(&grid.footprint)},
        "bbox": [min(&xs), min(&ys), max(&xs), max(&ys)],
        "properties": {
            "datetime": when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "platform": if id.starts_with("S2A") { "sentinel-2a" } else { "sentinel-2b" },
            "constellation": "sentinel-2",
            "eo:cloud_cover": (cloud * 100.0).round() / 100.0,
            "proj:epsg": grid.granule.epsg,
            "mgrs:utm_zone": rc[..2].parse::<u32>().unwrap_or(0),
            "mgrs:latitude_band": &rc[2..3],
            "mgrs:grid_square": &rc[3..],
            "grid:code": format!("MGRS-{rc}"),
            "s2:processing_baseline": baseline,
            "stratus:synthetic_seed": spec.seed,
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ],
        "assets": assets,
    })
}

fn write_scene(dir: &Path, grid: &GranuleGrid, bands: &[Vec<u16>], scl: &[u16]) -> Result<(), SynthError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let fast = CogOptions { level: Some(1), ..Default::default() };
    for ((band, _), data) in BANDS.iter().zip(bands) {
        write_cog(&dir.join(format!("{band}.tif")), &grid.geobox, data.clone(), Some(0.0), &fast, false)?;
    }
    let scl8: Vec<u8> = scl.iter().map(|&v| v as u8).collect();
    write_cog(&dir.join("SCL.tif"), &grid.geobox, scl8, Some(0.0), &fast, true)?;
    Ok(())
}

fn write_catalog(
    dir: &Path,
    id: &str,
    description: &str,
    items: &[String],
    digest: &str,
) -> Result<PathBuf, SynthError> {
    let links: Vec<Value> =
        std::iter::once(json!({"rel": "root", "href": "./catalog.json", "type": "application/json"}))
            .chain(
                items
                    .iter()
                    .map(|i| json!({"rel": "item", "href": format!("./{i}/{i}.json"), "type": "application/json"})),
            )
            .collect();
    let cat = json!({"type": "Catalog", "stac_version": crate::STAC_VERSION, "id": id, "description": description, "stratus:synth_digest": digest, "links": links});
    let path = dir.join("catalog.json");
    let tmp = dir.join(".catalog.json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cat).unwrap()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// The STAC Collection its items link to (`collection.json` beside them): `id`, the
/// extent of `bbox` (lon/lat) over `start..end`.
pub(crate) fn collection_doc(
    id: &str,
    description: &str,
    bbox: [f64; 4],
    (start, end): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
) -> Value {
    let when = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "type": "Collection", "stac_version": crate::STAC_VERSION, "id": id,
        "description": description, "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[when(start), when(end)]]}},
        "links": [{"rel": "self", "href": "./collection.json", "type": "application/json"}],
    })
}

/// Is there already a complete set for this spec in `out`?
fn existing(out: &Path, digest: &str) -> bool {
    std::fs::read_to_string(out.join("catalog.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v.get("stratus:synth_digest").and_then(Value::as_str) == Some(digest))
}

/// Generate the scenes of `spec` under `out`. `progress(done, total)` is called as scenes
/// are written. An existing complete set for the same spec is reused.
pub fn generate(
    spec: &SynthSpec,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SynthSummary, SynthError> {
    if spec.dates == 0 || spec.granules.is_empty() || spec.granule_pixels() < 16 || spec.granule_pixels() > 12_000 {
        return Err(SynthError::Spec("need at least one date and one granule of 16 to 12000 pixels".into()));
    }
    let digest = spec.digest();
    let truth_dir = out.join("truth");
    if existing(out, &digest) && (!spec.truth || existing(&truth_dir, &digest)) {
        let n = spec.dates * spec.granules.len();
        return Ok(SynthSummary {
            items: n,
            catalog: out.join("catalog.json"),
            truth_catalog: spec.truth.then(|| truth_dir.join("catalog.json")),
            reused: true,
        });
    }
    let grids: Vec<GranuleGrid> = spec.granules.iter().map(|g| granule_grid(spec, g)).collect::<Result<_, _>>()?;
    let times = acquisition_times(spec);
    let jobs: Vec<(usize, usize)> = (0..grids.len()).flat_map(|g| (0..times.len()).map(move |t| (g, t))).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let clear_collection = format!("{}-clear", spec.collection);
    let ids: Vec<String> = jobs
        .par_iter()
        .map(|&(g, t)| -> Result<String, SynthError> {
            let grid = &grids[g];
            let when = times[t] + Duration::days(grid.granule.day_offset);
            let (bl, offset) = baseline(when.date_naive());
            let scene: Scene = render(spec, grid, t, when.ordinal(), offset);
            let id = item_id(grid, t, when);
            let dir = out.join(&id);
            write_scene(&dir, grid, &scene.bands, &scene.scl)?;
            let item = item_json(spec, grid, &id, &spec.collection, when, bl, scene.cloud_percent);
            let p = dir.join(format!("{id}.json"));
            std::fs::write(&p, serde_json::to_string_pretty(&item).unwrap()).map_err(io(&p))?;
            if let (Some(cb), Some(cs)) = (&scene.clear_bands, &scene.clear_scl) {
                let tdir = truth_dir.join(&id);
                write_scene(&tdir, grid, cb, cs)?;
                let item = item_json(spec, grid, &id, &clear_collection, when, bl, 0.0);
                let p = tdir.join(format!("{id}.json"));
                std::fs::write(&p, serde_json::to_string_pretty(&item).unwrap()).map_err(io(&p))?;
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, jobs.len());
            Ok(id)
        })
        .collect::<Result<_, _>>()?;
    let bbox = stratus_core::geometry::bbox_of(grids.iter().flat_map(|g| g.footprint.iter().copied()));
    let span = (
        times.first().copied().unwrap_or_default(),
        times.last().copied().unwrap_or_default()
            + Duration::days(grids.iter().map(|g| g.granule.day_offset).max().unwrap_or(0)),
    );
    let mut collections = vec![(out.to_path_buf(), spec.collection.clone(), "Synthetic Sentinel-2 L2A-like scenes")];
    if spec.truth {
        collections.push((truth_dir.clone(), clear_collection.clone(), "Cloud-free twins of the synthetic scenes"));
    }
    for (dir, id, description) in collections {
        let doc = collection_doc(&id, description, bbox, span);
        let p = dir.join("collection.json");
        std::fs::write(&p, serde_json::to_string_pretty(&doc).unwrap()).map_err(io(&p))?;
    }
    let truth_catalog = if spec.truth {
        Some(write_catalog(
            &truth_dir,
            "stratus-synth-truth",
            "Cloud-free twins of the synthetic scenes (the truth)",
            &ids,
            &digest,
        )?)
    } else {
        None
    };
    let catalog = write_catalog(out, "stratus-synth", "Synthetic Sentinel-2 L2A-like scenes (Stratus)", &ids, &digest)?;
    std::fs::write(out.join("synth-spec.json"), serde_json::to_string_pretty(spec).unwrap()).map_err(io(out))?;
    Ok(SynthSummary { items: ids.len(), catalog, truth_catalog, reused: false })
}
