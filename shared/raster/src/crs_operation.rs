//! Which coordinate operation reprojects the inputs, as odc-stats chooses it from its
//! plugins' `transform_code` and `area_of_interest` (`odc.stats.io.choose_transform_path`,
//! with pyproj's `TransformerGroup`): PROJ's candidate operations from the source CRS to
//! the destination's, for an area when one is given; the first of them, or the one whose
//! steps include the named transformation. The operation's PROJ string is then what
//! GDAL's transform runs (its `COORDINATE_OPERATION`). Without either setting, GDAL (PROJ)
//! picks per point, as odc-stats leaves it to do.

use crate::error::{RasterError, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// odc-stats' `transform_code` ("EPSG:9688": a transformation the operation must use) and
/// `area_of_interest` (west, south, east, north in degrees).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrsOperation {
    pub transform_code: Option<String>,
    pub area_of_interest: Option<[f64; 4]>,
}

impl CrsOperation {
    /// Neither setting: PROJ's default.
    pub fn is_default(&self) -> bool {
        self.transform_code.is_none() && self.area_of_interest.is_none()
    }

    /// A key for caches of transforms.
    pub fn key(&self) -> String {
        format!("{:?}/{:?}", self.transform_code, self.area_of_interest)
    }

    /// The PROJ string of the operation from `src` to `dst` (each `EPSG:n` or WKT), None
    /// for PROJ's default. An unknown `transform_code` among the candidates is an error
    /// naming them.
    pub fn choose(&self, src: &str, dst: &str) -> Result<Option<String>> {
        if self.is_default() {
            return Ok(None);
        }
        let err = |why: String| RasterError::Input { path: format!("{src} -> {dst}"), why };
        let candidates = candidate_operations(src, dst, self.area_of_interest).map_err(err)?;
        let Some(code) = &self.transform_code else {
            return candidates.into_iter().next().map(|c| Some(c.proj)).ok_or_else(|| {
                err("PROJ has no coordinate operation between them (area_of_interest too narrow?)".into())
            });
        };
        let (authority, number) = code
            .split_once(':')
            .ok_or_else(|| err(format!("transform_code '{code}': give AUTHORITY:CODE, e.g. EPSG:9688")))?;
        let found = candidates.iter().find(|c| {
            c.transformations.iter().any(|(a, n)| a.contains(&authority.to_ascii_uppercase()) && n == number)
        });
        match found {
            Some(c) => Ok(Some(c.proj.clone())),
            None => {
                let named: Vec<String> =
                    candidates.iter().flat_map(|c| c.transformations.iter().map(|(a, n)| format!("{a}:{n}"))).collect();
                Err(err(format!(
                    "no coordinate operation uses transform_code {code}; the candidates' transformations: {}",
                    if named.is_empty() { "none".to_string() } else { named.join(", ") }
                )))
            }
        }
    }
}

/// One candidate operation: its PROJ string and the ids of its transformation steps.
struct Candidate {
    proj: String,
    transformations: Vec<(String, String)>,
}

#[allow(non_camel_case_types)]
type PJ_CONTEXT = c_void;
#[allow(non_camel_case_types)]
type PJ = c_void;
#[allow(non_camel_case_types)]
type PJ_OBJ_LIST = c_void;
#[allow(non_camel_case_types)]
type PJ_OPERATION_FACTORY_CONTEXT = c_void;

/// PROJ's `PROJ_GRID_AVAILABILITY_IGNORED` and `PROJ_SPATIAL_CRITERION_PARTIAL_INTERSECTION`
/// (pyproj's TransformerGroup settings), and `PJ_PROJ_5`.
const GRID_AVAILABILITY_IGNORED: c_int = 2;
const SPATIAL_CRITERION_PARTIAL_INTERSECTION: c_int = 1;
const PJ_PROJ_5: c_int = 0;

// PROJ's C API (proj.h), linked as GDAL links it.
#[link(name = "proj")]
extern "C" {
    fn proj_context_create() -> *mut PJ_CONTEXT;
    fn proj_context_destroy(ctx: *mut PJ_CONTEXT) -> *mut PJ_CONTEXT;
    fn proj_create(ctx: *mut PJ_CONTEXT, definition: *const c_char) -> *mut PJ;
    fn proj_destroy(pj: *mut PJ) -> *mut PJ;
    fn proj_create_operation_factory_context(
        ctx: *mut PJ_CONTEXT,
        authority: *const c_char,
    ) -> *mut PJ_OPERATION_FACTORY_CONTEXT;
    fn proj_operation_factory_context_destroy(f: *mut PJ_OPERATION_FACTORY_CONTEXT);
    fn proj_operation_factory_context_set_area_of_interest(
        ctx: *mut PJ_CONTEXT,
        f: *mut PJ_OPERATION_FACTORY_CONTEXT,
        west: f64,
        south: f64,
        east: f64,
        north: f64,
    );
    fn proj_operation_factory_context_set_spatial_criterion(
        ctx: *mut PJ_CONTEXT,
        f: *mut PJ_OPERATION_FACTORY_CONTEXT,
        criterion: c_int,
    );
    fn proj_operation_factory_context_set_grid_availability_use(
        ctx: *mut PJ_CONTEXT,
        f: *mut PJ_OPERATION_FACTORY_CONTEXT,
        use_: c_int,
    );
    fn proj_create_operations(
        ctx: *mut PJ_CONTEXT,
        src: *const PJ,
        dst: *const PJ,
        f: *const PJ_OPERATION_FACTORY_CONTEXT,
    ) -> *mut PJ_OBJ_LIST;
    fn proj_list_get_count(list: *const PJ_OBJ_LIST) -> c_int;
    fn proj_list_get(ctx: *mut PJ_CONTEXT, list: *const PJ_OBJ_LIST, index: c_int) -> *mut PJ;
    fn proj_list_destroy(list: *mut PJ_OBJ_LIST);
    fn proj_coordoperation_is_instantiable(ctx: *mut PJ_CONTEXT, op: *const PJ) -> c_int;
    fn proj_as_projjson(ctx: *mut PJ_CONTEXT, pj: *const PJ, options: *const *const c_char) -> *const c_char;
    fn proj_as_proj_string(
        ctx: *mut PJ_CONTEXT,
        pj: *const PJ,
        kind: c_int,
        options: *const *const c_char,
    ) -> *const c_char;
}

