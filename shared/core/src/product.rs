//! Product expressions: `a` (one collection), `a+b` (fuse two collections' datasets that
//! share acquisition time and region into one virtual dataset), `a-b-c` (pool datasets of
//! several collections). Collection names may themselves contain '-' (`sentinel-2-l2a`),
//! so expressions are resolved against the collections actually present.

use crate::dataset::Dataset;
use crate::error::{CoreError, Result};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductExpr {
    Single(String),
    Fuse(String, String),
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
        if let Some((a, b)) = expr.split_once('+') {
            if b.contains('+') {
                return Err(bad("fusing takes exactly two products".into()));
            }
            return Ok(ProductExpr::Fuse(check(a)?, check(b)?));
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
            ProductExpr::Fuse(a, b) => vec![a, b],
            ProductExpr::Pool(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Apply the expression: keep, pool or fuse datasets. Fused datasets carry the union
    /// of both assets (the first product's asset wins a name clash); a dataset without a
    /// partner of the other product is dropped, as odc-stats does.
    pub fn apply(&self, datasets: Vec<Dataset>) -> Vec<Dataset> {
        match self {
            ProductExpr::Single(_) | ProductExpr::Pool(_) => {
                let keep: BTreeSet<&str> = self.collections().into_iter().collect();
                datasets.into_iter().filter(|d| keep.contains(d.collection.as_str())).collect()
            }
            ProductExpr::Fuse(a, b) => {
                // Key: acquisition time to the second, and region.
                type Key = (i64, Option<String>);
                let mut left: BTreeMap<Key, Dataset> = BTreeMap::new();
                let mut right: BTreeMap<Key, Dataset> = BTreeMap::new();
                for d in datasets {
                    let key = fuse_key(&d);
                    if &d.collection == a {
                        left.insert(key, d);
                    } else if &d.collection == b {
                        right.insert(key, d);
                    }
                }
                let mut out = Vec::new();
                for (key, l) in left {
                    if let Some(r) = right.remove(&key) {
                        out.push(fuse_pair(a, b, l, r));
                    }
                }
                out
            }
        }
    }
}

/// What pairs two datasets for fusing: acquisition time to the second, and region.
pub fn fuse_key(d: &Dataset) -> (i64, Option<String>) {
    (d.datetime.timestamp(), d.region_code.clone())
}

/// One virtual dataset from a pair of products `a` (`l`) and `b` (`r`).
pub fn fuse_pair(a: &str, b: &str, mut l: Dataset, r: Dataset) -> Dataset {
    let have: BTreeSet<String> = l.assets.iter().map(|x| x.key.clone()).collect();
    l.sources = vec![l.id.clone(), r.id.clone()];
    l.id = format!("{}+{}", l.id, r.id);
    l.collection = format!("{a}+{b}");
    l.assets.extend(r.assets.into_iter().filter(|x| !have.contains(&x.key)));
    l
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
            }],
            sources: vec![],
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
        assert_eq!(ProductExpr::parse("fc+wo", &k).unwrap(), ProductExpr::Fuse("fc".into(), "wo".into()));
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
        let out = ProductExpr::Fuse("fc".into(), "wo".into()).apply(v);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "fc1+wo1");
        assert_eq!(out[0].collection, "fc+wo");
        assert!(out[0].band("pv").is_some() && out[0].band("water").is_some());
        assert_eq!(out[0].sources, vec!["fc1", "wo1"]);
    }

    #[test]
    fn pool_keeps_listed_collections() {
        let v = vec![ds("a", "l5", 0, "r", "b"), ds("b", "l7", 1, "r", "b"), ds("c", "l9", 2, "r", "b")];
        let out = ProductExpr::Pool(vec!["l5".into(), "l7".into()]).apply(v);
        assert_eq!(out.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
