//! Writing output bands: chunks go into a tiled scratch GeoTIFF on local disk (so memory
//! is bounded by the chunk, not the tile), then one `CreateCopy` to a COG with overviews.

use crate::crs::spatial_ref;
use crate::error::{RasterError, Result};
use crate::warp::last_gdal_error;
use gdal::raster::{Buffer, GdalType, RasterCreationOptions};
use gdal::{Dataset, DriverManager};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stratus_core::GeoBox;

/// COG creation settings: odc-stats' `cog_opts` (see [`CogOptions::from_settings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CogOptions {
    /// deflate, zstd, lzw, webp, ... (GDAL's COG driver's `COMPRESS`).
    pub compress: String,
    pub blocksize: usize,
    /// Overview resampling for continuous bands (categorical bands always use nearest).
    pub overview_resampling: String,
    /// Compression level (odc-stats' `zlevel`).
    pub level: Option<u32>,
    /// Number of overview levels (odc-stats' `overview_levels: [2, 4, 8, ...]`).
    pub overview_count: Option<u32>,
    /// Block size of the overviews (odc-stats' `ovr_blocksize`).
    pub overview_blocksize: Option<usize>,
    /// Any other creation option of GDAL's COG driver, by its GDAL name.
    pub extra: BTreeMap<String, String>,
}

impl Default for CogOptions {
    fn default() -> Self {
        Self {
            compress: "deflate".into(),
            blocksize: 512,
            overview_resampling: "average".into(),
            level: None,
            overview_count: None,
            overview_blocksize: None,
            extra: BTreeMap::new(),
        }
    }
}

/// What a `cog_opts` key is wrong with: the key and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cog_opts: {key}: {why}")]
pub struct CogOptionError {
    pub key: String,
    pub why: String,
}

impl CogOptions {
    /// The names one setting goes by (odc-stats' and GDAL's), `key` among them.
    pub fn aliases(key: &str) -> &'static [&'static str] {
        const GROUPS: [&[&str]; 3] = [
            &["zlevel", "level", "zstd_level"],
            &["webp_level", "jpeg_quality", "quality"],
            &["overview_resampling", "resampling"],
        ];
        GROUPS.into_iter().find(|g| g.contains(&key.to_ascii_lowercase().as_str())).unwrap_or(&[])
    }

    /// From `cog_opts` settings as odc-stats' run configs give them: `compress`,
    /// `blocksize`, `zlevel` (or `level`), `ovr_blocksize`, `overview_levels` (2, 4, 8, ...:
    /// GDAL's COG driver halves each level, so only their number can be chosen),
    /// `overview_resampling`, the GeoTIFF driver's names odc-stats passes through
    /// (`predictor: 2`, `webp_level`, `jpeg_quality`, `zstd_level`), and any creation
    /// option of GDAL's COG driver (`overview_compress: zstd`, `num_threads: 2`). Missing
    /// keys take the defaults; an unknown key is named with the valid ones.
    pub fn from_settings(settings: &BTreeMap<String, serde_json::Value>) -> Result<CogOptions, CogOptionError> {
        let mut o = CogOptions::default();
        for (key, value) in settings {
            let bad = |why: String| CogOptionError { key: key.clone(), why };
            let text = || match value {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Bool(b) => Ok(if *b { "YES" } else { "NO" }.to_string()),
                other => Err(bad(format!("{other} is not a value GDAL takes (a string, number or boolean)"))),
            };
            let number = || {
                value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| bad(format!("{value} is not a whole number")))
            };
            match key.to_ascii_lowercase().as_str() {
                "compress" => o.compress = text()?.to_ascii_lowercase(),
                "blocksize" => {
                    let b = number()? as usize;
                    if b == 0 || !b.is_multiple_of(16) {
                        return Err(bad(format!("{b}: a block size is a positive multiple of 16")));
                    }
                    o.blocksize = b;
                }
                "overview_resampling" | "resampling" => o.overview_resampling = text()?.to_ascii_lowercase(),
                "zlevel" | "level" | "zstd_level" => {
                    o.level = if value.is_null() { None } else { Some(number()? as u32) }
                }
                "ovr_blocksize" => {
                    let b = number()? as usize;
                    if !b.is_power_of_two() || b < 16 {
                        return Err(bad(format!("{b}: an overview block size is a power of two, at least 16")));
                    }
                    o.overview_blocksize = Some(b);
                }
                "overview_levels" => {
                    let levels: Vec<u64> = value
                        .as_array()
                        .and_then(|a| a.iter().map(|v| v.as_u64()).collect())
                        .ok_or_else(|| bad(format!("{value} is not a list of levels ([2, 4, 8, 16, 32])")))?;
                    if levels.iter().enumerate().any(|(i, l)| *l != 2u64 << i) {
                        return Err(bad(format!(
                            "{levels:?}: GDAL's COG driver makes each overview half the previous one, so the levels are 2, 4, 8, ... (give their number of them)"
                        )));
                    }
                    o.overview_count = Some(levels.len() as u32);
                }
                "predictor" => {
                    let p = match text()?.to_ascii_uppercase().as_str() {
                        "1" | "NO" | "FALSE" => "NO",
                        "2" | "YES" | "TRUE" | "STANDARD" => "STANDARD",
                        "3" | "FLOATING_POINT" => "FLOATING_POINT",
                        other => {
                            return Err(bad(format!("{other}: one of 1, 2, 3, NO, YES, STANDARD, FLOATING_POINT")))
                        }
                    };
                    o.extra.insert("PREDICTOR".into(), p.into());
                }
                "webp_level" | "jpeg_quality" | "quality" => {
                    o.extra.insert("QUALITY".into(), number()?.to_string());
                }
                other => {
                    let name = other.to_ascii_uppercase();
                    let valid = cog_creation_options();
                    if !valid.contains(&name) || RESERVED.contains(&name.as_str()) {
                        let choices: Vec<&str> =
                            valid.iter().map(String::as_str).filter(|o| !RESERVED.contains(o)).collect();
                        return Err(bad(format!(
                            "not a setting: give compress, blocksize, zlevel, ovr_blocksize, overview_levels, overview_resampling, predictor, or one of GDAL's COG options ({})",
                            choices.join(", ").to_ascii_lowercase()
                        )));
                    }
                    o.extra.insert(name, text()?);
                }
            }
        }
        Ok(o)
    }
}

