//! Helpers shared by the integration tests.

pub mod aws;
pub mod fault_proxy;
#[allow(dead_code)] // not every test binary uses it
pub mod http_files;
pub mod moto;

use stratus_synth::{Granule, SynthSpec};

/// Small synthetic scenes either side of the UTM 34/35 boundary, overlapping by ~8 km so
/// that same-day fusing matters.
#[allow(dead_code)] // not every test binary uses it
pub fn small_scenes(dates: usize) -> SynthSpec {
    SynthSpec {
        dates,
        resolution: 240.0,
        granule_km: 40.0,
        truth: false,
        granules: vec![
            Granule { region_code: "34LGK".into(), epsg: 32734, centre_lon: 23.82, centre_lat: -14.83, day_offset: 0 },
            Granule { region_code: "35LKE".into(), epsg: 32735, centre_lon: 24.12, centre_lat: -14.83, day_offset: 0 },
        ],
        ..SynthSpec::default()
    }
}
