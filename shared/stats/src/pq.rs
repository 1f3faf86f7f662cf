//! `pq` (Sentinel-2 SCL), `pq-ls` and `pq-ls-bitmask` (Landsat QA_PIXEL): clear-pixel
//! counts. Outputs `total` (valid observations), `clear` (valid and not cloud) and one
//! band per mask filter: `clear_R1_R2` for the cloud mask opened by a disk of radius R1,
//! then dilated by R2, or, with odc-stats' named filters (`{clear_10_2_2: [[closing,
//! 10], [opening, 2], [dilation, 2]]}`), the filter's name.

use crate::masks::{parse_filters, MaskKind, MaskKind as K};
use crate::morphology::{apply_all, MorphOp};
use crate::stack::Stack;
use crate::statistic::{InputBand, OutputBand, OutputData, PixelType, StatError, Statistic};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PqConfig {
    /// (opening radius, dilation radius) pairs (odc-stats' default), or odc-stats' named
    /// chains.
    #[serde(default = "default_filters")]
    pub filters: PqFilters,
    /// The band holding the cloud classification.
    pub band: String,
    pub mask: MaskKind,
    /// odc-stats' pq-ls-bitmask aerosol counts: `SR_QA_AEROSOL` (level 3 of bits 6-7 is
    /// high aerosol) or `SR_ATMOS_OPACITY` (x 0.001 above 0.3 is hazy) adds
    /// `clear_aerosol` (clear of cloud and aerosol); with `SR_QA_AEROSOL`, each of
    /// `aerosol_filters` adds a band: clear of the cloud mask cleaned by its chain, and
    /// of aerosol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aerosol_band: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aerosol_filters: BTreeMap<String, Vec<(String, usize)>>,
}

/// How an aerosol band says an observation is hazy.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Aerosol {
    /// USGS Collection 2 `SR_QA_AEROSOL`: bits 6-7 are the aerosol level, 3 = high.
    QaLevel,
    /// `SR_ATMOS_OPACITY` (int16 x 0.001, nodata -9999): above 0.3 is hazy.
    Opacity,
}

/// Nodata of `SR_ATMOS_OPACITY`.
const OPACITY_NODATA: i32 = -9999;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PqFilters {
    Radii(Vec<(usize, usize)>),
    Named(BTreeMap<String, Vec<(String, usize)>>),
}

fn default_filters() -> PqFilters {
    PqFilters::Radii(vec![(2, 5), (0, 5)])
}

impl PqConfig {
    pub fn s2() -> Self {
        Self {
            filters: default_filters(),
            band: "SCL".into(),
            mask: K::s2(),
            aerosol_band: None,
            aerosol_filters: BTreeMap::new(),
        }
    }
    pub fn landsat() -> Self {
        Self { band: "qa_pixel".into(), mask: K::landsat(), ..PqConfig::s2() }
    }
}

pub struct Pq {
    name: String,
    cfg: PqConfig,
    /// Output name and chain of each filter.
    filters: Vec<(String, Vec<MorphOp>)>,
    aerosol: Option<Aerosol>,
    /// Output name and chain of each aerosol filter.
    aerosol_filters: Vec<(String, Vec<MorphOp>)>,
}

impl Pq {
    pub fn new(name: &str, cfg: PqConfig) -> Result<Pq, StatError> {
        let filters = match &cfg.filters {
            PqFilters::Radii(r) => {
                if r.iter().any(|&(a, b)| a > 50 || b > 50) {
                    return Err(StatError::Config {
                        plugin: name.into(),
                        why: "filter radii above 50 pixels are not supported".into(),
                    });
                }
                r.iter()
                    .map(|&(a, b)| (format!("clear_{a}_{b}"), vec![MorphOp::Opening(a), MorphOp::Dilation(b)]))
                    .collect()
            }
            PqFilters::Named(named) => {
                let mut v = Vec::new();
                for (band, chain) in named {
                    if ["total", "clear"].contains(&band.as_str()) {
                        return Err(StatError::Config {
                            plugin: name.into(),
                            why: format!(
                                "filters: '{band}' is an output of its own: name the filter otherwise (clear_2_5, ...)"
                            ),
                        });
                    }
                    v.push((band.clone(), parse_filters(chain)?));
                }
                v
            }
        };
        let aerosol = match cfg.aerosol_band.as_deref() {
            None => None,
            Some("SR_QA_AEROSOL") => Some(Aerosol::QaLevel),
            Some("SR_ATMOS_OPACITY") => Some(Aerosol::Opacity),
            Some(other) => {
                return Err(StatError::Config {
                    plugin: name.into(),
                    why: format!("aerosol_band: '{other}': give SR_QA_AEROSOL or SR_ATMOS_OPACITY"),
                })
            }
        };
        // As odc-stats: aerosol filters count with SR_QA_AEROSOL only.
        let aerosol_filters = match aerosol {
            Some(Aerosol::QaLevel) => cfg
                .aerosol_filters
                .iter()
                .map(|(n, chain)| Ok((n.clone(), parse_filters(chain)?)))
                .collect::<Result<Vec<_>, StatError>>()?,
            _ if !cfg.aerosol_filters.is_empty() && aerosol.is_none() => {
                return Err(StatError::Config {
                    plugin: name.into(),
                    why: "aerosol_filters need aerosol_band: SR_QA_AEROSOL".into(),
                })
            }
            _ => vec![],
        };
        Ok(Pq { name: name.into(), cfg, filters, aerosol, aerosol_filters })
    }
}

