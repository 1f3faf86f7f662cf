//! Helpers shared by the integration tests.

pub mod aws;
pub mod fault_proxy;
#[allow(dead_code)] // not every test binary uses it
pub mod http_files;
pub mod moto;

use stratus_synth::{Granule, SynthSpec};

/// Run the `stratus` CLI with `args` and `env`, without the allow-lists of the
/// environment the tests run in.
#[allow(dead_code)] // not every test binary uses it
pub fn stratus(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env_remove("STRATUS_ALLOWED_OUTPUTS")
        .env_remove("STRATUS_ALLOWED_INPUTS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

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