/// COG options Stratus sets itself (the tile's grid, its overviews): not settable.
const RESERVED: [&str; 8] = [
    "TILING_SCHEME",
    "ZOOM_LEVEL",
    "ZOOM_LEVEL_STRATEGY",
    "TARGET_SRS",
    "RES",
    "EXTENT",
    "ALIGNED_LEVELS",
    "OVERVIEWS",
];

/// The creation options GDAL's COG driver knows (its `DMD_CREATIONOPTIONLIST`).
fn cog_creation_options() -> Vec<String> {
    use gdal::Metadata;
    crate::init_gdal();
    let Ok(driver) = DriverManager::get_driver_by_name("COG") else { return vec![] };
    let xml = driver.metadata_item("DMD_CREATIONOPTIONLIST", "").unwrap_or_default();
    xml.split("<Option name=")
        .skip(1)
        .filter_map(|o| {
            let quote = o.chars().next()?;
            o[1..].split(quote).next().map(str::to_string)
        })
        .collect()
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
        copy_to_cog(&self.ds, dest, opts, categorical)
    }
}

/// Copy a raster (every band) to a COG at `dest` with `opts` (`categorical`: nearest
/// overviews).
pub(crate) fn copy_to_cog(ds: &Dataset, dest: &Path, opts: &CogOptions, categorical: bool) -> Result<()> {
    {
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
        if let Some(n) = opts.overview_count {
            co.push(format!("OVERVIEW_COUNT={n}"));
        }
        let compress = opts.compress.to_ascii_lowercase();
        if !opts.extra.contains_key("PREDICTOR") && ["deflate", "zstd", "lzw"].contains(&compress.as_str()) {
            co.push("PREDICTOR=YES".to_string());
        }
        co.extend(opts.extra.iter().map(|(k, v)| format!("{k}={v}")));
        let co = RasterCreationOptions::from_iter(co);
        let out_err = |why: String| RasterError::Output { path: dest.display().to_string(), why };
        // The COG driver builds its overviews through the GeoTIFF driver, which takes their
        // block size from this option (set for this thread only).
        let ovr_blocksize = opts.overview_blocksize.map(|b| b.to_string());
        if let Some(b) = &ovr_blocksize {
            gdal::config::set_thread_local_config_option("GDAL_TIFF_OVR_BLOCKSIZE", b)?;
        }
        let copy = ds.create_copy(&drv, dest, &co);
        if ovr_blocksize.is_some() {
            gdal::config::clear_thread_local_config_option("GDAL_TIFF_OVR_BLOCKSIZE")?;
        }
        drop(copy.map_err(|e| out_err(format!("{e} ({})", last_gdal_error())))?);
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

    /// odc-stats' `cog_opts` reach the file: overview count and block size, compression
    /// and predictor, and a COG driver option passed by its GDAL name.
    #[test]
    fn cog_settings_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gb = GeoBox { epsg: 32635, left: 500_000.0, top: 100_000.0, resolution: 30.0, width: 2048, height: 2048 };
        let data: Vec<u16> = (0..2048 * 2048u32).map(|i| (i % 4096) as u16).collect();
        let settings: BTreeMap<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "compress": "zstd", "zlevel": 9, "blocksize": 256, "ovr_blocksize": 128,
            "overview_levels": [2, 4], "predictor": 2, "overview_compress": "deflate"
        }))
        .unwrap();
        let opts = CogOptions::from_settings(&settings).unwrap();
        let dest = dir.path().join("c.tif");
        write_cog(&dest, &gb, data, Some(0.0), &opts, false).unwrap();
        let ds = Dataset::open(&dest).unwrap();
        let band = ds.rasterband(1).unwrap();
        assert_eq!(band.block_size(), (256, 256));
        assert_eq!(band.overview_count().unwrap(), 2, "overview_levels [2, 4]");
        assert_eq!(band.overview(0).unwrap().block_size(), (128, 128), "ovr_blocksize");
        assert_eq!(ds.metadata_item("COMPRESSION", "IMAGE_STRUCTURE").as_deref(), Some("ZSTD"));
        assert_eq!(ds.metadata_item("PREDICTOR", "IMAGE_STRUCTURE").as_deref(), Some("2"));
        // The GDAL option is kept for this thread only.
        assert_eq!(gdal::config::get_thread_local_config_option("GDAL_TIFF_OVR_BLOCKSIZE", "unset").unwrap(), "unset");
        let bad: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({"tiling_scheme": "x"})).unwrap();
        let e = CogOptions::from_settings(&bad).unwrap_err().to_string();
        assert!(e.contains("tiling_scheme") && e.contains("not a setting"), "{e}");
    }
}
