//! Item-only synthetic Sentinel-2 L2A metadata at continental scale: STAC items (no
//! pixels) for MGRS-like 109.8 km granules over Africa, one per granule per overpass, as
//! NDJSON. Used to measure planning and to simulate continental runs.
//!
//! Granules sit on a 100 km grid of UTM eastings/northings in each zone (as MGRS 100 km
//! squares do, so neighbours overlap by 9.8 km) wherever the centre falls on a coarse
//! outline of the continent (and Madagascar). Overpasses follow a 5-day revisit whose phase
//! changes with longitude in 8-degree swaths; granules near a swath edge are seen twice
//! per cycle, as real orbit overlaps are, so observation counts vary across the continent.

use crate::field::{mix, unit};
use crate::write::SynthError;
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::io::{BufWriter, Write};
use std::path::Path;
use stratus_core::geometry::{densify, CrsTransform};
use stratus_raster::GdalCrsTransform;

/// A coarse outline of mainland Africa (lon, lat), counter-clockwise from Tangier.
const AFRICA: &[(f64, f64)] = &[
    (-5.9, 35.8),
    (-9.8, 29.9),
    (-13.0, 27.6),
    (-16.9, 21.3),
    (-16.0, 19.0),
    (-17.1, 14.7),
    (-16.8, 13.5),
    (-15.0, 11.0),
    (-13.3, 9.3),
    (-11.5, 6.9),
    (-7.5, 4.4),
    (-2.0, 4.8),
    (1.0, 5.9),
    (4.5, 6.3),
    (6.0, 4.3),
    (8.5, 4.5),
    (9.7, 3.5),
    (9.3, -1.0),
    (12.2, -5.9),
    (13.2, -9.0),
    (12.3, -13.5),
    (11.8, -17.3),
    (14.5, -23.0),
    (15.2, -27.0),
    (17.9, -31.0),
    (18.4, -34.3),
    (20.0, -34.8),
    (22.0, -34.2),
    (27.0, -33.8),
    (30.0, -31.3),
    (32.4, -28.5),
    (32.9, -26.0),
    (35.5, -23.0),
    (40.6, -15.0),
    (40.5, -10.5),
    (39.3, -8.0),
    (39.6, -4.5),
    (41.5, -1.7),
    (46.0, 2.0),
    (48.9, 5.0),
    (51.0, 10.4),
    (51.3, 11.8),
    (45.0, 10.4),
    (43.1, 11.6),
    (39.6, 15.5),
    (38.5, 18.0),
    (37.2, 21.0),
    (35.5, 24.0),
    (32.6, 29.9),
    (29.0, 30.9),
    (23.0, 32.6),
    (20.1, 32.2),
    (19.9, 30.9),
    (15.2, 32.3),
    (10.1, 33.8),
    (11.1, 35.2),
    (10.0, 37.3),
    (3.0, 36.8),
    (-1.0, 35.3),
    (-5.9, 35.8),
];

const MADAGASCAR: &[(f64, f64)] = &[
    (44.0, -25.0),
    (47.1, -25.0),
    (49.4, -17.0),
    (50.4, -15.5),
    (49.3, -12.0),
    (48.0, -13.5),
    (44.3, -16.2),
    (43.3, -22.0),
    (44.0, -25.0),
];

fn inside(ring: &[(f64, f64)], (x, y): (f64, f64)) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if (y0 > y) != (y1 > y) && x < x0 + (y - y0) / (y1 - y0) * (x1 - x0) {
            inside = !inside;
        }
    }
    inside
}

