//! Warping many rasters into one coarse grid with GDAL's warper (`gdalwarp` as a library).
//! Sources go in batches into a tiled scratch GeoTIFF (so open files and memory stay
//! bounded whatever the number of tiles: the warper works in blocks within `-wm`), each
//! read at the overview level closest to the target resolution; the result is then
//! copied to a COG with overviews.

use crate::error::{RasterError, Result};
use gdal::raster::RasterCreationOptions;
use gdal::{Dataset, DriverManager};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use stratus_core::GeoBox;

/// Sources warped per GDALWarp call (and so open at once).
const SOURCES_PER_BATCH: usize = 64;

/// A source that could not be read, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableSource {
    pub path: String,
    pub why: String,
}

/// Warp `sources` (GDAL paths) into a COG at `dest` covering `geobox`. `resampling` is a
/// gdalwarp method (`average`, `nearest`, `mode`, ...). Unreadable sources are skipped
/// and returned (their area stays nodata). Errors if no source could be read.
pub fn warp_sources_to_cog(
    sources: &[String],
    dest: &Path,
    geobox: &GeoBox,
    resampling: &str,
    nodata: Option<f64>,
) -> Result<Vec<UnreadableSource>> {
    crate::init_gdal();
    let out_err = |why: String| RasterError::Output { path: dest.display().to_string(), why };
    let scratch: PathBuf = dest.with_extension("scratch.tif");
    let mut canvas: Option<Dataset> = None;
    let mut unreadable = Vec::new();
    for batch in sources.chunks(SOURCES_PER_BATCH) {
        let mut open = Vec::with_capacity(batch.len());
        for s in batch {
            match Dataset::open(s) {
                Ok(d) if d.raster_count() >= 1 => open.push(d),
                Ok(_) => unreadable.push(UnreadableSource { path: s.clone(), why: "has no raster bands".into() }),
                Err(e) => {
                    crate::warp::forget_cached(s);
                    unreadable.push(UnreadableSource { path: s.clone(), why: e.to_string() })
                }
            }
        }
        if open.is_empty() {
            continue;
        }
        if canvas.is_none() {
            let band = open[0].rasterband(1)?;
            canvas = Some(create_canvas(&scratch, geobox, band.band_type(), nodata.or(band.no_data_value()))?);
        }
        let dst = canvas.as_ref().expect("created above");
        warp_into(&open, dst, resampling).map_err(out_err)?;
    }
    let Some(canvas) = canvas else {
        return Err(out_err(format!("none of the {} sources could be read", sources.len())));
    };
    let overview_resampling = if resampling == "average" { "AVERAGE" } else { "NEAREST" };
    let opts = RasterCreationOptions::from_iter([
        "COMPRESS=DEFLATE",
        "BLOCKSIZE=512",
        &format!("OVERVIEW_RESAMPLING={overview_resampling}"),
        "NUM_THREADS=ALL_CPUS",
    ]);
    let cog = DriverManager::get_driver_by_name("COG")?;
    canvas.create_copy(&cog, dest, &opts)?;
    drop(canvas);
    let _ = std::fs::remove_file(&scratch);
    Ok(unreadable)
}

fn create_canvas(
    path: &Path,
    geobox: &GeoBox,
    dtype: gdal::raster::GdalDataType,
    nodata: Option<f64>,
) -> Result<Dataset> {
    // The band type is only known at run time: create through the C API's type code.
    let driver = DriverManager::get_driver_by_name("GTiff")?;
    let c_path = CString::new(path.display().to_string()).expect("no NUL in scratch path");
    let c_opts: Vec<CString> = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=LZW"]
        .iter()
        .map(|o| CString::new(*o).unwrap())
        .collect();
    let mut argv: Vec<*mut std::os::raw::c_char> = c_opts.iter().map(|o| o.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: valid driver handle, NUL-terminated path and option list; the handle is
    // owned by the returned Dataset.
    let handle = unsafe {
        gdal_sys::GDALCreate(
            driver.c_driver(),
            c_path.as_ptr(),
            geobox.width as i32,
            geobox.height as i32,
            1,
            dtype as u32,
            argv.as_mut_ptr(),
        )
    };
    if handle.is_null() {
        return Err(RasterError::Output { path: path.display().to_string(), why: crate::warp::last_gdal_error() });
    }
    // SAFETY: a fresh, owned dataset handle.
    let mut ds = unsafe { Dataset::from_c_dataset(handle) };
    ds.set_geo_transform(&geobox.geo_transform())?;
    ds.set_spatial_ref(&crate::crs::spatial_ref(geobox.epsg)?)?;
    let mut band = ds.rasterband(1)?;
    if let Some(nd) = nodata {
        band.set_no_data_value(Some(nd))?;
        band.fill(nd, None)?;
    }
    Ok(ds)
}

/// Warp opened sources into an existing destination.
fn warp_into(sources: &[Dataset], dst: &Dataset, resampling: &str) -> std::result::Result<(), String> {
    let args = ["-r", resampling, "-ovr", "AUTO", "-wm", "256", "-multi", "-wo", "NUM_THREADS=ALL_CPUS", "-q"];
    let c_args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut std::os::raw::c_char> = c_args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let mut handles: Vec<gdal_sys::GDALDatasetH> = sources.iter().map(|d| d.c_dataset()).collect();
    // SAFETY: argv is NULL-terminated and outlives the options; the source and destination
    // handles stay open for the whole call (owned by the caller).
    unsafe {
        let opts = gdal_sys::GDALWarpAppOptionsNew(argv.as_mut_ptr(), std::ptr::null_mut());
        if opts.is_null() {
            return Err("invalid warp options".into());
        }
        let mut usage_error: std::os::raw::c_int = 0;
        let out = gdal_sys::GDALWarp(
            std::ptr::null(),
            dst.c_dataset(),
            handles.len() as std::os::raw::c_int,
            handles.as_mut_ptr(),
            opts,
            &mut usage_error,
        );
        gdal_sys::GDALWarpAppOptionsFree(opts);
        if out.is_null() {
            let msg = CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()).to_string_lossy().into_owned();
            return Err(if msg.is_empty() { "GDAL warp failed".into() } else { msg });
        }
    }
    Ok(())
}
