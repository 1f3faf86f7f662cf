// What each fuzz target exercises, written once: the cargo-fuzz harnesses
// (fuzz/fuzz_targets/*.rs) call these, and so does `tests/fuzz_regressions.rs`, which
// replays every saved input in fuzz/regressions/TARGET/ in `make test`. Each function
// must return normally for any input: parsers answer errors, never panics. Where a
// parse succeeds, its result must survive the round trip through its text form.

use std::str::FromStr;
use stratus_core::{Frequency, GridSpec, Period, Selection, TaskId, TileIndex};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Task ids (`x+003/y-004/2019--P1Y`) and task selections (ids, indices, slices).
pub fn task_id(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(t) = TaskId::from_str(s) {
        let again: TaskId = t.to_string().parse().expect("a task id's text parses again");
        assert_eq!(again, t, "task id round trip");
    }
    if let Ok(sel) = Selection::from_str(s) {
        for len in [0usize, 1, 7] {
            let _ = sel.indices(len, |_| Some(0));
        }
    }
}

/// Periods (`2020-05--P1M`) and frequencies (`annual`, `seasonal`, `P3M`...).
pub fn period(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(p) = Period::from_str(s) {
        let again: Period = p.label().parse().expect("a period's label parses again");
        assert_eq!(again, p, "period round trip");
        let _ = (p.end(), p.start_datetime(), p.end_datetime());
    }
    if let Ok(f) = Frequency::from_str(s) {
        let day = chrono::NaiveDate::from_ymd_opt(2021, 2, 28).expect("valid");
        let _ = f.periods_for(day, None);
    }
    // A period and a frequency on one line: the frequency's periods within that range.
    if let Some((range, freq)) = s.split_once(' ') {
        if let (Ok(r), Ok(f)) = (Period::from_str(range), Frequency::from_str(freq)) {
            for day in [r.start, r.end(), r.start + chrono::Duration::days(40)] {
                for p in f.periods_for(day, Some(r)) {
                    assert!(p.contains(day), "{f} in {r}: {p} does not hold {day}");
                }
            }
        }
    }
}

/// Dataset filters (CQL2 text, CQL2 JSON, odc-stats' property values) and STAC API
/// search filters: parsed, then decided on items with and without the properties.
pub fn dataset_filter(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut specs = vec![serde_json::Value::String(s.to_string())];
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
        let _ = stratus_engine::stac_api::parse_filter(&v);
        specs.push(v);
    }
    let _ = stratus_engine::stac_api::parse_filter(&specs[0]);
    let items = [
        serde_json::json!({"id": "a", "collection": "c", "properties": {"eo:cloud_cover": 12.5, "platform": "sentinel-2a", "datetime": "2021-02-03T00:00:00Z"}}),
        serde_json::json!({"id": "b", "properties": {}}),
    ];
    for spec in specs {
        if let Ok(filters) = stratus_engine::dataset_filter::DatasetFilters::new(&[spec]) {
            for item in &items {
                let _ = filters.keep(item);
            }
        }
    }
}

/// Grid names and specs (`au-30`, `africa-10`, custom specs).
pub fn grid_spec(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(g) = GridSpec::parse(s) {
        let t = TileIndex::new(1, -1);
        let b = g.tile_bounds(t);
        let _ = g.tile_of(b.min_x, b.min_y);
        let _ = g.tile_geobox(t);
    }
}

/// The run file (odc-stats' cfg.yaml keys) and the plugin configuration inside it.
pub fn run_file(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(cfg) = stratus_engine::RunConfig::from_yaml(s, "fuzz.yaml") else { return };
    let _ = cfg.validate();
    let _ = (cfg.grid_spec(), cfg.frequency(), cfg.temporal_range(), cfg.tile_subset(), cfg.run_id(), cfg.digest());
    let _ = stratus_stats::build_statistic(&cfg.plugin, &cfg.plugin_config);
}

