//! Parsing and planning against STAC metadata published by real catalogues
//! (tests/data/stac, see its README).

use std::collections::BTreeSet;
use std::path::PathBuf;
use stratus_core::geometry::CrsTransform;
use stratus_core::{Dataset, GridSpec, TileIndex};
use stratus_engine::sources::for_each_batch;
use stratus_raster::GdalCrsTransform;

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/stac").join(name).display().to_string()
}

fn load(name: &str) -> Vec<Dataset> {
    let mut out = Vec::new();
    for_each_batch(&data(name), &|p| p, &mut |batch| {
        out.extend(batch.into_iter().map(|p| p.unwrap_or_else(|b| panic!("{}: {}", b.source, b.reason))));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn earth_search_item() {
    let d = &load("S2A_28QCH_20200714_0_L2A.json")[0];
    assert_eq!(
        (d.epsg, d.region_code.as_deref(), d.processing_baseline.as_deref()),
        (32628, Some("28QCH"), Some("02.14"))
    );
    assert!(!d.has_boa_offset());
    let red = d.band("red").expect("red finds B04");
    assert_eq!(red.key, "B04");
    assert_eq!(red.shape, Some([10980, 10980]));
    assert_eq!(red.transform, Some([300000.0, 10.0, 0.0, 2300040.0, 0.0, -10.0]));
    assert_eq!(d.band("SCL").unwrap().shape, Some([5490, 5490]));
}

#[test]
fn planetary_computer_and_landsat_and_ga_items() {
    let pc = &load("S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")[0];
    assert_eq!(
        (pc.region_code.as_deref(), pc.processing_baseline.as_deref(), pc.epsg),
        (Some("06VVN"), Some("02.12"), 32606)
    );
    assert_eq!(pc.band("nir").unwrap().key, "B08");
    let ls = &load("LC08_L2SP_028030_20200114_20200824_02_T1_SR.json")[0];
    assert_eq!((ls.region_code.as_deref(), ls.epsg), (Some("028030"), 32615));
    assert!(ls.band("red").is_some() && ls.band("qa_pixel").is_some());
    assert!(!load("LE07_L2SP_044033_20210329_20210424_02_T1_SR.json").is_empty());
    let ga = &load("ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json")[0];
    assert_eq!((ga.collection.as_str(), ga.region_code.as_deref(), ga.epsg), ("ga_ls8c_ard_3", Some("088080"), 32656));
    assert!(ga.band("nbart_red").is_some());
}

/// Tiles of a lon/lat bounding box, for comparison with the footprint's own tiles.
fn bbox_tiles(grid: &GridSpec, d: &Dataset) -> usize {
    let pts: Vec<(f64, f64)> = d.footprint.concat();
    let (w, e) = pts.iter().fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (s, n) = pts.iter().fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let mut ring = stratus_core::geometry::densify(&[(w, s), (e, s), (e, n), (w, n), (w, s)], 8);
    GdalCrsTransform.transform(4326, grid.epsg, &mut ring).unwrap();
    grid.tiles_for_polygon(&ring).len()
}

#[test]
fn footprints_decide_tiles_not_bounding_boxes() {
    let items = load("site1-20200606-tall-strip-africa.geojson");
    assert_eq!(items.len(), 9);
    let grid = GridSpec::parse("africa-10").unwrap();
    let rules = stratus_core::binning::BinningRules {
        grid: grid.clone(),
        frequency: "annual".parse().unwrap(),
        temporal_range: None,
        tiles: BTreeSet::new(),
    };
    let binner = stratus_core::binning::Binner::new(&rules, &GdalCrsTransform, None);
    let mut by_footprint = 0;
    let mut by_bbox = 0;
    for d in &items {
        let tiles = binner.tiles_of(d).unwrap();
        assert!(!tiles.is_empty(), "{}", d.id);
        // Every footprint tile is inside the bounding box's tiles.
        by_footprint += tiles.len();
        by_bbox += bbox_tiles(&grid, d);
    }
    // These footprints are nearly rectangular in lon/lat; a diagonal one claims fewer
    // tiles than its box (see the grid tests in the core crate).
    assert!(by_footprint <= by_bbox, "footprints {by_footprint} vs bounding boxes {by_bbox}");
    assert!(by_footprint >= items.len());
    // The strip runs north-south: one overpass, so one solar day.
    let days: BTreeSet<_> = items.iter().map(|d| stratus_core::period::solar_day(d.datetime, d.longitude())).collect();
    assert_eq!(days.len(), 1);
}

#[test]
fn one_mgrs_tile_two_months_seasonal() {
    let items = load("site2-2020_jun_jul-35MNM.geojson");
    assert_eq!(items.len(), 13);
    assert!(items.iter().all(|d| d.region_code.as_deref() == Some("35MNM") && d.epsg == 32735));
    let rules = stratus_core::binning::BinningRules {
        grid: GridSpec::parse("africa-30").unwrap(),
        frequency: "seasonal".parse().unwrap(),
        temporal_range: None,
        tiles: BTreeSet::new(),
    };
    let mut b = stratus_core::binning::Binner::new(&rules, &GdalCrsTransform, None);
    for (i, d) in items.iter().enumerate() {
        b.add(i, d).unwrap();
    }
    let periods: BTreeSet<String> = b.tasks.keys().map(|t| t.period.to_string()).collect();
    assert_eq!(periods, BTreeSet::from(["2020-06--P3M".to_string()]));
    // A 110 km MGRS tile covers at most 3 x 3 tiles of 96 km.
    let tiles: BTreeSet<TileIndex> = b.tasks.keys().map(|t| t.tile).collect();
    assert!((2..=9).contains(&tiles.len()), "{tiles:?}");
}
