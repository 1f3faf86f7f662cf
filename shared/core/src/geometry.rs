//! Footprint geometry: densify lon/lat rings and reproject them into a grid's CRS through
//! a [`CrsTransform`] (GDAL/PROJ in production), so that tile coverage follows the real
//! footprint rather than its lon/lat bounding box.

use crate::error::Result;

/// Reprojects points between EPSG codes. EPSG:4326 points are (longitude, latitude).
pub trait CrsTransform: Send + Sync {
    fn transform(&self, from_epsg: u32, to_epsg: u32, points: &mut [(f64, f64)]) -> Result<()>;
}

/// The box `[min_x, min_y, max_x, max_y]` around `points` (none: an inverted box, which
/// any union ignores).
pub fn bbox_of(points: impl IntoIterator<Item = (f64, f64)>) -> [f64; 4] {
    points.into_iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, (x, y)| {
        [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)]
    })
}

/// Insert `n - 1` points along each edge so that straight lon/lat edges follow their
/// curved image in a projected CRS.
pub fn densify(ring: &[(f64, f64)], n: usize) -> Vec<(f64, f64)> {
    split_edges(ring, |_, _| n.max(1))
}

/// Longest lon/lat edge (degrees) projected as a straight line: a quarter degree is
/// about 28 km, along which the curvature of a projected edge stays within metres.
const MAX_EDGE_DEG: f64 = 0.25;

/// Split each edge longer than `max_len` (in the ring's units) into equal parts.
pub fn densify_to(ring: &[(f64, f64)], max_len: f64) -> Vec<(f64, f64)> {
    split_edges(ring, |a, b| (((b.0 - a.0).hypot(b.1 - a.1) / max_len).ceil() as usize).clamp(1, 64))
}

/// Split each edge of `ring` into `parts(a, b)` equal pieces, keeping the last point.
fn split_edges(ring: &[(f64, f64)], parts: impl Fn((f64, f64), (f64, f64)) -> usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(ring.len() * 2);
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        let n = parts(a, b);
        for i in 0..n {
            let t = i as f64 / n as f64;
            out.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
        }
    }
    if let Some(last) = ring.last() {
        out.push(*last);
    }
    out
}

/// A footprint's rings in `to_epsg`, long edges densified first. Footprints from
/// catalogues are usually dense already, so this adds few points.
pub fn project_rings(t: &dyn CrsTransform, rings: &[Vec<(f64, f64)>], to_epsg: u32) -> Result<Vec<Vec<(f64, f64)>>> {
    rings
        .iter()
        .map(|r| {
            let mut pts = densify_to(r, MAX_EDGE_DEG);
            t.transform(4326, to_epsg, &mut pts)?;
            Ok(pts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densify_to_splits_only_long_edges() {
        let r = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.1)];
        let d = densify_to(&r, 0.25);
        assert_eq!(d.len(), 4 + 1 + 1);
        assert_eq!(d[1], (0.25, 0.0));
        assert_eq!(*d.last().unwrap(), (1.0, 0.1));
    }

    #[test]
    fn densify_keeps_ends_and_adds_points() {
        let r = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0)];
        let d = densify(&r, 4);
        assert_eq!(d.len(), 9);
        assert_eq!(d[0], (0.0, 0.0));
        assert_eq!(d[1], (1.0, 0.0));
        assert_eq!(d[4], (4.0, 0.0));
        assert_eq!(*d.last().unwrap(), (4.0, 4.0));
    }
}
