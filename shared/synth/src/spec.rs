use serde::{Deserialize, Serialize};

/// One granule (an MGRS-like tile of one UTM zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Granule {
    /// e.g. `34LGK`.
    pub region_code: String,
    pub epsg: u32,
    pub centre_lon: f64,
    pub centre_lat: f64,
    /// Days added to every acquisition date: neighbouring orbit paths are imaged on
    /// different days (Landsat's adjacent paths), so each granule adds its own observations.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub day_offset: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    pub seed: u64,
    pub year: i32,
    pub dates: usize,
    pub resolution: f64,
    pub granule_km: f64,
    pub granules: Vec<Granule>,
    pub collection: String,
    /// Also write the cloud-free twin of every scene under `truth/`.
    pub truth: bool,
}

/// Sentinel-2 bands written, with the Earth Search asset keys.
pub const BANDS: [(&str, &str); 6] =
    [("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir"), ("B11", "swir16"), ("B12", "swir22")];

impl Default for SynthSpec {
    /// The demo: two granules either side of the UTM 34/35 boundary in Zambia, covering
    /// africa-60 tiles (204, 57) and (205, 57), 24 dates of 2021 at 60 m.
    fn default() -> Self {
        SynthSpec {
            seed: 42,
            year: 2021,
            dates: 24,
            resolution: 60.0,
            granule_km: 109.8,
            granules: vec![
                Granule {
                    region_code: "34LGK".into(),
                    epsg: 32734,
                    centre_lon: 23.40,
                    centre_lat: -14.83,
                    day_offset: 0,
                },
                Granule {
                    region_code: "35LKE".into(),
                    epsg: 32735,
                    centre_lon: 24.38,
                    centre_lat: -14.83,
                    day_offset: 0,
                },
            ],
            collection: "sentinel-2-l2a".into(),
            truth: true,
        }
    }
}

impl SynthSpec {
    /// A small, quick variant for tests: same area, coarser and smaller.
    pub fn small() -> Self {
        SynthSpec { dates: 6, resolution: 240.0, granule_km: 40.0, ..Default::default() }
    }
    pub fn granule_pixels(&self) -> usize {
        (self.granule_km * 1000.0 / self.resolution).round() as usize
    }
    /// Names the set a spec makes: a cached set is reused only when this matches, so it
    /// covers what is written (`FORMAT`) as well as the spec.
    pub fn digest(&self) -> String {
        /// Bumped when the files written for the same spec change (2: STAC 1.1.0, a
        /// Collection the items link to).
        const FORMAT: u32 = 2;
        let s = format!("format {FORMAT};{}", serde_json::to_string(self).unwrap());
        format!("{:016x}", crate::field::mix(s.bytes().fold(0u64, |h, b| crate::field::mix(h ^ b as u64))))
    }
}
