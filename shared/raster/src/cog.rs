//! Writing output bands: chunks go into a tiled scratch GeoTIFF on local disk (so memory
//! is bounded by the chunk, not the tile), then one `CreateCopy` to a COG with overviews.

use crate::crs::spatial_ref;
use crate::error::{RasterError, Result};
use crate::warp::last_gdal_error;
use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::{Dataset, DriverManager};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use stratus_core::GeoBox;

/// COG creation settings (odc-stats `cog_opts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CogOptions {
    /// deflate, zstd or lzw.
    pub compress: String,
    pub blocksize: usize,
    /// Overview resampling for continuous bands (categorical bands always use nearest).
    pub overview_resampling: String,
    pub level: Option<u32>,
}

impl Default for CogOptions {
    fn default() -> Self {
        Self { compress: "deflate".into(), blocksize: 512, overview_resampling: "average".into(), level: None }
    }
}

/// One output band being assembled.
pub struct BandWriter {
    scratch: PathBuf,
    ds: Dataset,
    geobox: GeoBox,
    nodata: Option<f64>,
}

impl BandWriter {
    /// Create the scratch file for a band of `geobox` in `dir`, filled with `nodata`.
    pub fn create<T: GdalType>(dir: &Path, name: &str, geobox: &GeoBox, nodata: Option<f64>) -> Result<BandWriter> {
        crate::init_gdal();
        let scratch = dir.join(format!("{name}.scratch.tif"));
        let drv = DriverManager::get_driver_by_name("GTiff")?;
        let opts = RasterCreationOptions::from_iter([
            "TILED=YES",
            "BLOCKXSIZE=256",
            "BLOCKYSIZE=256",
            "COMPRESS=ZSTD",
            "ZSTD_LEVEL=1",
            "BIGTIFF=IF_SAFER",
            "SPARSE_OK=TRUE",
        ]);
        let mut ds = drv
            .create_with_band_type_with_options::<T, _>(&scratch, geobox.width, geobox.height, 1, &opts)
            .map_err(|e| RasterError::Output { path: scratch.display().to_string(), why: e.to_string() })?;
        ds.set_geo_transform(&geobox.geo_transform())?;
        ds.set_spatial_ref(
            &spatial_ref(geobox.epsg).map_err(|e| RasterError::Crs { epsg: geobox.epsg, why: e.to_string() })?,
        )?;
        ds.rasterband(1)?.set_no_data_value(nodata)?;
        Ok(BandWriter { scratch, ds, geobox: *geobox, nodata })
    }

    /// Write a `width` x `height` chunk at pixel offset (`col`, `row`).
    pub fn write<T: GdalType + Copy>(
        &mut self,
        col: usize,
        row: usize,
        width: usize,
        height: usize,
        data: Vec<T>,
    ) -> Result<()> {
        let mut band = self.ds.rasterband(1)?;
        let mut buf = Buffer::new((width, height), data);
        band.write((col as isize, row as isize), (width, height), &mut buf)
            .map_err(|e| RasterError::Output { path: self.scratch.display().to_string(), why: e.to_string() })
    }

    pub fn geobox(&self) -> &GeoBox {
        &self.geobox
    }

    pub fn nodata(&self) -> Option<f64> {
        self.nodata
    }

    /// Close the band and return its scratch GeoTIFF (tiled, compressed): a sub-tile part's
    /// band, uploaded as it is and pasted into its tile's band by [`BandWriter::paste`].
    pub fn finish_scratch(self) -> Result<PathBuf> {
        let BandWriter { scratch, ds, .. } = self;
        drop(ds);
        Ok(scratch)
    }

    /// Copy band 1 of the GeoTIFF at `src` (a part written by [`BandWriter::finish_scratch`])
    /// into this band with its top-left pixel at (`col`, `row`), value for value.
    pub fn paste(&mut self, src: &Path, col: usize, row: usize) -> Result<()> {
        let input = |why: String| RasterError::Input { path: src.display().to_string(), why };
        let ds = Dataset::open(src).map_err(|e| input(e.to_string()))?;
        let (w, h) = ds.raster_size();
        if col + w > self.geobox.width || row + h > self.geobox.height {
            return Err(input(format!(
                "a {w} x {h} part at ({col}, {row}) does not fit a {} x {} band",
                self.geobox.width, self.geobox.height
            )));
        }
        let band = ds.rasterband(1)?;
        macro_rules! copy {
            ($t:ty) => {{
                let buf = band.read_as::<$t>((0, 0), (w, h), (w, h), None).map_err(|e| input(e.to_string()))?;
                self.write(col, row, w, h, buf.into_shape_and_vec().1)
            }};
        }
        use gdal::raster::GdalDataType as D;
        match band.band_type() {
            D::UInt8 => copy!(u8),
            D::UInt16 => copy!(u16),
            D::Int16 => copy!(i16),
            D::Float32 => copy!(f32),
            other => Err(input(format!("unexpected band type {other:?}"))),
        }
    }

