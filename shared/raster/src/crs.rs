//! [`CrsTransform`] on GDAL/PROJ, with longitude/latitude (GIS) axis order throughout.

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use std::cell::RefCell;
use std::collections::HashMap;
use stratus_core::error::{CoreError, Result};
use stratus_core::geometry::CrsTransform;

/// Reprojects with PROJ. Transform objects are not thread-safe, so each thread keeps its
/// own cache of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct GdalCrsTransform;

thread_local! {
    static CACHE: RefCell<HashMap<(u32, u32), CoordTransform>> = RefCell::new(HashMap::new());
}

pub fn spatial_ref(epsg: u32) -> std::result::Result<SpatialRef, gdal::errors::GdalError> {
    let mut sr = SpatialRef::from_epsg(epsg)?;
    sr.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(sr)
}

impl CrsTransform for GdalCrsTransform {
    fn transform(&self, from: u32, to: u32, points: &mut [(f64, f64)]) -> Result<()> {
        if from == to || points.is_empty() {
            return Ok(());
        }
        let fail = |why: String| CoreError::Reproject { from, to, why };
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let ct = match cache.entry((from, to)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let s = spatial_ref(from).map_err(|e| fail(e.to_string()))?;
                    let d = spatial_ref(to).map_err(|e| fail(e.to_string()))?;
                    e.insert(CoordTransform::new(&s, &d).map_err(|e| fail(e.to_string()))?)
                }
            };
            let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
            let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
            ct.transform_coords(&mut xs, &mut ys, &mut []).map_err(|e| fail(e.to_string()))?;
            for (p, (x, y)) in points.iter_mut().zip(xs.into_iter().zip(ys)) {
                *p = (x, y);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lonlat_to_utm_and_albers() {
        let t = GdalCrsTransform;
        // 27 E on the equator is the central meridian of UTM 35: easting 500 000.
        let mut p = [(27.0, 0.0)];
        t.transform(4326, 32635, &mut p).unwrap();
        assert!((p[0].0 - 500_000.0).abs() < 1e-6 && p[0].1.abs() < 1e-6, "{p:?}");
        // Australian Albers origin: 132 E, 0 N maps to x = 0.
        let mut p = [(132.0, -25.0)];
        t.transform(4326, 3577, &mut p).unwrap();
        assert!(p[0].0.abs() < 1e-6, "{p:?}");
        let mut back = p;
        t.transform(3577, 4326, &mut back).unwrap();
        assert!((back[0].0 - 132.0).abs() < 1e-9 && (back[0].1 + 25.0).abs() < 1e-9);
        assert!(t.transform(4326, 999_999, &mut [(0.0, 0.0)]).is_err());
    }
}
