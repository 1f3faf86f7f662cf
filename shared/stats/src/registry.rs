//! Plugins by name, built from their `plugin_config`.

use crate::derived::{FcConfig, FcPercentiles, TcwConfig, TcwPercentiles};
use crate::gm::{Gm, GmConfig};
use crate::pq::{Pq, PqConfig};
use crate::statistic::{StatError, Statistic};
use crate::summaries::{Summary, SummaryConfig, SummaryKind, WofsConfig, WofsSummary};

const PLUGINS: &[&str] = &[
    "pq",
    "pq-ls",
    "gm-s2",
    "gm-ls",
    "percentiles",
    "median",
    "mean",
    "wofs-summary",
    "tcw-percentiles",
    "fc-percentiles",
];

pub fn plugin_names() -> &'static [&'static str] {
    PLUGINS
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
    }
}

/// Build a statistic from its name and `plugin_config`.
pub fn build_statistic(name: &str, cfg: &serde_json::Value) -> Result<Box<dyn Statistic>, StatError> {
    Ok(match name {
        "pq" => Box::new(Pq::new(name, config(name, PqConfig::s2(), cfg)?)?),
        "pq-ls" => Box::new(Pq::new(name, config(name, PqConfig::landsat(), cfg)?)?),
        "gm-s2" => Box::new(Gm::new(name, config(name, GmConfig::s2(), cfg)?)?),
        "gm-ls" => Box::new(Gm::new(name, config(name, GmConfig::landsat(), cfg)?)?),
        "percentiles" => {
            Box::new(Summary::new(name, SummaryKind::Percentiles, config(name, summary_defaults(), cfg)?)?)
        }
        "median" => Box::new(Summary::new(name, SummaryKind::Median, config(name, summary_defaults(), cfg)?)?),
        "mean" => Box::new(Summary::new(name, SummaryKind::Mean, config(name, summary_defaults(), cfg)?)?),
        "wofs-summary" => Box::new(WofsSummary::new(config(name, WofsConfig { band: "water".into() }, cfg)?)),
        "tcw-percentiles" => Box::new(TcwPercentiles::new(config(name, TcwConfig::s2(), cfg)?)?),
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
        for p in PLUGINS {
            if !["percentiles", "median", "mean"].contains(p) {
                build_statistic(p, &serde_json::Value::Null).unwrap();
            }
        }
    }
}
