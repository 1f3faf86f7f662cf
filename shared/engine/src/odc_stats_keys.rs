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

/// odc-stats' keys for what Stratus always does.
const ALWAYS: [(&str, &str); 1] = [(
    "apply_eodatasets3",
    "always: each tile's eo3 odc-metadata.yaml, proc-info.yaml and .sha1 are written beside its STAC item",
)];

/// odc-stats' `product` keys for eo3 metadata which Stratus keeps with the run but does
/// not apply yet.
/// odc-stats' plugin options (its `StatsPluginInterface` and the geomedian's) that steer
/// Dask or odc-algo's loader, not the product.
const PLUGIN_WITHOUT_MEANING: [(&str, &str); 5] = [
    ("chunks", "Dask's chunks; Stratus reads each tile in chunks of `chunk_size`"),
    ("work_chunks", "the geomedian's Dask chunks; Stratus computes each chunk on every core"),
    ("num_threads", "the geomedian's threads; Stratus computes on every core"),
    ("basis", "the band odc-algo's loader takes the grid from; Stratus reads every band onto the tile's grid"),
    ("basis_band", "the band odc-algo's loader takes the grid from; Stratus reads every band onto the tile's grid"),
];

/// odc-stats' plugin options that are run settings here (the statistic does not use
/// them): the plugin's key, the run's, and what it does.
const PLUGIN_RUN_SETTINGS: [(&str, &str, &str); 4] = [
    (
        "rgb_bands",
        "rgb_bands",
        "each tile's RGBA preview ({stem}_rgba.tif) is written when cog_opts.overrides has rgba",
    ),
    ("rgb_clamp", "rgb_clamp", "the RGBA preview's stretch"),
    ("transform_code", "transform_code", "the coordinate operation the inputs are reprojected with"),
    ("area_of_interest", "transform_area_of_interest", "where that coordinate operation is chosen"),
];

/// odc-stats' options inside `plugin_config` that are run settings here (`resampling`,
/// `group_by`) or have no meaning here; the plugin's own options stay for the plugin.
fn translate_plugin_config(doc: &mut Map<String, Value>, notes: &mut Vec<KeyNote>) -> Result<()> {
    let Some(Value::Object(pc)) = doc.get_mut("plugin_config") else { return Ok(()) };
    let lifted = pc.remove("resampling");
    let run_settings: Vec<(&str, &str, &str, Value)> = PLUGIN_RUN_SETTINGS
        .iter()
        .filter_map(|&(key, run, what)| pc.remove(key).map(|v| (key, run, what, v)))
        .collect();
    if let Some(g) = pc.remove("group_by") {
        if g != "solar_day" {
            return Err(EngineError::Config(format!(
                "plugin_config.group_by: {g}: Stratus groups observations by solar day only (odc-stats' default, group_by: solar_day)"
            )));
        }
        notes.push(KeyNote {
            key: "plugin_config.group_by".into(),
            note: "solar_day: observations of one solar day are fused, as always here".into(),
            not_honoured: false,
        });
    }
    for (key, why) in PLUGIN_WITHOUT_MEANING {
        if pc.remove(key).is_some() {
            notes.push(KeyNote {
                key: format!("plugin_config.{key}"),
                note: format!("no meaning here: {why}"),
                not_honoured: false,
            });
        }
    }
    for (key, run, what, v) in run_settings {
        if doc.get(run).is_some_and(|given| *given != v) {
            return Err(EngineError::Config(format!(
                "{run} and plugin_config.{key} differ: they are the same setting, give one"
            )));
        }
        notes.push(KeyNote {
            key: format!("plugin_config.{key}"),
            note: format!("read as the run's {run}: {what}"),
            not_honoured: false,
        });
        doc.insert(run.into(), v);
    }
    if let Some(r) = lifted {
        match doc.get("resampling") {
            Some(run) if *run != r => {
                return Err(EngineError::Config(format!(
                    "resampling: {run} and plugin_config.resampling: {r} differ: they are the same setting, give one"
                )))
            }
            _ => {
                notes.push(KeyNote {
                    key: "plugin_config.resampling".into(),
                    note: format!("read as the run's resampling ({r}); categorical bands always use nearest"),
                    not_honoured: false,
                });
                doc.insert("resampling".into(), r);
            }
        }
    }
    Ok(())
}

