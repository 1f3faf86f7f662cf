//! The STAC documents of a product: each output tile's item (written last: its presence
//! marks the tile complete) and the product's Collection, which every item links to.

use crate::config::RunConfig;
use crate::error::{EngineError, Result};
use crate::plan_outputs::{ring_json, tile_polygon_lonlat};
use serde_json::{json, Value};
use stratus_core::geometry::{bbox_of, CrsTransform};
use stratus_core::{GeoBox, GridSpec, TaskId};
use stratus_raster::GdalCrsTransform;
use stratus_stats::OutputBand;

pub const PROJECTION_EXT: &str = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";
/// The extensions whose fields an item may carry from its product's or inputs'
/// properties, by field prefix: an item declares each one it uses, so validators check
/// those fields (their schemas are vendored in tests/data/stac-schemas).
const EXTENSIONS_BY_PREFIX: [(&str, &str); 3] = [
    ("eo:", "https://stac-extensions.github.io/eo/v1.1.0/schema.json"),
    ("view:", "https://stac-extensions.github.io/view/v1.0.0/schema.json"),
    ("sat:", "https://stac-extensions.github.io/sat/v1.0.0/schema.json"),
];
/// The STAC version of what Stratus writes (the version pystac validates against offline).
pub const STAC_VERSION: &str = "1.1.0";

pub struct ItemFacts<'a> {
    pub cfg: &'a RunConfig,
    /// The item's id: the tile's dataset id ([`crate::eo3_output::dataset_uuid`]), as
    /// odc-stats names its items, so that indexing the item or the eo3 document gives
    /// the same dataset.
    pub id: String,
    /// The tile's files' prefix (the item's title).
    pub title: String,
    pub region_code: String,
    pub run_id: &'a str,
    pub task: &'a TaskId,
    pub geobox: &'a GeoBox,
    pub outputs: &'a [OutputBand],
    pub band_urls: Vec<String>,
    pub inputs: Vec<String>,
    pub skipped_inputs: Vec<String>,
    pub observation_days: usize,
    pub self_url: String,
    /// The product's Collection document ([`crate::layout::Layout::collection_key`]).
    pub collection_url: String,
    /// The tile's eo3 dataset document (for an Open Data Cube index).
    pub eo3_url: String,
    /// The tile's thumbnail, where the product has one.
    pub thumbnail_url: Option<String>,
    /// What the sources give (platform, instruments, ...), as in the eo3 document.
    pub inherited: &'a crate::eo3_output::InheritedProperties,
}

/// A relative reference resolved against a base URL as Python's `urljoin` does for a
/// path: after the base's last `/`.
fn url_join(base: &str, rel: &str) -> String {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].rfind('/') {
        Some(i) => format!("{}{rel}", &base[..after_scheme + i + 1]),
        None => format!("{base}/{rel}"),
    }
}

pub fn output_item(f: &ItemFacts) -> Result<Value> {
    let grid = f.cfg.grid_spec()?;
    let ring = tile_polygon_lonlat(&grid, f.task.tile, &GdalCrsTransform)?;
    let p = &f.cfg.product;
    let mut assets = serde_json::Map::new();
    for (o, url) in f.outputs.iter().zip(&f.band_urls) {
        let mut a = json!({
            "href": url,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "title": o.name,
            "data_type": o.dtype.name(),
        });
        // A float band's NaN is left implicit: JSON has no NaN, and STAC's "nan" string
        // is refused by the `stac` crate, which reads these items back as inputs.
        if let Some(nd) = o.nodata.filter(|v| v.is_finite()) {
            a["nodata"] = json!(nd);
        }
        assets.insert(o.name.clone(), a);
    }
    if let Some(url) = &f.thumbnail_url {
        assets.insert(
            "thumbnail".into(),
            json!({"href": url, "type": "image/jpeg", "roles": ["thumbnail"], "title": "Thumbnail image"}),
        );
    }
    let gt = f.geobox.geo_transform();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut item = json!({
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJECTION_EXT],
        "id": f.id,
        "collection": p.name,
        "geometry": {"type": "Polygon", "coordinates": ring_json(&ring)},
        "bbox": bbox_of(ring.iter().copied()),
        "properties": {
            "title": f.title,
            "datetime": f.task.period.start_datetime().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "start_datetime": f.task.period.start_datetime().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end_datetime": f.task.period.end_datetime().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "created": now,
            "odc:processing_datetime": now,
            "odc:region_code": f.region_code,
            "odc:product": p.name,
            "odc:dataset_version": p.version,
            "odc:product_family": p.product_family,
            "proj:epsg": f.geobox.epsg,
            "proj:transform": [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]],
            "proj:shape": [f.geobox.height, f.geobox.width],
            "stratus:version": crate::VERSION,
            "stratus:plugin": f.cfg.plugin,
            "stratus:config_digest": f.cfg.digest(),
            "stratus:run_id": f.run_id,
            "stratus:task_id": f.task.to_string(),
            "stratus:observation_days": f.observation_days,
            "stratus:inputs": f.inputs,
            "stratus:skipped_inputs": f.skipped_inputs,
        },
        "links": [
            {"rel": "self", "href": f.self_url, "type": "application/json"},
            {"rel": "collection", "href": f.collection_url, "type": "application/json"},
            {"rel": "parent", "href": f.collection_url, "type": "application/json"},
            {"rel": "root", "href": f.collection_url, "type": "application/json"},
            {"rel": "odc_yaml", "href": f.eo3_url, "type": "text/yaml"},
        ],
        "assets": assets,
    });
    // Explorer's pages of the product and the dataset (odc-stats' `product.explorer_path`,
    // the links eodatasets3 writes).
    if let (Some(explorer), Some(links)) = (&p.explorer_path, item["links"].as_array_mut()) {
        links.push(json!({"rel": "product_overview", "href": url_join(explorer, &format!("product/{}", p.name)), "type": "text/html", "title": "ODC Product Overview"}));
        links.push(json!({"rel": "alternative", "href": url_join(explorer, &format!("dataset/{}", f.id)), "type": "text/html", "title": "ODC Dataset Overview"}));
    }
    // The product's own properties (odc-stats' `product.properties` and `producer`).
    if let Some(props) = item["properties"].as_object_mut() {
        if let Some(producer) = &p.producer {
            props.insert("odc:producer".into(), json!(producer));
        }
        for (k, v) in &p.properties {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in f.inherited.stac_properties(&p.inherit_skip_properties.clone().unwrap_or_default()) {
            props.entry(k).or_insert(v);
        }
        let used: Vec<&str> = EXTENSIONS_BY_PREFIX
            .iter()
            .filter(|(prefix, _)| props.keys().any(|k| k.starts_with(prefix)))
            .map(|(_, url)| *url)
            .collect();
        if let Some(exts) = item["stac_extensions"].as_array_mut() {
            exts.extend(used.into_iter().map(Value::from));
        }
    }
    // Round-trip through the STAC model to be sure we wrote a valid item.
    let parsed: stac::Item = serde_json::from_value(item.clone()).map_err(|e| EngineError::Task {
        task: f.task.to_string(),
        why: format!("output STAC item is invalid: {e}"),
    })?;
    debug_assert_eq!(parsed.assets.len(), f.outputs.len() + f.thumbnail_url.is_some() as usize);
    Ok(item)
}

