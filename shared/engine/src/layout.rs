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
    /// The product's name: its folder.
    pub product: String,
    /// The version as written in the product's folder (odc-stats' `output_location`
    /// templates write it dashed: `1-0-0`).
    pub version: String,
    /// The files' name prefix (odc-stats' `short_name`; the product's name by default).
    pub short_name: String,
    /// Appended to the files' prefix (odc-stats' `maturity`, e.g. `final`).
    pub maturity: Option<String>,
    /// odc-stats' `region_code_format` (None: `x{x:02d}y{y:02d}`, one folder per index).
    pub region_code_format: Option<String>,
}

impl Layout {
    pub fn new(product: &str, version: &str) -> Self {
        Self {
            product: product.into(),
            version: version.into(),
            short_name: product.into(),
            maturity: None,
            region_code_format: None,
        }
    }
    /// The layout of a run's product.
    pub fn of(cfg: &crate::RunConfig) -> Self {
        let p = &cfg.product;
        Self {
            product: p.name.clone(),
            version: p.folder_version(),
            short_name: p.short_name.clone().unwrap_or_else(|| p.name.clone()),
            maturity: p.maturity.clone(),
            region_code_format: p.region_code_format.clone(),
        }
    }
    /// A tile's region code: `x03y04`, or as `region_code_format` says.
    pub fn region_code(&self, t: &TaskId) -> String {
        match &self.region_code_format {
            None => t.tile.region_code(),
            Some(f) => format_region_code(f, t.tile.x, t.tile.y).unwrap_or_else(|_| t.tile.region_code()),
        }
    }
    /// The directory of a tile's outputs.
    pub fn dir(&self, t: &TaskId) -> String {
        let (a, b) = match &self.region_code_format {
            None => (format!("x{:02}", t.tile.x), format!("y{:02}", t.tile.y)),
            // odc-stats' `Task.location`: the region code cut in halves.
            Some(_) => {
                let rc = self.region_code(t);
                let mid = rc.chars().count() / 2;
                (rc.chars().take(mid).collect(), rc.chars().skip(mid).collect())
            }
        };
        format!("{}/{}/{a}/{b}/{}", self.product, self.version, t.period)
    }
    /// The prefix of a tile's files: `{short_name}_{region_code}_{period}[_{maturity}]`.
    pub fn stem(&self, t: &TaskId) -> String {
        let stem = format!("{}_{}_{}", self.short_name, self.region_code(t), t.period);
        match &self.maturity {
            Some(m) => format!("{stem}_{m}"),
            None => stem,
        }
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
    /// A tile's thumbnail (odc-stats' `{stem}_thumbnail.jpg`).
    pub fn thumbnail_key(&self, t: &TaskId) -> String {
        format!("{}/{}_thumbnail.jpg", self.dir(t), self.stem(t))
    }
    /// A tile's RGBA preview band (odc-stats' `{stem}_rgba.tif`).
    pub fn rgba_key(&self, t: &TaskId) -> String {
        format!("{}/{}_rgba.tif", self.dir(t), self.stem(t))
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

/// Format a region code as Python's `str.format` does with `x` and `y` (odc-stats'
/// `region_code_format`): `{x}`, `{x:02d}`, `{y:+03d}`; other text kept as it is.
pub fn format_region_code(format: &str, x: i32, y: i32) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("'{format}' has a '{{' without its '}}'"))? + open;
        let field = &rest[open + 1..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let v = match name {
            "x" => x,
            "y" => y,
            other => return Err(format!("'{format}' names {{{other}}}: only {{x}} and {{y}} are known")),
        };
        let spec = spec.strip_suffix('d').unwrap_or(spec);
        let plus = spec.starts_with('+');
        let digits = spec.trim_start_matches('+');
        let (zero, width) = (digits.starts_with('0'), digits.trim_start_matches('0'));
        let width: usize = if width.is_empty() {
            0
        } else {
            width.parse().map_err(|_| format!("'{format}': '{{{field}}}' is not a width like {{x:02d}}"))?
        };
        let mut n = if plus && v >= 0 { format!("+{v}") } else { v.to_string() };
        if n.len() < width {
            let pad = width - n.len();
            n = if zero {
                // Zeros go after the sign, as Python pads.
                let (sign, digits) = n.split_at(usize::from(n.starts_with(['+', '-'])));
                format!("{sign}{}{digits}", "0".repeat(pad))
            } else {
                format!("{}{n}", " ".repeat(pad))
            };
        }
        out.push_str(&n);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

    /// odc-stats' `Task.paths`: short name, region code format, maturity, region code cut
    /// in halves (the folders), dashed version.
    #[test]
    fn odc_stats_product_names() {
        let l = Layout {
            product: "ga_s2_gm_cyear_3".into(),
            version: "4-0-0".into(),
            short_name: "ga_s2_gm".into(),
            maturity: Some("final".into()),
            region_code_format: Some("x{x:03d}y{y:03d}".into()),
        };
        let t: TaskId = "x+049/y-024/2022--P1Y".parse().unwrap();
        assert_eq!(
            l.band_key(&t, "nbart_red"),
            "ga_s2_gm_cyear_3/4-0-0/x049/y-24/2022--P1Y/ga_s2_gm_x049y-24_2022--P1Y_final_nbart_red.tif"
        );
    }

    /// As Python formats them (checked against `str.format`).
    #[test]
    fn region_codes_format_as_python_does() {
        for (f, x, y, want) in [
            ("x{x:02d}y{y:02d}", 3, -4, "x03y-4"),
            ("x{x:03d}y{y:03d}", 3, -4, "x003y-04"),
            ("{x}_{y}", -12, 7, "-12_7"),
            ("x{x:+03d}", 5, 0, "x+05"),
            ("x{x:3d}", 5, 0, "x  5"),
        ] {
            assert_eq!(format_region_code(f, x, y).unwrap(), want, "{f}");
        }
        assert!(format_region_code("{z}", 1, 2).unwrap_err().contains("only {x} and {y}"));
        assert!(format_region_code("{x:.2f}", 1, 2).is_err());
    }
}