/// One STAC item (or ItemCollection / catalog document) as the planner reads it.
pub fn stac_item(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = stratus_core::stac_input::dataset_from_item_text(s, Some("s3://bucket/items/item.json"), None);
    let _ = stratus_core::stac_input::parse_document(s, "fuzz.json");
}

/// Queue message bodies (task, fan-out page, completion) and the planner's trigger events.
pub fn queue_message(data: &[u8]) {
    let Some(s) = text(data) else { return };
    use stratus_engine::messages::{CompletionMessage, FanOutPage, TaskMessage};
    if let Ok(m) = TaskMessage::parse(s) {
        TaskMessage::parse(&m.body()).expect("a task message's body parses again");
    }
    if let Ok(p) = FanOutPage::parse(s) {
        FanOutPage::parse(&p.body()).expect("a fan-out page's body parses again");
    }
    let _ = CompletionMessage::parse(s);
    let _ = stratus_serverless::events::decode_s3_key(s);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
        let _ = stratus_serverless::events::planner_triggers(&v);
    }
}

/// Output and input locations against an allow-list (the security checks).
pub fn location(data: &[u8]) {
    let Some(s) = text(data) else { return };
    use stratus_engine::access_policy::AccessPolicy;
    let open = AccessPolicy::default();
    let _ = (open.check_output(s), open.check_input(s));
    let listed = AccessPolicy::new(Some("s3://out-bucket/products,/srv/out"), Some("s3://in-bucket/l2a"))
        .expect("valid prefixes");
    if listed.check_output(s).is_ok() {
        // Under a prefix at a segment boundary (a path's components, so `//srv/out` is
        // `/srv/out`), and never through `..`.
        let in_bucket = s.strip_prefix("s3://out-bucket/products").is_some_and(|r| r.is_empty() || r.starts_with('/'));
        let local = std::path::Path::new(s.strip_prefix("file://").unwrap_or(s));
        assert!(in_bucket || local.starts_with("/srv/out"), "accepted an output outside the prefixes: {s:?}");
        assert!(!s.split('/').any(|seg| seg == ".."), "accepted '..': {s:?}");
    }
    let _ = stratus_core::redact::redact(s);
}

/// Catalog graphs as the planner follows them: up to 12 documents on disk, each a catalog
/// linking to others (cycles, self-links, diamonds) or an item. However they link, the
/// planner must end, read each document once, and hand over each item at most once.
pub fn catalog_graph(data: &[u8]) {
    let Some((&first, links)) = data.split_first() else { return };
    let n = (first % 12) as usize + 1;
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = |i: usize| dir.path().join(format!("doc{i}.json"));
    let mut items = 0;
    for i in 0..n {
        // Document i links to the documents named by its bytes; the last ones are items.
        let is_item = i > 0 && links.get(i).is_some_and(|b| b & 0x80 != 0);
        let doc = if is_item {
            items += 1;
            serde_json::json!({
                "type": "Feature", "stac_version": "1.0.0", "id": format!("item{i}"),
                "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]},
                "bbox": [0.0, 0.0, 1.0, 1.0],
                "properties": {"datetime": "2021-01-01T00:00:00Z", "proj:epsg": 4326},
                "assets": {"red": {"href": format!("./b{i}.tif")}},
                "links": []
            })
        } else {
            let targets: Vec<serde_json::Value> = links
                .iter()
                .skip(i * 2)
                .take(2)
                .map(|b| serde_json::json!({"rel": if b & 1 == 0 { "child" } else { "item" }, "href": format!("./doc{}.json", (*b as usize >> 1) % n)}))
                .collect();
            serde_json::json!({"type": "Catalog", "stac_version": "1.0.0", "id": format!("cat{i}"), "description": "fuzz", "links": targets})
        };
        if std::fs::write(path(i), doc.to_string()).is_err() {
            return;
        }
    }
    let mut handed = 0usize;
    let root = path(0).display().to_string();
    let _ = stratus_engine::sources::for_each_batch(&root, &|_parsed| (), &mut |batch: Vec<()>| {
        handed += batch.len();
        Ok(())
    });
    assert!(handed <= items, "{handed} items handed over from {items} item documents");
}
