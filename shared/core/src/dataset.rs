//! An input dataset: one acquisition (or a fused pair) with its band assets, footprint and
//! the metadata planning and reading need.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One readable band of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandAsset {
    /// The asset key in the STAC item (`red`, `B04`, `SCL`, `qa_pixel`).
    pub key: String,
    /// Other names it answers to: `eo:bands` names and common names (`B04`, `red`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Where the pixels are: an absolute path, `s3://`, `http(s)://` or `/vsi...` URL.
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsg: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<[f64; 6]>,
    /// (rows, cols), as `proj:shape` gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<[usize; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodata: Option<f64>,
    /// The sample type, scale and offset the item declares (`raster:bands`, STAC 1.1
    /// `bands`, or the asset's own fields): checked against what the statistic reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<crate::SampleType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub id: String,
    pub collection: String,
    pub datetime: DateTime<Utc>,
    /// Exterior rings of the footprint, in longitude/latitude (EPSG:4326).
    pub footprint: Vec<Vec<(f64, f64)>>,
    /// The dataset's native CRS (`proj:epsg` / `proj:code`).
    pub epsg: u32,
    /// MGRS tile or WRS path/row: what makes two datasets "the same region".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
    /// Sentinel-2 processing baseline, e.g. `04.00` (decides the +1000 offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_baseline: Option<String>,
    pub assets: Vec<BandAsset>,
    /// For fused datasets, the ids of the items they were made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The item's properties a derived product inherits (eodatasets3's inheritable
    /// properties), under their eo3 names (`eo:platform`, `eo:instrument`,
    /// `eo:cloud_cover`, `gqa:*`, `landsat:*`, ...; see [`crate::stac_input::inheritable`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub inherited: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Sentinel-2 band ids and their Earth Search asset names, so that a configuration can say
/// either `B04` or `red`.
const S2_ALIASES: &[(&str, &str)] = &[
    ("B01", "coastal"),
    ("B02", "blue"),
    ("B03", "green"),
    ("B04", "red"),
    ("B05", "rededge1"),
    ("B06", "rededge2"),
    ("B07", "rededge3"),
    ("B08", "nir"),
    ("B8A", "nir08"),
    ("B09", "nir09"),
    ("B11", "swir16"),
    ("B12", "swir22"),
    ("SCL", "scl"),
    ("AOT", "aot"),
    ("WVP", "wvp"),
];

/// Names that mean the same band as `name` (itself included).
pub fn band_aliases(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    for (id, en) in S2_ALIASES {
        if id.eq_ignore_ascii_case(name) {
            out.push(en.to_string());
        } else if en.eq_ignore_ascii_case(name) {
            out.push(id.to_string());
        }
    }
    out
}

impl Dataset {
    /// Find the asset for a band by asset key, `eo:bands` name, common name or alias.
    /// Keys win over names so that `nir` finds the `nir` asset, not `nir08` by common name.
    pub fn band(&self, name: &str) -> Option<&BandAsset> {
        let aliases = band_aliases(name);
        let eq = |a: &str| aliases.iter().any(|n| n.eq_ignore_ascii_case(a));
        self.assets.iter().find(|a| eq(&a.key)).or_else(|| self.assets.iter().find(|a| a.names.iter().any(|n| eq(n))))
    }

    /// Mean longitude of the footprint's vertices (for the local solar day).
    pub fn longitude(&self) -> f64 {
        let pts: Vec<&(f64, f64)> =
            self.footprint.iter().flat_map(|r| r.iter().take(r.len().saturating_sub(1).max(1))).collect();
        if pts.is_empty() {
            return 0.0;
        }
        pts.iter().map(|p| p.0).sum::<f64>() / pts.len() as f64
    }

    /// True if the Sentinel-2 digital numbers carry the +1000 offset (baseline 04.00+).
    pub fn has_boa_offset(&self) -> bool {
        self.processing_baseline.as_deref().and_then(|b| b.parse::<f64>().ok()).is_some_and(|b| b >= 4.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(assets: Vec<BandAsset>) -> Dataset {
        Dataset {
            id: "a".into(),
            collection: "c".into(),
            datetime: Utc::now(),
            footprint: vec![vec![(10.0, 0.0), (12.0, 0.0), (12.0, 1.0), (10.0, 0.0)]],
            epsg: 32633,
            region_code: None,
            processing_baseline: Some("04.00".into()),
            assets,
            sources: vec![],
            inherited: Default::default(),
        }
    }

    fn asset(key: &str, names: &[&str]) -> BandAsset {
        BandAsset {
            key: key.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            href: format!("/x/{key}.tif"),
            epsg: None,
            transform: None,
            shape: None,
            nodata: None,
            data_type: None,
            scale: None,
            offset: None,
        }
    }

    #[test]
    fn band_lookup_by_key_name_and_alias() {
        let d = ds(vec![
            asset("red", &["B04"]),
            asset("nir08", &["B8A", "nir08"]),
            asset("nir", &["B08", "nir"]),
            asset("scl", &[]),
        ]);
        assert_eq!(d.band("B04").unwrap().key, "red");
        assert_eq!(d.band("red").unwrap().key, "red");
        assert_eq!(d.band("nir").unwrap().key, "nir");
        assert_eq!(d.band("B8A").unwrap().key, "nir08");
        assert_eq!(d.band("SCL").unwrap().key, "scl");
        assert!(d.band("B12").is_none());
        // Planetary Computer style: keys are band ids.
        let d = ds(vec![asset("B04", &["B04", "red"])]);
        assert_eq!(d.band("red").unwrap().key, "B04");
        assert!(d.has_boa_offset());
        assert!((d.longitude() - 34.0 / 3.0).abs() < 1e-9);
    }
}
