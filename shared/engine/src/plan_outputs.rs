//! The plan's human-readable artefacts: a CSV of tasks and per-period GeoJSON of tiles.

use crate::error::Result;
use crate::sizing::TaskEstimate;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use stratus_core::binning::TaskBin;
use stratus_core::geometry::{densify, CrsTransform};
use stratus_core::{GridSpec, TaskId, TileIndex};

/// `task_id,period,x,y,datasets,observation_days,executor,est_memory_mb,est_seconds`, one
/// row per task in plan order (`estimates` in the same order).
pub fn tasks_csv(tasks: &BTreeMap<TaskId, TaskBin>, estimates: &[TaskEstimate]) -> String {
    let mut s = String::from("task_id,period,x,y,datasets,observation_days,executor,est_memory_mb,est_seconds\n");
    for ((id, bin), e) in tasks.iter().zip(estimates) {
        s += &format!(
            "{id},{},{},{},{},{},{},{},{:.0}\n",
            id.period,
            id.tile.x,
            id.tile.y,
            bin.datasets.len(),
            bin.days.len(),
            e.executor.as_str(),
            e.peak_memory_mb,
            e.lambda_seconds
        );
    }
    s
}

/// A tile's outline in longitude/latitude (edges densified so they follow the projection).
pub fn tile_polygon_lonlat(grid: &GridSpec, t: TileIndex, transform: &dyn CrsTransform) -> Result<Vec<(f64, f64)>> {
    let b = grid.tile_bounds(t);
    let ring = [(b.min_x, b.min_y), (b.max_x, b.min_y), (b.max_x, b.max_y), (b.min_x, b.max_y), (b.min_x, b.min_y)];
    let mut pts = densify(&ring, 8);
    transform.transform(grid.epsg, 4326, &mut pts)?;
    Ok(pts)
}

pub fn ring_json(ring: &[(f64, f64)]) -> Value {
    json!([ring.iter().map(|(x, y)| json!([round6(*x), round6(*y)])).collect::<Vec<_>>()])
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// One period's tiles as a FeatureCollection with their counts.
pub fn period_geojson(
    grid: &GridSpec,
    tasks: &BTreeMap<TaskId, TaskBin>,
    period: &str,
    transform: &dyn CrsTransform,
) -> Result<Value> {
    let mut features = Vec::new();
    for (id, bin) in tasks.iter().filter(|(id, _)| id.period.to_string() == period) {
        let ring = tile_polygon_lonlat(grid, id.tile, transform)?;
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": ring_json(&ring)},
            "properties": {
                "task_id": id.to_string(), "region_code": id.tile.region_code(),
                "x": id.tile.x, "y": id.tile.y,
                "datasets": bin.datasets.len(), "observation_days": bin.days.len(),
            }
        }));
    }
    Ok(json!({"type": "FeatureCollection", "features": features}))
}