    /// Convert to a COG at `dest` (a local path) and delete the scratch file.
    pub fn finish(self, dest: &Path, opts: &CogOptions, categorical: bool) -> Result<()> {
        let scratch = self.scratch.clone();
        self.finish_copy(dest, opts, categorical)?;
        std::fs::remove_file(&scratch)?;
        Ok(())
    }

    fn finish_copy(self, dest: &Path, opts: &CogOptions, categorical: bool) -> Result<()> {
        let drv = DriverManager::get_driver_by_name("COG")?;
        let resampling =
            if categorical { "NEAREST".to_string() } else { opts.overview_resampling.to_ascii_uppercase() };
        let mut co = vec![
            format!("COMPRESS={}", opts.compress.to_ascii_uppercase()),
            format!("BLOCKSIZE={}", opts.blocksize),
            format!("RESAMPLING={resampling}"),
            "OVERVIEWS=IF_NEEDED".to_string(),
            "BIGTIFF=IF_SAFER".to_string(),
        ];
        if let Some(l) = opts.level {
            co.push(format!("LEVEL={l}"));
        }
        if opts.compress.eq_ignore_ascii_case("deflate") || opts.compress.eq_ignore_ascii_case("zstd") {
            co.push("PREDICTOR=YES".to_string());
        }
        let co = RasterCreationOptions::from_iter(co);
        let out_err = |why: String| RasterError::Output { path: dest.display().to_string(), why };
        let copy = self.ds.create_copy(&drv, dest, &co).map_err(|e| out_err(format!("{e} ({})", last_gdal_error())))?;
        drop(copy);
        Ok(())
    }
}

/// Write a whole array as a COG in one step (small rasters: synthetic inputs, mosaics).
pub fn write_cog<T: GdalType + Copy>(
    dest: &Path,
    geobox: &GeoBox,
    data: Vec<T>,
    nodata: Option<f64>,
    opts: &CogOptions,
    categorical: bool,
) -> Result<()> {
    crate::init_gdal();
    let mem = DriverManager::get_driver_by_name("MEM")?;
    let mut ds = mem.create_with_band_type::<T, _>("", geobox.width, geobox.height, 1)?;
    ds.set_geo_transform(&geobox.geo_transform())?;
    ds.set_spatial_ref(
        &spatial_ref(geobox.epsg).map_err(|e| RasterError::Crs { epsg: geobox.epsg, why: e.to_string() })?,
    )?;
    {
        let mut band = ds.rasterband(1)?;
        band.set_no_data_value(nodata)?;
        let mut buf = Buffer::new((geobox.width, geobox.height), data);
        band.write((0, 0), (geobox.width, geobox.height), &mut buf)?;
    }
    let w = BandWriter { scratch: PathBuf::new(), ds, geobox: *geobox, nodata };
    w.finish_copy(dest, opts, categorical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resampling::Resampling;
    use crate::warp::{open_input, read_warped};
    use gdal::Metadata;

    #[test]
    fn chunked_write_makes_a_cog_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let gb = GeoBox { epsg: 32635, left: 500_000.0, top: 100_000.0, resolution: 30.0, width: 1100, height: 1000 };
        let mut w = BandWriter::create::<u16>(dir.path(), "b", &gb, Some(0.0)).unwrap();
        // Two chunks side by side; the rest stays nodata.
        w.write(0, 0, 600, 1000, (0..600_000u32).map(|i| (i % 1000) as u16 + 1).collect()).unwrap();
        w.write(600, 0, 400, 1000, vec![7u16; 400_000]).unwrap();
        let dest = dir.path().join("b.tif");
        w.finish(&dest, &CogOptions::default(), false).unwrap();
        assert!(!dir.path().join("b.scratch.tif").exists());
        let ds = open_input(dest.to_str().unwrap()).unwrap();
        let md = ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE");
        assert_eq!(md.as_deref(), Some("COG"));
        assert!(ds.rasterband(1).unwrap().overview_count().unwrap() >= 1);
        // Read back through the warper on the same grid: identical pixels.
        let back: Vec<u16> = read_warped(&ds, "b", &gb, Resampling::Nearest, 0.0, 0.0).unwrap();
        assert_eq!(back[0], 1);
        assert_eq!(back[599], 600);
        assert_eq!(back[600], 7);
        assert_eq!(back[1099], 0);
        // Row 1, column 0 of the first chunk is element 600 of its buffer.
        assert_eq!(back[1100], 601);
    }

    #[test]
    fn corrupt_input_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.tif");
        std::fs::write(&p, b"II*\0not really a tiff").unwrap();
        let e = open_input(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("broken.tif"), "{e}");
    }
}
