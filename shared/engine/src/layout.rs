//! Where things are written, relative to the output location (odc-stats' layout):
//! `{product}/{version}/x03/y04/2019--P1Y/{product}_x03y04_2019--P1Y_{band}.tif`
//! plus `{product}_x03y04_2019--P1Y.stac-item.json`, written last, and the product's
//! `{product}/{version}/collection.json`.

use stratus_core::TaskId;

/// A tile's metadata files besides its STAC item: eo3 document, processing record,
/// checksums (odc-stats' names).
pub const TILE_METADATA: [&str; 3] = ["odc-metadata.yaml", "proc-info.yaml", "sha1"];

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
        self.metadata_key(t, "stac-item.json")
    }
    /// A tile's metadata file with extension `ext` (`odc-metadata.yaml`, `proc-info.yaml`,
    /// `sha1`).
    pub fn metadata_key(&self, t: &TaskId, ext: &str) -> String {
        format!("{}/{}.{ext}", self.dir(t), self.stem(t))
    }
    /// The product's STAC Collection, which every item links to.
    pub fn collection_key(&self) -> String {
        format!("{}/{}/collection.json", self.product, self.version)
    }
    /// The product's eo3 definition, for `datacube product add`.
    pub fn product_definition_key(&self) -> String {
        format!("{}/{}/{}.odc-product.yaml", self.product, self.version, self.product)
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
