//! An odc-stats run configuration, with the keys DEA's and Digital Earth Africa's
//! configurations carry, plans and runs as it is (the inputs given on the command line):
//! odc-stats' keys are mapped, or noted where they have no meaning here, or warned about
//! where Stratus does not apply them yet; a key that is neither ours nor odc-stats' is
//! still refused.

mod support;

use std::path::Path;
use support::stratus;

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A configuration in odc-stats' form: its top-level keys, `product:` with eo3 keys,
/// `cog_opts` with `zlevel`, an `output_location` template, save-tasks keys.
fn odc_stats_config(out: &Path) -> String {
    format!(
        r#"plugin: pq
plugin_config:
  filters: [[2, 5], [0, 5]]
product:
  name: t_pq_annual
  short_name: t_pq_annual
  version: 1.0.0
  product_family: pixel_quality_statistics
  collections_site: explorer.digitalearth.africa
  producer: digitalearthafrica.org
  region_code_format: "x{{x:03d}}y{{y:03d}}"
  naming_conventions_values: dea_c3
  explorer_path: https://explorer.dea.ga.gov.au/
  classifier: ard
  maturity: final
  collection_number: 3
  inherit_skip_properties: [eo:cloud_cover]
  preview_image_ows_style: {{name: simple_rgb}}
  properties:
    odc:lineage_note: from odc-stats
filedb: 's3://deafrica-services/dbs/s2ab.db'
output_location: '{out}/{{product}}/{{version}}/'
aws_unsigned: true
s3_acl: public-read
threads: 8
memory_limit: 60Gi
max_processing_time: 2400
job_queue_max_lease: 300
renew_safety_margin: 60
future_poll_interval: 2
apply_eodatasets3: true
heartbeat_filepath: '{out}-heartbeat'
cog_opts:
  zlevel: 9
  blocksize: 256
  overview_resampling: average
  overrides:
    total: {{compress: zstd}}
input_products: sentinel-2-l2a
frequency: annual
grid: 'epsg:6933;240;100'
"#,
        out = out.display()
    )
}

