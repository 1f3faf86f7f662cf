//! The run file: everything that defines a run. Accepts the keys of odc-stats' `cfg.yaml`
//! (`plugin`, `plugin_config`, `product`, `cog_opts`, `max_processing_time`,
//! `job_queue_max_lease`, `renew_safety_margin`) plus the planning inputs. Unknown keys
//! are an error that lists the valid ones.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stratus_core::{Frequency, GridSpec, Period, TileIndex};
use stratus_raster::crs_operation::CrsOperation;
use stratus_raster::rgba::Clamp;
use stratus_raster::CogOptions;
use stratus_stats::{OutputBand, Statistic};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInfo {
    pub name: String,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub product_family: Option<String>,
    /// `odc:producer` of the outputs (odc-stats' `producer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// Added to every output's properties (odc-stats' `properties`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// How the version is written in the product's folder: as it is (default), or
    /// `dashed` (`1-0-0`), as odc-stats' `output_location` templates write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_folder: Option<VersionFolder>,
    /// odc-stats' naming and eo3 settings. Applied: `short_name`, `region_code_format` and
    /// `maturity` (file names), `collections_site` (the product's href), `classifier`
    /// (the lineage's key), `maturity` and `collection_number` (eo3 properties). The
    /// others are kept with the run (each noted when a run file sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections_site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_code_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming_conventions_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explorer_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_skip_properties: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_image_ows_style: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_version() -> String {
    "0.1.0".into()
}

/// How the version is written in the product's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionFolder {
    AsIs,
    Dashed,
}

impl ProductInfo {
    /// A text property of the product's `properties` (odc-stats' `product.properties`).
    pub fn text_property(&self, key: &str) -> Option<String> {
        self.properties.get(key).and_then(serde_json::Value::as_str).map(str::to_string)
    }
    /// The product's licence (its `license` or `odc:license` property; STAC's `other`
    /// when neither is given).
    pub fn license(&self) -> String {
        self.text_property("license").or_else(|| self.text_property("odc:license")).unwrap_or_else(|| "other".into())
    }
    /// The version as written in the product's folder.
    pub fn folder_version(&self) -> String {
        match self.version_folder {
            Some(VersionFolder::Dashed) => self.version.replace('.', "-"),
            _ => self.version.clone(),
        }
    }
}

/// What to do when one input of a tile cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputPolicy {
    /// The tile fails (default): a product never silently lacks data.
    #[default]
    Fail,
    /// The input is skipped and listed in the tile's STAC item and the ledger.
    Skip,
}

/// One input of a run: a STAC source (item, ItemCollection, NDJSON or catalog file, or a
/// directory of them; local, `s3://` or `https://`), or a STAC API search
/// (`{stac_api: URL, collections: [...], ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    Source(String),
    StacApi(Box<crate::stac_api::StacApiSearch>),
}

impl<'de> Deserialize<'de> for Input {
    /// By shape, so that a mistyped search key is named (an untagged enum would only say
    /// that nothing matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Input::Source(s)),
            v @ serde_json::Value::Object(_) => {
                serde_json::from_value(v).map(|s| Input::StacApi(Box::new(s))).map_err(|e| {
                    D::Error::custom(format!("a STAC API input ({{stac_api: URL, collections: [...], ...}}): {e}"))
                })
            }
            other => Err(D::Error::custom(format!(
                "an input is a path or URL, or a STAC API search {{stac_api: URL, ...}}; not {other}"
            ))),
        }
    }
}

impl From<&str> for Input {
    fn from(s: &str) -> Self {
        Input::Source(s.to_string())
    }
}

