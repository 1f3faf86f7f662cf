//! Percentiles of derived or fused inputs:
//! - `tcw-percentiles`: tasselled-cap wetness, brightness and greenness (Crist 1985
//!   coefficients, as DEA uses them for Landsat and Sentinel-2) from six reflectance
//!   bands, p10/p50/p90 over clear observations;
//! - `fc-percentiles`: fractional cover (`pv`, `npv`, `bs`) fused with water observations
//!   (`water`), p10/p50/p90 over clear, dry observations, plus a `qa` band.

use crate::geomedian::Dims;
use crate::masks::{observation_masks, CloudFilters, MaskKind, MaskRules, MaskSpec};
use crate::morphology::{apply_all, MorphOp};
use crate::percentile::percentiles_chunk;
use crate::stack::Stack;
use crate::statistic::{Encoding, InputBand, OutputBand, OutputData, PixelType, StatCost, StatError, Statistic};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stratus_core::SampleType;

const PS: [f64; 3] = [0.1, 0.5, 0.9];
const PCT: [u32; 3] = [10, 50, 90];

/// Tasselled-cap coefficients for (blue, green, red, nir, swir1, swir2) reflectance.
pub const TC_BRIGHT: [f32; 6] = [0.2043, 0.4158, 0.5524, 0.5741, 0.3124, 0.2303];
pub const TC_GREEN: [f32; 6] = [-0.1603, -0.2819, -0.4934, 0.7940, -0.0002, -0.1446];
pub const TC_WET: [f32; 6] = [0.0315, 0.2021, 0.3102, 0.1594, -0.6806, -0.6109];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcwConfig {
    /// Blue, green, red, NIR, SWIR1, SWIR2, in that order.
    pub bands: Vec<String>,
    pub mask_band: String,
    pub mask: MaskKind,
    #[serde(default)]
    pub mask_filters: Vec<(String, usize)>,
    pub scale: f64,
    pub offset: f64,
    /// The bands' sample type.
    #[serde(default)]
    pub dtype: SampleType,
    /// Nodata of the bands, a value of `dtype`.
    pub nodata: i64,
    #[serde(default)]
    pub harmonize_s2_offset: bool,
    /// odc-stats' morphology chain per mask class (see `GmConfig::cloud_filters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_filters: Option<CloudFilters>,
    /// A band whose 0 marks pixels an observation does not cover in every band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contiguity_band: Option<String>,
    /// odc-stats' `coefficients`: index -> band -> coefficient (default: Crist's wet,
    /// bright and green for the six bands in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<BTreeMap<String, BTreeMap<String, f32>>>,
    /// odc-stats' `output_bands`: the indices to write, in order (default: every index
    /// of `coefficients`, or wet, bright, green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bands: Option<Vec<String>>,
}

impl TcwConfig {
    pub fn s2() -> Self {
        TcwConfig {
            bands: ["B02", "B03", "B04", "B08", "B11", "B12"].map(String::from).to_vec(),
            mask_band: "SCL".into(),
            mask: MaskKind::s2(),
            mask_filters: vec![("opening".into(), 2), ("dilation".into(), 5)],
            scale: 1e-4,
            offset: 0.0,
            dtype: SampleType::Uint16,
            nodata: 0,
            harmonize_s2_offset: true,
            cloud_filters: None,
            contiguity_band: None,
            coefficients: None,
            output_bands: None,
        }
    }
}

pub struct TcwPercentiles {
    cfg: TcwConfig,
    enc: Encoding,
    mask: MaskRules,
    /// Each index's name and its coefficient per band of `cfg.bands`.
    indices: Vec<(String, Vec<f32>)>,
}

