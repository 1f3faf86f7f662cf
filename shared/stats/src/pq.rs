//! `pq` (Sentinel-2 SCL) and `pq-ls` (Landsat QA_PIXEL): clear-pixel counts. Outputs
//! `total` (valid observations), `clear` (valid and not cloud) and one `clear_R1_R2` per
//! mask filter: the cloud mask opened by a disk of radius R1, then dilated by R2.

use crate::masks::{MaskKind, MaskKind as K};
use crate::morphology::{apply_all, MorphOp};
use crate::stack::Stack;
use crate::statistic::{InputBand, OutputBand, OutputData, PixelType, StatError, Statistic};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PqConfig {
    /// (opening radius, dilation radius) pairs; odc-stats' default.
    #[serde(default = "default_filters")]
    pub filters: Vec<(usize, usize)>,
    /// The band holding the cloud classification.
    pub band: String,
    pub mask: MaskKind,
}

fn default_filters() -> Vec<(usize, usize)> {
    vec![(2, 5), (0, 5)]
}

impl PqConfig {
    pub fn s2() -> Self {
        Self { filters: default_filters(), band: "SCL".into(), mask: K::s2() }
    }
    pub fn landsat() -> Self {
        Self { filters: default_filters(), band: "qa_pixel".into(), mask: K::landsat() }
    }
}

pub struct Pq {
    name: String,
    cfg: PqConfig,
}

impl Pq {
    pub fn new(name: &str, cfg: PqConfig) -> Result<Pq, StatError> {
        if cfg.filters.iter().any(|&(a, b)| a > 50 || b > 50) {
            return Err(StatError::Config {
                plugin: name.into(),
                why: "filter radii above 50 pixels are not supported".into(),
            });
        }
        Ok(Pq { name: name.into(), cfg })
    }
    fn ops(&self, f: (usize, usize)) -> [MorphOp; 2] {
        [MorphOp::Opening(f.0), MorphOp::Dilation(f.1)]
    }
}

impl Statistic for Pq {
    fn name(&self) -> &str {
        &self.name
    }
    fn input_bands(&self) -> Vec<InputBand> {
        vec![InputBand::mask(&self.cfg.band, &self.cfg.mask)]
    }
    fn output_bands(&self) -> Vec<OutputBand> {
        let band = |name: String| OutputBand { name, dtype: PixelType::Uint16, nodata: None, categorical: true };
        let mut v = vec![band("total".into()), band("clear".into())];
        v.extend(self.cfg.filters.iter().map(|(a, b)| band(format!("clear_{a}_{b}"))));
        v
    }
    fn halo(&self) -> usize {
        self.cfg.filters.iter().map(|&f| self.ops(f).iter().map(MorphOp::reach).sum::<usize>()).max().unwrap_or(0)
    }
    fn reduce(&self, stack: &Stack) -> Result<Vec<OutputData>, StatError> {
        let b = stack.band_index(&self.cfg.band).ok_or_else(|| StatError::MissingBand(self.cfg.band.clone()))?;
        let (h, w) = stack.shape_yx();
        let mut total = Array2::<u16>::zeros((h, w));
        let mut clear = Array2::<u16>::zeros((h, w));
        let mut filtered = vec![Array2::<u16>::zeros((h, w)); self.cfg.filters.len()];
        let k = &self.cfg.mask;
        for t in 0..stack.times() {
            let plane = stack.plane(t, b);
            let valid = plane.mapv(|v| k.is_valid(v));
            let cloud = plane.mapv(|v| k.is_cloud(v));
            ndarray::Zip::from(&mut total).and(&valid).for_each(|c, &v| *c += v as u16);
            ndarray::Zip::from(&mut clear).and(&valid).and(&cloud).for_each(|c, &v, &k| *c += (v && !k) as u16);
            for (i, f) in self.cfg.filters.iter().enumerate() {
                let m = apply_all(&cloud, &self.ops(*f));
                ndarray::Zip::from(&mut filtered[i]).and(&valid).and(&m).for_each(|c, &v, &k| *c += (v && !k) as u16);
            }
        }
        let mut out = vec![OutputData::U16(total), OutputData::U16(clear)];
        out.extend(filtered.into_iter().map(OutputData::U16));
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
        let pq = Pq::new("pq", PqConfig { filters: vec![(1, 0), (0, 1)], ..PqConfig::s2() }).unwrap();
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
        let pq = Pq::new("pq-ls", PqConfig { filters: vec![], ..PqConfig::landsat() }).unwrap();
        let out = pq.reduce(&s).unwrap();
        let (OutputData::U16(total), OutputData::U16(clear)) = (&out[0], &out[1]) else { panic!() };
        assert_eq!(total.iter().copied().collect::<Vec<_>>(), vec![2, 1, 2]);
        assert_eq!(clear.iter().copied().collect::<Vec<_>>(), vec![2, 0, 1]);
    }
}
