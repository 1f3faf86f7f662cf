//! odc-stats' RGBA preview band (`{stem}_rgba.tif`): three output bands stretched to
//! 8 bits between a clamp's bounds, with an alpha band opaque where the red band has
//! data, as odc-algo's `to_rgba` makes it, written as a 4-band COG.

use crate::cog::{copy_to_cog, CogOptions};
use crate::error::{RasterError, Result};
use gdal::raster::{ColorInterpretation, GdalDataType};
use gdal::Dataset;
use std::path::Path;

/// The stretch: values from `lo` to `hi` become 0 to 255. odc-algo's `to_u8` computes in
/// integers when both bounds are integers and the band is, in floating point otherwise
/// (odc-stats' default clamp, (1.0, 3000.0), is floating point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clamp {
    Int(i64, i64),
    Float(f64, f64),
}

impl Clamp {
    /// The bounds as numbers.
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Clamp::Int(lo, hi) => (lo as f64, hi as f64),
            Clamp::Float(lo, hi) => (lo, hi),
        }
    }

    /// One value as `to_u8` makes it (`float32`: the band is float32, whose arithmetic
    /// NumPy keeps in float32).
    #[inline]
    fn stretch(&self, v: f64, float32: bool) -> u8 {
        let (lo, hi) = self.bounds();
        let x = v.clamp(lo, hi);
        match *self {
            Clamp::Int(lo, hi) if !float32 => ((x as i64 - lo) as u32 * 255 / (hi - lo) as u32) as u8,
            _ if float32 => ((x as f32 - lo as f32) * (255.0f64 / (hi - lo)) as f32) as u8,
            _ => ((x - lo) * (255.0 / (hi - lo))) as u8,
        }
    }
}

/// Write the RGBA COG of the `red`, `green` and `blue` band files (one grid) at `dest`.
pub fn write_rgba_cog(bands: [&Path; 3], clamp: Clamp, dest: &Path, opts: &CogOptions) -> Result<()> {
    crate::init_gdal();
    let (lo, hi) = clamp.bounds();
    if hi <= lo {
        return Err(RasterError::Output {
            path: dest.display().to_string(),
            why: format!("the RGBA clamp [{lo}, {hi}] is empty: give a lower bound below the upper"),
        });
    }
    let red = Dataset::open(bands[0])?;
    let (w, h) = red.raster_size();
    let mut planes = Vec::with_capacity(4);
    let mut alpha = vec![0u8; w * h];
    for (i, path) in bands.iter().enumerate() {
        let src = Dataset::open(path)?;
        if src.raster_size() != (w, h) {
            return Err(RasterError::Output {
                path: dest.display().to_string(),
                why: format!("{} is not on the red band's grid", path.display()),
            });
        }
        let band = src.rasterband(1)?;
        let float32 = band.band_type() == GdalDataType::Float32;
        let nodata = band.no_data_value();
        let data = band.read_as::<f64>((0, 0), (w, h), (w, h), None)?.into_shape_and_vec().1;
        if i == 0 {
            // Opaque where the red band has data (NaN is no data in a float band).
            for (a, &v) in alpha.iter_mut().zip(&data) {
                let valid = !(float32 && v.is_nan()) && nodata.is_none_or(|nd| v != nd);
                *a = if valid { 255 } else { 0 };
            }
        }
        planes.push(data.iter().map(|&v| clamp.stretch(v, float32)).collect());
    }
    planes.push(alpha);
    let mut ds = crate::thumbnail::mem_u8(planes, (w, h))?;
    ds.set_geo_transform(&red.geo_transform()?)?;
    ds.set_spatial_ref(&red.spatial_ref()?)?;
    use ColorInterpretation::*;
    for (i, colour) in [RedBand, GreenBand, BlueBand, AlphaBand].into_iter().enumerate() {
        ds.rasterband(i + 1)?.set_color_interpretation(colour)?;
    }
    copy_to_cog(&ds, dest, opts, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_as_odc_algo_does() {
        let f = Clamp::Float(1.0, 3000.0);
        assert_eq!(f.stretch(0.0, false), 0);
        assert_eq!(f.stretch(1.0, false), 0);
        // 2999 * (255 / 2999) rounds to just below 255: odc-algo's top value is 254 too.
        assert_eq!(f.stretch(3000.0, false), 254);
        assert_eq!(f.stretch(9000.0, false), 254);
        // (1500 - 1) * (255 / 2999) = 127.45...
        assert_eq!(f.stretch(1500.0, false), 127);
        let i = Clamp::Int(0, 3000);
        // 1500 * 255 // 3000 = 127
        assert_eq!(i.stretch(1500.0, false), 127);
        assert_eq!(i.stretch(-999.0, false), 0);
        assert_eq!(i.stretch(3000.0, false), 255);
    }
}
