//! odc-stats' run-config keys that are not Stratus's own: each is mapped onto a Stratus
//! key, or accepted with a note saying why it has no meaning here, or (where it has one
//! Stratus does not give it yet) accepted with a warning saying what is not done. The
//! keys both share (`plugin`, `cog_opts`, `gqa`, `overwrite`, `aws_unsigned`, ...) are
//! fields of `RunConfig` itself. A key that is neither odc-stats' nor ours stays an error.

use crate::error::{EngineError, Result};
use serde_json::{Map, Value};

/// What became of one odc-stats key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNote {
    pub key: String,
    pub note: String,
    /// True where odc-stats would do something Stratus does not do yet.
    pub not_honoured: bool,
}

/// odc-stats' keys without a meaning here, and why.
const WITHOUT_MEANING: [(&str, &str); 5] = [
    ("filedb", "odc-stats' task database (from save-tasks); Stratus plans from the STAC inputs the tasks came from"),
    ("complevel", "the compression of odc-stats' task database"),
    ("threads", "Dask's threads; Stratus reads and computes a tile on every core of its worker"),
    ("memory_limit", "Dask's memory limit; Stratus sizes each task's memory from its estimate"),
    ("future_poll_interval", "how often odc-stats polls Dask; Stratus renews its lease as `renew_safety_margin` says"),
];

/// odc-stats' keys with a meaning Stratus does not give them yet, and what is not done.
const NOT_YET: [(&str, &str); 1] = [("apply_eodatasets3", "no eo3 odc-metadata.yaml is written beside the STAC item")];

/// odc-stats' `product` keys for file names and eo3 metadata, which Stratus keeps with
/// the run but does not apply yet.
const PRODUCT_NOT_YET: [&str; 9] = [
    "collections_site",
    "region_code_format",
    "naming_conventions_values",
    "explorer_path",
    "classifier",
    "maturity",
    "collection_number",
    "inherit_skip_properties",
    "preview_image_ows_style",
];

/// Take odc-stats' own keys out of a run file (as a JSON object), mapping those Stratus
/// has a key for. The notes say what became of each.
pub fn translate(doc: &mut Map<String, Value>) -> Result<Vec<KeyNote>> {
    let mut notes = Vec::new();
    for (key, why) in WITHOUT_MEANING {
        if doc.remove(key).is_some() {
            notes.push(KeyNote { key: key.into(), note: format!("no meaning here: {why}"), not_honoured: false });
        }
    }
    for (key, what) in NOT_YET {
        if let Some(v) = doc.remove(key) {
            let off = matches!(v, Value::Null | Value::Bool(false));
            if !off {
                notes.push(KeyNote { key: key.into(), note: format!("not honoured yet: {what}"), not_honoured: true });
            }
        }
    }
    if let Some(Value::Object(product)) = doc.get("product") {
        for key in PRODUCT_NOT_YET.iter().filter(|k| product.contains_key(**k)) {
            notes.push(KeyNote {
                key: format!("product.{key}"),
                note: "kept, not applied yet: outputs are named and described as Stratus names them (no eo3)".into(),
                not_honoured: true,
            });
        }
    }
    if let Some(p) = doc.remove("input_products") {
        if doc.contains_key("products") {
            return Err(EngineError::Config(
                "give products (ours) or input_products (odc-stats'), not both: they are the same setting".into(),
            ));
        }
        notes.push(KeyNote { key: "input_products".into(), note: "read as products".into(), not_honoured: false });
        doc.insert("products".into(), p);
    }
    if let Some(loc) = doc.remove("output_location") {
        let Value::String(loc) = loc else {
            return Err(EngineError::Config("output_location: give a path or URL".into()));
        };
        if doc.contains_key("location") {
            return Err(EngineError::Config(
                "give location (ours) or output_location (odc-stats'), not both: they are the same setting".into(),
            ));
        }
        doc.insert("location".into(), Value::String(location_of(&loc)?));
        notes.push(KeyNote {
            key: "output_location".into(),
            note: "read as location: outputs go under LOCATION/{product}/{version}/".into(),
            not_honoured: false,
        });
    }
    Ok(notes)
}

