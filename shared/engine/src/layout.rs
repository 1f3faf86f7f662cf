//! Where things are written, relative to the output location (odc-stats' layout):
//! `{product}/{version}/x03/y04/2019--P1Y/{product}_x03y04_2019--P1Y_{band}.tif`
//! plus `{product}_x03y04_2019--P1Y.stac-item.json`, written last.

use stratus_core::TaskId;

#[derive(Debug, Clone)]
pub struct Layout {
    pub product: String,
    pub version: String,
}

impl Layout {
    pub fn new(product: &str, version: &str) -> Self {
        Self { product: product.into(), version: version.into() }
    }
    /// The layout of a run's product.
    pub fn of(cfg: &crate::RunConfig) -> Self {
        Self::new(&cfg.product.name, &cfg.product.version)
    }
    /// The directory of a tile's outputs.
    pub fn dir(&self, t: &TaskId) -> String {
        format!("{}/{}/x{:02}/y{:02}/{}", self.product, self.version, t.tile.x, t.tile.y, t.period)
    }
    pub fn stem(&self, t: &TaskId) -> String {
        format!("{}_{}_{}", self.product, t.tile.region_code(), t.period)
    }
    pub fn band_key(&self, t: &TaskId, band: &str) -> String {
        format!("{}/{}_{band}.tif", self.dir(t), self.stem(t))
    }
    pub fn stac_key(&self, t: &TaskId) -> String {
        format!("{}/{}.stac-item.json", self.dir(t), self.stem(t))
    }
    /// Plan artefacts of a run: the task CSV and one GeoJSON per period.
    pub fn plan_dir(&self, run_id: &str) -> String {
        format!("{}/{}/_plan/{run_id}", self.product, self.version)
    }
    pub fn run_dir(&self, run_id: &str) -> String {
        format!("{}/{}/_runs/{run_id}", self.product, self.version)
    }
    /// A sub-tile part's band, in the run's scratch space until its tile is assembled.
    pub fn part_key(&self, run_id: &str, t: &TaskId, part: &stratus_core::TilePart, band: &str) -> String {
        format!("{}/parts/{}/{part}/{band}.tif", self.run_dir(run_id), self.stem(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odc_stats_names() {
        let l = Layout::new("ga_s2_gm", "1.0.0");
        let t: TaskId = "x+003/y+004/2019--P1Y".parse().unwrap();
        assert_eq!(l.band_key(&t, "red"), "ga_s2_gm/1.0.0/x03/y04/2019--P1Y/ga_s2_gm_x03y04_2019--P1Y_red.tif");
        assert_eq!(l.stac_key(&t), "ga_s2_gm/1.0.0/x03/y04/2019--P1Y/ga_s2_gm_x03y04_2019--P1Y.stac-item.json");
    }
}