/// Where and when a product's tiles are: a lon/lat bounding box and a time interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProductExtent {
    pub bbox: [f64; 4],
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

impl ProductExtent {
    /// The extent of the tiles `tasks` name (each tile's footprint in lon/lat, each
    /// period's span); None when there are none.
    pub fn of_tasks<'a>(
        grid: &GridSpec,
        tasks: impl IntoIterator<Item = &'a TaskId>,
        transform: &dyn CrsTransform,
    ) -> Result<Option<ProductExtent>> {
        let mut extent: Option<ProductExtent> = None;
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            // Each tile's footprint once (a tile has a task per period).
            let bbox =
                if seen.insert(t.tile) { bbox_of(tile_polygon_lonlat(grid, t.tile, transform)?) } else { bbox_of([]) };
            let this = ProductExtent { bbox, start: t.period.start_datetime(), end: t.period.end_datetime() };
            extent = Some(extent.map_or(this, |e| e.union(this)));
        }
        Ok(extent)
    }

    /// The extent a Collection document declares (None when it declares none we read).
    fn of_collection(doc: &Value) -> Option<ProductExtent> {
        let e = &doc["extent"];
        let b: Vec<f64> = e["spatial"]["bbox"][0].as_array()?.iter().filter_map(Value::as_f64).collect();
        let when = |i: usize| {
            e["temporal"]["interval"][0][i]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&chrono::Utc))
        };
        (b.len() == 4).then_some(())?;
        Some(ProductExtent { bbox: [b[0], b[1], b[2], b[3]], start: when(0)?, end: when(1)? })
    }

    fn union(self, o: ProductExtent) -> ProductExtent {
        let (a, b) = (self.bbox, o.bbox);
        ProductExtent {
            bbox: [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])],
            start: self.start.min(o.start),
            end: self.end.max(o.end),
        }
    }
}

/// The product's STAC Collection: its extent covers `extent` and whatever the `previous`
/// document (an earlier run's) declared, so an item of any run lies within it.
pub fn product_collection(cfg: &RunConfig, extent: ProductExtent, self_url: &str, previous: Option<&Value>) -> Value {
    let p = &cfg.product;
    let extent = previous.and_then(ProductExtent::of_collection).map_or(extent, |e| e.union(extent));
    let when = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let mut doc = json!({
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": p.name,
        "title": p.text_property("title").unwrap_or_else(|| p.name.clone()),
        "description": p.text_property("description").unwrap_or_else(|| format!(
            "{} version {}: '{}' summaries of {}, one item per tile and period, made by Stratus",
            p.name, p.version, cfg.plugin, cfg.products.as_deref().unwrap_or("its inputs")
        )),
        "license": p.license(),
        "extent": {
            "spatial": {"bbox": [extent.bbox]},
            "temporal": {"interval": [[when(extent.start), when(extent.end)]]},
        },
        "links": [
            {"rel": "self", "href": self_url, "type": "application/json"},
            {"rel": "root", "href": self_url, "type": "application/json"},
        ],
        "summaries": {"odc:dataset_version": [p.version]},
    });
    if let Some(producer) = &p.producer {
        doc["providers"] = json!([{"name": producer, "roles": ["producer", "processor"]}]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explorer_links_join_as_urljoin_does() {
        assert_eq!(
            url_join("https://explorer.dea.ga.gov.au/", "product/p"),
            "https://explorer.dea.ga.gov.au/product/p"
        );
        assert_eq!(url_join("https://explorer.dea.ga.gov.au", "product/p"), "https://explorer.dea.ga.gov.au/product/p");
        assert_eq!(url_join("https://e.org/odc/x", "dataset/1"), "https://e.org/odc/dataset/1");
    }
}
