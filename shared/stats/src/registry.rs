//! Plugins by name, built from their `plugin_config`.

use crate::derived::{FcConfig, FcPercentiles, TcwConfig, TcwPercentiles};
use crate::gm::{Gm, GmConfig};
use crate::masks::MaskKind;
use crate::pq::{Pq, PqConfig};
use crate::statistic::{StatError, Statistic};
use crate::summaries::{Summary, SummaryConfig, SummaryKind, WofsConfig, WofsFullHistory, WofsSummary};

const PLUGINS: &[&str] = &[
    "pq",
    "pq-ls",
    "pq-ls-bitmask",
    "gm-s2",
    "gm-ls",
    "gm-generic",
    "gm-ls-bitmask",
    "percentiles",
    "median",
    "mean",
    "wofs-summary",
    "wofs-summary-fh",
    "tcw-percentiles",
    "fc-percentiles",
];

pub fn plugin_names() -> &'static [&'static str] {
    PLUGINS
}

/// A `plugin_config` in odc-stats' shape, made whole against our defaults: a mask band
/// named without its kind gets the kind its name says, and odc-stats' `cloud_filters`
/// replace the default filter chain rather than clash with it.
fn odc_stats_shape(plugin: &str, cfg: &serde_json::Value) -> Result<serde_json::Value, StatError> {
    let mut cfg = cfg.clone();
    let Some(o) = cfg.as_object_mut() else { return Ok(cfg) };
    if o.contains_key("cloud_filters") && !o.contains_key("mask_filters") {
        o.insert("mask_filters".into(), serde_json::json!([]));
    }
    if let (Some(band), false) = (o.get("mask_band").and_then(|b| b.as_str()), o.contains_key("mask")) {
        let kind = MaskKind::for_band(band).ok_or_else(|| StatError::Config {
            plugin: plugin.into(),
            why: format!(
                "mask_band '{band}': say how to read it with mask: {{type: s2-scl}}, {{type: fmask}} or {{type: qa-bits}}"
            ),
        })?;
        o.insert("mask".into(), serde_json::to_value(kind).expect("a mask kind serialises"));
    }
    Ok(cfg)
}

/// gm-ls's defaults: DEA's Collection 3 ARD where the bands or mask say so (odc-stats'
/// gm-ls), else USGS Collection 2.
fn gm_ls_defaults(cfg: &serde_json::Value) -> GmConfig {
    let named = |key: &str, pat: &str| {
        cfg.get(key).is_some_and(|v| match v {
            serde_json::Value::String(s) => s.contains(pat),
            serde_json::Value::Array(a) => a.iter().any(|b| b.as_str().is_some_and(|s| s.starts_with(pat))),
            _ => false,
        })
    };
    if named("bands", "nbart_") || named("mask_band", "fmask") {
        GmConfig::dea_ard()
    } else {
        GmConfig::landsat()
    }
}

/// The QA_PIXEL mask odc-stats' bitmask plugins' `flags` and `nodata_flags` describe
/// (their defaults: high-confidence cloud and cirrus; the nodata bit).
fn qa_flags_mask(plugin: &str, o: &mut serde_json::Map<String, serde_json::Value>) -> Result<MaskKind, StatError> {
    let names = |v: Option<serde_json::Value>, default: &[&str]| -> Result<Vec<String>, StatError> {
        match v {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(serde_json::Value::Object(m)) => Ok(m.keys().cloned().collect()),
            Some(other) => Err(StatError::Config {
                plugin: plugin.into(),
                why: format!(
                    "flags: give a mapping of QA_PIXEL flag to value, such as {{cloud: high_confidence}}, not {other}"
                ),
            }),
        }
    };
    let flags = names(o.remove("flags"), &["cloud", "cirrus"])?;
    let nodata = names(o.remove("nodata_flags"), &["nodata"])?;
    MaskKind::qa_from_flags(flags.iter().map(String::as_str), nodata.iter().map(String::as_str))
        .map_err(|why| StatError::Config { plugin: plugin.into(), why })
}

