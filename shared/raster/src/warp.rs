//! Reading one band of an input, reprojected and resampled into an output grid window.

use crate::crs::spatial_ref;
use crate::error::{RasterError, Result};
use crate::resampling::Resampling;
use gdal::raster::GdalType;
use gdal::{Dataset, DriverManager, Metadata};
use std::ffi::CStr;
use std::ptr::{null, null_mut};
use stratus_core::GeoBox;

fn gdal_alg(r: Resampling) -> gdal_sys::GDALResampleAlg::Type {
    use gdal_sys::GDALResampleAlg::*;
    match r {
        Resampling::Nearest => GRA_NearestNeighbour,
        Resampling::Bilinear => GRA_Bilinear,
        Resampling::Cubic => GRA_Cubic,
        Resampling::Average => GRA_Average,
        Resampling::Mode => GRA_Mode,
    }
}

pub(crate) fn last_gdal_error() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a thread-local, NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) };
    let s = msg.to_string_lossy().trim().to_string();
    if s.is_empty() {
        "unknown GDAL error".into()
    } else {
        s
    }
}

/// Drop GDAL's cached bytes and metadata of a remote file that failed, so that a retry in
/// this process (a warm Lambda) reads the object afresh (it may have been replaced).
pub fn forget_cached(path: &str) {
    if path.starts_with("/vsi") {
        if let Ok(c) = std::ffi::CString::new(path) {
            // SAFETY: a NUL-terminated path; GDAL copies what it needs.
            unsafe { gdal_sys::VSICurlPartialClearCache(c.as_ptr()) };
        }
    }
}

/// The GDAL drivers inputs open with: `STRATUS_INPUT_DRIVERS` (comma-separated), by
/// default GTiff alone (which reads COGs). Formats that point at other files (VRT, and
/// most multi-file formats) are refused unless listed, so an allowed path cannot make GDAL
/// read one that is not.
pub fn input_drivers() -> &'static [String] {
    static DRIVERS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    DRIVERS.get_or_init(|| {
        let list = std::env::var(INPUT_DRIVERS_ENV).unwrap_or_default();
        let list: Vec<String> = list.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_string).collect();
        if list.is_empty() {
            vec!["GTiff".to_string()]
        } else {
            list
        }
    })
}

pub const INPUT_DRIVERS_ENV: &str = "STRATUS_INPUT_DRIVERS";

/// Open an input raster, with an error that names it. Only the allowed drivers may open
/// it ([`input_drivers`]); a TIFF that names an external overview file in its own
/// metadata (which GDAL would open with any driver) is refused.
pub fn open_input(path: &str) -> Result<Dataset> {
    crate::init_gdal();
    let drivers = input_drivers();
    let names: Vec<&str> = drivers.iter().map(String::as_str).collect();
    let opts = gdal::DatasetOptions {
        open_flags: gdal::GdalOpenFlags::GDAL_OF_RASTER
            | gdal::GdalOpenFlags::GDAL_OF_READONLY
            | gdal::GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
        allowed_drivers: Some(&names),
        ..Default::default()
    };
    let ds = Dataset::open_ex(path, opts).map_err(|e| {
        forget_cached(path);
        RasterError::Input {
            path: path.to_string(),
            why: format!("{e} (inputs open only with the GDAL drivers {INPUT_DRIVERS_ENV}={})", drivers.join(",")),
        }
    })?;
    if let Some(file) = ds.metadata_item("OVERVIEW_FILE", "OVERVIEWS") {
        return Err(RasterError::Refused {
            path: path.into(),
            why: format!(
                "its metadata points GDAL at an external overview file ('{}'), which would be opened outside the allow-list",
                stratus_core::redact::redact(&file)
            ),
        });
    }
    if ds.raster_count() < 1 {
        return Err(RasterError::Input { path: path.into(), why: "has no raster bands".into() });
    }
    if ds.spatial_ref().is_err() {
        return Err(RasterError::Input { path: path.into(), why: "has no CRS".into() });
    }
    Ok(ds)
}