impl TcwPercentiles {
    pub fn new(cfg: TcwConfig) -> Result<Self, StatError> {
        let mut cfg = cfg;
        // odc-stats lists its mask and contiguity bands among the bands it loads.
        let not_reflectance = [Some(&cfg.mask_band), cfg.contiguity_band.as_ref()];
        cfg.bands.retain(|b| !not_reflectance.contains(&Some(b)));
        let bad = |why: String| Err(StatError::Config { plugin: "tcw-percentiles".into(), why });
        let indices: Vec<(String, Vec<f32>)> = match &cfg.coefficients {
            None => {
                if cfg.bands.len() != 6 {
                    return bad("bands: give exactly six (blue, green, red, nir, swir1, swir2), or coefficients".into());
                }
                [("wet", TC_WET), ("bright", TC_BRIGHT), ("green", TC_GREEN)]
                    .map(|(n, c)| (n.to_string(), c.to_vec()))
                    .into()
            }
            Some(coefs) => {
                let mut v = Vec::new();
                for (index, per_band) in coefs {
                    let mut c = vec![0.0; cfg.bands.len()];
                    for (band, coef) in per_band {
                        let Some(i) = cfg.bands.iter().position(|b| b == band) else {
                            return bad(format!(
                                "coefficients.{index}: '{band}' is not one of the bands ({})",
                                cfg.bands.join(", ")
                            ));
                        };
                        c[i] = *coef;
                    }
                    v.push((index.clone(), c));
                }
                v
            }
        };
        let indices = match &cfg.output_bands {
            None => indices,
            Some(names) => {
                let mut v = Vec::new();
                for n in names {
                    match indices.iter().find(|i| &i.0 == n) {
                        Some(i) => v.push(i.clone()),
                        None => {
                            let known: Vec<&str> = indices.iter().map(|i| i.0.as_str()).collect();
                            return bad(format!(
                                "output_bands: '{n}' has no coefficients; give one of {}",
                                known.join(", ")
                            ));
                        }
                    }
                }
                v
            }
        };
        let mask = MaskRules::new(MaskSpec {
            plugin: "tcw-percentiles",
            kind: &cfg.mask,
            mask_filters: &cfg.mask_filters,
            cloud_filters: cfg.cloud_filters.as_ref(),
            nodata_classes: None,
        })?;
        let enc = Encoding::new("tcw-percentiles", cfg.dtype, cfg.nodata)?;
        Ok(TcwPercentiles { cfg, enc, mask, indices })
    }
}

/// Nodata of the int16 index outputs.
pub const TC_NODATA: i32 = -9999;

