//! Plugins by name.

use crate::pq::{Pq, PqConfig};
use crate::statistic::{StatError, Statistic};

const PLUGINS: &[&str] = &["pq"];

pub fn plugin_names() -> &'static [&'static str] {
    PLUGINS
}

fn config<T: serde::de::DeserializeOwned + Default>(
    plugin: &str,
    cfg: &serde_json::Value,
) -> Result<T, StatError> {
    if cfg.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(cfg.clone()).map_err(|e| StatError::Config {
        plugin: plugin.into(),
        why: format!("plugin_config: {e}"),
    })
}

/// Build a statistic from its name and `plugin_config`.
pub fn build_statistic(
    name: &str,
    cfg: &serde_json::Value,
) -> Result<Box<dyn Statistic>, StatError> {
    match name {
        "pq" => Ok(Box::new(Pq::new(config::<PqConfig>(name, cfg)?)?)),
        _ => Err(StatError::UnknownPlugin(
            name.to_string(),
            PLUGINS.join(", "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_plugin_and_bad_config_are_named() {
        let e = build_statistic("gm-zz", &serde_json::Value::Null)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("gm-zz") && e.contains("pq"), "{e}");
        let e = build_statistic("pq", &serde_json::json!({"filterz": []}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("filterz"), "{e}");
        assert_eq!(
            build_statistic("pq", &serde_json::json!({"filters": [[1, 2]]}))
                .unwrap()
                .halo(),
            4
        );
    }
}
