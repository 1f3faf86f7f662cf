//! Product expressions: `a` (one collection), `a+b+...` (fuse the datasets of two or more
//! collections that share acquisition time and region into one virtual dataset), `a-b-c`
//! (pool datasets of several collections). Collection names may themselves contain '-'
//! (`sentinel-2-l2a`), so expressions are resolved against the collections present.

use crate::dataset::Dataset;
use crate::error::{CoreError, Result};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductExpr {
    Single(String),
    /// Two or more collections, in the expression's order (the first present one's
    /// metadata leads a fused dataset).
    Fuse(Vec<String>),
    Pool(Vec<String>),
}

impl ProductExpr {
    /// Parse `expr`, matching its parts against the `known` collection names.
    pub fn parse(expr: &str, known: &BTreeSet<String>) -> Result<ProductExpr> {
        let bad = |why: String| CoreError::BadProduct { input: expr.to_string(), why };
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(bad("empty".into()));
        }
        let check = |name: &str| -> Result<String> {
            if known.contains(name) {
                Ok(name.to_string())
            } else {
                Err(bad(format!(
                    "no input datasets of collection '{name}' (the inputs have: {})",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        if known.contains(expr) {
            return Ok(ProductExpr::Single(expr.to_string()));
        }
        if expr.contains('+') {
            let names = expr.split('+').map(|n| check(n.trim())).collect::<Result<Vec<_>>>()?;
            if names.iter().collect::<BTreeSet<_>>().len() != names.len() {
                return Err(bad("a product is named twice".into()));
            }
            return Ok(ProductExpr::Fuse(names));
        }
        // Pool: split on '-' and greedily join tokens back into known collection names.
        let tokens: Vec<&str> = expr.split('-').collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let found = (i + 1..=tokens.len()).rev().map(|j| tokens[i..j].join("-")).find(|n| known.contains(n));
            match found {
                Some(n) => {
                    i += n.split('-').count();
                    out.push(n);
                }
                None => return Err(bad(format!("no input collection matches '{}'", tokens[i..].join("-")))),
            }
        }
        if out.len() == 1 {
            return Ok(ProductExpr::Single(out.remove(0)));
        }
        Ok(ProductExpr::Pool(out))
    }

    pub fn collections(&self) -> Vec<&str> {
        match self {
            ProductExpr::Single(a) => vec![a],
            ProductExpr::Fuse(v) | ProductExpr::Pool(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The fused collection's name (`a+b+c`).
    pub fn name(&self) -> String {
        match self {
            ProductExpr::Single(a) => a.clone(),
            ProductExpr::Fuse(v) => v.join("+"),
            ProductExpr::Pool(v) => v.join("-"),
        }
    }

    /// Apply the expression: keep, pool or fuse datasets. A fused dataset carries the
    /// union of its members' assets (the earlier product's asset wins a name clash); a
    /// group missing a product that is not `optional` is dropped, as odc-stats does.
    pub fn apply(&self, datasets: Vec<Dataset>, optional: &BTreeSet<String>) -> Vec<Dataset> {
        match self {
            ProductExpr::Single(_) | ProductExpr::Pool(_) => {
                let keep: BTreeSet<&str> = self.collections().into_iter().collect();
                datasets.into_iter().filter(|d| keep.contains(d.collection.as_str())).collect()
            }
            ProductExpr::Fuse(names) => {
                type Key = (i64, Option<String>);
                let mut groups: BTreeMap<Key, Vec<Option<Dataset>>> = BTreeMap::new();
                for d in datasets {
                    let Some(at) = names.iter().position(|n| *n == d.collection) else { continue };
                    let group = groups.entry(fuse_key(&d)).or_insert_with(|| vec![None; names.len()]);
                    group[at].get_or_insert(d);
                }
                groups
                    .into_values()
                    .filter(|g| fusable(names, optional, |i| g[i].is_some()))
                    .map(|g| fuse_all(&self.name(), g.into_iter().flatten().collect()))
                    .collect()
            }
        }
    }
}

/// What pairs two datasets for fusing: acquisition time to the second, and region.
pub fn fuse_key(d: &Dataset) -> (i64, Option<String>) {
    (d.datetime.timestamp(), d.region_code.clone())
}

/// Whether a group of same-time, same-region datasets makes a fused dataset: every
/// product that is not optional is present (`present(i)` for the i-th of `names`), and
/// at least one is.
pub fn fusable(names: &[String], optional: &BTreeSet<String>, present: impl Fn(usize) -> bool) -> bool {
    (0..names.len()).any(&present) && (0..names.len()).all(|i| present(i) || optional.contains(&names[i]))
}

/// One virtual dataset of collection `name` from the members of a group, in the
/// expression's order: the first leads; later assets are added under names not taken.
pub fn fuse_all(name: &str, members: Vec<Dataset>) -> Dataset {
    let mut members = members.into_iter();
    let mut fused = members.next().expect("a fused group has a member");
    fused.sources = vec![fused.id.clone()];
    for m in members {
        let have: BTreeSet<String> = fused.assets.iter().map(|x| x.key.clone()).collect();
        fused.sources.push(m.id.clone());
        fused.id = format!("{}+{}", fused.id, m.id);
        fused.assets.extend(m.assets.into_iter().filter(|x| !have.contains(&x.key)));
    }
    fused.collection = name.to_string();
    fused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::BandAsset;
    use chrono::{TimeZone, Utc};

    fn ds(id: &str, coll: &str, sec: u32, region: &str, band: &str) -> Dataset {
        Dataset {
            id: id.into(),
            collection: coll.into(),
            datetime: Utc.with_ymd_and_hms(2020, 1, 1, 10, 0, sec).unwrap(),
            footprint: vec![],
            epsg: 32633,
            region_code: Some(region.into()),
            processing_baseline: None,
            assets: vec![BandAsset {
                key: band.into(),
                names: vec![],
                href: format!("{id}/{band}.tif"),
                epsg: None,
                transform: None,
                shape: None,
                nodata: None,
                data_type: None,
                scale: None,
                offset: None,
            }],
            sources: vec![],
            inherited: Default::default(),
        }
    }

    fn known(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_with_dashed_names() {
        let k = known(&["sentinel-2-l2a", "ga_ls5t_ard_3", "ga_ls7e_ard_3", "ga_ls8c_ard_3", "fc", "wo"]);
        assert_eq!(ProductExpr::parse("sentinel-2-l2a", &k).unwrap(), ProductExpr::Single("sentinel-2-l2a".into()));
        assert_eq!(
            ProductExpr::parse("ga_ls5t_ard_3-ga_ls7e_ard_3-ga_ls8c_ard_3", &k).unwrap(),
            ProductExpr::Pool(vec!["ga_ls5t_ard_3".into(), "ga_ls7e_ard_3".into(), "ga_ls8c_ard_3".into()])
        );
        assert_eq!(ProductExpr::parse("fc+wo", &k).unwrap(), ProductExpr::Fuse(vec!["fc".into(), "wo".into()]));
        assert_eq!(
            ProductExpr::parse("fc+wo+sentinel-2-l2a", &k).unwrap(),
            ProductExpr::Fuse(vec!["fc".into(), "wo".into(), "sentinel-2-l2a".into()])
        );
        assert!(ProductExpr::parse("fc+fc", &k).unwrap_err().to_string().contains("twice"));
        let e = ProductExpr::parse("fc+nope", &k).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("fc+nope"), "{e}");
        assert!(ProductExpr::parse("fc-zz", &k).is_err());
    }

    #[test]
    fn fuse_pairs_same_time_and_region() {
        let v = vec![
            ds("fc1", "fc", 0, "35MNM", "pv"),
            ds("wo1", "wo", 0, "35MNM", "water"),
            ds("fc2", "fc", 5, "35MNM", "pv"),    // no partner: dropped
            ds("wo3", "wo", 0, "35MNN", "water"), // other region: dropped
        ];
        let out = ProductExpr::Fuse(vec!["fc".into(), "wo".into()]).apply(v, &BTreeSet::new());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "fc1+wo1");
        assert_eq!(out[0].collection, "fc+wo");
        assert!(out[0].band("pv").is_some() && out[0].band("water").is_some());
        assert_eq!(out[0].sources, vec!["fc1", "wo1"]);
    }

    #[test]
    fn three_products_fuse_and_optional_ones_may_be_missing() {
        let v = vec![
            ds("fc1", "fc", 0, "r", "pv"),
            ds("wo1", "wo", 0, "r", "water"),
            ds("mg1", "mangrove", 0, "r", "canopy"),
            ds("fc2", "fc", 9, "r", "pv"),
            ds("wo2", "wo", 9, "r", "water"), // no mangrove at this time
            ds("fc3", "fc", 20, "r", "pv"),   // alone
        ];
        let expr = ProductExpr::Fuse(vec!["fc".into(), "wo".into(), "mangrove".into()]);
        let all = expr.apply(v.clone(), &BTreeSet::new());
        assert_eq!(all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["fc1+wo1+mg1"]);
        assert_eq!(all[0].collection, "fc+wo+mangrove");
        assert!(all[0].band("canopy").is_some() && all[0].band("water").is_some());
        let optional = known(&["mangrove"]);
        let some = expr.apply(v, &optional);
        assert_eq!(some.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["fc1+wo1+mg1", "fc2+wo2"]);
        assert_eq!(some[1].sources, vec!["fc2", "wo2"]);
    }

    #[test]
    fn pool_keeps_listed_collections() {
        let v = vec![ds("a", "l5", 0, "r", "b"), ds("b", "l7", 1, "r", "b"), ds("c", "l9", 2, "r", "b")];
        let out = ProductExpr::Pool(vec!["l5".into(), "l7".into()]).apply(v, &BTreeSet::new());
        assert_eq!(out.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