/// odc-stats' gm-ls-bitmask options as a geomedian's: USGS Collection 2 surface
/// reflectance, clouds from QA_PIXEL flags cleaned by one chain (`filters`), the
/// geomedian and EMAD written as reflectance x `output_scale` in `output_dtype`.
fn gm_ls_bitmask_shape(plugin: &str, cfg: &serde_json::Value) -> Result<serde_json::Value, StatError> {
    let mut o = match cfg {
        serde_json::Value::Object(o) => o.clone(),
        serde_json::Value::Null => Default::default(),
        _ => return Err(StatError::Config { plugin: plugin.into(), why: "plugin_config must be a mapping".into() }),
    };
    let mask = qa_flags_mask(plugin, &mut o)?;
    o.insert("mask".into(), serde_json::to_value(mask).expect("a mask kind serialises"));
    o.entry("mask_band").or_insert("QA_PIXEL".into());
    let chain = o.remove("filters").unwrap_or(serde_json::json!([]));
    o.insert("mask_filters".into(), if chain.is_null() { serde_json::json!([]) } else { chain });
    let scale = o.remove("output_scale").unwrap_or(10_000.into());
    let dtype = o.remove("output_dtype").unwrap_or("uint16".into());
    o.insert("rescale".into(), serde_json::json!({"scale": scale, "dtype": dtype}));
    o.insert("positive_only".into(), true.into());
    Ok(serde_json::Value::Object(o))
}

/// odc-stats' pq-ls-bitmask options as a pixel-quality count's: `pq_band`, QA_PIXEL
/// `flags` and `nodata_flags`, named `filters` (none by default), `aerosol_band` and
/// `aerosol_filters`.
fn pq_ls_bitmask_shape(plugin: &str, cfg: &serde_json::Value) -> Result<serde_json::Value, StatError> {
    let mut o = match cfg {
        serde_json::Value::Object(o) => o.clone(),
        serde_json::Value::Null => Default::default(),
        _ => return Err(StatError::Config { plugin: plugin.into(), why: "plugin_config must be a mapping".into() }),
    };
    for key in ["aerosol_band", "aerosol_filters"] {
        if o.get(key).is_some_and(|v| v.is_null()) {
            o.remove(key);
        }
    }
    let mask = qa_flags_mask(plugin, &mut o)?;
    o.insert("mask".into(), serde_json::to_value(mask).expect("a mask kind serialises"));
    let band = o.remove("pq_band").unwrap_or("QA_PIXEL".into());
    o.entry("band").or_insert(band);
    o.entry("filters").or_insert(serde_json::json!({}));
    Ok(serde_json::Value::Object(o))
}

/// odc-stats' tcw-percentiles options: `input_bands` are the six reflectance bands plus
/// its fixed `fmask` and `nbart_contiguity` (DEA's ARD: int16, nodata -999, x 1e-4);
/// without `cloud_filters`, cloud and shadow are left out unbuffered.
fn tcw_shape(plugin: &str, cfg: &serde_json::Value) -> Result<serde_json::Value, StatError> {
    let mut cfg = cfg.clone();
    if let Some(o) = cfg.as_object_mut() {
        if let Some(inputs) = o.remove("input_bands") {
            if o.contains_key("bands") {
                return Err(StatError::Config {
                    plugin: plugin.into(),
                    why: "give bands (Stratus's) or input_bands (odc-stats'), not both".into(),
                });
            }
            let names: Vec<&str> = inputs.as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
            if names.contains(&"fmask") {
                o.entry("mask_band").or_insert("fmask".into());
                o.entry("dtype").or_insert("int16".into());
                o.entry("nodata").or_insert((-999).into());
                o.entry("harmonize_s2_offset").or_insert(false.into());
                o.entry("mask_filters").or_insert(serde_json::json!([]));
            }
            if names.contains(&"nbart_contiguity") {
                o.entry("contiguity_band").or_insert("nbart_contiguity".into());
            }
            o.insert("bands".into(), inputs);
        }
    }
    odc_stats_shape(plugin, &cfg)
}

/// Merge `cfg` (a JSON object) over `defaults` and parse, naming unknown keys.
fn config<T: serde::de::DeserializeOwned + serde::Serialize>(
    plugin: &str,
    defaults: T,
    cfg: &serde_json::Value,
) -> Result<T, StatError> {
    let mut base = serde_json::to_value(defaults).expect("defaults serialise");
    match cfg {
        serde_json::Value::Null => {}
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                base[k] = v.clone();
            }
        }
        _ => return Err(StatError::Config { plugin: plugin.into(), why: "plugin_config must be a mapping".into() }),
    }
    serde_json::from_value(base)
        .map_err(|e| StatError::Config { plugin: plugin.into(), why: format!("plugin_config: {e}") })
}

fn summary_defaults() -> SummaryConfig {
    SummaryConfig {
        bands: vec![],
        percentiles: vec![10, 50, 90],
        min_obs: None,
        dtype: Default::default(),
        nodata: 0,
        mask_band: None,
        mask: None,
        mask_filters: vec![],
        cloud_filters: None,
    }
}