impl From<String> for Input {
    fn from(s: String) -> Self {
        Input::Source(s)
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Source(s) => f.write_str(s),
            Input::StacApi(s) if s.collections.is_empty() => write!(f, "STAC API {}", s.stac_api),
            Input::StacApi(s) => write!(f, "STAC API {} ({})", s.stac_api, s.collections.join(", ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Defaults to `{product}-{period or frequency}`.
    #[serde(default)]
    pub run_id: Option<String>,
    /// STAC sources (item / ItemCollection / NDJSON / catalog files or directories) and
    /// STAC API searches.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// `a`, `a+b` (fuse) or `a-b-c` (pool). Defaults to the only collection present.
    #[serde(default)]
    pub products: Option<String>,
    /// Only pixels inside this area are made (GeoJSON in longitude / latitude: a Polygon,
    /// MultiPolygon, Feature or FeatureCollection); tiles it does not touch are not
    /// planned, and pixels of planned tiles outside it are nodata.
    #[serde(default)]
    pub area_of_interest: Option<serde_json::Value>,
    /// Fused products (`products: a+b+c`) that may be missing from an acquisition
    /// (odc-stats' `optional_products`): the others are fused without them.
    #[serde(default)]
    pub optional_products: Vec<String>,
    /// Fused products without time (odc-stats' `ignore_time`: a DEM, a static mask): their
    /// datasets are not binned by date but joined to every acquisition of the other
    /// products with the same region code, whatever their own date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_time: Vec<String>,
    /// Conditions every item must meet, on its properties: CQL2 text or JSON, or
    /// odc-stats' property values (see `dataset_filter`). One filter or a list; odc-stats'
    /// `dataset_filter` (save-tasks) is the same key.
    #[serde(default, alias = "dataset_filter", deserialize_with = "one_or_many")]
    pub dataset_filters: Vec<serde_json::Value>,
    pub grid: String,
    #[serde(default)]
    pub frequency: Option<String>,
    /// e.g. `2021--P1Y`, `2020-05--P1M`.
    #[serde(default)]
    pub temporal_range: Option<String>,
    /// Tile subset, as `x,y` pairs (e.g. `"190,55"`); all tiles when empty.
    #[serde(default)]
    pub tiles: Vec<String>,
    pub plugin: String,
    #[serde(default)]
    pub plugin_config: serde_json::Value,
    pub product: ProductInfo,
    /// Output root: a directory or `s3://bucket/prefix`.
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub cog_opts: CogOptsConfig,
    /// Pixels per side of a processing chunk (memory is set by this, not the tile).
    #[serde(default = "default_chunk")]
    pub chunk_size: usize,
    #[serde(default)]
    pub input_policy: InputPolicy,
    /// Resampling for continuous bands (categorical bands always use nearest).
    #[serde(default = "default_resampling")]
    pub resampling: String,
    /// The red, green and blue output bands of each tile's RGBA preview band
    /// (`{stem}_rgba.tif`, odc-stats' `rgb_bands`), written when `cog_opts.overrides` has
    /// `rgba`, as odc-stats does. Default: gm-s2's and gm-ls's own, when their bands are
    /// the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rgb_bands: Option<Vec<String>>,
    /// The RGBA preview's stretch (odc-stats' `rgb_clamp`): `[low, high]`, or `high` from
    /// 0, become 0 to 255. Default [1.0, 3000.0].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rgb_clamp: Option<serde_json::Value>,
    /// Reproject the inputs with the coordinate operation whose steps include this
    /// transformation ("EPSG:9688"; odc-stats' plugin `transform_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_code: Option<String>,
    /// Choose that operation among those valid over this box in degrees, [west, south,
    /// east, north] (odc-stats' plugin `area_of_interest`; the first such operation when
    /// no `transform_code` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform_area_of_interest: Option<[f64; 4]>,
    /// Reprojection tolerance in pixels (gdalwarp's default 0.125; 0 = exact).
    #[serde(default = "default_warp_error")]
    pub warp_error_threshold: f64,
    /// Seconds a tile may take before the worker gives up on it.
    #[serde(default = "default_max_processing")]
    pub max_processing_time: u64,
    /// Seconds of lease a worker takes on a task (renewed while it runs).
    #[serde(default = "default_lease")]
    pub job_queue_max_lease: u64,
    /// Seconds before the lease ends at which it is renewed.
    #[serde(default = "default_margin")]
    pub renew_safety_margin: u64,
    /// The Lambda worker's limits: tasks estimated beyond them go to the container queue.
    #[serde(default)]
    pub lambda: LambdaBudget,
    /// Make tiles again even where their outputs are complete (odc-stats' `overwrite`;
    /// `--overwrite` does the same for one run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
    /// Read `s3://` inputs without signing requests (odc-stats' `aws_unsigned`: public
    /// buckets, no credentials needed). Unset: as GDAL's environment says; the
    /// environment's `AWS_NO_SIGN_REQUEST` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_unsigned: Option<bool>,
    /// Keep only datasets whose `gqa:iterative_mean_xy` (DEA's geometric quality) is at
    /// most this (odc-stats' `gqa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gqa: Option<f64>,
    /// S3's canned ACL for the product's objects (odc-stats' `s3_acl`: `public-read`,
    /// `bucket-owner-full-control`, ...); no meaning for a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_acl: Option<String>,
    /// `s3_acl: public-read` (odc-stats' older `s3_public`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub s3_public: bool,
    /// A file a worker writes the time (UTC) to every few seconds while it processes a
    /// tile of this run: a liveness probe's heartbeat (odc-stats' `heartbeat_filepath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_filepath: Option<String>,
}

/// `lambda`: the worker function's configured limits, and the share of them a task's
/// estimate may use (estimates are estimates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaBudget {
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub tmp_mb: u64,
    pub headroom: f64,
    /// Split a tile beyond the budget into k x k sub-tile parts (the fewest that fit),
    /// each its own Lambda invocation, assembled into the tile afterwards. False: such
    /// tiles go to the container worker whole.
    pub split: bool,
    /// Split every tile into `parts` x `parts`, whatever its estimate (1: never split).
    pub parts: Option<u32>,
}

impl Default for LambdaBudget {
    /// Lambda's maxima (10 240 MB, 15 minutes, 10 240 MB of /tmp), 80% usable.
    fn default() -> Self {
        LambdaBudget { memory_mb: 10_240, timeout_s: 900, tmp_mb: 10_240, headroom: 0.8, split: true, parts: None }
    }
}

/// `cog_opts`, as odc-stats' run configs give it: settings for every band (see
/// `CogOptions::from_settings`), and per-band `overrides` merged over them.
#[derive(Debug, Clone, PartialEq)]
pub struct CogOptsConfig {
    /// As given, over the defaults.
    pub defaults: BTreeMap<String, serde_json::Value>,
    pub overrides: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The settings `cog_opts` had before it took any key, in the order they were written:
/// configurations that use only these keep their digests (and their outputs stay complete).
const LEGACY_COG_KEYS: [&str; 4] = ["compress", "blocksize", "overview_resampling", "level"];

impl Serialize for CogOptsConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for k in LEGACY_COG_KEYS {
            if let Some(v) = self.defaults.get(k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in self.defaults.iter().filter(|(k, _)| !LEGACY_COG_KEYS.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("overrides", &self.overrides)?;
        m.end()
    }
}

impl Default for CogOptsConfig {
    fn default() -> Self {
        let d = CogOptions::default();
        let defaults = serde_json::json!({
            "compress": d.compress, "blocksize": d.blocksize, "overview_resampling": d.overview_resampling, "level": null
        });
        CogOptsConfig { defaults: serde_json::from_value(defaults).expect("a mapping"), overrides: BTreeMap::new() }
    }
}

impl<'de> Deserialize<'de> for CogOptsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let mut given = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let overrides = match given.remove("overrides") {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(o) => serde_json::from_value(o)
                .map_err(|e| D::Error::custom(format!("cog_opts.overrides: a mapping of band to settings ({e})")))?,
        };
        let mut c = CogOptsConfig { overrides, ..CogOptsConfig::default() };
        c.defaults.extend(given);
        Ok(c)
    }
}

impl CogOptsConfig {
    /// The settings of `band`: its overrides merged over the defaults.
    pub fn options(&self, band: &str) -> std::result::Result<CogOptions, stratus_raster::cog::CogOptionError> {
        let mut settings = self.defaults.clone();
        if let Some(o) = self.overrides.get(band) {
            for (k, v) in o {
                // An override replaces the default under any of its names (`zlevel` / `level`).
                for alias in CogOptions::aliases(k) {
                    settings.remove(*alias);
                }
                settings.insert(k.clone(), v.clone());
            }
        }
        CogOptions::from_settings(&settings)
    }
}

fn default_chunk() -> usize {
    1024
}
fn default_resampling() -> String {
    "bilinear".into()
}
fn default_warp_error() -> f64 {
    0.125
}
fn default_max_processing() -> u64 {
    3600
}
fn default_lease() -> u64 {
    300
}
fn default_margin() -> u64 {
    60
}

/// A list, or one value as a list of one (odc-stats' configurations give one filter).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<serde_json::Value>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(v) => v,
        serde_json::Value::Null => vec![],
        one => vec![one],
    })
}