impl Statistic for Pq {
    fn name(&self) -> &str {
        &self.name
    }
    fn input_bands(&self) -> Vec<InputBand> {
        let mut v = vec![InputBand::mask(&self.cfg.band, &self.cfg.mask)];
        match (self.aerosol, &self.cfg.aerosol_band) {
            (Some(Aerosol::QaLevel), Some(b)) => v.push(InputBand::categorical(b, 1)),
            (Some(Aerosol::Opacity), Some(b)) => v.push(InputBand {
                name: b.clone(),
                categorical: true,
                dtype: stratus_core::SampleType::Int16,
                nodata: stratus_core::SampleType::Int16.code(OPACITY_NODATA as f64).expect("-9999 is an int16"),
                units: None,
                harmonize_s2_offset: false,
            }),
            _ => {}
        }
        v
    }
    fn output_bands(&self) -> Vec<OutputBand> {
        let band = |name: String| OutputBand { name, dtype: PixelType::Uint16, nodata: None, categorical: true };
        let mut v = vec![band("total".into()), band("clear".into())];
        v.extend(self.filters.iter().map(|(name, _)| band(name.clone())));
        if self.aerosol.is_some() {
            v.push(band("clear_aerosol".into()));
            v.extend(self.aerosol_filters.iter().map(|(name, _)| band(name.clone())));
        }
        v
    }
    fn scale_filters(&mut self, factor: f64) {
        crate::masks::scale_chains(
            self.filters.iter_mut().chain(self.aerosol_filters.iter_mut()).map(|(_, f)| f),
            factor,
        );
    }
    fn halo(&self) -> usize {
        self.filters
            .iter()
            .chain(&self.aerosol_filters)
            .map(|(_, f)| f.iter().map(MorphOp::reach).sum::<usize>())
            .max()
            .unwrap_or(0)
    }
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let b = stack.band_index(&self.cfg.band).ok_or_else(|| StatError::MissingBand(self.cfg.band.clone()))?;
        let (h, w) = stack.shape_yx();
        let mut total = Array2::<u16>::zeros((h, w));
        let mut clear = Array2::<u16>::zeros((h, w));
        let mut filtered = vec![Array2::<u16>::zeros((h, w)); self.filters.len()];
        let mut clear_aerosol = Array2::<u16>::zeros((h, w));
        let mut aerosol_filtered = vec![Array2::<u16>::zeros((h, w)); self.aerosol_filters.len()];
        let aerosol_index = match &self.cfg.aerosol_band {
            Some(a) if self.aerosol.is_some() => {
                Some(stack.band_index(a).ok_or_else(|| StatError::MissingBand(a.clone()))?)
            }
            _ => None,
        };
        let k = &self.cfg.mask;
        for t in 0..stack.times() {
            let plane = stack.plane(t, b);
            let valid = plane.mapv(|v| k.is_valid(v));
            let cloud = plane.mapv(|v| k.is_cloud(v));
            ndarray::Zip::from(&mut total).and(&valid).for_each(|c, &v| *c += v as u16);
            ndarray::Zip::from(&mut clear).and(&valid).and(&cloud).for_each(|c, &v, &k| *c += (v && !k) as u16);
            for (i, (_, f)) in self.filters.iter().enumerate() {
                let m = apply_all(&cloud, f);
                ndarray::Zip::from(&mut filtered[i]).and(&valid).and(&m).for_each(|c, &v, &k| *c += (v && !k) as u16);
            }
            if let (Some(a), Some(kind)) = (aerosol_index, self.aerosol) {
                let hazy = stack.plane(t, a).mapv(|v| match kind {
                    Aerosol::QaLevel => (v & 0b1100_0000) >> 6 == 3,
                    Aerosol::Opacity => {
                        let o = stratus_core::SampleType::Int16.value(v);
                        o != OPACITY_NODATA && o as f64 * 0.001 > 0.3
                    }
                });
                let count = |acc: &mut Array2<u16>, cloud: &Array2<bool>| {
                    ndarray::Zip::from(acc)
                        .and(&valid)
                        .and(cloud)
                        .and(&hazy)
                        .for_each(|c, &v, &k, &a| *c += (v && !k && !a) as u16)
                };
                count(&mut clear_aerosol, &cloud);
                for (i, (_, f)) in self.aerosol_filters.iter().enumerate() {
                    count(&mut aerosol_filtered[i], &apply_all(&cloud, f));
                }
            }
        }
        let mut out = vec![OutputData::U16(total), OutputData::U16(clear)];
        out.extend(filtered.into_iter().map(OutputData::U16));
        if self.aerosol.is_some() {
            out.push(OutputData::U16(clear_aerosol));
            out.extend(aerosol_filtered.into_iter().map(OutputData::U16));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s2_scl;

    #[test]
    fn counts_valid_clear_and_filtered() {
        let mut s = Stack::new(vec!["SCL".into()], vec![0], 3, 20, 20);
        // t0: all vegetation; t1: a 1-pixel cloud speck at (10,10) and nodata row 0;
        // t2: a 7x7 cloud block.
        s.data.slice_mut(ndarray::s![.., 0, .., ..]).fill(s2_scl::VEGETATION);
        s.data[[1, 0, 10, 10]] = s2_scl::CLOUD_HIGH;
        s.data.slice_mut(ndarray::s![1, 0, 0, ..]).fill(s2_scl::NO_DATA);
        s.data.slice_mut(ndarray::s![2, 0, 5..12, 5..12]).fill(s2_scl::CLOUD_MEDIUM);
        let pq = Pq::new("pq", PqConfig { filters: PqFilters::Radii(vec![(1, 0), (0, 1)]), ..PqConfig::s2() }).unwrap();
        assert_eq!(pq.halo(), 2);
        let out = pq.reduce(&s).unwrap();
        let names: Vec<String> = pq.output_bands().into_iter().map(|b| b.name).collect();
        assert_eq!(names, vec!["total", "clear", "clear_1_0", "clear_0_1"]);
        let OutputData::U16(total) = &out[0] else { panic!() };
        let OutputData::U16(clear) = &out[1] else { panic!() };
        let OutputData::U16(open1) = &out[2] else { panic!() };
        let OutputData::U16(dil1) = &out[3] else { panic!() };
        assert_eq!(total[[0, 3]], 2);
        assert_eq!(total[[3, 3]], 3);
        assert_eq!(clear[[10, 10]], 1); // speck at t1, block at t2
        assert_eq!(clear[[3, 3]], 3);
        // Opening by 1 removes the speck but keeps the 7x7 block.
        assert_eq!(open1[[10, 10]], 2);
        assert_eq!(open1[[8, 8]], 2);
        // Dilation by 1 grows both: (10,11) is next to the speck and inside the block.
        assert_eq!(dil1[[10, 11]], 1);
        assert_eq!(dil1[[4, 8]], 2); // one above the block: cloudy at t2 only after dilation
        assert_eq!(clear[[4, 8]], 3);
    }

    #[test]
    fn landsat_qa_counts() {
        let mut s = Stack::new(vec!["qa_pixel".into()], vec![1], 2, 1, 3);
        // Pixel 0: clear twice; pixel 1: cloud then fill; pixel 2: shadow, clear.
        s.data[[0, 0, 0, 0]] = 1 << 6;
        s.data[[1, 0, 0, 0]] = 1 << 6;
        s.data[[0, 0, 0, 1]] = 1 << 3;
        s.data[[1, 0, 0, 1]] = 1;
        s.data[[0, 0, 0, 2]] = 1 << 4;
        s.data[[1, 0, 0, 2]] = 1 << 6 | 1 << 7;
        let pq = Pq::new("pq-ls", PqConfig { filters: PqFilters::Radii(vec![]), ..PqConfig::landsat() }).unwrap();
        let out = pq.reduce(&s).unwrap();
        let (OutputData::U16(total), OutputData::U16(clear)) = (&out[0], &out[1]) else { panic!() };
        assert_eq!(total.iter().copied().collect::<Vec<_>>(), vec![2, 1, 2]);
        assert_eq!(clear.iter().copied().collect::<Vec<_>>(), vec![2, 0, 1]);
    }

    #[test]
    fn named_filters_as_odc_stats_gives_them() {
        let cfg: PqConfig = serde_json::from_value(serde_json::json!({
            "band": "SCL", "mask": {"type": "s2-scl"},
            "filters": {"clear_2_5": [["opening", 2], ["dilation", 5]], "clear_10_2_2": [["closing", 10], ["opening", 2], ["dilation", 2]]}
        }))
        .unwrap();
        let pq = Pq::new("pq", cfg).unwrap();
        let names: Vec<String> = pq.output_bands().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["total", "clear", "clear_10_2_2", "clear_2_5"]);
        assert_eq!(pq.halo(), 26);
        let clash = PqConfig { filters: PqFilters::Named([("clear".to_string(), vec![])].into()), ..PqConfig::s2() };
        assert!(Pq::new("pq", clash).is_err());
    }
}
