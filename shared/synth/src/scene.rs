//! Rendering one granule on one date: surface reflectance, clouds, shadows, SCL.

use crate::field::{fbm, hash3, unit};
use crate::spec::{Granule, SynthSpec, BANDS};
use stratus_core::geometry::{densify, CrsTransform};
use stratus_core::GeoBox;
use stratus_raster::GdalCrsTransform;

/// SCL classes used here (see the Sentinel-2 SCL table).
const SCL_SHADOW: u16 = 3;
const SCL_VEGETATION: u16 = 4;
const SCL_NOT_VEGETATED: u16 = 5;
const SCL_WATER: u16 = 6;
const SCL_CLOUD_MEDIUM: u16 = 8;
const SCL_CLOUD_HIGH: u16 = 9;
const SCL_CIRRUS: u16 = 10;

/// Land covers: reflectance (B02 B03 B04 B08 B11 B12) and seasonal amplitude.
const COVERS: [([f64; 6], [f64; 6], u16); 5] = [
    ([0.060, 0.070, 0.050, 0.030, 0.010, 0.008], [0.0; 6], SCL_WATER),
    ([0.030, 0.050, 0.030, 0.300, 0.150, 0.070], [0.0, 0.010, -0.010, 0.060, 0.020, 0.010], SCL_VEGETATION),
    ([0.050, 0.080, 0.080, 0.280, 0.250, 0.150], [0.010, 0.020, -0.030, 0.080, -0.030, -0.030], SCL_VEGETATION),
    ([0.040, 0.070, 0.060, 0.350, 0.220, 0.120], [0.010, 0.030, -0.040, 0.150, -0.050, -0.040], SCL_VEGETATION),
    ([0.120, 0.160, 0.200, 0.260, 0.320, 0.280], [0.0; 6], SCL_NOT_VEGETATED),
];

/// A granule's pixel grid and its date-independent layers.
pub struct GranuleGrid {
    pub granule: Granule,
    pub geobox: GeoBox,
    /// Pixel centres in EPSG:6933 (the frame every field is evaluated in).
    pub coords: Vec<(f64, f64)>,
    pub cover: Vec<u8>,
    pub valid: Vec<bool>,
    /// Valid-data outline, longitude/latitude.
    pub footprint: Vec<(f64, f64)>,
}

/// Land cover at a point: warped 5 km cells.
fn cover_at(seed: u64, x: f64, y: f64) -> u8 {
    let wx = x + 5000.0 * (fbm(seed ^ 0x11, x / 9000.0, y / 9000.0, 2) - 0.5);
    let wy = y + 5000.0 * (fbm(seed ^ 0x22, x / 9000.0, y / 9000.0, 2) - 0.5);
    let u = unit(hash3(seed ^ 0x33, (wx / 5000.0).floor() as i64, (wy / 5000.0).floor() as i64, 0));
    match u {
        u if u < 0.10 => 0,
        u if u < 0.35 => 1,
        u if u < 0.65 => 2,
        u if u < 0.90 => 3,
        _ => 4,
    }
}

pub fn granule_grid(spec: &SynthSpec, g: &Granule) -> Result<GranuleGrid, stratus_core::CoreError> {
    let t = GdalCrsTransform;
    let mut c = [(g.centre_lon, g.centre_lat)];
    t.transform(4326, g.epsg, &mut c)?;
    let n = spec.granule_pixels();
    let res = spec.resolution;
    let half = n as f64 * res / 2.0;
    let geobox = GeoBox {
        epsg: g.epsg,
        left: ((c[0].0 - half) / res).round() * res,
        top: ((c[0].1 + half) / res).round() * res,
        resolution: res,
        width: n,
        height: n,
    };
    let mut coords: Vec<(f64, f64)> = (0..n * n).map(|i| geobox.pixel_centre(i % n, i / n)).collect();
    t.transform(g.epsg, 6933, &mut coords)?;
    let cover = coords.iter().map(|&(x, y)| cover_at(spec.seed, x, y)).collect();
    // No data beyond the line col + row = 1.7 n (a swath edge across one corner).
    let cut = 1.7 * n as f64;
    let valid = (0..n * n).map(|i| ((i % n) as f64 + 0.5) + ((i / n) as f64 + 0.5) <= cut).collect();
    let nf = n as f64;
    let px = [(0.0, 0.0), (nf, 0.0), (nf, cut - nf), (cut - nf, nf), (0.0, nf), (0.0, 0.0)];
    let mut ring: Vec<(f64, f64)> =
        densify(&px, 8).into_iter().map(|(cx, cy)| (geobox.left + cx * res, geobox.top - cy * res)).collect();
    t.transform(g.epsg, 4326, &mut ring)?;
    Ok(GranuleGrid { granule: g.clone(), geobox, coords, cover, valid, footprint: ring })
}