/// An odc-stats run configuration as the equivalent Stratus run file: every setting, with
/// a comment per odc-stats key saying what became of it (`stratus convert-config`).
pub fn convert(text: &str, what: &str) -> Result<String> {
    let (cfg, notes) = crate::RunConfig::parse_yaml_noted(text, what)?;
    let mut out = format!("# Stratus run file converted from {what} (odc-stats' keys, as Stratus reads them):\n");
    if notes.is_empty() {
        out += "#   no odc-stats-only keys: the file is already a Stratus run file\n";
    }
    for n in &notes {
        out += &format!("#   {}: {}\n", n.key, n.note);
    }
    if cfg.inputs.is_empty() {
        out += "# inputs: give the STAC sources to plan from (files, catalogs, NDJSON, or {stac_api: URL, collections: [...]}):\n#   odc-stats read datasets from its datacube index\n";
    }
    Ok(out + &cfg.to_yaml())
}

/// The output root of odc-stats' `output_location`, a template ending in its product and
/// version (`s3://bucket/derivative/{product}/{version}`): Stratus adds those two folders
/// itself. A location naming one product's folder literally is refused, with the fix.
fn location_of(template: &str) -> Result<String> {
    let t = template.trim().trim_end_matches('/');
    for product in ["{product}", "{name}"] {
        for version in ["{version}", "{version_dashed}", "{version_raw}"] {
            if let Some(root) = t.strip_suffix(&format!("/{product}/{version}")) {
                return Ok(root.to_string());
            }
        }
    }
    let root = t.rsplitn(3, '/').nth(2).unwrap_or(t);
    Err(EngineError::Config(format!(
        "output_location '{template}': Stratus writes each product under LOCATION/{{product}}/{{version}}/, so give the folder above the product's: output_location: '{root}/{{product}}/{{version}}' (or location: '{root}'). Writing into a product's folder as given is not supported yet"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converted_files_read_back_as_the_same_run() {
        let odc = "plugin: pq\nproduct: {name: p, version: 1.0.0, maturity: final}\ngrid: au-30\nfiledb: x.db\ninput_products: ga_ls_wo_3\noutput_location: s3://b/{product}/{version}\ncog_opts: {zlevel: 9}\n";
        let converted = convert(odc, "gm.yaml").unwrap();
        assert!(
            converted.contains("#   filedb: no meaning here") && converted.contains("#   product.maturity:"),
            "{converted}"
        );
        assert!(converted.contains("# inputs: give the STAC sources"), "{converted}");
        let (again, notes) = crate::RunConfig::parse_yaml_noted(&converted, "converted").unwrap();
        let (first, _) = crate::RunConfig::parse_yaml_noted(odc, "gm.yaml").unwrap();
        assert_eq!(again, first, "the converted file is the same run");
        assert!(notes.iter().all(|n| n.key.starts_with("product.")), "only kept product keys remain: {notes:?}");
    }

    #[test]
    fn odc_stats_keys_are_mapped_or_noted() {
        let mut doc = json!({
            "filedb": "s3://b/s2.db", "threads": 8, "future_poll_interval": 2,
            "apply_eodatasets3": true, "input_products": "ga_ls_fc_3+ga_ls_wo_3",
            "output_location": "s3://deafrica-services/s2_stats_annual/{product}/{version}/", "plugin": "pq"
        });
        let doc = doc.as_object_mut().unwrap();
        let notes = translate(doc).unwrap();
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(
            keys,
            ["filedb", "threads", "future_poll_interval", "apply_eodatasets3", "input_products", "output_location"]
        );
        assert_eq!(notes.iter().filter(|n| n.not_honoured).count(), 1);
        assert_eq!(doc["products"], "ga_ls_fc_3+ga_ls_wo_3");
        assert_eq!(doc["location"], "s3://deafrica-services/s2_stats_annual");
        assert_eq!(doc.len(), 3, "only Stratus's keys are left: {doc:?}");
        // A product's own folder, as DEA's configurations give it, is refused with the fix.
        let e =
            location_of("s3://dea-public-data-dev/derivative/ga_ls8c_nbart_gm_cyear_3/3-0-0").unwrap_err().to_string();
        assert!(e.contains("output_location: 's3://dea-public-data-dev/derivative/{product}/{version}'"), "{e}");
        let mut both = json!({"input_products": "a", "products": "b"});
        assert!(translate(both.as_object_mut().unwrap()).is_err());
    }
}
