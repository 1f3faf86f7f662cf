//! Warping many rasters into one coarse grid with GDAL's warper (`gdalwarp` as a library):
//! it reads each source at the overview level closest to the target resolution and keeps
//! its memory to a bounded working buffer whatever the number of sources.

use crate::error::{RasterError, Result};
use std::ffi::{CStr, CString};
use std::path::Path;
use stratus_core::GeoBox;

/// Warp `sources` (GDAL paths) into a new COG at `dest` covering `geobox`.
/// `resampling` is a gdalwarp method name (`average`, `nearest`, `mode`, ...).
pub fn warp_sources_to_cog(
    sources: &[String],
    dest: &Path,
    geobox: &GeoBox,
    resampling: &str,
    nodata: Option<f64>,
) -> Result<()> {
    crate::init_gdal();
    if sources.is_empty() {
        return Err(RasterError::Output { path: dest.display().to_string(), why: "no sources to mosaic".into() });
    }
    let b = geobox.bounds();
    let mut args: Vec<String> = vec![
        "-of".into(),
        "COG".into(),
        "-t_srs".into(),
        format!("EPSG:{}", geobox.epsg),
        "-te".into(),
        b.min_x.to_string(),
        b.min_y.to_string(),
        b.max_x.to_string(),
        b.max_y.to_string(),
        "-ts".into(),
        geobox.width.to_string(),
        geobox.height.to_string(),
        "-r".into(),
        resampling.into(),
        "-ovr".into(),
        "AUTO".into(),
        "-wm".into(),
        "256".into(),
        "-co".into(),
        "COMPRESS=DEFLATE".into(),
        "-co".into(),
        "BLOCKSIZE=512".into(),
        "-co".into(),
        format!("OVERVIEW_RESAMPLING={}", if resampling == "average" { "AVERAGE" } else { "NEAREST" }),
        "-overwrite".into(),
        "-q".into(),
    ];
    if let Some(nd) = nodata {
        args.extend(["-dstnodata".into(), nd.to_string()]);
    }
    let c_args: Vec<CString> = args.iter().map(|a| CString::new(a.as_str()).unwrap()).collect();
    let mut argv: Vec<*mut std::os::raw::c_char> = c_args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let err = |why: String| RasterError::Output { path: dest.display().to_string(), why };
    let datasets: Vec<gdal::Dataset> = sources
        .iter()
        .map(|s| gdal::Dataset::open(s).map_err(|e| RasterError::Input { path: s.clone(), why: e.to_string() }))
        .collect::<Result<_>>()?;
    let mut handles: Vec<gdal_sys::GDALDatasetH> = datasets.iter().map(|d| d.c_dataset()).collect();
    let c_dest = CString::new(dest.display().to_string()).map_err(|_| err("path contains NUL".into()))?;
    // SAFETY: argv is NULL-terminated and outlives the options; the source handles stay
    // open (owned by `datasets`) for the whole call; the result handle is closed here.
    unsafe {
        let opts = gdal_sys::GDALWarpAppOptionsNew(argv.as_mut_ptr(), std::ptr::null_mut());
        if opts.is_null() {
            return Err(err("invalid warp options".into()));
        }
        let mut usage_error: std::os::raw::c_int = 0;
        let out = gdal_sys::GDALWarp(
            c_dest.as_ptr(),
            std::ptr::null_mut(),
            handles.len() as std::os::raw::c_int,
            handles.as_mut_ptr(),
            opts,
            &mut usage_error,
        );
        gdal_sys::GDALWarpAppOptionsFree(opts);
        if out.is_null() {
            let msg = CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()).to_string_lossy().into_owned();
            return Err(err(if msg.is_empty() { "GDAL warp failed".into() } else { msg }));
        }
        gdal_sys::GDALClose(out);
    }
    Ok(())
}
