//! Thumbnails of output tiles (odc-stats' `_thumbnail.jpg`, eodatasets3's size: a tenth
//! of the tile's on each side): bands read at that size, averaged, and an RGB JPEG.

use crate::error::{RasterError, Result};
use gdal::raster::{RasterCreationOptions, ResampleAlg};
use gdal::{Dataset, DriverManager};
use std::path::Path;

/// eodatasets3's `out_scale`: a thumbnail is a tenth of its image on each side.
pub const THUMBNAIL_SCALE: usize = 10;

/// A single-band raster read at (width, height) with average resampling; NaN where it
/// has no data.
pub fn read_scaled(path: &Path, size: (usize, usize)) -> Result<Vec<f64>> {
    crate::init_gdal();
    let ds = Dataset::open(path)?;
    let band = ds.rasterband(1)?;
    let nodata = band.no_data_value();
    let full = ds.raster_size();
    let data = band.read_as::<f64>((0, 0), full, size, Some(ResampleAlg::Average))?.into_shape_and_vec().1;
    Ok(data.into_iter().map(|v| if nodata.is_some_and(|nd| v == nd) { f64::NAN } else { v }).collect())
}

/// The size of a raster's thumbnail.
pub fn thumbnail_size(path: &Path) -> Result<(usize, usize)> {
    crate::init_gdal();
    let (w, h) = Dataset::open(path)?.raster_size();
    Ok((w.div_ceil(THUMBNAIL_SCALE).max(1), h.div_ceil(THUMBNAIL_SCALE).max(1)))
}

/// An in-memory 8-bit raster of (width, height) holding `planes` as its bands, in order:
/// what thumbnails, previews and RGBA bands are drawn into before their driver writes them.
pub(crate) fn mem_u8(planes: Vec<Vec<u8>>, size: (usize, usize)) -> Result<Dataset> {
    let (w, h) = size;
    let ds = DriverManager::get_driver_by_name("MEM")?.create_with_band_type::<u8, _>("", w, h, planes.len())?;
    for (i, plane) in planes.into_iter().enumerate() {
        ds.rasterband(i + 1)?.write((0, 0), (w, h), &mut gdal::raster::Buffer::new((w, h), plane))?;
    }
    Ok(ds)
}

/// Write red, green and blue planes of (width, height) as a JPEG.
pub fn write_jpeg(rgb: [Vec<u8>; 3], size: (usize, usize), dest: &Path) -> Result<()> {
    crate::init_gdal();
    let (w, h) = size;
    if rgb.iter().any(|p| p.len() != w * h) {
        return Err(RasterError::Output { path: dest.display().to_string(), why: "planes of the wrong size".into() });
    }
    let ds = mem_u8(rgb.into(), size)?;
    let jpeg = DriverManager::get_driver_by_name("JPEG")?;
    let mut opts = RasterCreationOptions::new();
    opts.set_name_value("QUALITY", "85")?;
    ds.create_copy(&jpeg, dest, &opts)?;
    // The driver's sidecar (.aux.xml) is of no use next to a picture.
    let _ = std::fs::remove_file(dest.with_extension("jpg.aux.xml"));
    Ok(())
}
