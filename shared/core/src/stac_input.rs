//! STAC items -> [`Dataset`]s. Parsing only: fetching documents is the caller's job.
//! Accepts single items, ItemCollections / FeatureCollections and NDJSON, with the
//! quirks of real catalogues (Earth Search, Planetary Computer, USGS, GA): `proj:*`
//! fields at item or asset level, `proj:epsg` or `proj:code`, `eo:bands` or `bands`.

use crate::dataset::{BandAsset, Dataset};
use crate::error::{CoreError, Result};
use serde_json::{Map, Value};

/// What a JSON document turned out to be.
#[derive(Debug)]
pub enum StacDocument {
    Items(Vec<Value>),
    /// A catalog or collection: the hrefs of its `item` and `child` links, to follow.
    Catalog {
        items: Vec<String>,
        children: Vec<String>,
    },
}

/// Classify a JSON document (item, item collection, catalog/collection) or NDJSON text.
pub fn parse_document(text: &str, what: &str) -> Result<StacDocument> {
    let trimmed = text.trim_start();
    // NDJSON: several JSON values, one per line.
    if trimmed.starts_with('{') && trimmed.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
        if let Err(_first) = serde_json::from_str::<Value>(trimmed) {
            let mut items = Vec::new();
            for (i, line) in trimmed.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| CoreError::Json { what: format!("{what} line {}", i + 1), source: e })?;
                items.push(v);
            }
            return Ok(StacDocument::Items(items));
        }
    }
    let v: Value = serde_json::from_str(text).map_err(|e| CoreError::Json { what: what.to_string(), source: e })?;
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "Feature" => Ok(StacDocument::Items(vec![v])),
        "FeatureCollection" => {
            let feats = v.get("features").and_then(Value::as_array).cloned().unwrap_or_default();
            Ok(StacDocument::Items(feats))
        }
        "Catalog" | "Collection" => {
            let links = v.get("links").and_then(Value::as_array).cloned().unwrap_or_default();
            let hrefs = |rel: &str| -> Vec<String> {
                links
                    .iter()
                    .filter(|l| l.get("rel").and_then(Value::as_str) == Some(rel))
                    .filter_map(|l| l.get("href").and_then(Value::as_str).map(String::from))
                    .collect()
            };
            Ok(StacDocument::Catalog { items: hrefs("item"), children: hrefs("child") })
        }
        other => Err(CoreError::BadItem {
            id: what.to_string(),
            why: format!("not a STAC Item, ItemCollection or Catalog (type is '{other}')"),
        }),
    }
}

