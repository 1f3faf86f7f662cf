//! The STAC item of an output tile. Written last: its presence marks the tile complete.

use crate::config::RunConfig;
use crate::error::{EngineError, Result};
use crate::plan_outputs::{ring_json, tile_polygon_lonlat};
use serde_json::{json, Value};
use stratus_core::{GeoBox, TaskId};
use stratus_raster::GdalCrsTransform;
use stratus_stats::{OutputBand, PixelType};

pub const PROJECTION_EXT: &str = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";

pub struct ItemFacts<'a> {
    pub cfg: &'a RunConfig,
    pub run_id: &'a str,
    pub task: &'a TaskId,
    pub geobox: &'a GeoBox,
    pub outputs: &'a [OutputBand],
    pub band_urls: Vec<String>,
    pub inputs: Vec<String>,
    pub skipped_inputs: Vec<String>,
    pub observation_days: usize,
    pub self_url: String,
}

fn data_type(t: PixelType) -> &'static str {
    match t {
        PixelType::Uint8 => "uint8",
        PixelType::Uint16 => "uint16",
        PixelType::Int16 => "int16",
        PixelType::Float32 => "float32",
    }
}

pub fn output_item(f: &ItemFacts) -> Result<Value> {
    let grid = f.cfg.grid_spec()?;
    let ring = tile_polygon_lonlat(&grid, f.task.tile, &GdalCrsTransform)?;
    let (mut w, mut s, mut e, mut n) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for (x, y) in &ring {
        w = w.min(*x);
        e = e.max(*x);
        s = s.min(*y);
        n = n.max(*y);
    }
    let p = &f.cfg.product;
    let mut assets = serde_json::Map::new();
    for (o, url) in f.outputs.iter().zip(&f.band_urls) {
        let mut a = json!({
            "href": url,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "title": o.name,
            "data_type": data_type(o.dtype),
        });
        if let Some(nd) = o.nodata {
            a["nodata"] = json!(nd);
        }
        assets.insert(o.name.clone(), a);
    }
    let gt = f.geobox.geo_transform();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut item = json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [PROJECTION_EXT],
        "id": format!("{}_{}_{}", p.name, f.task.tile.region_code(), f.task.period),
        "collection": p.name,
        "geometry": {"type": "Polygon", "coordinates": ring_json(&ring)},
        "bbox": [w, s, e, n],
        "properties": {
            "datetime": f.task.period.start_datetime().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "start_datetime": f.task.period.start_datetime().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end_datetime": f.task.period.end_datetime().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "created": now,
            "odc:processing_datetime": now,
            "odc:region_code": f.task.tile.region_code(),
            "odc:product": p.name,
            "odc:dataset_version": p.version,
            "odc:product_family": p.product_family,
            "proj:epsg": f.geobox.epsg,
            "proj:transform": [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]],
            "proj:shape": [f.geobox.height, f.geobox.width],
            "stratus:version": crate::VERSION,
            "stratus:plugin": f.cfg.plugin,
            "stratus:config_digest": f.cfg.digest(),
            "stratus:run_id": f.run_id,
            "stratus:task_id": f.task.to_string(),
            "stratus:observation_days": f.observation_days,
            "stratus:inputs": f.inputs,
            "stratus:skipped_inputs": f.skipped_inputs,
        },
        "links": [{"rel": "self", "href": f.self_url, "type": "application/json"}],
        "assets": assets,
    });
    // The product's own properties (odc-stats' `product.properties` and `producer`).
    if let Some(props) = item["properties"].as_object_mut() {
        if let Some(producer) = &p.producer {
            props.insert("odc:producer".into(), json!(producer));
        }
        for (k, v) in &p.properties {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // Round-trip through the STAC model to be sure we wrote a valid item.
    let parsed: stac::Item = serde_json::from_value(item.clone()).map_err(|e| EngineError::Task {
        task: f.task.to_string(),
        why: format!("output STAC item is invalid: {e}"),
    })?;
    debug_assert_eq!(parsed.assets.len(), f.outputs.len());
    Ok(item)
}
