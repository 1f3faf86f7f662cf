//! Open Data Cube metadata of a product, as odc-stats writes it with eodatasets3: each
//! output tile's eo3 dataset document (`.odc-metadata.yaml`), its processing record
//! (`.proc-info.yaml`) and the `.sha1` checksums of its files; and the product's eo3
//! definition (`.odc-product.yaml`), which `datacube product add` takes before the
//! datasets are indexed.

use crate::config::RunConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use stratus_core::{Dataset, GeoBox, TaskId};
use stratus_stats::OutputBand;
use uuid::Uuid;

/// odc-stats' namespace for the ids of the datasets it derives (`odc.stats.model.ODC_NS`).
const ODC_NS: Uuid = uuid::uuid!("6f34c6f4-13d6-43c0-8e4e-42b6c13203af");
/// datacube's namespace for the ids of STAC items whose id is not a UUID
/// (`uuid5(NAMESPACE_URL, "https://stacspec.org")`, datacube's STAC to eo3 conversion).
const STAC_NS: Uuid = uuid::uuid!("55d26088-a6d0-5c77-bf9a-3a7f3c6a6dab");

/// The id an Open Data Cube index gives an input: the item's id when it is a UUID (DEA's
/// items), else datacube's deterministic one from its collection and id.
pub fn source_uuid(collection: &str, id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or_else(|_| Uuid::new_v5(&STAC_NS, format!("{collection}\n{id}\n").as_bytes()))
}

/// The ids of a tile's inputs for its lineage: a fused dataset's items, each other
/// dataset itself. Sorted, without repeats.
pub fn lineage<'a>(datasets: impl IntoIterator<Item = &'a Dataset>) -> Vec<String> {
    let ids: BTreeSet<String> = datasets
        .into_iter()
        .flat_map(|d| {
            if d.sources.is_empty() {
                vec![source_uuid(&d.collection, &d.id)]
            } else {
                d.sources.iter().map(|s| source_uuid(&d.collection, s)).collect()
            }
        })
        .map(|u| u.to_string())
        .collect();
    ids.into_iter().collect()
}

/// What a tile inherits from its sources, as odc-stats has eodatasets3 record it: each
/// inheritable property as the first source (in plan order) that has it gives it, and
/// the platforms and instruments of every source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InheritedProperties {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub platforms: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub instruments: BTreeSet<String>,
}