/// One rendered scene: digital numbers per band, SCL, and the cloud-free twin.
pub struct Scene {
    pub bands: Vec<Vec<u16>>,
    pub scl: Vec<u16>,
    pub clear_bands: Option<Vec<Vec<u16>>>,
    pub clear_scl: Option<Vec<u16>>,
    pub cloud_percent: f64,
}

/// Fraction of sky covered on date `t` (a fifth of the dates are clear).
fn cover_fraction(seed: u64, t: usize) -> f64 {
    let u = unit(hash3(seed ^ 0x44, t as i64, 0, 0));
    if u < 0.2 {
        0.0
    } else {
        (u - 0.2) / 0.8 * 0.7
    }
}

fn dn(refl: f64, offset: u16) -> u16 {
    ((refl * 10_000.0).round().clamp(1.0, 60_000.0) as u16).saturating_add(offset)
}

/// Render granule `grid` on date index `t` (day of year `doy`). `offset` is the
/// processing-baseline offset added to digital numbers (1000 from baseline 04.00).
pub fn render(spec: &SynthSpec, grid: &GranuleGrid, t: usize, doy: u32, offset: u16) -> Scene {
    let n = grid.coords.len();
    let seed = spec.seed;
    let f = cover_fraction(seed, t);
    let thr = if f == 0.0 { 2.0 } else { 0.75 - f * 0.5 };
    let cseed = seed ^ 0x5500 ^ (t as u64) << 8;
    let cirrus_day = t % 4 == 1;
    let season = (2.0 * std::f64::consts::PI * (doy as f64 - 30.0) / 365.0).cos();
    let mut bands = vec![vec![0u16; n]; BANDS.len()];
    let mut scl = vec![0u16; n];
    let (mut clear_bands, mut clear_scl) =
        if spec.truth { (Some(vec![vec![0u16; n]; BANDS.len()]), Some(vec![0u16; n])) } else { (None, None) };
    let mut cloudy = 0usize;
    let mut valid_n = 0usize;
    for i in 0..n {
        if !grid.valid[i] {
            continue;
        }
        valid_n += 1;
        let (x, y) = grid.coords[i];
        let (base, amp, cover_scl) = COVERS[grid.cover[i] as usize];
        let c = if thr < 1.5 { fbm(cseed, x / 15_000.0, y / 15_000.0, 4) } else { 0.0 };
        let shadow_c =
            if thr < 1.5 && c <= thr { fbm(cseed, (x + 1800.0) / 15_000.0, (y - 1200.0) / 15_000.0, 4) } else { 0.0 };
        let is_cloud = c > thr;
        let is_cirrus = !is_cloud && cirrus_day && c > thr - 0.03;
        let is_shadow = !is_cloud && !is_cirrus && shadow_c > thr;
        let class = if is_cloud {
            cloudy += 1;
            if c > thr + 0.08 {
                SCL_CLOUD_HIGH
            } else {
                SCL_CLOUD_MEDIUM
            }
        } else if is_cirrus {
            cloudy += 1;
            SCL_CIRRUS
        } else if is_shadow {
            cloudy += 1;
            SCL_SHADOW
        } else {
            cover_scl
        };
        scl[i] = class;
        if let Some(cs) = clear_scl.as_mut() {
            cs[i] = cover_scl;
        }
        for b in 0..BANDS.len() {
            let noise = (unit(hash3(seed ^ 0x66, i as i64, t as i64, b as u64)) - 0.5) * 0.008;
            let surface = (base[b] + amp[b] * season + noise).max(0.0001);
            let observed = if is_cloud {
                let bright = 0.30 + 0.40 * ((c - thr) / (1.0 - thr)).clamp(0.0, 1.0);
                bright * [1.0, 1.0, 1.0, 1.0, 0.8, 0.6][b] + noise
            } else if is_cirrus {
                surface + 0.04
            } else if is_shadow {
                surface * 0.35
            } else {
                surface
            };
            bands[b][i] = dn(observed, offset);
            if let Some(cb) = clear_bands.as_mut() {
                cb[b][i] = dn(surface, offset);
            }
        }
    }
    Scene {
        bands,
        scl,
        clear_bands,
        clear_scl,
        cloud_percent: if valid_n == 0 { 0.0 } else { 100.0 * cloudy as f64 / valid_n as f64 },
    }
}