/// Attempts at reading one remote input before its failure counts.
const REMOTE_READ_ATTEMPTS: u32 = 3;

/// Run `read` (which opens and reads `path`), retrying a remote input (S3, HTTP) with
/// GDAL's cache of it cleared. GDAL retries HTTP 5xx and timeouts itself, but not a
/// dropped connection, and it takes a truncated body for a short file; either then
/// surfaces as an error that looks like a bad file ("not recognized", "read error"). A file
/// that is really bad fails every attempt and is reported as it was. `name` (the href) is
/// logged without its query string. A remote read that still fails because of the network
/// (what GDAL reported while reading, see `gdal_errors`) is [`RasterError::Unavailable`].
pub fn with_remote_retries<T>(path: &str, name: &str, mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let remote = crate::paths::is_remote(path);
    let mut attempt = 1;
    loop {
        crate::gdal_errors::clear();
        match read() {
            Err(e) if remote && attempt < REMOTE_READ_ATTEMPTS => {
                tracing::warn!(
                    input = %stratus_core::redact::redact(name),
                    attempt,
                    error = %stratus_core::redact::redact(&e.to_string()),
                    "input read failed; retrying it with GDAL's cache of it cleared"
                );
                forget_cached(path);
                std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
                attempt += 1;
            }
            Err(e @ (RasterError::Input { .. } | RasterError::Gdal(_)))
                if remote && crate::gdal_errors::network_at_fault() =>
            {
                let why = match e {
                    RasterError::Input { why, .. } => why,
                    other => other.to_string(),
                };
                return Err(RasterError::Unavailable { path: name.into(), why });
            }
            other => return other,
        }
    }
}

/// Open `path` and read it with `read`, with [`with_remote_retries`].
pub fn read_input_with_retries<T>(path: &str, name: &str, read: impl Fn(&Dataset) -> Result<T>) -> Result<T> {
    with_remote_retries(path, name, || open_input(path).and_then(|src| read(&src)))
}

/// Read band 1 of `src` into `dst`'s pixel grid with GDAL's warper, once per band: the
/// reference the tile read path ([`crate::read`]) is measured and tested against. Pixels the input does not cover (or
/// covers with its own nodata) are `nodata`. `max_error` is the transformer's tolerance
/// in pixels (0 = exact per-pixel reprojection; gdalwarp's default is 0.125).
pub fn read_warped<T: GdalType + Copy + Default>(
    src: &Dataset,
    src_name: &str,
    dst: &GeoBox,
    resampling: Resampling,
    nodata: f64,
    max_error: f64,
) -> Result<Vec<T>> {
    let input_err = |why: String| RasterError::Input { path: src_name.to_string(), why };
    let mem = DriverManager::get_driver_by_name("MEM")?;
    let mut out = mem.create_with_band_type::<T, _>("", dst.width, dst.height, 1)?;
    out.set_geo_transform(&dst.geo_transform())?;
    out.set_spatial_ref(&spatial_ref(dst.epsg).map_err(|e| RasterError::Crs { epsg: dst.epsg, why: e.to_string() })?)?;
    {
        let mut band = out.rasterband(1)?;
        band.set_no_data_value(Some(nodata))?;
        band.fill(nodata, None)?;
    }
    // SAFETY: both handles are valid open datasets for the duration of the call; null WKT
    // means "use the datasets' own CRS"; null options take GDAL's defaults (which pick up
    // the source's nodata value).
    let rv = unsafe {
        gdal_sys::CPLErrorReset();
        gdal_sys::GDALReprojectImage(
            src.c_dataset(),
            null(),
            out.c_dataset(),
            null(),
            gdal_alg(resampling),
            0.0,
            max_error,
            None,
            null_mut(),
            null_mut(),
        )
    };
    if rv != gdal_sys::CPLErr::CE_None {
        return Err(input_err(last_gdal_error()));
    }
    let band = out.rasterband(1)?;
    let buf = band.read_as::<T>((0, 0), (dst.width, dst.height), (dst.width, dst.height), None)?;
    Ok(buf.into_shape_and_vec().1)
}
