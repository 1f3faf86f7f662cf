//! Areas of interest given as GeoJSON (a geometry, a Feature or a FeatureCollection of
//! polygons), in longitude / latitude as GeoJSON has them: which tiles of a grid they touch.

use crate::error::{CoreError, Result};
use crate::geometry::{project_rings, CrsTransform};
use crate::grid::{GeoBox, GridSpec, TileIndex};
use serde_json::Value;
use std::collections::BTreeSet;

/// An area's polygons, as outer rings of (longitude, latitude).
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub rings: Vec<Vec<(f64, f64)>>,
}

impl Area {
    /// Parse GeoJSON text; `what` names it in errors.
    pub fn from_geojson(text: &str, what: &str) -> Result<Area> {
        let bad = |why: String| CoreError::BadArea { what: what.to_string(), why };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        // A legacy `crs` member (odc-stats' filters carry one) must say longitude / latitude.
        if let Some(name) = doc.pointer("/crs/properties/name").and_then(Value::as_str) {
            let n = name.to_ascii_uppercase();
            if !(n.ends_with("CRS84") || n.ends_with("4326") || n.ends_with("EPSG::4326")) {
                return Err(bad(format!(
                    "its crs is {name}: give the area in longitude / latitude (EPSG:4326), as GeoJSON requires"
                )));
            }
        }
        let geometries: Vec<&Value> = match doc.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => doc
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a FeatureCollection without features".into()))?
                .iter()
                .filter_map(|f| f.get("geometry"))
                .collect(),
            Some("Feature") => doc.get("geometry").into_iter().collect(),
            Some(_) => vec![&doc],
            None => return Err(bad("not GeoJSON: no 'type'".into())),
        };
        let mut rings = Vec::new();
        for g in geometries {
            let r = crate::stac_input::rings_of(g).ok_or_else(|| {
                bad(format!(
                    "a {} geometry: an area is made of Polygons and MultiPolygons",
                    g.get("type").and_then(Value::as_str).unwrap_or("malformed")
                ))
            })?;
            rings.extend(r);
        }
        if rings.is_empty() || rings.iter().any(|r| r.len() < 4) {
            return Err(bad("no polygon with at least 3 corners".into()));
        }
        Ok(Area { rings })
    }

    /// The area's polygons in `epsg` (to mask a grid's pixels).
    pub fn projected(&self, transform: &dyn CrsTransform, epsg: u32) -> Result<ProjectedArea> {
        Ok(ProjectedArea { rings: project_rings(transform, &self.rings, epsg)? })
    }

    /// The tiles of `grid` the area touches.
    pub fn tiles(&self, grid: &GridSpec, transform: &dyn CrsTransform) -> Result<BTreeSet<TileIndex>> {
        let projected = project_rings(transform, &self.rings, grid.epsg)?;
        Ok(projected.iter().flat_map(|r| grid.tiles_for_polygon(r)).collect())
    }
}

/// An area in a grid's CRS.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedArea {
    rings: Vec<Vec<(f64, f64)>>,
}

impl ProjectedArea {
    /// Which pixels of `window` (row-major) have their centre inside the area (each
    /// polygon by the even-odd rule, polygons joined), by scanlines: rows x edges, not
    /// pixels x edges.
    pub fn mask(&self, window: &GeoBox) -> Vec<bool> {
        let (w, h, res) = (window.width, window.height, window.resolution);
        let mut inside = vec![false; w * h];
        let mut xs = Vec::new();
        for row in 0..h {
            let y = window.top - (row as f64 + 0.5) * res;
            for ring in &self.rings {
                xs.clear();
                for e in ring.windows(2) {
                    let ((x1, y1), (x2, y2)) = (e[0], e[1]);
                    if (y1 > y) != (y2 > y) {
                        xs.push(x1 + (y - y1) / (y2 - y1) * (x2 - x1));
                    }
                }
                xs.sort_by(f64::total_cmp);
                for pair in xs.chunks_exact(2) {
                    // Columns whose centre x is in [a, b).
                    let col = |x: f64| ((x - window.left) / res - 0.5).ceil().clamp(0.0, w as f64) as usize;
                    let (c0, c1) = (col(pair[0]), col(pair[1]));
                    inside[row * w + c0..row * w + c1].iter_mut().for_each(|p| *p = true);
                }
            }
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometries_features_and_collections_are_areas_and_others_are_named() {
        let poly = r#"{"type": "Polygon", "coordinates": [[[24, -15], [25, -15], [25, -14], [24, -15]]]}"#;
        assert_eq!(Area::from_geojson(poly, "a").unwrap().rings.len(), 1);
        let fc = format!(
            r#"{{"type": "FeatureCollection", "features": [{{"type": "Feature", "properties": {{}}, "geometry": {poly}}}, {{"type": "Feature", "properties": {{}}, "geometry": {poly}}}]}}"#
        );
        assert_eq!(Area::from_geojson(&fc, "a").unwrap().rings.len(), 2);
        for (bad, why) in [
            (r#"{"type": "Point", "coordinates": [1, 2]}"#, "Point"),
            ("[1]", "no 'type'"),
            ("{", "not JSON"),
            (
                r#"{"type": "FeatureCollection", "crs": {"properties": {"name": "EPSG:3577"}}, "features": []}"#,
                "EPSG:3577",
            ),
        ] {
            let e = Area::from_geojson(bad, "area.geojson").unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("area.geojson"), "{e}");
        }
    }

    #[test]
    fn masks_take_the_pixels_whose_centre_is_inside() {
        // A triangle over a 4 x 4 window of unit pixels (top-left at 0, 4).
        let area = ProjectedArea { rings: vec![vec![(0.0, 0.0), (4.0, 0.0), (0.0, 4.0), (0.0, 0.0)]] };
        let window = GeoBox { epsg: 3857, left: 0.0, top: 4.0, resolution: 1.0, width: 4, height: 4 };
        let m = area.mask(&window);
        let rows: Vec<String> = m.chunks(4).map(|r| r.iter().map(|&b| if b { '#' } else { '.' }).collect()).collect();
        assert_eq!(rows, vec!["....", "#...", "##..", "###."]);
        // Two polygons, one a hole-free square beside the window: only the window's part.
        let two = ProjectedArea {
            rings: vec![
                vec![(0.0, 3.0), (1.0, 3.0), (1.0, 4.0), (0.0, 4.0), (0.0, 3.0)],
                vec![(3.0, 0.0), (9.0, 0.0), (9.0, 1.0), (3.0, 1.0), (3.0, 0.0)],
            ],
        };
        let m = two.mask(&window);
        assert_eq!(m.iter().filter(|&&b| b).count(), 2);
        assert!(m[0] && m[15]);
    }
}