/// Frees what PROJ handed out, however the search ends.
struct Owned {
    ctx: *mut PJ_CONTEXT,
    crs: Vec<*mut PJ>,
    factory: *mut PJ_OPERATION_FACTORY_CONTEXT,
    list: *mut PJ_OBJ_LIST,
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or was returned by PROJ for `ctx` and is freed once.
        unsafe {
            if !self.list.is_null() {
                proj_list_destroy(self.list);
            }
            if !self.factory.is_null() {
                proj_operation_factory_context_destroy(self.factory);
            }
            for &c in &self.crs {
                if !c.is_null() {
                    proj_destroy(c);
                }
            }
            proj_context_destroy(self.ctx);
        }
    }
}

/// The instantiable operations from `src` to `dst`, in PROJ's order (pyproj's
/// `TransformerGroup(src, dst, area_of_interest=...).transformers`).
fn candidate_operations(src: &str, dst: &str, area: Option<[f64; 4]>) -> std::result::Result<Vec<Candidate>, String> {
    let text = |p: *const c_char| {
        // SAFETY: PROJ returns null or a NUL-terminated string owned by the object.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let (src_c, dst_c) = (
        CString::new(src).map_err(|_| "a CRS with a NUL byte".to_string())?,
        CString::new(dst).map_err(|_| "a CRS with a NUL byte".to_string())?,
    );
    // SAFETY: a fresh context, used by this thread only and destroyed by `Owned`.
    let mut owned = Owned {
        ctx: unsafe { proj_context_create() },
        crs: vec![],
        factory: std::ptr::null_mut(),
        list: std::ptr::null_mut(),
    };
    let ctx = owned.ctx;
    // SAFETY: valid context and NUL-terminated definitions; results checked for null.
    unsafe {
        for def in [&src_c, &dst_c] {
            let crs = proj_create(ctx, def.as_ptr());
            if crs.is_null() {
                return Err(format!("PROJ cannot read the CRS {}", def.to_string_lossy()));
            }
            owned.crs.push(crs);
        }
        owned.factory = proj_create_operation_factory_context(ctx, std::ptr::null());
        if owned.factory.is_null() {
            return Err("PROJ's operation factory failed".into());
        }
        proj_operation_factory_context_set_grid_availability_use(ctx, owned.factory, GRID_AVAILABILITY_IGNORED);
        proj_operation_factory_context_set_spatial_criterion(
            ctx,
            owned.factory,
            SPATIAL_CRITERION_PARTIAL_INTERSECTION,
        );
        if let Some([w, s, e, n]) = area {
            proj_operation_factory_context_set_area_of_interest(ctx, owned.factory, w, s, e, n);
        }
        owned.list = proj_create_operations(ctx, owned.crs[0], owned.crs[1], owned.factory);
        if owned.list.is_null() {
            return Err("PROJ found no coordinate operation".into());
        }
        let mut out = Vec::new();
        for i in 0..proj_list_get_count(owned.list) {
            let op = proj_list_get(ctx, owned.list, i);
            if op.is_null() {
                continue;
            }
            let usable = proj_coordoperation_is_instantiable(ctx, op) == 1;
            let proj = text(proj_as_proj_string(ctx, op, PJ_PROJ_5, std::ptr::null()));
            let json = text(proj_as_projjson(ctx, op, std::ptr::null()));
            proj_destroy(op);
            let (true, Some(proj)) = (usable, proj) else { continue };
            out.push(Candidate { proj, transformations: transformation_ids(json.as_deref().unwrap_or("{}")) });
        }
        Ok(out)
    }
}

/// The (authority, code) of each "Transformation" step of an operation's PROJJSON, as
/// odc-stats reads them (only the steps of a concatenated operation).
fn transformation_ids(projjson: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(projjson).unwrap_or_default();
    let steps = v["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
    steps
        .iter()
        .filter(|s| s["type"] == "Transformation")
        .filter_map(|s| {
            let id = &s["id"];
            id["authority"].as_str().map(|a| (a.to_string(), id["code"].to_string().trim_matches('"').to_string()))
        })
        .collect()
}