impl InheritedProperties {
    /// A fused dataset gives its platform and instrument only, as odc-stats reads them
    /// from fused datasets without inheriting.
    pub fn of<'a>(datasets: impl IntoIterator<Item = &'a Dataset>) -> InheritedProperties {
        let mut p = InheritedProperties::default();
        for d in datasets {
            let text = |k: &str| d.inherited.get(k).and_then(Value::as_str).map(str::to_string);
            p.platforms.extend(text("eo:platform"));
            p.instruments.extend(text("eo:instrument"));
            if d.sources.is_empty() {
                for (k, v) in &d.inherited {
                    p.first.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        p
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.platforms.is_empty() && self.instruments.is_empty()
    }

    /// Add a later part's: its properties where this has none, its sets joined.
    pub fn merge(&mut self, later: &InheritedProperties) {
        for (k, v) in &later.first {
            self.first.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.platforms.extend(later.platforms.iter().cloned());
        self.instruments.extend(later.instruments.iter().cloned());
    }

    /// The properties a tile's eo3 document gets: the inherited ones but those
    /// `product.inherit_skip_properties` names, then `eo:platform` (sorted, comma-joined)
    /// and `eo:instrument` (sorted, `_`-joined) of every source, as odc-stats sets them.
    pub fn properties(&self, skip: &[String]) -> Map<String, Value> {
        let mut m: Map<String, Value> =
            self.first.iter().filter(|(k, _)| !skip.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !self.platforms.is_empty() {
            m.insert("eo:platform".into(), json!(self.platforms.iter().cloned().collect::<Vec<_>>().join(",")));
        }
        if !self.instruments.is_empty() {
            m.insert("eo:instrument".into(), json!(self.instruments.iter().cloned().collect::<Vec<_>>().join("_")));
        }
        m
    }

    /// The same, under STAC's names (eodatasets3's `eo3_to_stac_properties`): STAC's
    /// `instruments` is a list of lower-case names.
    pub fn stac_properties(&self, skip: &[String]) -> Map<String, Value> {
        self.properties(skip)
            .into_iter()
            .map(|(k, v)| {
                let name = stratus_core::stac_input::EO3_TO_STAC.iter().find(|m| m.0 == k).map_or(k.as_str(), |m| m.1);
                let v = match (k.as_str(), v.as_str()) {
                    ("eo:instrument", Some(s)) => {
                        json!(s
                            .split('_')
                            .map(|i| i.trim_matches(|c| c == '+' || c == '-').to_lowercase())
                            .collect::<Vec<_>>())
                    }
                    _ => v,
                };
                (name.to_string(), v)
            })
            .collect()
    }
}

/// odc-stats' `odc_uuid`: the output dataset's id, from the product, its version, the
/// tile and period, and the sorted source ids (so the same inputs give the same id).
pub fn dataset_uuid(product: &str, version: &str, task: &TaskId, sources: &[String]) -> Uuid {
    let mut tags = [format!("time={}", task.period), format!("tile=({}, {})", task.tile.x, task.tile.y)];
    tags.sort();
    let mut sources: Vec<Uuid> = sources.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
    sources.sort();
    let lines: Vec<String> = [product.to_string(), version.to_string(), String::new()]
        .into_iter()
        .chain(tags)
        .chain(sources.iter().map(Uuid::to_string))
        .map(|s| s.to_lowercase())
        .collect();
    Uuid::new_v5(&ODC_NS, lines.join("\n").as_bytes())
}

/// What a tile's eo3 document says.
pub struct Eo3Facts<'a> {
    pub cfg: &'a RunConfig,
    /// The dataset's id ([`dataset_uuid`]).
    pub id: Uuid,
    pub region_code: String,
    pub task: &'a TaskId,
    pub geobox: &'a GeoBox,
    /// Each band and its file's name (relative to the document).
    pub bands: Vec<(&'a str, String)>,
    /// Source dataset ids ([`lineage`]).
    pub lineage: &'a [String],
    /// What the sources give ([`InheritedProperties`]).
    pub inherited: &'a InheritedProperties,
    /// The file names of the checksums and the processing record.
    pub sha1_name: String,
    /// The thumbnail's file name, where the product has one.
    pub thumbnail_name: Option<String>,
    pub proc_info_name: String,
    /// The document's label ([`dataset_label`]: eodatasets3's, not the files' prefix).
    pub label: String,
    pub processed: chrono::DateTime<chrono::Utc>,
}

/// eodatasets3's naming conventions, which odc-stats' `product.naming_conventions_values`
/// names (default `dea_c3`).
pub const NAMING_CONVENTIONS: [&str; 8] =
    ["default", "dea", "dea_versioned", "dea_s2", "dea_s2_versioned", "dea_s2_derivative", "dea_c3", "deafrica"];

/// The conventions whose dataset labels leave the product's version out.
const UNVERSIONED_LABELS: [&str; 3] = ["dea_c3", "dea_s2_derivative", "deafrica"];

/// The eo3 document's label as eodatasets3 makes it for odc-stats' outputs
/// (`LazyLabel`): the product's name (then `-` and its version without the major number,
/// dashed, unless the conventions leave it out), the region code, the period's first day
/// and the maturity.
pub fn dataset_label(cfg: &RunConfig, region_code: &str, task: &TaskId) -> String {
    let p = &cfg.product;
    let conventions = p.naming_conventions_values.as_deref().unwrap_or("dea_c3");
    let prefix = if UNVERSIONED_LABELS.contains(&conventions) {
        p.name.clone()
    } else {
        let minor: Vec<&str> = p.version.split('.').skip(1).collect();
        format!("{}-{}", p.name, minor.join("-"))
    };
    let day = task.period.start_datetime().format("%Y-%m-%d").to_string();
    [Some(prefix), Some(region_code.to_string()), Some(day), p.maturity.clone()]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The eo3 dataset document (eodatasets3's layout: `$schema`, uuid5 id, label, product,
/// crs, geometry, grids, properties, measurements, accessories, lineage).
pub fn dataset_doc(f: &Eo3Facts) -> Value {
    let p = &f.cfg.product;
    let gt = f.geobox.geo_transform();
    let b = f.geobox.bounds();
    let secs = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Inherited from the sources first, then the product's own properties: the facts of
    // the tile below take precedence.
    let skip = p.inherit_skip_properties.clone().unwrap_or_default();
    let mut properties = f.inherited.properties(&skip);
    properties.extend(p.properties.clone());
    let start = f.task.period.start_datetime();
    for (k, v) in [
        ("datetime", json!(secs(start))),
        ("dtr:start_datetime", json!(secs(start))),
        ("dtr:end_datetime", json!(f.task.period.end_datetime().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
        ("odc:processing_datetime", json!(secs(f.processed))),
        ("odc:region_code", json!(f.region_code)),
        ("odc:product", json!(p.name)),
        ("odc:dataset_version", json!(p.version)),
        ("odc:file_format", json!("GeoTIFF")),
    ] {
        properties.insert(k.into(), v);
    }
    for (k, v) in [
        ("odc:product_family", p.product_family.as_ref().map(|v| json!(v))),
        ("odc:producer", p.producer.as_ref().map(|v| json!(v))),
        ("dea:dataset_maturity", p.maturity.as_ref().map(|v| json!(v))),
        ("odc:collection_number", p.collection_number.map(|v| json!(v))),
    ] {
        if let Some(v) = v {
            properties.insert(k.into(), v);
        }
    }
    let measurements: serde_json::Map<String, Value> =
        f.bands.iter().map(|(band, file)| (band.to_string(), json!({ "path": file }))).collect();
    let classifier = p.classifier.clone().unwrap_or_else(|| "level3".into());
    let mut product = json!({ "name": p.name });
    if let Some(site) = &p.collections_site {
        product["href"] = json!(format!("https://{site}/product/{}", p.name));
    }
    let mut accessories = json!({
        "checksum:sha1": {"path": f.sha1_name},
        "metadata:processor": {"path": f.proc_info_name},
    });
    if let Some(name) = &f.thumbnail_name {
        accessories["thumbnail"] = json!({ "path": name });
    }
    json!({
        "$schema": "https://schemas.opendatacube.org/dataset",
        "id": f.id.to_string(),
        "label": f.label,
        "product": product,
        "crs": format!("epsg:{}", f.geobox.epsg),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[b.min_x, b.max_y], [b.max_x, b.max_y], [b.max_x, b.min_y], [b.min_x, b.min_y], [b.min_x, b.max_y]]],
        },
        "grids": {"default": {"shape": [f.geobox.height, f.geobox.width], "transform": [gt[1], gt[2], gt[0], gt[4], gt[5], gt[3], 0.0, 0.0, 1.0]}},
        "properties": properties,
        "measurements": measurements,
        "accessories": accessories,
        "lineage": {classifier: f.lineage},
    })
}

/// The processing record: the products read, the run file's product section and the
/// software that made the tile (odc-stats' `proc-info.yaml`).
pub fn proc_info(cfg: &RunConfig, input_products: &[String]) -> Value {
    json!({
        "input-products": input_products,
        "stratus-config": {"plugin": cfg.plugin, "plugin_config": cfg.plugin_config, "product": cfg.product, "config_digest": cfg.digest()},
        "software_versions": [{"name": "stratus", "version": crate::VERSION}],
    })
}

/// A YAML document of `doc`, with the `---` start and a comment naming what it is.
pub fn yaml(what: &str, doc: &impl Serialize) -> String {
    let body = serde_norway::to_string(doc).expect("metadata serialises");
    format!("---\n# {what}\n{}", body.trim_start_matches("---\n"))
}

/// The SHA-1 of some bytes, as hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// The SHA-1 of a file, read in pieces (a band may be large).
pub fn sha1_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The checksum file: one `{sha1}  {name}` line per file (`sha1sum -c` reads it).
pub fn sha1_listing(files: &[(String, String)]) -> String {
    files.iter().map(|(name, sum)| format!("{sum}  {name}\n")).collect()
}

#[derive(Serialize)]
struct Measurement {
    name: String,
    dtype: &'static str,
    nodata: f64,
    units: &'static str,
}

#[derive(Serialize)]
struct ProductDefinition {
    name: String,
    description: String,
    metadata_type: &'static str,
    license: String,
    metadata: Value,
    measurements: Vec<Measurement>,
}

/// The product's eo3 definition: its name, the eo3 metadata type and each band's type and
/// nodata (a count without nodata declares 0, which datacube requires a value for).
pub fn product_definition(cfg: &RunConfig, outputs: &[OutputBand]) -> String {
    let p = &cfg.product;
    let def = ProductDefinition {
        name: p.name.clone(),
        description: p
            .text_property("description")
            .unwrap_or_else(|| format!("{} version {}: '{}' summaries made by Stratus", p.name, p.version, cfg.plugin)),
        metadata_type: "eo3",
        license: p.license(),
        metadata: json!({"product": {"name": p.name}}),
        measurements: outputs
            .iter()
            .map(|o| Measurement {
                name: o.name.clone(),
                dtype: o.dtype.name(),
                nodata: o.nodata.unwrap_or(0.0),
                units: "1",
            })
            .collect(),
    };
    yaml("Product", &def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_eodatasets3s() {
        // eodatasets3 0.x's namer(...).dataset_label for product t_meta_gm 2.1.0, region
        // x097y-78, datetime 2021-01-01, maturity final, in each conventions (computed in
        // the odc-stats venv).
        let t: TaskId = "x+097/y-078/2021--P1Y".parse().unwrap();
        let yaml = |conv: &str| {
            format!("inputs: [i.json]\ngrid: au-30\nplugin: pq\nlocation: out\nproduct: {{name: t_meta_gm, version: 2.1.0, maturity: final{conv}}}\n")
        };
        for (conv, label) in [
            ("", "t_meta_gm_x097y-78_2021-01-01_final"),
            ("dea_c3", "t_meta_gm_x097y-78_2021-01-01_final"),
            ("deafrica", "t_meta_gm_x097y-78_2021-01-01_final"),
            ("dea_s2_derivative", "t_meta_gm_x097y-78_2021-01-01_final"),
            ("default", "t_meta_gm-1-0_x097y-78_2021-01-01_final"),
            ("dea", "t_meta_gm-1-0_x097y-78_2021-01-01_final"),
            ("dea_versioned", "t_meta_gm-1-0_x097y-78_2021-01-01_final"),
        ] {
            let extra = if conv.is_empty() { String::new() } else { format!(", naming_conventions_values: {conv}") };
            let cfg = RunConfig::from_yaml(&yaml(&extra), "t").unwrap();
            assert_eq!(dataset_label(&cfg, "x097y-78", &t), label, "{conv}");
        }
        let e = RunConfig::from_yaml(&yaml(", naming_conventions_values: dea_c4"), "t").unwrap_err().to_string();
        assert!(e.contains("naming_conventions_values") && e.contains("dea_c3, deafrica"), "{e}");
    }

    #[test]
    fn ids_are_odc_stats_and_datacube_ids() {
        // A UUID id is kept; another is datacube's uuid5 of collection and id.
        let u = "3f2a4c1e-0b7d-4e55-9a31-2c1d5e6f7a8b";
        assert_eq!(source_uuid("c", u).to_string(), u);
        assert_ne!(source_uuid("a", "S2A_x"), source_uuid("b", "S2A_x"));
        // odc-stats' odc_uuid("ga_s2_gm", "1.0.0", [u], time="2021--P1Y", tile=(12, 34)),
        // computed with odc-stats 1.9.7.
        let t: TaskId = "x+012/y+034/2021--P1Y".parse().unwrap();
        let id = dataset_uuid("ga_s2_gm", "1.0.0", &t, &[u.to_string()]);
        assert_eq!(id.to_string(), "2c6803fb-d0d5-5406-949d-39a40987d790");
    }
}