impl Statistic for TcwPercentiles {
    /// An index per observation, then percentiles of it (see `Summary`).
    fn cost(&self) -> StatCost {
        StatCost { compute_ns_per_value: 8.0, working_memory_fraction: 0.5 }
    }
    fn name(&self) -> &str {
        "tcw-percentiles"
    }
    fn input_bands(&self) -> Vec<InputBand> {
        let bands = InputBand::continuous(&self.cfg.bands, &self.enc, self.cfg.harmonize_s2_offset);
        let mut v = InputBand::in_units(bands, self.cfg.scale, self.cfg.offset);
        v.push(InputBand::mask(&self.cfg.mask_band, &self.cfg.mask));
        if let Some(c) = &self.cfg.contiguity_band {
            v.push(InputBand::contiguity(c));
        }
        v
    }
    fn output_bands(&self) -> Vec<OutputBand> {
        let mut v = Vec::new();
        for (idx, _) in &self.indices {
            for p in PCT {
                v.push(OutputBand {
                    name: format!("{idx}_pc_{p}"),
                    dtype: PixelType::Int16,
                    nodata: Some(TC_NODATA as f64),
                    categorical: false,
                });
            }
        }
        v
    }
    fn scale_filters(&mut self, factor: f64) {
        self.mask.scale(factor);
    }
    fn halo(&self) -> usize {
        self.mask.reach()
    }
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let idx = stack.band_indices(&self.cfg.bands)?;
        let masks = observation_masks(stack, &self.cfg.mask_band, &self.mask, self.cfg.contiguity_band.as_deref())?;
        let (h, w) = stack.shape_yx();
        let times = stack.times();
        let (scale, offset, enc) = (self.cfg.scale as f32, self.cfg.offset as f32, self.enc);
        let data = &stack.data;
        let mut out = Vec::new();
        for (_, coef) in &self.indices {
            // Index x 10 000 as int16, per clear observation with every band present.
            let r = percentiles_chunk(Dims { h, w, bands: 1, times }, &PS, 3, TC_NODATA, |y, x, _, vals| {
                for t in 0..times {
                    if !masks[t].clear[[y, x]] || idx.iter().any(|&b| data[[t, b, y, x]] == enc.code) {
                        continue;
                    }
                    let v: f32 = idx
                        .iter()
                        .zip(coef)
                        .map(|(&b, c)| (enc.value(data[[t, b, y, x]]) as f32 * scale + offset) * c)
                        .sum();
                    vals.push((v * 10_000.0).round().clamp(-9998.0, 32767.0) as i32);
                }
            });
            for q in 0..PS.len() {
                out.push(OutputData::I16(Array2::from_shape_fn((h, w), |(y, x)| r[[0, q, y, x]] as i16)));
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcConfig {
    pub bands: Vec<String>,
    pub water_band: String,
    #[serde(default = "fc_dtype")]
    pub dtype: SampleType,
    pub nodata: i64,
    /// odc-stats' options: leave out observations whose unmixing error (`ue_band`) is
    /// not below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ue_threshold: Option<i64>,
    #[serde(default = "default_ue_band")]
    pub ue_band: String,
    /// Leave out observations whose bands sum to this or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sum_limit: Option<i64>,
    /// Clamp each band's values into this range first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_range: Option<(i64, i64)>,
    /// Add `count_valid`: the clear, dry observations used (int16).
    #[serde(default)]
    pub count_valid: bool,
    /// Morphology per WOfS flag (`cloud`, `cloud_shadow`, `terrain_shadow`) before its
    /// pixels are left out of both the dry and the wet observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_filters: Option<CloudFilters>,
}

fn fc_dtype() -> SampleType {
    SampleType::Uint8
}

fn default_ue_band() -> String {
    "ue".into()
}

impl Default for FcConfig {
    fn default() -> Self {
        FcConfig {
            bands: ["pv", "npv", "bs"].map(String::from).to_vec(),
            water_band: "water".into(),
            dtype: fc_dtype(),
            nodata: 255,
            ue_threshold: None,
            ue_band: default_ue_band(),
            max_sum_limit: None,
            clip_range: None,
            count_valid: false,
            cloud_filters: None,
        }
    }
}

pub struct FcPercentiles {
    cfg: FcConfig,
    enc: Encoding,
    /// WOfS bit, filter chain.
    filters: Vec<(u8, Vec<MorphOp>)>,
}

impl FcPercentiles {
    pub fn new(cfg: FcConfig) -> Result<Self, StatError> {
        let bad = |why: String| Err(StatError::Config { plugin: "fc-percentiles".into(), why });
        if cfg.bands.is_empty() {
            return bad("bands: give at least one".into());
        }
        if let Some((lo, hi)) = cfg.clip_range {
            if lo > hi {
                return bad(format!("clip_range: [{lo}, {hi}] is empty: give [low, high]"));
            }
        }
        let filters = crate::summaries::wofs_filters("fc-percentiles", cfg.cloud_filters.as_ref())?;
        let enc = Encoding::new("fc-percentiles", cfg.dtype, cfg.nodata)?;
        Ok(FcPercentiles { cfg, enc, filters })
    }
}

impl Statistic for FcPercentiles {
    fn cost(&self) -> StatCost {
        StatCost { compute_ns_per_value: 8.0, working_memory_fraction: 0.5 }
    }
    fn name(&self) -> &str {
        "fc-percentiles"
    }
    fn input_bands(&self) -> Vec<InputBand> {
        let mut v = InputBand::continuous(&self.cfg.bands, &self.enc, false);
        v.push(InputBand::categorical(&self.cfg.water_band, 1));
        if self.cfg.ue_threshold.is_some() {
            v.extend(InputBand::continuous(std::slice::from_ref(&self.cfg.ue_band), &self.enc, false));
        }
        v
    }
    fn output_bands(&self) -> Vec<OutputBand> {
        let mut v = Vec::new();
        for b in &self.cfg.bands {
            for p in PCT {
                v.push(OutputBand {
                    name: format!("{b}_pc_{p}"),
                    dtype: self.enc.output_type(),
                    nodata: Some(self.cfg.nodata as f64),
                    categorical: false,
                });
            }
        }
        v.push(OutputBand { name: "qa".into(), dtype: PixelType::Uint8, nodata: None, categorical: true });
        if self.cfg.count_valid {
            v.push(OutputBand { name: "count_valid".into(), dtype: PixelType::Int16, nodata: None, categorical: true });
        }
        v
    }
    fn scale_filters(&mut self, factor: f64) {
        crate::masks::scale_chains(self.filters.iter_mut().map(|(_, f)| f), factor);
    }
    fn halo(&self) -> usize {
        self.filters.iter().map(|(_, f)| crate::masks::filters_reach(f)).max().unwrap_or(0)
    }
    /// As odc-stats' fc-percentiles: an observation is dry and clear where its water flags
    /// are 0 (high slope aside), outside the filtered cloud and shadow masks, below the
    /// unmixing-error threshold and the sum limit; wet likewise with 128. Percentiles of
    /// each band over its dry observations (at least 3); `qa` 2 where every band has them,
    /// else 0 where the pixel was ever wet, else 1.
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let idx = stack.band_indices(&self.cfg.bands)?;
        let wb = stack
            .band_index(&self.cfg.water_band)
            .ok_or_else(|| StatError::MissingBand(self.cfg.water_band.clone()))?;
        let ue = match self.cfg.ue_threshold {
            Some(_) => Some(
                stack.band_index(&self.cfg.ue_band).ok_or_else(|| StatError::MissingBand(self.cfg.ue_band.clone()))?,
            ),
            None => None,
        };
        let (h, w) = stack.shape_yx();
        let times = stack.times();
        let data = &stack.data;
        let enc = self.enc;
        // Per observation: pixels left out by the filtered flags.
        let flagged: Vec<Array2<bool>> = (0..times)
            .map(|t| {
                let plane = stack.plane(t, wb);
                let mut out = Array2::from_elem((h, w), false);
                for (bit, chain) in &self.filters {
                    let m = apply_all(&plane.mapv(|v| v & (1 << bit) != 0), chain);
                    ndarray::Zip::from(&mut out).and(&m).for_each(|o, &m| *o |= m);
                }
                out
            })
            .collect();
        let clip = |v: i32| match self.cfg.clip_range {
            Some((lo, hi)) => v.clamp(lo as i32, hi as i32),
            None => v,
        };
        let water = |y: usize, x: usize, t: usize| data[[t, wb, y, x]] & !(1 << 4);
        let dry = |y: usize, x: usize, t: usize| {
            if water(y, x, t) != 0 || flagged[t][[y, x]] {
                return false;
            }
            if let (Some(u), Some(thr)) = (ue, self.cfg.ue_threshold) {
                let v = data[[t, u, y, x]];
                if v == enc.code || enc.value(v) as i64 >= thr {
                    return false;
                }
            }
            match self.cfg.max_sum_limit {
                Some(limit) => {
                    let sum: i64 = idx
                        .iter()
                        .map(|&b| data[[t, b, y, x]])
                        .filter(|&v| v != enc.code)
                        .map(|v| enc.value(v) as i64)
                        .sum();
                    sum < limit
                }
                None => true,
            }
        };
        let wet = |y: usize, x: usize, t: usize| water(y, x, t) == 128 && !flagged[t][[y, x]];
        let r = percentiles_chunk(Dims { h, w, bands: idx.len(), times }, &PS, 3, enc.nodata, |y, x, b, vals| {
            vals.extend(
                (0..times)
                    .filter(|&t| data[[t, idx[b], y, x]] != enc.code && dry(y, x, t))
                    .map(|t| clip(enc.value(data[[t, idx[b], y, x]]))),
            )
        });
        let mut out = Vec::new();
        for b in 0..idx.len() {
            for q in 0..PS.len() {
                out.push(enc.output(r.slice(ndarray::s![b, q, .., ..]).to_owned()));
            }
        }
        out.push(OutputData::U8(Array2::from_shape_fn((h, w), |(y, x)| {
            let all_valid = (0..idx.len()).all(|b| (0..PS.len()).all(|q| r[[b, q, y, x]] != enc.nodata));
            let ever_wet = (0..times).any(|t| wet(y, x, t));
            match (all_valid, ever_wet) {
                (true, _) => 2,
                (false, true) => 0,
                (false, false) => 1,
            }
        })));
        if self.cfg.count_valid {
            out.push(OutputData::I16(Array2::from_shape_fn((h, w), |(y, x)| {
                (0..times).filter(|&t| dry(y, x, t)).count() as i16
            })));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasselled_cap_wetness_percentiles() {
        let bands: Vec<String> = ["B02", "B03", "B04", "B08", "B11", "B12", "SCL"].map(String::from).to_vec();
        let mut s = Stack::new(bands, vec![0; 7], 4, 1, 1);
        // Water-like then land-like observations; the last one cloudy.
        let obs = [
            [600u16, 700, 500, 300, 100, 80],
            [300, 500, 300, 3000, 1500, 700],
            [350, 550, 350, 2800, 1600, 800],
            [9000, 9000, 9000, 9000, 9000, 9000],
        ];
        for (t, o) in obs.iter().enumerate() {
            for (b, v) in o.iter().enumerate() {
                s.data[[t, b, 0, 0]] = *v;
            }
            s.data[[t, 6, 0, 0]] = if t == 3 { 9 } else { 4 };
        }
        let p = TcwPercentiles::new(TcwConfig { mask_filters: vec![], ..TcwConfig::s2() }).unwrap();
        let out = p.reduce(&s).unwrap();
        let wet: Vec<f32> = obs[..3]
            .iter()
            .map(|o| o.iter().zip(TC_WET).map(|(v, c)| *v as f32 * 1e-4 * c).sum::<f32>() * 10_000.0)
            .collect();
        let mut sorted = wet.clone();
        sorted.sort_by(f32::total_cmp);
        let OutputData::I16(p10) = &out[0] else { panic!() };
        let OutputData::I16(p90) = &out[2] else { panic!() };
        assert_eq!(p10[[0, 0]] as i32, sorted[0].round() as i32);
        assert_eq!(p90[[0, 0]] as i32, sorted[2].round() as i32);
        assert_eq!(p.output_bands().len(), 9);
    }

    #[test]
    fn fractional_cover_uses_dry_clear_observations() {
        let bands: Vec<String> = ["pv", "npv", "bs", "water"].map(String::from).to_vec();
        let mut s = Stack::new(bands, vec![255, 255, 255, 1], 5, 1, 2);
        for t in 0..5 {
            for x in 0..2 {
                s.data[[t, 0, 0, x]] = 10 * (t as u16 + 1);
                s.data[[t, 1, 0, x]] = 20;
                s.data[[t, 2, 0, x]] = 70;
                s.data[[t, 3, 0, x]] = if x == 1 && t > 0 { 128 } else { 0 };
            }
        }
        s.data[[4, 3, 0, 0]] = 2; // cloudy: not a clear observation
        let p = FcPercentiles::new(FcConfig::default()).unwrap();
        let out = p.reduce(&s).unwrap();
        let OutputData::U8(pv50) = &out[1] else { panic!() };
        let OutputData::U8(qa) = &out[9] else { panic!() };
        // Pixel 0: dry clear pv = 10, 20, 30, 40 -> p50 index round(1.5) = 2 -> 30.
        assert_eq!(pv50[[0, 0]], 30);
        assert_eq!(qa[[0, 0]], 2);
        // Pixel 1: only one dry observation: no percentiles; it was wet: qa 0, as
        // odc-stats' fc-percentiles (1 where it never was).
        assert_eq!(pv50[[0, 1]], 255);
        assert_eq!(qa[[0, 1]], 0);
    }
}
