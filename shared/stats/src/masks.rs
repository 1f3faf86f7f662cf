//! Cloud masks: Sentinel-2 SCL classes or Landsat Collection 2 `QA_PIXEL` bit flags,
//! cleaned with morphology filters, giving per observation "valid" and "clear" masks.

use crate::morphology::{apply_all, MorphOp};
use crate::stack::Stack;
use crate::statistic::StatError;
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How the mask band is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MaskKind {
    /// Sentinel-2 SCL: `nodata` class invalid, `cloud_classes` cloudy.
    S2Scl {
        #[serde(default = "default_scl_clouds")]
        cloud_classes: Vec<u16>,
    },
    /// Landsat C2 QA_PIXEL: bit `fill_bit` set = no data; any of `cloud_bits` = cloudy.
    QaBits {
        #[serde(default)]
        fill_bit: u8,
        #[serde(default = "default_qa_cloud_bits")]
        cloud_bits: Vec<u8>,
    },
}

fn default_scl_clouds() -> Vec<u16> {
    crate::s2_scl::CLOUD_CLASSES.to_vec()
}

/// Dilated cloud, cirrus, cloud, cloud shadow.
fn default_qa_cloud_bits() -> Vec<u8> {
    vec![1, 2, 3, 4]
}

impl MaskKind {
    pub fn s2() -> MaskKind {
        MaskKind::S2Scl { cloud_classes: default_scl_clouds() }
    }
    pub fn landsat() -> MaskKind {
        MaskKind::QaBits { fill_bit: 0, cloud_bits: default_qa_cloud_bits() }
    }
    /// Nodata of the mask band as stored.
    pub fn nodata(&self) -> u16 {
        match self {
            MaskKind::S2Scl { .. } => crate::s2_scl::NO_DATA,
            MaskKind::QaBits { fill_bit, .. } => 1 << fill_bit,
        }
    }
    pub fn is_valid(&self, v: u16) -> bool {
        match self {
            MaskKind::S2Scl { .. } => v != crate::s2_scl::NO_DATA,
            MaskKind::QaBits { fill_bit, .. } => v & (1 << fill_bit) == 0,
        }
    }
    pub fn is_cloud(&self, v: u16) -> bool {
        match self {
            MaskKind::S2Scl { cloud_classes } => cloud_classes.contains(&v),
            MaskKind::QaBits { cloud_bits, .. } => cloud_bits.iter().any(|b| v & (1 << b) != 0),
        }
    }
}

/// Parse `[[opening, 2], [dilation, 5]]`-style filters.
pub fn parse_filters(f: &[(String, usize)]) -> Result<Vec<MorphOp>, StatError> {
    f.iter()
        .map(|(op, r)| {
            if *r > 50 {
                return Err(StatError::Config {
                    plugin: "mask".into(),
                    why: format!("filter radius {r} is above 50 pixels"),
                });
            }
            MorphOp::parse(op, *r).map_err(|why| StatError::Config { plugin: "mask".into(), why })
        })
        .collect()
}

/// One observation's masks.
pub struct ObsMask {
    pub valid: Array2<bool>,
    /// Valid and not in the (filtered) cloud mask.
    pub clear: Array2<bool>,
}

/// Per observation: its valid and clear masks.
pub fn observation_masks(
    stack: &Stack,
    band: &str,
    kind: &MaskKind,
    filters: &[MorphOp],
) -> Result<Vec<ObsMask>, StatError> {
    let b = stack.band_index(band).ok_or_else(|| StatError::MissingBand(band.to_string()))?;
    // Every mask value's answer, once: a lookup per pixel instead of a class search.
    let (valid_of, cloud_of): (Vec<bool>, Vec<bool>) =
        (0..=u16::MAX).map(|v| (kind.is_valid(v), kind.is_cloud(v))).unzip();
    Ok((0..stack.times())
        .into_par_iter()
        .map(|t| {
            let plane = stack.plane(t, b);
            let valid = plane.mapv(|v| valid_of[v as usize]);
            let cloud = plane.mapv(|v| cloud_of[v as usize]);
            let cloud = if filters.is_empty() { cloud } else { apply_all(&cloud, filters) };
            let clear = ndarray::Zip::from(&valid).and(&cloud).map_collect(|&v, &c| v && !c);
            ObsMask { valid, clear }
        })
        .collect())
}

/// Pixels of context the filters need.
pub fn filters_reach(filters: &[MorphOp]) -> usize {
    filters.iter().map(MorphOp::reach).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landsat_bits() {
        let k = MaskKind::landsat();
        assert!(!k.is_valid(1)); // fill
        assert!(k.is_valid(0b0100_0000)); // clear bit only
        assert!(k.is_cloud(1 << 3) && k.is_cloud(1 << 4) && k.is_cloud(1 << 1));
        assert!(!k.is_cloud(1 << 6 | 1 << 7)); // clear water
        let s = MaskKind::s2();
        assert!(s.is_cloud(9) && !s.is_cloud(4) && !s.is_valid(0));
    }

    #[test]
    fn config_shape() {
        let k: MaskKind = serde_json::from_value(serde_json::json!({"type": "qa-bits", "cloud_bits": [3]})).unwrap();
        assert_eq!(k, MaskKind::QaBits { fill_bit: 0, cloud_bits: vec![3] });
        assert!(parse_filters(&[("opening".into(), 2), ("dilation".into(), 5)]).is_ok());
        assert!(parse_filters(&[("blur".into(), 2)]).is_err());
    }
}
