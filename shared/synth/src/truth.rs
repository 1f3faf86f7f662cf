//! Expected clear-pixel counts of a tile, computed from the synthetic SCL rasters without
//! the pipeline: every output pixel centre is reprojected exactly into each scene, the
//! nearest source pixel is looked up, same-day scenes are fused (first valid wins, scenes
//! ordered by time then id) and valid / clear observations are counted. The end-to-end
//! test compares this with the pipeline run with an exact warp (error threshold 0).

use chrono::{DateTime, Utc};
use gdal::Dataset as GdalDataset;
use std::path::Path;
use stratus_core::geometry::CrsTransform;
use stratus_core::period::solar_day;
use stratus_core::stac_input::{dataset_from_item, parse_document, resolve_href, StacDocument};
use stratus_core::{GridSpec, TileIndex};
use stratus_raster::GdalCrsTransform;

struct Scl {
    id: String,
    when: DateTime<Utc>,
    day: chrono::NaiveDate,
    epsg: u32,
    gt: [f64; 6],
    w: usize,
    h: usize,
    data: Vec<u8>,
}

fn load(catalog: &Path) -> Vec<Scl> {
    let text = std::fs::read_to_string(catalog).expect("catalog");
    let StacDocument::Catalog { items, .. } = parse_document(&text, "catalog").unwrap() else {
        panic!("not a catalog")
    };
    let base = catalog.display().to_string();
    let mut out: Vec<Scl> = items
        .iter()
        .map(|href| {
            let p = resolve_href(href, Some(&base));
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let d = dataset_from_item(v, Some(&p), None).unwrap();
            let ds = GdalDataset::open(&d.band("SCL").unwrap().href).unwrap();
            let (w, h) = ds.raster_size();
            let data =
                ds.rasterband(1).unwrap().read_as::<u8>((0, 0), (w, h), (w, h), None).unwrap().into_shape_and_vec().1;
            Scl {
                id: d.id.clone(),
                when: d.datetime,
                day: solar_day(d.datetime, d.longitude()),
                epsg: d.epsg,
                gt: ds.geo_transform().unwrap(),
                w,
                h,
                data,
            }
        })
        .collect();
    out.sort_by(|a, b| a.when.cmp(&b.when).then_with(|| a.id.cmp(&b.id)));
    out
}

/// (total, clear) per pixel of `tile`, row-major.
pub fn expected_pq_counts(catalog: &Path, grid: &GridSpec, tile: TileIndex) -> (Vec<u16>, Vec<u16>) {
    let scenes = load(catalog);
    let gb = grid.tile_geobox(tile);
    let n = gb.width * gb.height;
    let centres: Vec<(f64, f64)> = (0..n).map(|i| gb.pixel_centre(i % gb.width, i / gb.width)).collect();
    // Each scene's source pixel (or none) for every output pixel.
    let lookup: Vec<Vec<Option<u8>>> = scenes
        .iter()
        .map(|s| {
            let mut pts = centres.clone();
            GdalCrsTransform.transform(grid.epsg, s.epsg, &mut pts).unwrap();
            pts.iter()
                .map(|&(x, y)| {
                    // GDAL's nearest: floor of the fractional source pixel (plus its 1e-10).
                    let c = ((x - s.gt[0]) / s.gt[1] + 1e-10).floor();
                    let r = ((y - s.gt[3]) / s.gt[5] + 1e-10).floor();
                    (c >= 0.0 && r >= 0.0 && (c as usize) < s.w && (r as usize) < s.h)
                        .then(|| s.data[r as usize * s.w + c as usize])
                })
                .collect()
        })
        .collect();
    let mut total = vec![0u16; n];
    let mut clear = vec![0u16; n];
    let mut i = 0;
    while i < scenes.len() {
        let mut j = i;
        while j < scenes.len() && scenes[j].day == scenes[i].day {
            j += 1;
        }
        for p in 0..n {
            // First valid (non-zero) scene of the day at this pixel.
            if let Some(v) = (i..j).filter_map(|k| lookup[k][p]).find(|&v| v != 0) {
                total[p] += 1;
                if ![3u8, 8, 9, 10].contains(&v) {
                    clear[p] += 1;
                }
            }
        }
        i = j;
    }
    (total, clear)
}
