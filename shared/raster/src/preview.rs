//! Preview pictures of mosaics: an RGBA PNG, at most 2048 px on its long side, each band
//! stretched between its 2nd and 98th percentiles (reflectance and counts both look
//! sensible), transparent where any band has no data.

use crate::error::{RasterError, Result};
use gdal::raster::RasterCreationOptions;
use gdal::{Dataset, DriverManager};
use std::path::Path;

const MAX_SIDE: usize = 2048;

/// Indices of the red, green and blue bands among `names`, if all three are there.
pub fn rgb_bands(names: &[String]) -> Option<[usize; 3]> {
    let find = |cands: &[&str]| names.iter().position(|n| cands.iter().any(|c| n.eq_ignore_ascii_case(c)));
    Some([
        find(&["B04", "red", "nbart_red", "SR_B4", "B4"])?,
        find(&["B03", "green", "nbart_green", "SR_B3", "B3"])?,
        find(&["B02", "blue", "nbart_blue", "SR_B2", "B2"])?,
    ])
}

/// Write a preview of one (grey) or three (RGB) single-band rasters of the same grid.
pub fn write_preview(bands: &[&Path], dest: &Path) -> Result<()> {
    crate::init_gdal();
    let err = |why: String| RasterError::Output { path: dest.display().to_string(), why };
    let first = Dataset::open(bands[0])?;
    let (w, h) = first.raster_size();
    let scale = (w.max(h) as f64 / MAX_SIDE as f64).max(1.0);
    let (pw, ph) = (((w as f64 / scale).round() as usize).max(1), ((h as f64 / scale).round() as usize).max(1));
    let mut planes = Vec::new();
    let mut valid = vec![true; pw * ph];
    for path in bands {
        let data = crate::thumbnail::read_scaled(path, (pw, ph))?;
        for (v, ok) in data.iter().zip(valid.iter_mut()) {
            if v.is_nan() {
                *ok = false;
            }
        }
        planes.push(data);
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for data in &planes {
        let mut vals: Vec<f64> = data.iter().zip(&valid).filter(|(_, ok)| **ok).map(|(v, _)| *v).collect();
        if vals.is_empty() {
            return Err(err("no valid pixels to preview".into()));
        }
        vals.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| vals[((vals.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = (at(0.02), at(0.98));
        let span = if hi > lo { hi - lo } else { 1.0 };
        out.push(data.iter().map(|v| (1.0 + 254.0 * ((v - lo) / span).clamp(0.0, 1.0)).round() as u8).collect());
    }
    // Grey previews repeat the one band.
    while out.len() < 3 {
        out.push(out[0].clone());
    }
    out.push(valid.iter().map(|ok| if *ok { 255 } else { 0 }).collect());
    let ds = crate::thumbnail::mem_u8(out, (pw, ph))?;
    let png = DriverManager::get_driver_by_name("PNG")?;
    ds.create_copy(&png, dest, &RasterCreationOptions::new())?;
    // PNG's sidecar (.aux.xml) is of no use next to a picture.
    let _ = std::fs::remove_file(dest.with_extension("png.aux.xml"));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rgb_by_sentinel_or_common_names() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(super::rgb_bands(&s(&["B02", "B03", "B04", "B08"])), Some([2, 1, 0]));
        assert_eq!(super::rgb_bands(&s(&["blue", "green", "red"])), Some([2, 1, 0]));
        assert_eq!(super::rgb_bands(&s(&["total", "clear"])), None);
    }
}