/// Build a statistic from its name and `plugin_config`.
pub fn build_statistic(name: &str, cfg: &serde_json::Value) -> Result<Box<dyn Statistic>, StatError> {
    Ok(match name {
        "pq" => Box::new(Pq::new(name, config(name, PqConfig::s2(), cfg)?)?),
        "pq-ls" => Box::new(Pq::new(name, config(name, PqConfig::landsat(), cfg)?)?),
        "pq-ls-bitmask" => {
            Box::new(Pq::new(name, config(name, PqConfig::landsat(), &pq_ls_bitmask_shape(name, cfg)?)?)?)
        }
        "gm-s2" => Box::new(Gm::new(name, config(name, GmConfig::s2(), &odc_stats_shape(name, cfg)?)?)?),
        "gm-ls" => Box::new(Gm::new(name, config(name, gm_ls_defaults(cfg), &odc_stats_shape(name, cfg)?)?)?),
        "gm-generic" => Box::new(Gm::new(name, config(name, GmConfig::generic(), &odc_stats_shape(name, cfg)?)?)?),
        "gm-ls-bitmask" => {
            Box::new(Gm::new(name, config(name, GmConfig::ls_bitmask(), &gm_ls_bitmask_shape(name, cfg)?)?)?)
        }
        "percentiles" => Box::new(Summary::new(
            name,
            SummaryKind::Percentiles,
            config(name, summary_defaults(), &odc_stats_shape(name, cfg)?)?,
        )?),
        "median" => Box::new(Summary::new(
            name,
            SummaryKind::Median,
            config(name, summary_defaults(), &odc_stats_shape(name, cfg)?)?,
        )?),
        "mean" => Box::new(Summary::new(
            name,
            SummaryKind::Mean,
            config(name, summary_defaults(), &odc_stats_shape(name, cfg)?)?,
        )?),
        "wofs-summary" => {
            Box::new(WofsSummary::new(config(name, WofsConfig { band: "water".into(), cloud_filters: None }, cfg)?)?)
        }
        "wofs-summary-fh" => {
            config::<serde_json::Map<String, serde_json::Value>>(name, Default::default(), cfg).and_then(
                |o| match o.keys().next() {
                    Some(k) => Err(StatError::Config {
                        plugin: name.into(),
                        why: format!("{k}: wofs-summary-fh has no options"),
                    }),
                    None => Ok(()),
                },
            )?;
            Box::new(WofsFullHistory)
        }
        "tcw-percentiles" => Box::new(TcwPercentiles::new(config(name, TcwConfig::s2(), &tcw_shape(name, cfg)?)?)?),
        "fc-percentiles" => Box::new(FcPercentiles::new(config(name, FcConfig::default(), cfg)?)?),
        _ => return Err(StatError::UnknownPlugin(name.to_string(), PLUGINS.join(", "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_plugin_and_bad_config_are_named() {
        let e = build_statistic("gm-zz", &serde_json::Value::Null).err().unwrap().to_string();
        assert!(e.contains("gm-zz") && e.contains("gm-s2"), "{e}");
        let e = build_statistic("pq", &serde_json::json!({"filterz": []})).err().unwrap().to_string();
        assert!(e.contains("filterz"), "{e}");
        assert_eq!(build_statistic("pq", &serde_json::json!({"filters": [[1, 2]]})).unwrap().halo(), 4);
        let gm = build_statistic("gm-s2", &serde_json::json!({"bands": ["B02", "B04"]})).unwrap();
        assert_eq!(gm.input_bands().len(), 3);
        assert_eq!(gm.halo(), 2 * 2 + 5);
        assert!(build_statistic("percentiles", &serde_json::Value::Null).is_err(), "bands are required");
        assert!(build_statistic("gm-generic", &serde_json::Value::Null).is_err(), "bands are required");
        for p in PLUGINS {
            if !["percentiles", "median", "mean", "gm-generic"].contains(p) {
                build_statistic(p, &serde_json::Value::Null).unwrap();
            }
        }
    }
}

#[cfg(test)]
mod odc_stats_configs {
    use super::*;
    use serde_json::json;

    fn outputs(s: &dyn Statistic) -> Vec<String> {
        s.output_bands().into_iter().map(|b| b.name).collect()
    }
    fn inputs(s: &dyn Statistic) -> Vec<String> {
        s.input_bands().into_iter().map(|b| b.name).collect()
    }

    /// odc-stats' own plugin_config shapes, as DEA's and DE Africa's run configs give them.
    #[test]
    fn odc_stats_plugin_configs_build() {
        // DE Africa's gm_s2_annual: cloud_filters per SCL class, odc-stats' MAD names.
        let gm = build_statistic(
            "gm-s2",
            &json!({"cloud_filters": {"cloud shadows": [["opening", 3], ["dilation", 6]], "cloud medium probability": [["dilation", 6]]}, "aux_names": {"smad": "SMAD", "emad": "EMAD", "bcmad": "BCMAD", "count": "COUNT"}}),
        )
        .unwrap();
        assert_eq!(gm.halo(), 12);
        assert_eq!(&outputs(gm.as_ref())[10..], ["EMAD", "SMAD", "BCMAD", "COUNT"]);
        // DEA's ga_ls8c_nbart_gm_cyear_3: ARD bands, fmask, contiguity among the bands.
        let ls = build_statistic(
            "gm-ls",
            &json!({"bands": ["nbart_red", "nbart_green", "nbart_blue", "nbart_nir", "nbart_swir_1", "nbart_swir_2", "nbart_contiguity"],
                    "mask_band": "fmask", "contiguity_band": "nbart_contiguity", "nodata_classes": ["nodata"],
                    "cloud_filters": {"cloud": [["opening", 2], ["dilation", 5]], "shadow": [["opening", 2], ["dilation", 5]]}}),
        )
        .unwrap();
        assert_eq!(&outputs(ls.as_ref())[5..], ["nbart_swir_2", "edev", "sdev", "bcdev", "count"]);
        assert_eq!(&inputs(ls.as_ref())[6..], ["fmask", "nbart_contiguity"]);
        assert_eq!(ls.output_bands()[0].dtype, crate::statistic::PixelType::Int16);
        // gm-generic on any classified mask.
        let g = build_statistic("gm-generic", &json!({"bands": ["red", "nir"], "mask_band": "oa_fmask"})).unwrap();
        assert_eq!(outputs(g.as_ref()), ["red", "nir", "emad", "smad", "bcmad", "count"]);
        // A class the mask band does not have is named with the valid ones.
        let e =
            build_statistic("gm-ls", &json!({"mask_band": "fmask", "cloud_filters": {"clouds": [["dilation", 3]]}}))
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("'clouds'") && e.contains("cloud, shadow"), "{e}");
        let e = build_statistic("gm-generic", &json!({"bands": ["red"], "mask_band": "pixel_qa2"}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("pixel_qa2") && e.contains("fmask"), "{e}");
        // DE Africa's gm_ls_annual-style bitmask geomedian and pixel-quality counts.
        let b = build_statistic(
            "gm-ls-bitmask",
            &json!({"bands": ["red", "green", "blue", "nir", "swir_1", "swir_2"], "filters": [["closing", 10], ["opening", 2], ["dilation", 2]]}),
        )
        .unwrap();
        assert_eq!(b.halo(), 20 + 4 + 2);
        assert_eq!(b.input_bands().last().unwrap().name, "QA_PIXEL");
        let emad = &b.output_bands()[6];
        assert_eq!((emad.name.as_str(), emad.dtype), ("emad", crate::statistic::PixelType::Uint16));
        let pq = build_statistic(
            "pq-ls-bitmask",
            &json!({"flags": {"cloud": "high_confidence", "cloud_shadow": "high_confidence"}, "filters": {"clear_2_2": [["opening", 2], ["dilation", 2]]}}),
        )
        .unwrap();
        assert_eq!(outputs(pq.as_ref()), ["total", "clear", "clear_2_2"]);
        let a = build_statistic(
            "pq-ls-bitmask",
            &json!({"aerosol_band": "SR_QA_AEROSOL", "aerosol_filters": {"clear_2_2_aerosol": [["opening", 2], ["dilation", 2]]}}),
        )
        .unwrap();
        assert_eq!(outputs(a.as_ref()), ["total", "clear", "clear_aerosol", "clear_2_2_aerosol"]);
        assert!(build_statistic("pq-ls-bitmask", &json!({"aerosol_band": "SR_AEROSOL"})).is_err());
        let t = build_statistic(
            "tcw-percentiles",
            &json!({"bands": ["blue", "green", "red", "nir", "swir1", "swir2", "fmask", "nbart_contiguity"], "mask_band": "fmask",
                    "contiguity_band": "nbart_contiguity", "dtype": "int16", "nodata": -999,
                    "cloud_filters": {"cloud": [["opening", 2], ["dilation", 5]]}}),
        )
        .unwrap();
        assert_eq!(inputs(t.as_ref()).len(), 8);
    }
}
