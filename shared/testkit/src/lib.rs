//! What the tests share (never shipped: `publish = false`): a moto server per test binary,
//! stacks of AWS resources on it, the fault-injecting proxy, a small HTTP file server, a
//! STAC API server, and the small synthetic scenes most tests plan. Production stacks come from Terraform.

pub mod fault_proxy;
pub mod http_files;
pub mod moto;
pub mod s3;
pub mod stac_api;
pub mod stack;

use std::path::PathBuf;
use stratus_synth::{Granule, SynthSpec};

/// The repository's root (scripts and venvs live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// Small synthetic scenes either side of the UTM 34/35 boundary, overlapping by ~8 km so
/// that same-day fusing matters.
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