/// Take odc-stats' own keys out of a run file (as a JSON object), mapping those Stratus
/// has a key for. The notes say what became of each.
pub fn translate(doc: &mut Map<String, Value>) -> Result<Vec<KeyNote>> {
    let mut notes = Vec::new();
    translate_plugin_config(doc, &mut notes)?;
    for (key, why) in WITHOUT_MEANING {
        if doc.remove(key).is_some() {
            notes.push(KeyNote { key: key.into(), note: format!("no meaning here: {why}"), not_honoured: false });
        }
    }
    for (key, what) in ALWAYS {
        if doc.remove(key).is_some() {
            notes.push(KeyNote { key: key.into(), note: what.into(), not_honoured: false });
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
        let (root, dashed) = location_of(&loc)?;
        doc.insert("location".into(), Value::String(root));
        if let (true, Some(Value::Object(product))) = (dashed, doc.get_mut("product")) {
            product.entry("version_folder").or_insert(Value::String("dashed".into()));
        }
        notes.push(KeyNote {
            key: "output_location".into(),
            note: format!(
                "read as location: outputs go under LOCATION/{{product}}/{{version}}/, the version {}",
                if dashed { "dashed as odc-stats writes it (product.version_folder: dashed)" } else { "as it is" }
            ),
            not_honoured: false,
        });
    }
    odc_stats_plugin_defaults(doc, &mut notes);
    Ok(notes)
}

/// An odc-stats run file (one with odc-stats' own keys) gets odc-stats' defaults where
/// the plugin's differ from ours, so that its products come out named the same: gm-s2's
/// MADs and count are `SMAD`, `EMAD`, `BCMAD` and `COUNT` there (Stratus' own runs keep
/// lower case).
fn odc_stats_plugin_defaults(doc: &mut Map<String, Value>, notes: &mut Vec<KeyNote>) {
    if notes.is_empty() || doc.get("plugin").and_then(Value::as_str) != Some("gm-s2") {
        return;
    }
    let pc = doc.entry("plugin_config").or_insert_with(|| Value::Object(Map::new()));
    let Some(pc) = pc.as_object_mut() else { return };
    if pc.contains_key("aux_names") {
        return;
    }
    pc.insert(
        "aux_names".into(),
        serde_json::json!({"smad": "SMAD", "emad": "EMAD", "bcmad": "BCMAD", "count": "COUNT"}),
    );
    notes.push(KeyNote {
        key: "plugin_config.aux_names".into(),
        note: "not given: odc-stats' gm-s2 default (SMAD, EMAD, BCMAD, COUNT), as this is an odc-stats run file".into(),
        not_honoured: false,
    });
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
/// itself. And whether the version is dashed there (odc-stats' `{version}` and
/// `{version_dashed}` are; `{version_raw}` is not). A location naming one product's
/// folder literally is refused, with the fix.
fn location_of(template: &str) -> Result<(String, bool)> {
    let t = template.trim().trim_end_matches('/');
    for product in ["{product}", "{name}"] {
        for version in ["{version}", "{version_dashed}", "{version_raw}"] {
            if let Some(root) = t.strip_suffix(&format!("/{product}/{version}")) {
                return Ok((root.to_string(), version != "{version_raw}"));
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
        let odc = "plugin: pq\nproduct: {name: p, version: 1.0.0, maturity: final, naming_conventions_values: dea_c3}\ngrid: au-30\nfiledb: x.db\ninput_products: ga_ls_wo_3\noutput_location: s3://b/{product}/{version}\ncog_opts: {zlevel: 9}\n";
        let converted = convert(odc, "gm.yaml").unwrap();
        assert!(
            converted.contains("#   filedb: no meaning here")
                && converted.contains("naming_conventions_values: dea_c3"),
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
            "output_location": "s3://deafrica-services/s2_stats_annual/{product}/{version}/", "plugin": "pq",
            "product": {"name": "p", "version": "1.0.0"}
        });
        let doc = doc.as_object_mut().unwrap();
        let notes = translate(doc).unwrap();
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(
            keys,
            ["filedb", "threads", "future_poll_interval", "apply_eodatasets3", "input_products", "output_location"]
        );
        assert_eq!(notes.iter().filter(|n| n.not_honoured).count(), 0, "{notes:?}");
        assert_eq!(doc["products"], "ga_ls_fc_3+ga_ls_wo_3");
        assert_eq!(doc["location"], "s3://deafrica-services/s2_stats_annual");
        // odc-stats' {version} is the dashed version.
        assert_eq!(doc["product"]["version_folder"], "dashed");
        assert_eq!(doc.len(), 4, "only Stratus's keys are left: {doc:?}");
        assert_eq!(location_of("s3://b/{product}/{version_raw}").unwrap(), ("s3://b".to_string(), false));
        // A product's own folder, as DEA's configurations give it, is refused with the fix.
        let e =
            location_of("s3://dea-public-data-dev/derivative/ga_ls8c_nbart_gm_cyear_3/3-0-0").unwrap_err().to_string();
        assert!(e.contains("output_location: 's3://dea-public-data-dev/derivative/{product}/{version}'"), "{e}");
        let mut both = json!({"input_products": "a", "products": "b"});
        assert!(translate(both.as_object_mut().unwrap()).is_err());
    }

    /// A programme's run configurations as DEA keeps them (dea-config's odc-stats
    /// geomedian, WOfS summary, fractional-cover and tasselled-cap percentiles, their
    /// plugin options as they are), loaded unchanged.
    #[test]
    fn a_programmes_configs_load_unchanged() {
        let common = "grid: au_extended_30\nfrequency: annual\nmax_processing_time: 3600\njob_queue_max_lease: 300\nrenew_safety_margin: 60\nfuture_poll_interval: 2\ns3_acl: public-read\ncog_opts: {zlevel: 9, overrides: {rgba: {compress: png, zlevel: 9}}}\n";
        let product = |name: &str, family: &str| {
            format!("product: {{name: {name}, short_name: {name}, version: 4.0.0, product_family: {family}, collections_site: explorer.dea.ga.gov.au, producer: ga.gov.au, region_code_format: 'x{{x:02d}}y{{y:02d}}', maturity: final, collection_number: 3}}\n")
        };
        let configs = [
            (
                "ga_ls8cls9c_gm_cyear_3",
                "geomedian",
                "plugin: gm-ls\nplugin_config:\n  resampling: bilinear\n  bands: [nbart_red, nbart_green, nbart_blue, nbart_nir, nbart_swir_1, nbart_swir_2]\n  rgb_bands: [nbart_red, nbart_green, nbart_blue]\n  mask_band: oa_fmask\n  contiguity_band: oa_nbart_contiguity\n  nodata_classes: [nodata]\n  cloud_filters:\n    cloud: [[opening, 2], [dilation, 5]]\n    shadow: [[opening, 2], [dilation, 5]]\n  aux_names: {smad: sdev, emad: edev, bcmad: bcdev, count: count}\n",
                vec!["nbart_red", "nbart_green", "nbart_blue", "nbart_nir", "nbart_swir_1", "nbart_swir_2", "edev", "sdev", "bcdev", "count"],
            ),
            (
                "ga_ls_wo_fq_cyear_3",
                "wo_summary",
                "plugin: wofs-summary\nplugin_config:\n  cloud_filters:\n    cloud: [[dilation, 3]]\n    cloud_shadow: [[dilation, 3]]\n",
                vec!["count_wet", "count_clear", "frequency"],
            ),
            (
                "ga_ls_fc_pc_cyear_3",
                "fc_percentiles",
                "plugin: fc-percentiles\nplugin_config:\n  resampling: nearest\n  ue_threshold: 30\n  max_sum_limit: 120\n  clip_range: [0, 120]\n  count_valid: true\n  cloud_filters:\n    cloud: [[dilation, 6]]\n    cloud_shadow: [[dilation, 6]]\n",
                vec!["pv_pc_10", "pv_pc_50", "pv_pc_90", "npv_pc_10", "npv_pc_50", "npv_pc_90", "bs_pc_10", "bs_pc_50", "bs_pc_90", "qa", "count_valid"],
            ),
            (
                "ga_ls_tc_pc_cyear_3",
                "tc_summary",
                "plugin: tcw-percentiles\nplugin_config:\n  input_bands: [blue, green, red, nir, swir1, swir2, fmask, nbart_contiguity]\n  cloud_filters:\n    cloud: [[opening, 2], [dilation, 5]]\n    shadow: [[opening, 2], [dilation, 5]]\n",
                vec!["wet_pc_10", "wet_pc_50", "wet_pc_90", "bright_pc_10", "bright_pc_50", "bright_pc_90", "green_pc_10", "green_pc_50", "green_pc_90"],
            ),
        ];
        for (name, family, plugin, outputs) in configs {
            let text = format!("{plugin}{}{common}input_products: x\noutput_location: s3://dea-public-data/derivative/{{product}}/{{version}}\n", product(name, family));
            let (cfg, notes) =
                crate::RunConfig::parse_yaml_noted(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let stat = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config).unwrap();
            let names: Vec<String> = stat.output_bands().into_iter().map(|b| b.name).collect();
            assert_eq!(names, outputs, "{name}");
            if name.contains("gm") {
                assert_eq!(cfg.resampling, "bilinear");
                assert!(notes.iter().any(|n| n.key == "plugin_config.rgb_bands" && !n.not_honoured), "{notes:?}");
                assert_eq!(cfg.rgb_bands.as_deref().map(|b| b.len()), Some(3), "lifted to the run's rgb_bands");
            }
        }
        // A class the mask band does not have is refused, naming the key and the choices.
        let bad = format!(
            "plugin: gm-ls\nplugin_config: {{bands: [nbart_red], mask_band: oa_fmask, cloud_filters: {{clouds: [[dilation, 5]]}}}}\n{}{common}inputs: [items.json]\nlocation: out\n",
            product("p", "geomedian")
        );
        let e = crate::RunConfig::from_yaml(&bad, "bad.yaml").unwrap_err().to_string();
        assert!(e.contains("cloud_filters") && e.contains("'clouds'") && e.contains("cloud, shadow"), "{e}");
    }

    #[test]
    fn an_odc_stats_gm_s2_names_its_mads_as_odc_stats_does() {
        let odc = "plugin: gm-s2\nproduct: {name: p, version: 1.0.0}\ngrid: au-30\ninputs: [i.json]\noutput_location: out/{product}/{version}\n";
        let (cfg, notes) = crate::RunConfig::parse_yaml_noted(odc, "gm.yaml").unwrap();
        let names: Vec<String> = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config)
            .unwrap()
            .output_bands()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert!(["SMAD", "EMAD", "BCMAD", "COUNT"].iter().all(|n| names.iter().any(|b| b == n)), "{names:?}");
        assert!(notes.iter().any(|n| n.key == "plugin_config.aux_names"), "{notes:?}");
        // Given aux_names stay; a Stratus run file keeps Stratus' names.
        let given = odc.replace("plugin: gm-s2\n", "plugin: gm-s2\nplugin_config: {aux_names: {smad: sdev}}\n");
        let (cfg, _) = crate::RunConfig::parse_yaml_noted(&given, "gm.yaml").unwrap();
        assert_eq!(cfg.plugin_config["aux_names"], json!({"smad": "sdev"}));
        let ours = "plugin: gm-s2\nproduct: {name: p}\ngrid: au-30\ninputs: [i.json]\nlocation: out\n";
        let (cfg, notes) = crate::RunConfig::parse_yaml_noted(ours, "gm.yaml").unwrap();
        assert!(notes.is_empty() && cfg.plugin_config.get("aux_names").is_none(), "{notes:?}");
    }

    #[test]
    fn plugin_options_become_run_settings_or_notes() {
        let mut doc = json!({"plugin": "gm-ls", "plugin_config": {
            "resampling": "nearest", "work_chunks": [400, 400], "basis_band": "nbart_red", "group_by": "solar_day",
            "rgb_bands": ["nbart_red"], "transform_code": "EPSG:9688", "area_of_interest": [129, -26, 134, -24],
            "cloud_filters": {"cloud": [["dilation", 5]]}}});
        let doc = doc.as_object_mut().unwrap();
        let notes = translate(doc).unwrap();
        assert_eq!(doc["resampling"], "nearest");
        assert_eq!(
            doc["plugin_config"],
            json!({"cloud_filters": {"cloud": [["dilation", 5]]}}),
            "the plugin's own options stay"
        );
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "plugin_config.group_by",
                "plugin_config.work_chunks",
                "plugin_config.basis_band",
                "plugin_config.rgb_bands",
                "plugin_config.transform_code",
                "plugin_config.area_of_interest",
                "plugin_config.resampling"
            ]
        );
        assert_eq!(notes.iter().filter(|n| n.not_honoured).count(), 0);
        assert_eq!(doc["rgb_bands"], json!(["nbart_red"]), "the run's rgb_bands");
        assert_eq!(
            (&doc["transform_code"], &doc["transform_area_of_interest"]),
            (&json!("EPSG:9688"), &json!([129, -26, 134, -24]))
        );
        let mut clash = json!({"resampling": "cubic", "plugin_config": {"resampling": "nearest"}});
        let e = translate(clash.as_object_mut().unwrap()).unwrap_err().to_string();
        assert!(e.contains("plugin_config.resampling"), "{e}");
        let mut monthly = json!({"plugin_config": {"group_by": "time"}});
        assert!(translate(monthly.as_object_mut().unwrap()).is_err());
    }
}
