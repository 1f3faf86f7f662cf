//! Cloud masks: Sentinel-2 SCL classes, DEA's fmask classes or Landsat Collection 2
//! `QA_PIXEL` bit flags, cleaned with morphology filters, giving per observation "valid"
//! and "clear" masks.
//!
//! Classes can be named as odc-stats names them (the `flags_definition` of the mask band
//! in the products ODC indexes): `cloud_filters` maps a class to its own morphology chain
//! and the cleaned masks are OR-ed, `nodata_classes` lists the classes that are no data,
//! exactly as odc-stats' geomedian `native_transform` does.

use crate::morphology::{apply_all, MorphOp};
use crate::stack::Stack;
use crate::statistic::StatError;
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the mask band is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MaskKind {
    /// Sentinel-2 SCL: `nodata` class invalid, `cloud_classes` cloudy.
    S2Scl {
        #[serde(default = "default_scl_clouds")]
        cloud_classes: Vec<u16>,
    },
    /// DEA ARD fmask (0 nodata, 1 valid, 2 cloud, 3 shadow, 4 snow, 5 water).
    Fmask {
        #[serde(default = "default_fmask_clouds")]
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

/// Cloud and cloud shadow: odc-stats' gm-ls without `cloud_filters`.
fn default_fmask_clouds() -> Vec<u16> {
    vec![2, 3]
}

/// Dilated cloud, cirrus, cloud, cloud shadow.
fn default_qa_cloud_bits() -> Vec<u8> {
    vec![1, 2, 3, 4]
}

/// SCL's classes as its `flags_definition` names them (Sentinel-2 L2A in ODC).
const SCL_NAMES: [(&str, u16); 12] = [
    ("no data", 0),
    ("saturated or defective", 1),
    ("dark area pixels", 2),
    ("cloud shadows", 3),
    ("vegetation", 4),
    ("bare soils", 5),
    ("water", 6),
    ("unclassified", 7),
    ("cloud medium probability", 8),
    ("cloud high probability", 9),
    ("thin cirrus", 10),
    ("snow or ice", 11),
];

/// DEA ARD fmask's classes.
const FMASK_NAMES: [(&str, u16); 6] =
    [("nodata", 0), ("valid", 1), ("cloud", 2), ("shadow", 3), ("snow", 4), ("water", 5)];

/// USGS Collection 2 QA_PIXEL's one-bit flags (set = the class), as its ODC product
/// definitions name them.
const QA_BIT_NAMES: [(&str, u8); 8] = [
    ("nodata", 0),
    ("dilated_cloud", 1),
    ("cirrus", 2),
    ("cloud", 3),
    ("cloud_shadow", 4),
    ("snow", 5),
    ("clear", 6),
    ("water", 7),
];

/// Every QA_PIXEL flag's bits, the two-bit confidences included.
const QA_FLAGS: [(&str, u16); 12] = [
    ("nodata", 1),
    ("dilated_cloud", 1 << 1),
    ("cirrus", 1 << 2),
    ("cloud", 1 << 3),
    ("cloud_shadow", 1 << 4),
    ("snow", 1 << 5),
    ("clear", 1 << 6),
    ("water", 1 << 7),
    ("cloud_confidence", 3 << 8),
    ("cloud_shadow_confidence", 3 << 10),
    ("snow_ice_confidence", 3 << 12),
    ("cirrus_confidence", 3 << 14),
];

impl MaskKind {
    /// odc-stats' bitmask plugins' `flags` (cloudy) and `nodata_flags` as a QA_PIXEL mask.
    /// As odc-stats does (`(band & mask) != 0` with the mask of the named flags), a pixel
    /// counts where any bit of a named flag is set: the flags' values are not compared.
    pub fn qa_from_flags<'a>(
        flags: impl IntoIterator<Item = &'a str>,
        nodata_flags: impl IntoIterator<Item = &'a str>,
    ) -> Result<MaskKind, String> {
        let bits = |key: &str, names: &mut dyn Iterator<Item = &'a str>| -> Result<Vec<u8>, String> {
            let mut v = Vec::new();
            for n in names {
                let m = QA_FLAGS.iter().find(|f| f.0 == n).ok_or_else(|| {
                    format!(
                        "{key}: QA_PIXEL has no flag '{n}'; its flags are: {}",
                        QA_FLAGS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
                    )
                })?;
                v.extend((0..16u8).filter(|b| m.1 & (1 << b) != 0));
            }
            Ok(v)
        };
        let cloud_bits = bits("flags", &mut flags.into_iter())?;
        let fill = bits("nodata_flags", &mut nodata_flags.into_iter())?;
        let [fill_bit] = fill[..] else {
            return Err(format!(
                "nodata_flags: name one one-bit flag (odc-stats' default: nodata), not {} bits",
                fill.len()
            ));
        };
        Ok(MaskKind::QaBits { fill_bit, cloud_bits })
    }
    pub fn s2() -> MaskKind {
        MaskKind::S2Scl { cloud_classes: default_scl_clouds() }
    }
    pub fn landsat() -> MaskKind {
        MaskKind::QaBits { fill_bit: 0, cloud_bits: default_qa_cloud_bits() }
    }
    pub fn fmask() -> MaskKind {
        MaskKind::Fmask { cloud_classes: default_fmask_clouds() }
    }
    /// The kind a mask band's name says (odc-stats' configs name the band, not its kind).
    pub fn for_band(band: &str) -> Option<MaskKind> {
        let b = band.to_ascii_lowercase();
        if b == "scl" || b.ends_with("_scl") {
            Some(MaskKind::s2())
        } else if b.contains("fmask") {
            Some(MaskKind::fmask())
        } else if b.contains("qa_pixel") {
            Some(MaskKind::landsat())
        } else {
            None
        }
    }
    /// Nodata of the mask band as stored.
    pub fn nodata(&self) -> u16 {
        match self {
            MaskKind::S2Scl { .. } => crate::s2_scl::NO_DATA,
            MaskKind::Fmask { .. } => 0,
            MaskKind::QaBits { fill_bit, .. } => 1 << fill_bit,
        }
    }
    pub fn is_valid(&self, v: u16) -> bool {
        match self {
            MaskKind::S2Scl { .. } => v != crate::s2_scl::NO_DATA,
            MaskKind::Fmask { .. } => v != 0,
            MaskKind::QaBits { fill_bit, .. } => v & (1 << fill_bit) == 0,
        }
    }
    pub fn is_cloud(&self, v: u16) -> bool {
        match self {
            MaskKind::S2Scl { cloud_classes } | MaskKind::Fmask { cloud_classes } => cloud_classes.contains(&v),
            MaskKind::QaBits { cloud_bits, .. } => cloud_bits.iter().any(|b| v & (1 << b) != 0),
        }
    }
    /// The classes this kind of band has, by name.
    pub fn class_names(&self) -> Vec<&'static str> {
        match self {
            MaskKind::S2Scl { .. } => SCL_NAMES.iter().map(|c| c.0).collect(),
            MaskKind::Fmask { .. } => FMASK_NAMES.iter().map(|c| c.0).collect(),
            MaskKind::QaBits { .. } => QA_BIT_NAMES.iter().map(|c| c.0).collect(),
        }
    }
    /// Whether value `v` is in the class named `name` (None: no such class).
    fn class_test(&self, name: &str) -> Option<Box<dyn Fn(u16) -> bool + Send + Sync>> {
        let n = name.trim();
        match self {
            MaskKind::S2Scl { .. } | MaskKind::Fmask { .. } => {
                let table: &[(&str, u16)] =
                    if matches!(self, MaskKind::Fmask { .. }) { &FMASK_NAMES } else { &SCL_NAMES };
                let c = table.iter().find(|c| c.0.eq_ignore_ascii_case(n))?.1;
                Some(Box::new(move |v| v == c))
            }
            MaskKind::QaBits { .. } => {
                let bit = QA_BIT_NAMES.iter().find(|c| c.0.eq_ignore_ascii_case(n))?.1;
                Some(Box::new(move |v| v & (1 << bit) != 0))
            }
        }
    }
}

