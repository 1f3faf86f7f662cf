//! Percentiles of derived or fused inputs:
//! - `tcw-percentiles`: tasselled-cap wetness, brightness and greenness (Crist 1985
//!   coefficients, as DEA uses them for Landsat and Sentinel-2) from six reflectance
//!   bands, p10/p50/p90 over clear observations;
//! - `fc-percentiles`: fractional cover (`pv`, `npv`, `bs`) fused with water observations
//!   (`water`), p10/p50/p90 over clear, dry observations, plus a `qa` band.

use crate::geomedian::Dims;
use crate::masks::{filters_reach, observation_masks, parse_filters, MaskKind};
use crate::morphology::MorphOp;
use crate::percentile::percentiles_chunk;
use crate::stack::Stack;
use crate::statistic::{Encoding, InputBand, OutputBand, OutputData, PixelType, StatCost, StatError, Statistic};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
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
        }
    }
}

pub struct TcwPercentiles {
    cfg: TcwConfig,
    enc: Encoding,
    filters: Vec<MorphOp>,
}

impl TcwPercentiles {
    pub fn new(cfg: TcwConfig) -> Result<Self, StatError> {
        if cfg.bands.len() != 6 {
            return Err(StatError::Config {
                plugin: "tcw-percentiles".into(),
                why: "bands: give exactly six (blue, green, red, nir, swir1, swir2)".into(),
            });
        }
        let filters = parse_filters(&cfg.mask_filters)?;
        let enc = Encoding::new("tcw-percentiles", cfg.dtype, cfg.nodata)?;
        Ok(TcwPercentiles { cfg, enc, filters })
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
        v
    }
    fn output_bands(&self) -> Vec<OutputBand> {
        let mut v = Vec::new();
        for idx in ["wet", "bright", "green"] {
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
    fn halo(&self) -> usize {
        filters_reach(&self.filters)
    }
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let idx = stack.band_indices(&self.cfg.bands)?;
        let masks = observation_masks(stack, &self.cfg.mask_band, &self.cfg.mask, &self.filters)?;
        let (h, w) = stack.shape_yx();
        let times = stack.times();
        let (scale, offset, enc) = (self.cfg.scale as f32, self.cfg.offset as f32, self.enc);
        let data = &stack.data;
        let mut out = Vec::new();
        for coef in [TC_WET, TC_BRIGHT, TC_GREEN] {
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
    /// Fractional cover bands (uint8 percent, nodata 255).
    pub bands: Vec<String>,
    /// Water observation band (WOfS flags: 0 clear and dry, 128 clear and wet).
    pub water_band: String,
    /// The bands' sample type.
    #[serde(default = "fc_dtype")]
    pub dtype: SampleType,
    /// Nodata of the bands, a value of `dtype`.
    pub nodata: i64,
}

fn fc_dtype() -> SampleType {
    SampleType::Uint8
}

impl Default for FcConfig {
    fn default() -> Self {
        FcConfig {
            bands: ["pv", "npv", "bs"].map(String::from).to_vec(),
            water_band: "water".into(),
            dtype: fc_dtype(),
            nodata: 255,
        }
    }
}

/// `fc-percentiles`. `qa`: 0 no clear observation, 1 clear observations but fewer than
/// three dry ones (mostly wet), 2 percentiles valid.
pub struct FcPercentiles {
    cfg: FcConfig,
    enc: Encoding,
}

impl FcPercentiles {
    pub fn new(cfg: FcConfig) -> Result<Self, StatError> {
        if cfg.bands.is_empty() {
            return Err(StatError::Config { plugin: "fc-percentiles".into(), why: "bands: give at least one".into() });
        }
        let enc = Encoding::new("fc-percentiles", cfg.dtype, cfg.nodata)?;
        Ok(FcPercentiles { cfg, enc })
    }
}

impl Statistic for FcPercentiles {
    /// An index per observation, then percentiles of it (see `Summary`).
    fn cost(&self) -> StatCost {
        StatCost { compute_ns_per_value: 8.0, working_memory_fraction: 0.5 }
    }
    fn name(&self) -> &str {
        "fc-percentiles"
    }
    fn input_bands(&self) -> Vec<InputBand> {
        let mut v = InputBand::continuous(&self.cfg.bands, &self.enc, false);
        v.push(InputBand::categorical(&self.cfg.water_band, 1));
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
        v
    }
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let idx = stack.band_indices(&self.cfg.bands)?;
        let wb = stack
            .band_index(&self.cfg.water_band)
            .ok_or_else(|| StatError::MissingBand(self.cfg.water_band.clone()))?;
        let (h, w) = stack.shape_yx();
        let times = stack.times();
        let data = &stack.data;
        let enc = self.enc;
        let dry = |y: usize, x: usize, t: usize| {
            data[[t, wb, y, x]] == 0 && idx.iter().all(|&b| data[[t, b, y, x]] != enc.code)
        };
        let r = percentiles_chunk(Dims { h, w, bands: idx.len(), times }, &PS, 3, enc.nodata, |y, x, b, vals| {
            vals.extend((0..times).filter(|&t| dry(y, x, t)).map(|t| enc.value(data[[t, idx[b], y, x]])))
        });
        let mut out = Vec::new();
        for b in 0..idx.len() {
            for q in 0..PS.len() {
                out.push(enc.output(r.slice(ndarray::s![b, q, .., ..]).to_owned()));
            }
        }
        out.push(OutputData::U8(Array2::from_shape_fn((h, w), |(y, x)| {
            let clear = (0..times).filter(|&t| matches!(data[[t, wb, y, x]], 0 | 128)).count();
            let dry_n = (0..times).filter(|&t| dry(y, x, t)).count();
            if clear == 0 {
                0
            } else if dry_n < 3 {
                1
            } else {
                2
            }
        })));
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
        // Pixel 1: only one dry observation: no percentiles, qa 1.
        assert_eq!(pv50[[0, 1]], 255);
        assert_eq!(qa[[0, 1]], 1);
    }
}