fn on_land(p: (f64, f64)) -> bool {
    inside(AFRICA, p) || inside(MADAGASCAR, p)
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ItemsSpec {
    pub seed: u64,
    pub start_year: i32,
    pub years: u32,
    /// Days between overpasses of a granule (5 with two satellites).
    pub revisit_days: u32,
    /// Stop after this many items (the last day written may be partial).
    pub max_items: Option<usize>,
    pub collection: String,
}

impl Default for ItemsSpec {
    fn default() -> Self {
        ItemsSpec {
            seed: 42,
            start_year: 2019,
            years: 1,
            revisit_days: 5,
            max_items: None,
            collection: "sentinel-2-l2a".into(),
        }
    }
}

/// One MGRS-like granule.
#[derive(Debug, Clone)]
pub struct ItemGranule {
    pub code: String,
    pub epsg: u32,
    pub centre: (f64, f64),
    /// Footprint (lon, lat), closed.
    pub footprint: Vec<(f64, f64)>,
    /// UTM bounds (left, bottom).
    pub origin: (f64, f64),
    /// Day offsets within a revisit cycle on which it is seen.
    pub phases: Vec<u32>,
}

const GRANULE_M: f64 = 109_800.0;
const LAT_BANDS: &str = "CDEFGHJKLMNPQRSTUVWX";

/// The granules over the continent, in a stable order.
pub fn granules(spec: &ItemsSpec) -> Result<Vec<ItemGranule>, SynthError> {
    let t = GdalCrsTransform;
    let mut out = Vec::new();
    for zone in 26u32..=41 {
        let lon0 = -183.0 + 6.0 * zone as f64;
        for south in [true, false] {
            let epsg = if south { 32700 + zone } else { 32600 + zone };
            let (n_lo, n_hi) = if south { (6_000_000, 10_000_000) } else { (0, 4_200_000) };
            for northing in (n_lo..n_hi).step_by(100_000) {
                for easting in (100_000..900_000).step_by(100_000) {
                    let (left, bottom) = (easting as f64, northing as f64);
                    let mut c = [(left + GRANULE_M / 2.0, bottom + GRANULE_M / 2.0)];
                    t.transform(epsg, 4326, &mut c)?;
                    let (lon, lat) = c[0];
                    // Each zone's own squares only (MGRS squares do not cross the equator).
                    if (lon - lon0).abs() > 3.0 || (south != (lat < 0.0)) || !on_land((lon, lat)) {
                        continue;
                    }
                    let ring = [
                        (left, bottom),
                        (left + GRANULE_M, bottom),
                        (left + GRANULE_M, bottom + GRANULE_M),
                        (left, bottom + GRANULE_M),
                        (left, bottom),
                    ];
                    let mut footprint = densify(&ring, 4);
                    t.transform(epsg, 4326, &mut footprint)?;
                    let band = LAT_BANDS.as_bytes()[(((lat + 80.0) / 8.0).floor() as usize).min(19)] as char;
                    let letters = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
                    let sq = format!(
                        "{}{}",
                        letters[(easting / 100_000 + zone as usize * 8) % 24] as char,
                        letters[(northing / 100_000) % 20] as char
                    );
                    // Swaths 8 degrees wide share a phase; the outer fifth of a swath is
                    // also seen by the neighbouring one.
                    let swath = (lon + 180.0) / 8.0;
                    let phase = (swath.floor() as u32 * 2) % spec.revisit_days;
                    let mut phases = vec![phase];
                    if swath.fract() > 0.8 {
                        phases.push((phase + 2) % spec.revisit_days);
                    }
                    out.push(ItemGranule {
                        code: format!("{zone:02}{band}{sq}"),
                        epsg,
                        centre: (lon, lat),
                        footprint,
                        origin: (left, bottom),
                        phases,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn item(spec: &ItemsSpec, g: &ItemGranule, day: NaiveDate, sat: char) -> Value {
    // About 10:30 local solar time.
    let secs = ((10.5 - g.centre.0 / 15.0) * 3600.0) as i64 + (mix(spec.seed ^ day.ordinal() as u64) % 60) as i64;
    let when = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight")) + Duration::seconds(secs);
    let id = format!("S2{sat}_{}_{}_0_L2A", g.code, day.format("%Y%m%d"));
    let (zone, band, sq) = (&g.code[..2], &g.code[2..3], &g.code[3..]);
    let base = format!(
        "s3://sentinel-cogs/sentinel-s2-l2a-cogs/{}/{band}/{sq}/{}/{}/{id}",
        zone.trim_start_matches('0'),
        day.year(),
        day.month()
    );
    let (left, top) = (g.origin.0, g.origin.1 + GRANULE_M);
    let cog = "image/tiff; application=geotiff; profile=cloud-optimized";
    let mut assets = serde_json::Map::new();
    for (band_id, key, res) in [
        ("B02", "blue", 10.0),
        ("B03", "green", 10.0),
        ("B04", "red", 10.0),
        ("B08", "nir", 10.0),
        ("B05", "rededge1", 20.0),
        ("B06", "rededge2", 20.0),
        ("B07", "rededge3", 20.0),
        ("B8A", "nir08", 20.0),
        ("B11", "swir16", 20.0),
        ("B12", "swir22", 20.0),
        ("SCL", "scl", 20.0),
    ] {
        let n = (GRANULE_M / res) as u32;
        assets.insert(
            key.into(),
            json!({
                "href": format!("{base}/{band_id}.tif"), "type": cog, "roles": ["data"],
                "eo:bands": [{"name": band_id}],
                "proj:shape": [n, n], "proj:transform": [res, 0.0, left, 0.0, -res, top],
            }),
        );
    }
    let lons = g.footprint.iter().map(|p| p.0);
    let lats = g.footprint.iter().map(|p| p.1);
    let bbox = [
        lons.clone().fold(f64::MAX, f64::min),
        lats.clone().fold(f64::MAX, f64::min),
        lons.fold(f64::MIN, f64::max),
        lats.fold(f64::MIN, f64::max),
    ];
    let ring: Vec<[f64; 2]> = g.footprint.iter().map(|&(x, y)| [round6(x), round6(y)]).collect();
    json!({
        "type": "Feature", "stac_version": crate::STAC_VERSION, "id": id, "collection": spec.collection,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": bbox.map(round6),
        "properties": {
            "datetime": when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "platform": if sat == 'A' { "sentinel-2a" } else { "sentinel-2b" },
            "proj:epsg": g.epsg, "grid:code": format!("MGRS-{}", g.code),
            "eo:cloud_cover": (unit(mix(spec.seed ^ mix(day.num_days_from_ce() as u64) ^ g.epsg as u64)) * 100.0).round(),
            "s2:processing_baseline": if day >= NaiveDate::from_ymd_opt(2022, 1, 25).expect("date") { "04.00" } else { "03.01" },
        },
        "links": [{"rel": "collection", "href": collection_href(spec), "type": "application/json"}],
        "assets": assets,
    })
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ItemsSummary {
    pub items: usize,
    pub granules: usize,
    pub bytes: u64,
}

/// The Collection document the items link to, beside their NDJSON file.
fn collection_href(spec: &ItemsSpec) -> String {
    format!("./{}.collection.json", spec.collection)
}

/// Write the items as NDJSON to `out`, day by day, and their Collection beside it
/// ([`collection_href`]). `progress(items)` is called per day.
pub fn generate_items(spec: &ItemsSpec, out: &Path, progress: &dyn Fn(usize)) -> Result<ItemsSummary, SynthError> {
    if spec.years == 0 || spec.revisit_days == 0 {
        return Err(SynthError::Spec("need at least one year and a revisit of at least one day".into()));
    }
    let io = |e: std::io::Error| SynthError::Io { path: out.display().to_string(), source: e };
    let gs = granules(spec)?;
    let tmp = out.with_extension("ndjson.partial");
    let mut w = BufWriter::with_capacity(8 << 20, std::fs::File::create(&tmp).map_err(io)?);
    let start = NaiveDate::from_ymd_opt(spec.start_year, 1, 1)
        .ok_or_else(|| SynthError::Spec(format!("bad start year {}", spec.start_year)))?;
    let end = NaiveDate::from_ymd_opt(spec.start_year + spec.years as i32, 1, 1)
        .ok_or_else(|| SynthError::Spec("bad number of years".into()))?;
    let (mut items, mut bytes) = (0usize, 0u64);
    let mut day = start;
    'days: while day < end {
        let n = (day - start).num_days() as u32;
        let phase = n % spec.revisit_days;
        let sat = if (n / spec.revisit_days).is_multiple_of(2) { 'A' } else { 'B' };
        let lines: Vec<String> = gs
            .par_iter()
            .filter(|g| g.phases.contains(&phase))
            .map(|g| serde_json::to_string(&item(spec, g, day, sat)).expect("items serialise"))
            .collect();
        for line in lines {
            if spec.max_items.is_some_and(|m| items >= m) {
                break 'days;
            }
            w.write_all(line.as_bytes()).map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
            items += 1;
            bytes += line.len() as u64 + 1;
        }
        progress(items);
        day += Duration::days(1);
    }
    w.flush().map_err(io)?;
    drop(w);
    let doc = crate::write::collection_doc(
        &spec.collection,
        "Synthetic Sentinel-2 L2A-like items, metadata only (Stratus)",
        stratus_core::geometry::bbox_of(gs.iter().flat_map(|g| g.footprint.iter().copied())),
        (
            Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).expect("midnight")),
            Utc.from_utc_datetime(&end.and_hms_opt(0, 0, 0).expect("midnight")),
        ),
    );
    let collection = out.with_file_name(collection_href(spec).trim_start_matches("./"));
    std::fs::write(&collection, serde_json::to_string_pretty(&doc).unwrap()).map_err(io)?;
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(ItemsSummary { items, granules: gs.len(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continent_outline_and_granules() {
        assert!(on_land((25.0, 0.0)) && on_land((46.5, -19.0)) && on_land((18.0, 25.0)));
        assert!(!on_land((-25.0, 0.0)) && !on_land((60.0, 0.0)) && !on_land((5.0, 45.0)));
        let gs = granules(&ItemsSpec::default()).unwrap();
        // Africa is about 30 million km2: some 3 000 squares of 100 km, plus edges.
        assert!((2_800..4_000).contains(&gs.len()), "{} granules", gs.len());
        let codes: std::collections::BTreeSet<&str> = gs.iter().map(|g| g.code.as_str()).collect();
        assert_eq!(codes.len(), gs.len(), "granule codes are unique");
        assert!(gs.iter().all(|g| g.footprint.len() > 4 && !g.phases.is_empty()));
    }

    #[test]
    fn writes_parseable_items_day_by_day() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("items.ndjson");
        let spec = ItemsSpec { max_items: Some(5000), ..Default::default() };
        let s = generate_items(&spec, &out, &|_| {}).unwrap();
        assert_eq!(s.items, 5000);
        let text = std::fs::read_to_string(&out).unwrap();
        let mut last = String::new();
        for line in text.lines() {
            let d =
                stratus_core::stac_input::dataset_from_item(serde_json::from_str(line).unwrap(), None, None).unwrap();
            assert_eq!(d.assets.len(), 11);
            let t = d.datetime.to_rfc3339();
            assert!(t[..10] >= last[..last.len().min(10)], "items are in date order");
            last = t;
        }
        assert!(!dir.path().join("items.ndjson.partial").exists());
    }
}