impl Default for RunConfig {
    /// The defaults serde fills in, around empty required fields (`grid`, `plugin`,
    /// `product.name`): one set of defaults for run files and for the CLI's flags.
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({"grid": "", "plugin": "", "product": {"name": ""}}))
            .expect("the required fields are given")
    }
}

/// The run file's keys, from the struct itself.
fn valid_keys() -> String {
    // Keys left out of a configuration when empty (to keep digests of older runs) too.
    let all = RunConfig {
        ignore_time: vec![String::new()],
        rgb_bands: Some(vec![]),
        rgb_clamp: Some(serde_json::Value::Null),
        transform_code: Some(String::new()),
        transform_area_of_interest: Some([0.0; 4]),
        ..RunConfig::default()
    };
    let all = serde_json::to_value(all).expect("a configuration serialises");
    all.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

impl RunConfig {
    /// Parse and validate a YAML (or JSON) run file.
    pub fn from_yaml(text: &str, what: &str) -> Result<RunConfig> {
        let cfg = Self::parse_yaml(text, what)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse a run file without validating it (the CLI applies its flags first). odc-stats'
    /// own keys are mapped or noted (`odc_stats_keys`), each note logged once.
    pub fn parse_yaml(text: &str, what: &str) -> Result<RunConfig> {
        let (cfg, notes) = Self::parse_yaml_noted(text, what)?;
        for n in &notes {
            if n.not_honoured {
                tracing::warn!(key = %n.key, "{what}: odc-stats' {}: {}", n.key, n.note);
            } else {
                tracing::info!(key = %n.key, "{what}: odc-stats' {}: {}", n.key, n.note);
            }
        }
        Ok(cfg)
    }

    /// The same, returning what became of each odc-stats key instead of logging it.
    pub fn parse_yaml_noted(text: &str, what: &str) -> Result<(RunConfig, Vec<crate::odc_stats_keys::KeyNote>)> {
        let bad = |e: String| {
            let mut msg = format!("{what}: {e}");
            if msg.contains("unknown field") {
                msg += &format!(" (valid keys: {})", valid_keys());
            }
            EngineError::Config(msg)
        };
        let mut doc: serde_json::Value = serde_norway::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut notes = match doc.as_object_mut() {
            Some(m) => crate::odc_stats_keys::translate(m)?,
            None => vec![],
        };
        // Without odc-stats keys, parse the text itself: its errors say where they are.
        let cfg: RunConfig = if notes.is_empty() {
            serde_norway::from_str(text).map_err(|e| bad(e.to_string()))?
        } else {
            serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?
        };
        // A style no thumbnail can be drawn with is noted, not refused: odc-stats logs it
        // and writes the tile without one.
        if let Some(why) = cfg.preview_style().err() {
            notes.push(crate::odc_stats_keys::KeyNote {
                key: "product.preview_image_ows_style".into(),
                note: format!("kept, no thumbnail is drawn: {why}"),
                not_honoured: true,
            });
        }
        Ok((cfg, notes))
    }

    /// The product's thumbnail style (`product.preview_image_ows_style`), if it has one
    /// that can be drawn.
    pub fn preview_style(&self) -> Result<Option<crate::thumbnail::PreviewStyle>> {
        let Some(style) = &self.product.preview_image_ows_style else { return Ok(None) };
        let outputs = stratus_stats::build_statistic(&self.plugin, &self.plugin_config)?.output_bands();
        crate::thumbnail::PreviewStyle::parse(style, &outputs).map(Some)
    }

    /// The RGBA preview each tile gets, if any: odc-stats writes one when `cog_opts.overrides`
    /// has `rgba` and the plugin has red, green and blue bands. Their indices among
    /// `outputs`, and the stretch.
    pub fn rgba_preview(&self, outputs: &[OutputBand]) -> Result<Option<([usize; 3], Clamp)>> {
        if !self.cog_opts.overrides.contains_key("rgba") {
            return Ok(None);
        }
        self.rgb_bands_and_clamp(outputs)
    }

    /// `rgb_bands` (or the plugin's default) among `outputs`, and `rgb_clamp`.
    fn rgb_bands_and_clamp(&self, outputs: &[OutputBand]) -> Result<Option<([usize; 3], Clamp)>> {
        let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
        let picked = match &self.rgb_bands {
            Some(given) => {
                let [r, g, b] = given.as_slice() else {
                    return Err(EngineError::Config(format!(
                        "rgb_bands: {given:?}: give three output bands, red, green and blue"
                    )));
                };
                let find = |n: &String| {
                    names.iter().position(|o| o == n).ok_or_else(|| {
                        EngineError::Config(format!(
                            "rgb_bands: '{n}' is not an output band of plugin {} (its bands: {})",
                            self.plugin,
                            names.join(", ")
                        ))
                    })
                };
                [find(r)?, find(g)?, find(b)?]
            }
            // odc-stats' geomedians name their RGB bands only with their default bands.
            None if matches!(self.plugin.as_str(), "gm-s2" | "gm-ls") && self.plugin_config.get("bands").is_none() => {
                match stratus_raster::preview::rgb_bands(&names) {
                    Some(rgb) => rgb,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        };
        Ok(Some((picked, self.rgb_clamp()?)))
    }

    /// `rgb_clamp` as odc-algo's `to_rgba` takes it: a pair, or one number (from 0).
    fn rgb_clamp(&self) -> Result<Clamp> {
        use serde_json::Value;
        let bad = |v: &Value, why: &str| {
            EngineError::Config(format!("rgb_clamp: {v}: {why} (give [low, high], or high to stretch from 0)"))
        };
        let clamp = match &self.rgb_clamp {
            None => Clamp::Float(1.0, 3000.0),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(hi) => Clamp::Int(0, hi),
                None => Clamp::Float(0.0, n.as_f64().unwrap_or(f64::NAN)),
            },
            Some(v @ Value::Array(a)) if a.len() == 2 => match (a[0].as_i64(), a[1].as_i64()) {
                (Some(lo), Some(hi)) => Clamp::Int(lo, hi),
                _ => match (a[0].as_f64(), a[1].as_f64()) {
                    (Some(lo), Some(hi)) => Clamp::Float(lo, hi),
                    _ => return Err(bad(v, "two numbers")),
                },
            },
            Some(v) => return Err(bad(v, "a pair of numbers or one number")),
        };
        let (lo, hi) = clamp.bounds();
        if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            return Err(bad(self.rgb_clamp.as_ref().unwrap_or(&Value::Null), "the low bound must be below the high"));
        }
        Ok(clamp)
    }

    /// The coordinate operation the inputs are reprojected with (`transform_code`,
    /// `transform_area_of_interest`).
    pub fn crs_operation(&self) -> CrsOperation {
        CrsOperation { transform_code: self.transform_code.clone(), area_of_interest: self.transform_area_of_interest }
    }

    /// `transform_code` and `transform_area_of_interest` well formed, and inputs they apply
    /// to (the 16-bit read path; float32 inputs go through GDAL's warper, which takes
    /// PROJ's default).
    fn check_crs_operation(&self, stat: &dyn Statistic) -> Result<()> {
        if let Some(code) = &self.transform_code {
            if !code.split_once(':').is_some_and(|(a, c)| !a.is_empty() && !c.is_empty()) {
                return Err(EngineError::Config(format!(
                    "transform_code '{code}': give AUTHORITY:CODE, e.g. EPSG:9688"
                )));
            }
        }
        if let Some([w, s, e, n]) = self.transform_area_of_interest {
            let ok = (-180.0..=180.0).contains(&w)
                && (-180.0..=180.0).contains(&e)
                && (-90.0..=90.0).contains(&s)
                && (-90.0..=90.0).contains(&n)
                && s < n;
            if !ok {
                return Err(EngineError::Config(format!(
                    "transform_area_of_interest [{w}, {s}, {e}, {n}]: give [west, south, east, north] in degrees, south below north"
                )));
            }
        }
        if !self.crs_operation().is_default() {
            if let Some(b) = stat.input_bands().iter().find(|b| b.dtype.held_as_float()) {
                return Err(EngineError::Config(format!(
                    "transform_code / transform_area_of_interest: input band '{}' is {}, which is read with PROJ's default operation; they apply to 8- and 16-bit inputs",
                    b.name,
                    b.dtype.name()
                )));
            }
        }
        Ok(())
    }

    /// The canned ACL of the product's objects (`s3_acl`, or `s3_public`).
    pub fn output_acl(&self) -> Option<&str> {
        self.s3_acl.as_deref().or(self.s3_public.then_some("public-read"))
    }

    /// `ctx`'s output store writing with the run's ACL (`s3_acl`), where it has one.
    pub fn with_output_acl(&self, ctx: &mut crate::Context) {
        if let Some(acl) = self.output_acl() {
            match ctx.output.with_canned_acl(acl) {
                Some(store) => ctx.output = store,
                None => tracing::info!(acl, "s3_acl: the output location is a directory: objects carry no ACL"),
            }
        }
    }

    /// GDAL settings the run asks for (`aws_unsigned`), unless the environment sets them.
    pub fn apply_gdal_settings(&self) {
        if let Some(unsigned) = self.aws_unsigned {
            let v = if unsigned { "YES" } else { "NO" };
            stratus_raster::vsi::set_default_options(&[("AWS_NO_SIGN_REQUEST".to_string(), v.to_string())]);
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("config serialises")
    }

    /// Check everything that can be checked before reading any input.
    pub fn validate(&self) -> Result<()> {
        self.grid_spec()?;
        self.frequency()?;
        self.temporal_range()?;
        self.tile_subset()?;
        let stat = stratus_stats::build_statistic(&self.plugin, &self.plugin_config)?;
        if self.location.is_empty() {
            return Err(EngineError::Config("no output location: give location (--location DIR)".into()));
        }
        if self.inputs.is_empty() {
            return Err(EngineError::Config(
                "no inputs: give at least one STAC source (--input) or STAC API search (--stac-api)".into(),
            ));
        }
        crate::dataset_filter::DatasetFilters::new(&self.dataset_filters)?;
        self.area_of_interest()?;
        if let Some(f) = &self.product.region_code_format {
            let code = crate::layout::format_region_code(f, 1, -2)
                .map_err(|e| EngineError::Config(format!("product.region_code_format: {e}")))?;
            if code.is_empty() || code.contains(['/', ' ']) {
                return Err(EngineError::Config(format!(
                    "product.region_code_format '{f}' gives '{code}': a region code names files and folders, so it must be non-empty, without '/' or spaces (e.g. 'x{{x:02d}}y{{y:02d}}')"
                )));
            }
        }
        if let Some(acl) = self.s3_acl.as_deref().filter(|a| !stratus_ports::blob::CANNED_ACLS.contains(a)) {
            return Err(EngineError::Config(format!(
                "s3_acl '{acl}' is not one of S3's canned ACLs: {}",
                stratus_ports::blob::CANNED_ACLS.join(", ")
            )));
        }
        self.check_crs_operation(stat.as_ref())?;
        if let Some(c) = &self.product.naming_conventions_values {
            if !crate::eo3_output::NAMING_CONVENTIONS.contains(&c.as_str()) {
                return Err(EngineError::Config(format!(
                    "product.naming_conventions_values '{c}' is not one of eodatasets3's naming conventions: {}",
                    crate::eo3_output::NAMING_CONVENTIONS.join(", ")
                )));
            }
        }
        if self.rgb_bands.is_some() || self.rgb_clamp.is_some() {
            self.rgb_bands_and_clamp(&stat.output_bands())?;
        }
        // Every band's COG settings: the defaults, and each override merged over them.
        self.cog_options("")?;
        for band in self.cog_opts.overrides.keys() {
            self.cog_options(band)?;
        }
        self.check_fused_subset("optional_products", &self.optional_products, "a+b+c", "must be required")?;
        self.check_fused_subset(
            "ignore_time",
            &self.ignore_time,
            "a+b (b joined to every date of a)",
            "must have dates to bin by",
        )?;
        for input in &self.inputs {
            if let Input::StacApi(search) = input {
                search.validate()?;
            }
        }
        if !(64..=16384).contains(&self.chunk_size) {
            return Err(EngineError::Config(format!(
                "chunk_size {} is out of range: use 64 to 16384 pixels",
                self.chunk_size
            )));
        }
        self.resampling.parse::<stratus_raster::Resampling>().map_err(EngineError::Config)?;
        if !(0.0..=10.0).contains(&self.warp_error_threshold) {
            return Err(EngineError::Config("warp_error_threshold must be between 0 and 10 pixels".into()));
        }
        // Both become path segments of every output key: an allow-list of characters, so
        // that no encoding, separator or look-alike can steer a write elsewhere.
        for (what, s) in [("product.name", &self.product.name), ("product.version", &self.product.version)] {
            if s.is_empty()
                || s.len() > 100
                || s.contains("..")
                || s.starts_with('.')
                || !s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(EngineError::Config(format!(
                    "{what} '{}' must be a plain name: letters, digits, '-', '_' and '.' (not first, no '..')",
                    s.chars().take(80).collect::<String>().escape_debug()
                )));
            }
        }
        crate::messages::check_run_id(&self.run_id())?;
        let l = &self.lambda;
        if l.memory_mb < 128 || l.timeout_s == 0 || l.tmp_mb < 512 || !(0.1..=1.0).contains(&l.headroom) {
            return Err(EngineError::Config(format!(
                "lambda budget {l:?} is not usable: memory_mb >= 128, timeout_s > 0, tmp_mb >= 512, headroom 0.1 to 1"
            )));
        }
        if let Some(k) = l.parts {
            let grid = self.grid_spec()?;
            let max = stratus_core::TilePart::max_k(grid.tile_width, grid.tile_height, self.chunk_size);
            if k == 0 || k > max {
                return Err(EngineError::Config(format!(
                    "lambda.parts {k}: a tile of {w} x {h} pixels in chunks of {c} splits into 1 to {max} parts a side \
                     (parts are whole chunks; a smaller chunk_size allows more)",
                    w = grid.tile_width,
                    h = grid.tile_height,
                    c = self.chunk_size
                )));
            }
        }
        if self.renew_safety_margin >= self.job_queue_max_lease {
            return Err(EngineError::Config("renew_safety_margin must be smaller than job_queue_max_lease".into()));
        }
        Ok(())
    }

    pub fn grid_spec(&self) -> Result<GridSpec> {
        Ok(GridSpec::parse(&self.grid)?)
    }

    /// The frequency: as given; `all` over a temporal range given alone; else annual.
    pub fn frequency(&self) -> Result<Frequency> {
        let f = match (&self.frequency, &self.temporal_range) {
            (Some(f), _) => f.parse()?,
            (None, Some(_)) => Frequency::All,
            (None, None) => Frequency::Annual,
        };
        if f.needs_range() && self.temporal_range.is_none() {
            return Err(EngineError::Config(format!(
                "frequency {f} needs a temporal range (its seasons start at the range's month): \
                 give temporal_range (--temporal-range 2020-02--P1Y)"
            )));
        }
        Ok(f)
    }

    /// The area of interest, parsed.
    pub fn area_of_interest(&self) -> Result<Option<stratus_core::area::Area>> {
        let Some(v) = &self.area_of_interest else { return Ok(None) };
        Ok(Some(stratus_core::area::Area::from_geojson(&v.to_string(), "area_of_interest")?))
    }

    pub fn temporal_range(&self) -> Result<Option<Period>> {
        self.temporal_range.as_deref().map(|s| s.parse::<Period>().map_err(EngineError::from)).transpose()
    }

    /// The tiles to plan: `x,y` pairs, or odc-stats' ranges `x0:x1,y0:y1` (half-open:
    /// `0:3,2:4` is x 0 to 2, y 2 and 3).
    pub fn tile_subset(&self) -> Result<Vec<TileIndex>> {
        /// A subset this large is a mistake (the world at 10 m has about 1.5 million tiles).
        const MAX_TILES: i64 = 4_000_000;
        let mut out = Vec::new();
        for s in &self.tiles {
            let bad = || {
                EngineError::Config(format!(
                    "tile '{s}': expected 'x,y' such as '190,55', or ranges 'x0:x1,y0:y1' such as '0:3,2:4' (x1, y1 excluded)"
                ))
            };
            let parse = |v: &str| v.trim().trim_start_matches(['x', 'y']).trim_start_matches('+').parse::<i32>();
            let range = |v: &str| -> Result<(i32, i32)> {
                match v.split_once(':') {
                    Some((a, b)) => {
                        let (a, b) = (parse(a).map_err(|_| bad())?, parse(b).map_err(|_| bad())?);
                        if a >= b {
                            return Err(EngineError::Config(format!(
                                "tile range '{v}' in '{s}' is empty: give start:end with start < end"
                            )));
                        }
                        Ok((a, b))
                    }
                    None => parse(v).ok().and_then(|a| Some((a, a.checked_add(1)?))).ok_or_else(bad),
                }
            };
            let (a, b) = s.split_once([',', '/']).ok_or_else(bad)?;
            let ((x0, x1), (y0, y1)) = (range(a)?, range(b)?);
            if (i64::from(x1) - i64::from(x0)) * (i64::from(y1) - i64::from(y0)) > MAX_TILES {
                return Err(EngineError::Config(format!(
                    "tiles '{s}': more than {MAX_TILES} tiles; give a smaller range"
                )));
            }
            out.extend((x0..x1).flat_map(|x| (y0..y1).map(move |y| TileIndex::new(x, y))));
        }
        Ok(out)
    }

    /// The run id: as configured, or derived from the product and the time selection.
    pub fn run_id(&self) -> String {
        if let Some(r) = &self.run_id {
            return r.clone();
        }
        let when = self.temporal_range.clone().or_else(|| self.frequency.clone()).unwrap_or_else(|| "annual".into());
        format!("{}-{}", self.product.name, when)
    }

    /// Digest of everything that decides the outputs' pixels.
    /// `key` (a list of products) names fused products only, and leaves one out: what
    /// the one left out `must` be.
    fn check_fused_subset(&self, key: &str, list: &[String], example: &str, must: &str) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        let fused: Vec<&str> =
            self.products.as_deref().map(|p| p.split('+').map(str::trim).collect()).unwrap_or_default();
        if fused.len() < 2 {
            return Err(EngineError::Config(format!(
                "{key} applies to fused products: give products: {example} as well"
            )));
        }
        if let Some(p) = list.iter().find(|p| !fused.contains(&p.as_str())) {
            return Err(EngineError::Config(format!(
                "{key}: '{p}' is not one of the fused products ({})",
                fused.join(", ")
            )));
        }
        if fused.iter().all(|f| list.iter().any(|p| p == f)) {
            return Err(EngineError::Config(format!("{key}: at least one fused product {must}")));
        }
        Ok(())
    }

    pub fn digest(&self) -> String {
        let mut c = self.clone();
        c.run_id = None;
        stratus_core::digest::short_digest(serde_json::to_string(&c).unwrap().as_bytes())
    }

    /// The COG settings of `band` (checked by `validate`).
    pub fn cog_options(&self, band: &str) -> Result<CogOptions> {
        self.cog_opts.options(band).map_err(|e| EngineError::Config(e.to_string()))
    }
}

/// The typed view of a run's recorded configuration (`RunRecord::config`): parsed in one
/// place, with one error.
pub trait RunRecordExt {
    fn run_config(&self) -> Result<RunConfig>;
}

impl RunRecordExt for stratus_ports::RunRecord {
    fn run_config(&self) -> Result<RunConfig> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| EngineError::Config(format!("run '{}' has an unreadable configuration: {e}", self.run_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "inputs: [items.json]\ngrid: au-30\nplugin: pq\nproduct: {name: ga_s2_pq}\nlocation: out\n";

    #[test]
    fn rgba_preview_follows_odc_stats() {
        let gm = "inputs: [items.json]\ngrid: au-30\nplugin: gm-s2\nproduct: {name: p}\nlocation: out\n";
        let outputs = build_outputs;
        // Asked for by an `rgba` override; gm-s2 with its default bands names B04, B03, B02.
        let c =
            RunConfig::from_yaml(&format!("{gm}cog_opts: {{overrides: {{rgba: {{compress: webp}}}}}}\n"), "t").unwrap();
        let (rgb, clamp) = c.rgba_preview(&outputs(&c)).unwrap().expect("an RGBA preview");
        let names: Vec<String> = rgb.iter().map(|&i| outputs(&c)[i].name.clone()).collect();
        assert_eq!((names, clamp), (vec!["B04".to_string(), "B03".into(), "B02".into()], Clamp::Float(1.0, 3000.0)));
        // Not asked for: none.
        let c = RunConfig::from_yaml(gm, "t").unwrap();
        assert_eq!(c.rgba_preview(&outputs(&c)).unwrap(), None);
        // A clamp of one number stretches from 0, in integers as odc-algo does.
        let c = RunConfig::from_yaml(&format!("{gm}rgb_clamp: 2000\ncog_opts: {{overrides: {{rgba: {{}}}}}}\n"), "t")
            .unwrap();
        assert_eq!(c.rgba_preview(&outputs(&c)).unwrap().unwrap().1, Clamp::Int(0, 2000));
        // Bad input names the key and the choices.
        for (extra, words) in [
            ("rgb_bands: [B04, B03, B99]\n", ["rgb_bands", "'B99'", "B02, B03"]),
            ("rgb_bands: [B04]\n", ["rgb_bands", "three", "red"]),
            ("rgb_clamp: [3000, 1]\n", ["rgb_clamp", "below", "[low, high]"]),
            ("rgb_clamp: red\n", ["rgb_clamp", "number", "[low, high]"]),
        ] {
            let e = RunConfig::from_yaml(&format!("{gm}{extra}"), "t").unwrap_err().to_string();
            assert!(words.iter().all(|w| e.contains(w)), "{extra}: {e}");
        }
    }

    #[test]
    fn coordinate_operation_settings_are_checked() {
        let c = RunConfig::from_yaml(
            &format!("{MIN}transform_code: EPSG:9688\ntransform_area_of_interest: [129, -26, 134, -24]\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.crs_operation(),
            CrsOperation {
                transform_code: Some("EPSG:9688".into()),
                area_of_interest: Some([129.0, -26.0, 134.0, -24.0])
            }
        );
        for (extra, words) in [
            ("transform_code: '9688'\n", ["transform_code", "AUTHORITY:CODE"]),
            ("transform_area_of_interest: [129, -24, 134, -26]\n", ["transform_area_of_interest", "south below north"]),
        ] {
            let e = RunConfig::from_yaml(&format!("{MIN}{extra}"), "t").unwrap_err().to_string();
            assert!(words.iter().all(|w| e.contains(w)), "{extra}: {e}");
        }
    }

    fn build_outputs(c: &RunConfig) -> Vec<OutputBand> {
        stratus_stats::build_statistic(&c.plugin, &c.plugin_config).unwrap().output_bands()
    }

    #[test]
    fn defaults_and_derived() {
        let c = RunConfig::from_yaml(MIN, "t").unwrap();
        assert_eq!(c.chunk_size, 1024);
        assert_eq!(c.frequency().unwrap(), Frequency::Annual);
        assert_eq!(c.run_id(), "ga_s2_pq-annual");
        let c = RunConfig::from_yaml(&format!("{MIN}temporal_range: 2021--P1Y\ntiles: ['3,-4', 'x+004/y+002']\n"), "t")
            .unwrap();
        assert_eq!(c.frequency().unwrap(), Frequency::All);
        assert_eq!(c.run_id(), "ga_s2_pq-2021--P1Y");
        assert_eq!(c.tile_subset().unwrap(), vec![TileIndex::new(3, -4), TileIndex::new(4, 2)]);
        // odc-stats' ranges, half-open.
        let c = RunConfig { tiles: vec!["0:3,2:4".into(), "7,-1:1".into()], ..c };
        let t = c.tile_subset().unwrap();
        assert_eq!(t.len(), 3 * 2 + 2);
        assert!(
            t.contains(&TileIndex::new(2, 3))
                && !t.contains(&TileIndex::new(3, 3))
                && !t.contains(&TileIndex::new(0, 4))
        );
        assert!(t.contains(&TileIndex::new(7, -1)) && t.contains(&TileIndex::new(7, 0)));
        for bad in ["3:3,1", "0:3", "a:b,1", "0:100000,0:100000", "-2000000000:2000000000,0", "2147483647,0"] {
            let e =
                RunConfig { tiles: vec![bad.into()], ..RunConfig::default() }.tile_subset().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn frequencies_that_need_a_range_and_dataset_filters_are_checked() {
        let e = RunConfig::from_yaml(&format!("{MIN}frequency: 3month-seasons\n"), "t").unwrap_err().to_string();
        assert!(e.contains("3month-seasons") && e.contains("temporal_range"), "{e}");
        RunConfig::from_yaml(&format!("{MIN}frequency: 3month-seasons\ntemporal_range: 2020-02--P1Y\n"), "t").unwrap();
        let c = RunConfig::from_yaml(
            &format!("{MIN}dataset_filters: ['eo:cloud_cover < 60', {{dataset_maturity: final}}]\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.dataset_filters.len(), 2);
        // odc-stats' forms: one `|`-joined string (run), or `dataset_filter` (save-tasks).
        let dea = "{\"datetime\": \"2010-01--P3Y\"}|{\"eo:platform\": \"landsat-8\"}";
        let c = RunConfig::from_yaml(&format!("{MIN}dataset_filters: >-\n  {dea}\n"), "t").unwrap();
        assert_eq!(c.dataset_filters, vec![serde_json::json!(dea)]);
        let c = RunConfig::from_yaml(&format!("{MIN}dataset_filter: '{{\"dataset_maturity\": \"final\"}}'\n"), "t")
            .unwrap();
        assert_eq!(c.dataset_filters.len(), 1);
        let e = RunConfig::from_yaml(&format!("{MIN}dataset_filters: ['eo:cloud_cover <']\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataset filter eo:cloud_cover <"), "{e}");
    }

    /// odc-stats' `cog_opts`, as its example configuration and DEA's give them: its own
    /// keys, GDAL's names, and per-band overrides merged over the defaults.
    #[test]
    fn odc_stats_cog_opts() {
        let c = RunConfig::from_yaml(
            &format!(
                "{MIN}cog_opts:\n  compress: deflate\n  zlevel: 9\n  blocksize: 800\n  ovr_blocksize: 512\n  overview_resampling: average\n  overview_levels: [2, 4, 8, 16, 32]\n  overrides:\n    rgba:\n      compress: webp\n      webp_level: 90\n"
            ),
            "t",
        )
        .unwrap();
        let d = c.cog_options("nbart_red").unwrap();
        assert_eq!(
            (d.compress.as_str(), d.blocksize, d.level, d.overview_blocksize, d.overview_count),
            ("deflate", 800, Some(9), Some(512), Some(5))
        );
        let rgba = c.cog_options("rgba").unwrap();
        assert_eq!(
            (rgba.compress.as_str(), rgba.level, rgba.blocksize),
            ("webp", Some(9), 800),
            "merged over the defaults"
        );
        assert_eq!(rgba.extra.get("QUALITY").map(String::as_str), Some("90"));
        // As serialised before cog_opts took any key: the digests of older runs stand.
        assert_eq!(
            serde_json::to_string(&CogOptsConfig::default()).unwrap(),
            r#"{"compress":"deflate","blocksize":512,"overview_resampling":"average","level":null,"overrides":{}}"#
        );
        let c = RunConfig::from_yaml(&format!("{MIN}cog_opts: {{zlevel: 9, overrides: {{b: {{level: 5}}}}}}\n"), "t")
            .unwrap();
        assert_eq!(c.cog_options("b").unwrap().level, Some(5), "an override wins under another name");
        // GDAL's own option names pass through; others are named with the valid ones.
        let c = RunConfig::from_yaml(&format!("{MIN}cog_opts: {{overview_compress: zstd, num_threads: 2}}\n"), "t")
            .unwrap();
        let o = c.cog_options("x").unwrap();
        assert_eq!(o.extra.get("OVERVIEW_COMPRESS").map(String::as_str), Some("zstd"));
        for (bad, says) in [
            ("{compres: zstd}", "cog_opts: compres: not a setting"),
            ("{overview_levels: [2, 3]}", "half the previous one"),
            ("{blocksize: 100}", "multiple of 16"),
            ("{overrides: {b: {zlevel: x}}}", "zlevel"),
        ] {
            let e = RunConfig::from_yaml(&format!("{MIN}cog_opts: {bad}\n"), "t").unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = RunConfig::from_yaml(&format!("{MIN}cog_opts: {{compres: zstd}}\n"), "t").unwrap_err().to_string();
        assert!(e.contains("overview_compress") && e.contains("ovr_blocksize"), "the valid keys: {e}");
    }

    #[test]
    fn odc_stats_keys_and_unknown_keys() {
        let c = RunConfig::from_yaml(
            &format!("{MIN}max_processing_time: 600\njob_queue_max_lease: 300\nrenew_safety_margin: 30\ncog_opts:\n  compress: zstd\n  overrides:\n    clear: {{compress: deflate, blocksize: 256}}\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.cog_options("clear").unwrap().blocksize, 256);
        assert_eq!(c.cog_options("total").unwrap().compress, "zstd");
        let e = RunConfig::from_yaml(&format!("{MIN}chunksize: 5\n"), "run.yaml").unwrap_err().to_string();
        assert!(e.contains("chunksize") && e.contains("valid keys") && e.contains("run.yaml"), "{e}");
        // The list comes from the struct: every field is in it.
        for key in ["chunk_size", "warp_error_threshold", "renew_safety_margin", "lambda", "cog_opts"] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
        // The CLI's defaults are serde's.
        let d = RunConfig::default();
        assert_eq!((d.chunk_size, d.job_queue_max_lease, d.resampling.as_str()), (1024, 300, "bilinear"));
    }

    #[test]
    fn bad_values_are_named() {
        for (extra, needle) in [
            ("frequency: weekly\n", "weekly"),
            ("temporal_range: 2021\n", "2021"),
            ("tiles: ['3']\n", "tile '3'"),
            ("chunk_size: 3\n", "chunk_size"),
        ] {
            let e = RunConfig::from_yaml(&format!("{MIN}{extra}"), "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let e = RunConfig::from_yaml(&MIN.replace("au-30", "mars-30"), "t").unwrap_err().to_string();
        assert!(e.contains("mars-30"), "{e}");
        let e = RunConfig::from_yaml(&MIN.replace("ga_s2_pq", "../evil"), "t").unwrap_err().to_string();
        assert!(e.contains("product.name"), "{e}");
    }
}