#[test]
fn an_odc_stats_configuration_plans_and_runs_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    stratus_synth::generate(&support::small_scenes(2), &inputs, &|_, _| {}).unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("odc-stats.yaml");
    std::fs::write(&cfg, odc_stats_config(&out)).unwrap();
    let cfg = cfg.to_str().unwrap();
    let input = inputs.to_str().unwrap();

    let o = stratus(&["-v", "save-tasks", "--config", cfg, "--input", input, "--year", "2021", "--run-id", "r"], &[]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    // Each odc-stats key is accounted for.
    for (key, says) in [
        ("filedb", "no meaning here"),
        ("threads", "no meaning here"),
        ("apply_eodatasets3", "always"),
        ("product.preview_image_ows_style", "no thumbnail is drawn"),
        ("input_products", "read as products"),
        ("output_location", "read as location"),
    ] {
        let line = said
            .lines()
            .find(|l| l.contains(&format!("odc-stats' {key}:")))
            .unwrap_or_else(|| panic!("no note on {key}:\n{said}"));
        assert!(line.contains(says), "{key}: {line}");
    }

    let o = stratus(&["run", "r", "--location", out.to_str().unwrap(), "--workers", "2"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    // The heartbeat file holds the time a tile last ran, as odc-stats writes it.
    let beat = std::fs::read_to_string(format!("{}-heartbeat", out.display())).expect("a heartbeat file");
    assert!(chrono::NaiveDateTime::parse_from_str(&beat, "%Y-%m-%d %H:%M:%S").is_ok(), "{beat}");
    // The outputs are where output_location says (odc-stats' {version} is dashed), named
    // as odc-stats names them, described with the product's properties.
    let product = out.join("t_pq_annual/1-0-0");
    let items = support::files_with_extension(&product, "json")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".stac-item.json"))
        .collect::<Vec<_>>();
    assert!(!items.is_empty());
    let item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&items[0]).unwrap()).unwrap();
    assert_eq!(item["properties"]["odc:producer"], "digitalearthafrica.org");
    assert_eq!(item["properties"]["odc:lineage_note"], "from odc-stats");
    assert_eq!(item["properties"]["odc:product_family"], "pixel_quality_statistics");
    // Explorer's pages, as eodatasets3 links them from explorer_path.
    let link =
        |rel: &str| item["links"].as_array().unwrap().iter().find(|l| l["rel"] == rel).map(|l| l["href"].clone());
    assert_eq!(link("product_overview"), Some("https://explorer.dea.ga.gov.au/product/t_pq_annual".into()));
    assert_eq!(
        link("alternative"),
        Some(format!("https://explorer.dea.ga.gov.au/dataset/{}", item["id"].as_str().unwrap()).into())
    );
    let name = items[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("t_pq_annual_x0") && name.ends_with("_2021--P1Y_final.stac-item.json"), "{name}");
    // The eo3 document carries the product's eo3 keys.
    let eo3 =
        std::fs::read_to_string(items[0].to_string_lossy().replace(".stac-item.json", ".odc-metadata.yaml")).unwrap();
    for says in [
        "href: https://explorer.digitalearth.africa/product/t_pq_annual",
        "dea:dataset_maturity: final",
        "odc:collection_number: 3",
        "\n  ard:\n",
        // naming_conventions_values dea_c3: eodatasets3's label (name, region, first day, maturity).
        "label: t_pq_annual_x0",
        "_2021-01-01_final\n",
    ] {
        assert!(eo3.contains(says), "{says}: {eo3}");
    }
    // cog_opts: blocksize for every band, the override merged over it.
    let tifs = support::files_with_extension(&product, "tif");
    let total = tifs.iter().find(|p| p.to_string_lossy().ends_with("_total.tif")).unwrap();
    let ds = gdal::Dataset::open(total).unwrap();
    assert_eq!(ds.rasterband(1).unwrap().block_size(), (256, 256));
    use gdal::Metadata;
    assert_eq!(ds.metadata_item("COMPRESSION", "IMAGE_STRUCTURE").as_deref(), Some("ZSTD"));

    // odc-stats' gqa filters on DEA's geometric quality: items without it are named.
    let with_gqa = std::fs::read_to_string(cfg).unwrap() + "gqa: 1\n";
    let gqa_cfg = dir.path().join("gqa.yaml");
    std::fs::write(&gqa_cfg, with_gqa).unwrap();
    let gqa_out = dir.path().join("gqa");
    let o = stratus(
        &[
            "save-tasks",
            "--config",
            gqa_cfg.to_str().unwrap(),
            "--input",
            input,
            "--year",
            "2021",
            "--location",
            gqa_out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success() && text(&o).contains("gqa:iterative_mean_xy"), "{}", text(&o));

    // convert-config prints the Stratus run file, a note per odc-stats key; it plans the
    // same tasks.
    let o = stratus(&["convert-config", cfg], &[]);
    let converted = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && converted.contains("#   filedb: no meaning here"), "{}", text(&o));
    let conv_cfg = dir.path().join("converted.yaml");
    std::fs::write(&conv_cfg, &converted).unwrap();
    let conv_out = dir.path().join("converted");
    let args =
        ["save-tasks", "--config", conv_cfg.to_str().unwrap(), "--input", input, "--year", "2021", "--run-id", "r"];
    let mut args = args.to_vec();
    args.extend(["--location", conv_out.to_str().unwrap()]);
    let o = stratus(&args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let tasks = |root: &Path| std::fs::read_to_string(root.join("t_pq_annual/1-0-0/_plan/r/tasks.csv")).unwrap();
    assert_eq!(tasks(&conv_out), tasks(&out), "the converted run file plans the same tasks");

    // A key neither odc-stats nor Stratus has is refused, named.
    let typo = std::fs::read_to_string(cfg).unwrap() + "qga: 1\n";
    let typo_cfg = dir.path().join("typo.yaml");
    std::fs::write(&typo_cfg, typo).unwrap();
    let o = stratus(&["save-tasks", "--config", typo_cfg.to_str().unwrap(), "--input", input, "--year", "2021"], &[]);
    assert!(!o.status.success() && text(&o).contains("qga"), "{}", text(&o));
}
