//! The plan's human-readable artefacts: a CSV of tasks and per-period GeoJSON of tiles.

use crate::error::Result;
use crate::sizing::{TaskEstimate, TilePlan};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use stratus_core::binning::TaskBin;
use stratus_core::geometry::{densify, CrsTransform};
use stratus_core::{GridSpec, TaskId, TileIndex};

/// `task_id,period,x,y,datasets,observation_days,parts,executor,est_memory_mb,est_seconds`,
/// one row per ledger task in plan order (`plans` in the order of `tasks`): a split tile's
/// parts (`parts` names the part), then the tile (`parts` is `KxK`; its estimate is the
/// assembly's).
pub fn tasks_csv(tasks: &BTreeMap<TaskId, TaskBin>, plans: &[TilePlan]) -> String {
    let mut s = String::from("task_id,period,x,y,datasets,observation_days,parts,executor,est_memory_mb,est_seconds\n");
    let mut row = |task: &str, id: &TaskId, bin: &TaskBin, parts: &str, e: &TaskEstimate| {
        s += &format!(
            "{task},{},{},{},{},{},{parts},{},{},{:.0}\n",
            id.period,
            id.tile.x,
            id.tile.y,
            bin.datasets.len(),
            bin.days.len(),
            e.executor.as_str(),
            e.peak_memory_mb,
            e.lambda_seconds
        );
    };
    for ((id, bin), plan) in tasks.iter().zip(plans) {
        match &plan.assembly {
            Some(assembly) if plan.parts > 1 => {
                for (p, e) in stratus_core::TilePart::all(plan.parts).into_iter().zip(&plan.part_estimates) {
                    row(&p.task_id(id), id, bin, &p.to_string(), e);
                }
                row(&id.to_string(), id, bin, &format!("{k}x{k}", k = plan.parts), assembly);
            }
            _ => row(&id.to_string(), id, bin, "", &plan.whole),
        }
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
    plans: &[TilePlan],
    period: &str,
    transform: &dyn CrsTransform,
) -> Result<Value> {
    let mut features = Vec::new();
    for ((id, bin), plan) in tasks.iter().zip(plans).filter(|((id, _), _)| id.period.to_string() == period) {
        let ring = tile_polygon_lonlat(grid, id.tile, transform)?;
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": ring_json(&ring)},
            "properties": {
                "task_id": id.to_string(), "region_code": id.tile.region_code(),
                "x": id.tile.x, "y": id.tile.y,
                "datasets": bin.datasets.len(), "observation_days": bin.days.len(),
                "parts": plan.parts * plan.parts, "executor": plan.executor().as_str(),
            }
        }));
    }
    Ok(json!({"type": "FeatureCollection", "features": features}))
}