/// odc-stats' `cloud_filters`: mask class -> its morphology chain,
/// e.g. `{cloud: [[opening, 3], [dilation, 6]], shadow: [[dilation, 6]]}`.
pub type CloudFilters = BTreeMap<String, Vec<(String, usize)>>;

/// A mask band's rules: which values are no data, and the cloud groups (classes with
/// their own filter chain) whose cleaned masks are OR-ed into "not clear".
pub struct MaskRules {
    kind: MaskKind,
    /// Per stored value: valid?
    valid_of: Vec<bool>,
    /// Per stored value: bit g set = in cloud group g.
    groups_of: Vec<u32>,
    filters: Vec<Vec<MorphOp>>,
}

/// What a plugin's configuration says about its mask band.
pub struct MaskSpec<'a> {
    pub plugin: &'a str,
    pub kind: &'a MaskKind,
    /// Stratus's one chain over every cloud class of `kind`.
    pub mask_filters: &'a [(String, usize)],
    /// odc-stats' chains per class (replaces `mask_filters` and the kind's cloud classes).
    pub cloud_filters: Option<&'a CloudFilters>,
    /// odc-stats' classes that are no data (default: the kind's own nodata).
    pub nodata_classes: Option<&'a [String]>,
}

impl MaskRules {
    pub fn new(spec: MaskSpec) -> Result<MaskRules, StatError> {
        let MaskSpec { plugin, kind, mask_filters, cloud_filters, nodata_classes } = spec;
        let config = |why: String| StatError::Config { plugin: plugin.into(), why };
        let class = |key: &str, name: &str| {
            kind.class_test(name).ok_or_else(|| {
                config(format!(
                    "{key}: the mask band has no class '{name}'; its classes are: {}",
                    kind.class_names().join(", ")
                ))
            })
        };
        if cloud_filters.is_some() && !mask_filters.is_empty() {
            return Err(config(
                "give mask_filters (one chain over every cloud class) or cloud_filters (odc-stats': a chain per class), not both"
                    .into(),
            ));
        }
        let mut tests: Vec<Box<dyn Fn(u16) -> bool + Send + Sync>> = Vec::new();
        let mut filters = Vec::new();
        match cloud_filters {
            Some(groups) => {
                if groups.len() > 32 {
                    return Err(config("cloud_filters: give at most 32 classes".into()));
                }
                for (name, chain) in groups {
                    tests.push(class("cloud_filters", name)?);
                    filters.push(parse_filters(chain)?);
                }
            }
            None => {
                let k = kind.clone();
                tests.push(Box::new(move |v| k.is_cloud(v)));
                filters.push(parse_filters(mask_filters)?);
            }
        }
        let nodata: Vec<_> = match nodata_classes {
            Some(names) => names.iter().map(|n| class("nodata_classes", n)).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        // Every stored value's answer, once: a lookup per pixel instead of a class search.
        let valid_of = (0..=u16::MAX)
            .map(|v| if nodata_classes.is_some() { !nodata.iter().any(|t| t(v)) } else { kind.is_valid(v) })
            .collect();
        let groups_of = (0..=u16::MAX)
            .map(|v| tests.iter().enumerate().fold(0u32, |acc, (g, t)| acc | ((t(v) as u32) << g)))
            .collect();
        Ok(MaskRules { kind: kind.clone(), valid_of, groups_of, filters })
    }

    /// Pixels of context the filters need.
    pub fn reach(&self) -> usize {
        self.filters.iter().map(|f| filters_reach(f)).max().unwrap_or(0)
    }

    pub fn kind(&self) -> &MaskKind {
        &self.kind
    }

    /// Every chain's radii times `factor` (see [`crate::Statistic::scale_filters`]).
    pub fn scale(&mut self, factor: f64) {
        scale_chains(self.filters.iter_mut(), factor);
    }
}

/// Scale the radii of filter chains (see [`crate::Statistic::scale_filters`]).
pub fn scale_chains<'a>(chains: impl Iterator<Item = &'a mut Vec<MorphOp>>, factor: f64) {
    for chain in chains {
        for op in chain.iter_mut() {
            *op = op.scaled(factor);
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

/// Per observation: its valid and clear masks. `contiguity`: a band whose 0 marks pixels
/// some band of the observation lacks (DEA's `oa_nbart_contiguity`): not valid.
pub fn observation_masks(
    stack: &Stack,
    band: &str,
    rules: &MaskRules,
    contiguity: Option<&str>,
) -> Result<Vec<ObsMask>, StatError> {
    let b = stack.band_index(band).ok_or_else(|| StatError::MissingBand(band.to_string()))?;
    let c = match contiguity {
        Some(name) => Some(stack.band_index(name).ok_or_else(|| StatError::MissingBand(name.to_string()))?),
        None => None,
    };
    Ok((0..stack.times())
        .into_par_iter()
        .map(|t| {
            let plane = stack.plane(t, b);
            let mut valid = plane.mapv(|v| rules.valid_of[v as usize]);
            if let Some(c) = c {
                ndarray::Zip::from(&mut valid).and(&stack.plane(t, c)).for_each(|v, &k| *v &= k != 0);
            }
            // Each group's mask, cleaned by its chain; OR-ed (one group: as it is).
            let cloud = rules
                .filters
                .iter()
                .enumerate()
                .map(|(g, filters)| {
                    let group = plane.mapv(|v| rules.groups_of[v as usize] & (1 << g) != 0);
                    if filters.is_empty() {
                        group
                    } else {
                        apply_all(&group, filters)
                    }
                })
                .reduce(|mut a, b| {
                    ndarray::Zip::from(&mut a).and(&b).for_each(|c, &m| *c |= m);
                    a
                })
                .unwrap_or_else(|| Array2::from_elem(plane.dim(), false));
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
        let f = MaskKind::fmask();
        assert!(f.is_cloud(2) && f.is_cloud(3) && !f.is_cloud(4) && !f.is_valid(0) && f.is_valid(5));
        assert_eq!(MaskKind::for_band("oa_fmask"), Some(MaskKind::fmask()));
        assert_eq!(MaskKind::for_band("SCL"), Some(MaskKind::s2()));
        assert_eq!(MaskKind::for_band("QA_PIXEL"), Some(MaskKind::landsat()));
    }

    #[test]
    fn config_shape() {
        let k: MaskKind = serde_json::from_value(serde_json::json!({"type": "qa-bits", "cloud_bits": [3]})).unwrap();
        assert_eq!(k, MaskKind::QaBits { fill_bit: 0, cloud_bits: vec![3] });
        assert!(parse_filters(&[("opening".into(), 2), ("dilation".into(), 5)]).is_ok());
        assert!(parse_filters(&[("blur".into(), 2)]).is_err());
    }

    /// A one-observation stack of an fmask band (rows of `mask`) and optional contiguity.
    fn stack_of(mask: &[&[u16]], contiguity: Option<&[u16]>) -> Stack {
        let mut bands = vec!["fmask".to_string()];
        if contiguity.is_some() {
            bands.push("contiguity".into());
        }
        let (h, w) = (mask.len(), mask[0].len());
        let mut s = Stack::new(bands.clone(), vec![0; bands.len()], 1, h, w);
        for (y, row) in mask.iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                s.data[[0, 0, y, x]] = v;
                if let Some(c) = contiguity {
                    s.data[[0, 1, y, x]] = c[x];
                }
            }
        }
        s
    }

    #[test]
    fn cloud_filters_clean_each_class_on_its_own_then_or() {
        // One cloud pixel (2), one lone shadow pixel and a 3 x 3 block of shadow (3).
        let rows: [&[u16]; 5] = [
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1],
            &[1, 1, 2, 1, 1, 1, 3, 1, 1, 3, 3, 3, 1],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        ];
        let s = stack_of(&rows, None);
        let groups: CloudFilters = [
            ("cloud".to_string(), vec![("dilation".to_string(), 1)]),
            ("shadow".to_string(), vec![("opening".to_string(), 1)]),
        ]
        .into();
        let fmask = MaskKind::fmask();
        let spec =
            |cf| MaskSpec { plugin: "gm-ls", kind: &fmask, mask_filters: &[], cloud_filters: cf, nodata_classes: None };
        let rules = MaskRules::new(spec(Some(&groups))).unwrap();
        assert_eq!(rules.reach(), 2);
        let m = &observation_masks(&s, "fmask", &rules, None).unwrap()[0];
        let not_clear = |m: &ObsMask| m.clear.indexed_iter().filter(|(_, &c)| !c).map(|(i, _)| i).collect::<Vec<_>>();
        // The cloud grows to a disk of radius 1 (a plus); the lone shadow pixel opens
        // away and the block opens to the plus that fits it.
        assert_eq!(not_clear(m), [(1, 2), (1, 10), (2, 1), (2, 2), (2, 3), (2, 9), (2, 10), (2, 11), (3, 2), (3, 10)]);
        // Without cloud_filters: cloud and shadow, unbuffered (odc-stats' gm-ls default).
        let plain = MaskRules::new(spec(None)).unwrap();
        let m = &observation_masks(&s, "fmask", &plain, None).unwrap()[0];
        assert_eq!(not_clear(m).len(), 11);
    }

    #[test]
    fn nodata_classes_and_contiguity_invalidate() {
        let s = stack_of(&[&[0, 1, 4, 5, 1]], Some(&[1, 1, 1, 1, 0]));
        let nodata = ["nodata".to_string(), "snow".to_string()];
        let rules = MaskRules::new(MaskSpec {
            plugin: "gm-ls",
            kind: &MaskKind::fmask(),
            mask_filters: &[],
            cloud_filters: None,
            nodata_classes: Some(&nodata),
        })
        .unwrap();
        let m = &observation_masks(&s, "fmask", &rules, Some("contiguity")).unwrap()[0];
        let valid: Vec<u8> = m.valid.iter().map(|&c| c as u8).collect();
        assert_eq!(valid, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn unknown_classes_and_mixed_keys_are_named() {
        let groups: CloudFilters = [("clouds".to_string(), vec![])].into();
        let s2 = MaskKind::s2();
        let spec =
            |mf, cf| MaskSpec { plugin: "gm-s2", kind: &s2, mask_filters: mf, cloud_filters: cf, nodata_classes: None };
        let e = MaskRules::new(spec(&[], Some(&groups))).err().unwrap().to_string();
        assert!(e.contains("cloud_filters") && e.contains("'clouds'") && e.contains("cloud high probability"), "{e}");
        let chain = [("dilation".to_string(), 3)];
        let e = MaskRules::new(spec(&chain, Some(&CloudFilters::new()))).err().unwrap().to_string();
        assert!(e.contains("mask_filters") && e.contains("cloud_filters"), "{e}");
        assert_eq!(
            MaskKind::qa_from_flags(["cloud", "cirrus_confidence"], ["nodata"]),
            Ok(MaskKind::QaBits { fill_bit: 0, cloud_bits: vec![3, 14, 15] })
        );
        assert!(MaskKind::qa_from_flags(["clouds"], ["nodata"]).unwrap_err().contains("cloud_shadow"));
        // QA_PIXEL flags by name.
        let q = MaskKind::landsat();
        assert!(q.class_test("cloud_shadow").unwrap()(1 << 4) && !q.class_test("cirrus").unwrap()(1 << 3));
    }
}