/// Resolve an href relative to the document it was found in. `..` never climbs above the
/// base's root (a URL's origin, an S3 bucket, `/`), as in RFC 3986.
pub fn resolve_href(href: &str, base: Option<&str>) -> String {
    let absolute = href.starts_with('/') || href.contains("://") || href.starts_with("/vsi");
    match base {
        Some(base) if !absolute => {
            let dir = match base.rfind('/') {
                Some(i) => &base[..=i],
                None => "",
            };
            // The root is kept apart so that `..` cannot pop it: `https://host`, `s3://bucket`.
            let (root, path) = match dir.find("://") {
                Some(i) => {
                    let after = &dir[i + 3..];
                    let end = after.find('/').map_or(dir.len(), |j| i + 3 + j);
                    (&dir[..end], &dir[end..])
                }
                None => ("", dir),
            };
            let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            for seg in href.split('/') {
                match seg {
                    "." | "" => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            let joined = parts.join("/");
            if !root.is_empty() {
                format!("{root}/{joined}")
            } else if dir.starts_with('/') {
                format!("/{joined}")
            } else {
                joined
            }
        }
        _ => href.to_string(),
    }
}

fn epsg_of(fields: &Map<String, Value>) -> Option<u32> {
    if let Some(n) = fields.get("proj:epsg").and_then(Value::as_u64) {
        return Some(n as u32);
    }
    fields
        .get("proj:code")
        .and_then(Value::as_str)
        .and_then(|c| c.strip_prefix("EPSG:").or_else(|| c.strip_prefix("epsg:")))
        .and_then(|n| n.parse().ok())
}

fn transform_of(fields: &Map<String, Value>) -> Option<[f64; 6]> {
    let a = fields.get("proj:transform")?.as_array()?;
    if a.len() < 6 {
        return None;
    }
    let v: Vec<f64> = a.iter().take(6).filter_map(Value::as_f64).collect();
    // STAC stores [a, b, c, d, e, f] (rasterio Affine: x = a*col + b*row + c); GDAL wants
    // [c, a, b, f, d, e].
    (v.len() == 6).then(|| [v[2], v[0], v[1], v[5], v[3], v[4]])
}

fn shape_of(fields: &Map<String, Value>) -> Option<[usize; 2]> {
    let a = fields.get("proj:shape")?.as_array()?;
    match a.as_slice() {
        [r, c] => Some([r.as_u64()? as usize, c.as_u64()? as usize]),
        _ => None,
    }
}

fn str_prop(p: &Map<String, Value>, k: &str) -> Option<String> {
    match p.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// MGRS tile or WRS path/row from whichever convention the catalogue uses.
fn region_code(p: &Map<String, Value>) -> Option<String> {
    if let Some(s) = str_prop(p, "s2:mgrs_tile").or_else(|| str_prop(p, "odc:region_code")) {
        return Some(s);
    }
    if let Some(code) = str_prop(p, "grid:code") {
        return Some(code.trim_start_matches("MGRS-").trim_start_matches("WRS2-").to_string());
    }
    for pre in ["mgrs", "sentinel"] {
        if let (Some(z), Some(b), Some(s)) = (
            str_prop(p, &format!("{pre}:utm_zone")),
            str_prop(p, &format!("{pre}:latitude_band")),
            str_prop(p, &format!("{pre}:grid_square")),
        ) {
            return Some(format!("{:0>2}{b}{s}", z));
        }
    }
    if let (Some(path), Some(row)) = (str_prop(p, "landsat:wrs_path"), str_prop(p, "landsat:wrs_row")) {
        return Some(format!("{:0>3}{:0>3}", path, row));
    }
    // Older Earth Search items carry the MGRS tile only inside the product id (`_T28QCH_`).
    let pid = str_prop(p, "sentinel:product_id").or_else(|| str_prop(p, "s2:product_uri"))?;
    pid.split('_').find_map(|s| {
        let t = s.strip_prefix('T')?;
        let b = t.as_bytes();
        (b.len() == 5 && b[..2].iter().all(u8::is_ascii_digit) && b[2..].iter().all(u8::is_ascii_uppercase))
            .then(|| t.to_string())
    })
}

/// `s2:processing_baseline`, or the `_Nxxyy_` part of the product id.
fn processing_baseline(p: &Map<String, Value>) -> Option<String> {
    if let Some(b) = str_prop(p, "s2:processing_baseline").or_else(|| str_prop(p, "sentinel:processing_baseline")) {
        return Some(b);
    }
    let pid = str_prop(p, "sentinel:product_id").or_else(|| str_prop(p, "s2:product_uri"))?;
    pid.split('_')
        .find(|s| s.len() == 5 && s.starts_with('N') && s[1..].bytes().all(|b| b.is_ascii_digit()))
        .map(|s| format!("{}.{}", &s[1..3], &s[3..5]))
}

pub(crate) fn rings_of(geometry: &Value) -> Option<Vec<Vec<(f64, f64)>>> {
    let ring = |r: &Value| -> Option<Vec<(f64, f64)>> {
        r.as_array()?
            .iter()
            .map(|p| {
                let p = p.as_array()?;
                Some((p.first()?.as_f64()?, p.get(1)?.as_f64()?))
            })
            .collect()
    };
    let coords = geometry.get("coordinates")?;
    match geometry.get("type")?.as_str()? {
        "Polygon" => Some(vec![ring(coords.as_array()?.first()?)?]),
        "MultiPolygon" => coords.as_array()?.iter().map(|poly| ring(poly.as_array()?.first()?)).collect(),
        _ => None,
    }
}

/// Names an asset answers to besides its key: `eo:bands` / `bands` names and common names.
fn asset_names(asset: &stac::Asset) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(bands) = asset.additional_fields.get("eo:bands").and_then(Value::as_array) {
        for b in bands {
            for k in ["name", "common_name"] {
                if let Some(n) = b.get(k).and_then(Value::as_str) {
                    names.push(n.to_string());
                }
            }
        }
    }
    for b in &asset.bands {
        if let Some(n) = &b.name {
            names.push(n.clone());
        }
        if let Some(n) = b.additional_fields.get("eo:common_name").and_then(Value::as_str) {
            names.push(n.to_string());
        }
    }
    names.dedup();
    names
}

/// What an asset says of its first band's values: STAC 1.1 `bands` and asset fields, or
/// STAC 1.0's `raster:bands` (rustac keeps it as an extra field unless migrated).
#[derive(Debug, Default)]
struct RasterFacts {
    data_type: Option<crate::SampleType>,
    nodata: Option<f64>,
    scale: Option<f64>,
    offset: Option<f64>,
}

impl RasterFacts {
    fn of(asset: &stac::Asset) -> RasterFacts {
        let type_name = |t: &stac::DataType| serde_json::to_value(t).ok()?.as_str().and_then(crate::SampleType::parse);
        let legacy = asset.additional_fields.get("raster:bands").and_then(Value::as_array).and_then(|b| b.first());
        let band = asset.bands.first();
        let number = |key: &str| {
            let named = format!("raster:{key}");
            band.and_then(|b| b.additional_fields.get(&named))
                .or_else(|| asset.additional_fields.get(&named))
                .or_else(|| legacy.and_then(|l| l.get(key)))
                .and_then(Value::as_f64)
        };
        RasterFacts {
            data_type: asset
                .data_type
                .as_ref()
                .or_else(|| band.and_then(|b| b.data_type.as_ref()))
                .and_then(type_name)
                .or_else(|| {
                    legacy.and_then(|l| l.get("data_type")).and_then(Value::as_str).and_then(crate::SampleType::parse)
                }),
            nodata: legacy.and_then(|l| l.get("nodata")).and_then(Value::as_f64),
            scale: number("scale"),
            offset: number("offset"),
        }
    }
}

fn is_raster(asset: &stac::Asset) -> bool {
    let ty = asset.r#type.as_deref().unwrap_or("");
    let href = asset.href.to_ascii_lowercase();
    ty.contains("tiff") || href.ends_with(".tif") || href.ends_with(".tiff") || ty.contains("geotiff")
}

/// Turn one STAC item (as JSON) into a dataset. `base` is the item's own location, used to
/// resolve relative asset hrefs; `collection_hint` names the collection when the item does
/// not (GA's items).
pub fn dataset_from_item(item: Value, base: Option<&str>, collection_hint: Option<&str>) -> Result<Dataset> {
    let id_hint = item.get("id").and_then(Value::as_str).unwrap_or("<item without id>").to_string();
    let item: stac::Item = serde_json::from_value(item)
        .map_err(|e| CoreError::BadItem { id: id_hint, why: format!("not a valid STAC item: {e}") })?;
    dataset_from_stac_item(item, base, collection_hint)
}

/// The same from the item's JSON text (one NDJSON line), without an intermediate `Value`:
/// the fast path when planning a million items.
pub fn dataset_from_item_text(text: &str, base: Option<&str>, collection_hint: Option<&str>) -> Result<Dataset> {
    match serde_json::from_str::<stac::Item>(text) {
        Ok(item) => dataset_from_stac_item(item, base, collection_hint),
        // Parse again loosely, to name the item in the error.
        Err(e) => match serde_json::from_str::<Value>(text) {
            Ok(v) => dataset_from_item(v, base, collection_hint),
            Err(_) => Err(CoreError::BadItem { id: "<not JSON>".into(), why: format!("not JSON: {e}") }),
        },
    }
}

fn dataset_from_stac_item(item: stac::Item, base: Option<&str>, collection_hint: Option<&str>) -> Result<Dataset> {
    let id_hint = item.id.clone();
    let bad = |why: String| CoreError::BadItem { id: id_hint.clone(), why };
    let props = &item.properties.additional_fields;
    let datetime = item
        .properties
        .datetime
        .or(item.properties.start_datetime)
        .ok_or_else(|| bad("no datetime or start_datetime".into()))?;
    let geometry = item
        .geometry
        .as_ref()
        .ok_or_else(|| bad("no geometry: a footprint is needed to know which tiles it covers".into()))?;
    let geometry = serde_json::to_value(geometry).map_err(|e| bad(e.to_string()))?;
    let footprint = rings_of(&geometry).ok_or_else(|| bad("geometry is not a Polygon or MultiPolygon".into()))?;
    let item_epsg = epsg_of(props);
    let mut assets = Vec::new();
    for (key, asset) in &item.assets {
        if !is_raster(asset) {
            continue;
        }
        let f = &asset.additional_fields;
        let raster = RasterFacts::of(asset);
        assets.push(BandAsset {
            key: key.clone(),
            names: asset_names(asset),
            href: resolve_href(&asset.href, base),
            epsg: epsg_of(f).or(item_epsg),
            transform: transform_of(f).or_else(|| transform_of(props)),
            shape: shape_of(f).or_else(|| shape_of(props)),
            nodata: asset.nodata.or_else(|| asset.bands.first().and_then(|b| b.nodata)).or(raster.nodata),
            data_type: raster.data_type,
            scale: raster.scale,
            offset: raster.offset,
        });
    }
    if assets.is_empty() {
        return Err(bad("no raster (GeoTIFF) assets".into()));
    }
    // In key order: JSON objects have none, and catalogues reorder them (pgstac's jsonb
    // does), so the same item planned from a file and from an API gives the same dataset
    // and picks the same asset where several answer to a band's name.
    assets.sort_by(|a, b| a.key.cmp(&b.key));
    let epsg = item_epsg
        .or_else(|| assets.iter().find_map(|a| a.epsg))
        .ok_or_else(|| bad("no CRS: neither proj:epsg nor proj:code on the item or its assets".into()))?;
    let collection = item
        .collection
        .clone()
        .or_else(|| str_prop(props, "odc:product"))
        .or_else(|| collection_hint.map(String::from))
        .ok_or_else(|| bad("no collection (and none given for the source)".into()))?;
    Ok(Dataset {
        id: item.id.clone(),
        collection,
        datetime,
        footprint,
        epsg,
        region_code: region_code(props),
        processing_baseline: processing_baseline(props),
        assets,
        sources: vec![],
        inherited: inheritable(props),
    })
}

/// eodatasets3's inheritable properties (`DatasetAssembler.INHERITABLE_PROPERTIES`, but
/// the dates and region code, which a derived product sets itself), under their eo3 names.
const INHERITABLE: [&str; 56] = [
    "eo:cloud_cover",
    "eo:constellation",
    "eo:gsd",
    "eo:instrument",
    "eo:platform",
    "eo:sun_azimuth",
    "eo:sun_elevation",
    "fmask:clear",
    "fmask:cloud",
    "fmask:cloud_shadow",
    "fmask:snow",
    "fmask:water",
    "s2cloudless:clear",
    "s2cloudless:cloud",
    "gqa:abs_iterative_mean_x",
    "gqa:abs_iterative_mean_xy",
    "gqa:abs_iterative_mean_y",
    "gqa:abs_x",
    "gqa:abs_xy",
    "gqa:abs_y",
    "gqa:cep90",
    "gqa:iterative_mean_x",
    "gqa:iterative_mean_xy",
    "gqa:iterative_mean_y",
    "gqa:iterative_stddev_x",
    "gqa:iterative_stddev_xy",
    "gqa:iterative_stddev_y",
    "gqa:mean_x",
    "gqa:mean_xy",
    "gqa:mean_y",
    "gqa:stddev_x",
    "gqa:stddev_xy",
    "gqa:stddev_y",
    "landsat:collection_category",
    "landsat:collection_number",
    "landsat:landsat_product_id",
    "landsat:landsat_scene_id",
    "landsat:scene_id",
    "landsat:wrs_path",
    "landsat:wrs_row",
    "landsat:rmse",
    "landsat:rmse_x",
    "landsat:rmse_y",
    "mission",
    "sat:absolute_orbit",
    "sat:anx_datetime",
    "sat:orbit_state",
    "sat:platform_international_designator",
    "sat:relative_orbit",
    "sentinel:datastrip_id",
    "sentinel:datatake_start_datetime",
    "sentinel:grid_square",
    "sentinel:latitude_band",
    "sentinel:product_name",
    "sentinel:sentinel_tile_id",
    "sentinel:utm_zone",
];

/// STAC's names of the eo3 properties that differ (eodatasets3's `MAPPING_EO3_TO_STAC`).
pub const EO3_TO_STAC: [(&str, &str); 6] = [
    ("eo:gsd", "gsd"),
    ("eo:instrument", "instruments"),
    ("eo:platform", "platform"),
    ("eo:constellation", "constellation"),
    ("eo:sun_azimuth", "view:sun_azimuth"),
    ("eo:sun_elevation", "view:sun_elevation"),
];

/// The inheritable properties an item carries, under their eo3 names: STAC's
/// `instruments` list is eo3's one `eo:instrument` string, `_`-joined.
pub fn inheritable(props: &Map<String, Value>) -> std::collections::BTreeMap<String, Value> {
    INHERITABLE
        .iter()
        .filter_map(|&eo3| {
            let stac = EO3_TO_STAC.iter().find(|m| m.0 == eo3).map_or(eo3, |m| m.1);
            let v = props.get(stac).or_else(|| props.get(eo3))?;
            let v = match (eo3, v) {
                ("eo:instrument", Value::Array(a)) => {
                    Value::String(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("_"))
                }
                (_, Value::Null) => return None,
                (_, v) => v.clone(),
            };
            Some((eo3.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_hrefs() {
        assert_eq!(resolve_href("./B04.tif", Some("/data/items/a.json")), "/data/items/B04.tif");
        assert_eq!(resolve_href("../cogs/B04.tif", Some("/data/items/a.json")), "/data/cogs/B04.tif");
        assert_eq!(resolve_href("B04.tif", Some("s3://bkt/items/a.json")), "s3://bkt/items/B04.tif");
        assert_eq!(resolve_href("s3://x/y.tif", Some("/a/b.json")), "s3://x/y.tif");
        assert_eq!(resolve_href("b.tif", None), "b.tif");
        // `..` stops at the root: a URL's origin and an S3 bucket are never popped.
        assert_eq!(resolve_href("../../../x.tif", Some("https://h/a/b.json")), "https://h/x.tif");
        assert_eq!(resolve_href("../../x.tif", Some("s3://bkt/a.json")), "s3://bkt/x.tif");
        assert_eq!(resolve_href("../x/y.json", Some("https://h/a/b/c.json")), "https://h/a/x/y.json");
        assert_eq!(resolve_href("../../../../etc/passwd", Some("/data/a.json")), "/etc/passwd");
    }

    #[test]
    fn baseline_from_product_id() {
        let mut p = Map::new();
        p.insert("sentinel:product_id".into(), "S2A_MSIL2A_20200714T115221_N0214_R123_T28QCH_20200714T191310".into());
        assert_eq!(processing_baseline(&p).as_deref(), Some("02.14"));
    }

    #[test]
    fn ndjson_and_collections() {
        let a = r#"{"type":"Feature","id":"a"}"#;
        let text = format!("{a}\n{a}\n");
        match parse_document(&text, "t").unwrap() {
            StacDocument::Items(v) => assert_eq!(v.len(), 2),
            _ => panic!(),
        }
        let cat = r#"{"type":"Catalog","links":[{"rel":"item","href":"i.json"},{"rel":"child","href":"c/catalog.json"},{"rel":"root","href":"x"}]}"#;
        match parse_document(cat, "t").unwrap() {
            StacDocument::Catalog { items, children } => {
                assert_eq!(items, vec!["i.json"]);
                assert_eq!(children, vec!["c/catalog.json"]);
            }
            _ => panic!(),
        }
        let e = parse_document(r#"{"type":"Point"}"#, "x.json").unwrap_err().to_string();
        assert!(e.contains("x.json"), "{e}");
    }

    #[test]
    fn band_types_scales_and_offsets_come_from_raster_bands() {
        let item = |assets: Value| {
            serde_json::json!({
                "type": "Feature", "stac_version": "1.0.0", "id": "i", "collection": "c",
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                "bbox": [0, 0, 1, 1], "properties": {"datetime": "2021-01-01T00:00:00Z", "proj:epsg": 32633},
                "links": [], "assets": assets
            })
        };
        // STAC 1.0: raster:bands.
        let d = dataset_from_item(
            item(serde_json::json!({"red": {"href": "r.tif", "type": "image/tiff; application=geotiff",
                "raster:bands": [{"data_type": "int16", "nodata": -999, "scale": 0.0001, "offset": 0}]}})),
            None,
            None,
        )
        .unwrap();
        let a = &d.assets[0];
        assert_eq!(
            (a.data_type, a.nodata, a.scale, a.offset),
            (Some(crate::SampleType::Int16), Some(-999.0), Some(0.0001), Some(0.0))
        );
        // STAC 1.1: bands, with the raster fields prefixed; a type we do not know is left out.
        let d = dataset_from_item(
            item(serde_json::json!({"red": {"href": "r.tif", "type": "image/tiff; application=geotiff",
                "bands": [{"name": "red", "data_type": "uint16", "nodata": 0, "raster:scale": 2.75e-5, "raster:offset": -0.2}]},
                "cplx": {"href": "c.tif", "type": "image/tiff", "data_type": "cint16"}})),
            None,
            None,
        )
        .unwrap();
        let red = d.band("red").unwrap();
        assert_eq!(
            (red.data_type, red.nodata, red.scale, red.offset),
            (Some(crate::SampleType::Uint16), Some(0.0), Some(2.75e-5), Some(-0.2))
        );
        assert_eq!(d.band("cplx").unwrap().data_type, None);
    }
}
