//! Small whole-file reads through GDAL's virtual file systems, so that STAC documents on
//! S3 (`/vsis3/`) or HTTP (`/vsicurl/`) are read with the same credentials, endpoint and
//! retries as the rasters.

use crate::error::RasterError;
use crate::paths::gdal_path;
use std::ffi::CString;

/// Documents larger than this are refused (a STAC page is kilobytes to a few megabytes).
const MAX_DOCUMENT_BYTES: i64 = 512 << 20;

/// Read a whole text file from a local path, `s3://`, `http(s)://` or `/vsi...` address.
pub fn read_text(href: &str) -> Result<String, RasterError> {
    crate::init_gdal();
    let path = gdal_path(href);
    let c_path = CString::new(path.clone())
        .map_err(|_| RasterError::Input { path: href.into(), why: "address contains a NUL byte".into() })?;
    let mut buf: *mut u8 = std::ptr::null_mut();
    let mut size: gdal_sys::vsi_l_offset = 0;
    // SAFETY: GDAL allocates `buf` (freed below with VSIFree) and writes its length to `size`.
    let ok = unsafe {
        gdal_sys::VSIIngestFile(std::ptr::null_mut(), c_path.as_ptr(), &mut buf, &mut size, MAX_DOCUMENT_BYTES)
    };
    if ok == 0 || buf.is_null() {
        let why = last_gdal_error().unwrap_or_else(|| "not found or not readable".into());
        return Err(RasterError::Input { path: href.into(), why });
    }
    // SAFETY: `buf` holds `size` bytes written by GDAL.
    let bytes = unsafe { std::slice::from_raw_parts(buf, size as usize) }.to_vec();
    unsafe { gdal_sys::VSIFree(buf as *mut std::ffi::c_void) };
    String::from_utf8(bytes).map_err(|_| RasterError::Input { path: href.into(), why: "not UTF-8 text".into() })
}

/// A streaming reader over a GDAL virtual file (`/vsis3/`, `/vsicurl/`, local), for
/// documents too big to read whole (NDJSON of a continent's items).
pub struct VsiReader {
    handle: *mut gdal_sys::VSILFILE,
    href: String,
}

// SAFETY: the handle is used by one thread at a time (`Read` takes `&mut self`).
unsafe impl Send for VsiReader {}

impl VsiReader {
    pub fn open(href: &str) -> Result<VsiReader, RasterError> {
        crate::init_gdal();
        let c_path = CString::new(gdal_path(href))
            .map_err(|_| RasterError::Input { path: href.into(), why: "address contains a NUL byte".into() })?;
        // SAFETY: both arguments are NUL-terminated; a null handle means failure.
        let handle = unsafe { gdal_sys::VSIFOpenL(c_path.as_ptr(), c"rb".as_ptr()) };
        if handle.is_null() {
            let why = last_gdal_error().unwrap_or_else(|| "not found or not readable".into());
            return Err(RasterError::Input { path: href.into(), why });
        }
        Ok(VsiReader { handle, href: href.into() })
    }
}

impl std::io::Read for VsiReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes; the handle is open.
        let n = unsafe { gdal_sys::VSIFReadL(buf.as_mut_ptr() as *mut std::ffi::c_void, 1, buf.len(), self.handle) };
        // A short read before the end of the file is an error (GDAL 3.6 has no VSIFErrorL).
        if n < buf.len() && n == 0 && !buf.is_empty() && unsafe { gdal_sys::VSIFEofL(self.handle) } == 0 {
            let why = last_gdal_error().unwrap_or_else(|| "read error".into());
            return Err(std::io::Error::other(format!("{}: {why}", self.href)));
        }
        Ok(n)
    }
}

impl Drop for VsiReader {
    fn drop(&mut self) {
        // SAFETY: opened by VSIFOpenL and closed once.
        unsafe { gdal_sys::VSIFCloseL(self.handle) };
    }
}

fn last_gdal_error() -> Option<String> {
    // SAFETY: CPLGetLastErrorMsg returns a thread-local, NUL-terminated string.
    let msg = unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) }.to_string_lossy().into_owned();
    (!msg.is_empty()).then_some(msg)
}

/// Free space (MB) on the file system holding `dir` (local or a GDAL virtual path), if
/// GDAL can tell.
pub fn free_space_mb(dir: &std::path::Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.to_string_lossy().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path; GDAL returns -1 when it cannot tell.
    let bytes = unsafe { gdal_sys::VSIGetDiskFreeSpace(c.as_ptr()) };
    (bytes >= 0).then_some(bytes as u64 / (1024 * 1024))
}

/// Set GDAL configuration options (for `/vsis3/` endpoints and the like) unless the
/// environment already sets them.
pub fn set_default_options(options: &[(String, String)]) {
    for (k, v) in options {
        if std::env::var_os(k).is_none() {
            let _ = gdal::config::set_config_option(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_local_text_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, "{\"a\": 1}").unwrap();
        assert_eq!(super::read_text(p.to_str().unwrap()).unwrap(), "{\"a\": 1}");
        let mut streamed = String::new();
        std::io::Read::read_to_string(&mut super::VsiReader::open(p.to_str().unwrap()).unwrap(), &mut streamed)
            .unwrap();
        assert_eq!(streamed, "{\"a\": 1}");
        assert!(super::VsiReader::open("/nonexistent/c.json").is_err());
        let err = super::read_text("/nonexistent/b.json").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/b.json"), "{err}");
    }
}
