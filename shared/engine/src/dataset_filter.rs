//! Dataset filters: conditions on items' properties, applied to every item as the inputs
//! stream in (before it becomes a dataset), each counting the items it leaves out.
//!
//! A filter is CQL2 text (`eo:cloud_cover < 60 AND platform IN ('sentinel-2a',
//! 'sentinel-2b')`), CQL2 JSON (an object with `op`), or odc-stats' `--dataset-filter`
//! form: an object of property values, all of which must hold (`{"dataset_maturity":
//! "final"}`; a list of strings is one of them, a list of two numbers an inclusive range:
//! `{"gqa_iterative_mean_xy": [0, 1]}`). Properties are looked up in the item's
//! `properties`, then at its top level (`id`, `collection`). An item without a property a
//! filter needs is not silently dropped: it is an unusable item, named with the filter.

use crate::error::{EngineError, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

struct Filter {
    /// As the user wrote it.
    text: String,
    expr: cql2::Expr,
    dropped: AtomicU64,
}

/// The run's filters (none: every item passes).
#[derive(Default)]
pub struct DatasetFilters {
    filters: Vec<Filter>,
}

/// What one filter left out of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterCount {
    pub filter: String,
    pub dropped: u64,
}

impl DatasetFilters {
    /// Parse and check every filter; the error names the one that does not parse.
    pub fn new(specs: &[Value]) -> Result<DatasetFilters> {
        let filters = specs
            .iter()
            .map(|spec| {
                let text = match spec {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let expr = parse(spec).map_err(|why| {
                    EngineError::Config(format!(
                        "dataset filter {text}: {why}; give CQL2 text (\"eo:cloud_cover < 60\"), CQL2 JSON \
                         ({{\"op\": \"<\", ...}}) or property values ({{\"platform\": [\"sentinel-2a\", \"sentinel-2b\"]}})"
                    ))
                })?;
                Ok(Filter { text, expr, dropped: AtomicU64::new(0) })
            })
            .collect::<Result<_>>()?;
        Ok(DatasetFilters { filters })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether `item` passes every filter (a drop is counted against the first filter
    /// that refuses it), or why a filter cannot decide.
    pub fn keep(&self, item: &Value) -> std::result::Result<bool, String> {
        for f in &self.filters {
            match f.expr.clone().reduce(Some(item)) {
                Ok(cql2::Expr::Bool(true)) => {}
                Ok(cql2::Expr::Bool(false)) => {
                    f.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                Ok(undecided) => {
                    let missing = properties_in(&undecided);
                    return Err(if missing.is_empty() {
                        format!("dataset filter `{}` does not decide to true or false on it", f.text)
                    } else {
                        format!(
                            "dataset filter `{}` cannot be decided: the item has no {} (filter on properties every item has, or leave such items out with input_policy: skip)",
                            f.text,
                            missing.join(", ")
                        )
                    });
                }
                Err(e) => return Err(format!("dataset filter `{}` fails on it: {e}", f.text)),
            }
        }
        Ok(true)
    }

    /// How many items each filter left out so far.
    pub fn counts(&self) -> Vec<FilterCount> {
        self.filters
            .iter()
            .map(|f| FilterCount { filter: f.text.clone(), dropped: f.dropped.load(Ordering::Relaxed) })
            .collect()
    }
}

/// The properties still named in an expression that did not reduce.
fn properties_in(expr: &cql2::Expr) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(p)) = m.get("property") {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(expr) {
        walk(&v, &mut out);
    }
    out
}

/// A CQL2 expression, checked: text (a string) or JSON (an object). The STAC API's
/// filters are checked here too.
pub(crate) fn checked_cql2(spec: &Value) -> std::result::Result<cql2::Expr, String> {
    let expr = match spec {
        Value::String(text) => cql2::parse_text(text).map_err(|e| format!("'{text}' is not CQL2 text: {e}"))?,
        Value::Object(_) => serde_json::from_value(spec.clone()).map_err(|e| format!("not CQL2 JSON: {e}"))?,
        other => return Err(format!("give CQL2 text (a string) or CQL2 JSON (an object), not {other}")),
    };
    // The text parser takes some malformed input (`a <`); the schema check does not.
    if !expr.is_valid() {
        return Err(match spec {
            Value::String(text) => format!("'{text}' is not CQL2 text: not a valid expression"),
            _ => "not CQL2 JSON: not a valid expression".into(),
        });
    }
    Ok(expr)
}

fn parse(spec: &Value) -> std::result::Result<cql2::Expr, String> {
    match spec {
        // odc-stats' run-time form: JSON objects joined by `|`, any of which may hold.
        Value::String(text) if text.trim_start().starts_with('{') => {
            let alternatives = text
                .split('|')
                .map(|a| {
                    let a = a.trim();
                    let v: Value = serde_json::from_str(a).map_err(|e| format!("'{a}' is not a JSON object: {e}"))?;
                    match v {
                        Value::Object(m) if !m.is_empty() => property_values(&m),
                        _ => Err(format!("'{a}' is not an object of property values")),
                    }
                })
                .collect::<std::result::Result<Vec<Value>, String>>()?;
            let any = if alternatives.len() == 1 {
                alternatives.into_iter().next().expect("one")
            } else {
                json!({"op": "or", "args": alternatives})
            };
            checked_cql2(&any).map_err(|e| format!("property values: {e}"))
        }
        Value::Object(m) if !m.contains_key("op") && !m.is_empty() => {
            checked_cql2(&property_values(m)?).map_err(|e| format!("property values: {e}"))
        }
        _ => checked_cql2(spec),
    }
}

/// odc-stats' property values as CQL2 JSON: every one must hold. A `datetime` is a
/// period (`2013-01--P5M`) the item's datetime falls in, as odc-stats' run-time filter has it.
fn property_values(m: &serde_json::Map<String, Value>) -> std::result::Result<Value, String> {
    let mut conditions = Vec::new();
    for (property, value) in m {
        let p = json!({"property": property});
        if let (true, Value::String(period)) = (property == "datetime", value) {
            let period: stratus_core::Period =
                period.parse().map_err(|e| format!("datetime: {e} (give a period such as 2013-01--P5M)"))?;
            let at = |t: chrono::DateTime<chrono::Utc>| json!({"timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
            conditions.push(json!({"op": ">=", "args": [p, at(period.start_datetime())]}));
            conditions.push(
                json!({"op": "<", "args": [p, at(period.end().and_hms_opt(0, 0, 0).expect("midnight").and_utc())]}),
            );
            continue;
        }
        match value {
            Value::Array(v) if v.len() == 2 && v.iter().all(Value::is_number) => {
                conditions.push(json!({"op": ">=", "args": [p, v[0]]}));
                conditions.push(json!({"op": "<=", "args": [p, v[1]]}));
            }
            Value::Array(v) if !v.is_empty() && v.iter().all(|x| x.is_string() || x.is_number()) => {
                let any: Vec<Value> = v.iter().map(|x| json!({"op": "=", "args": [p, x]})).collect();
                conditions.push(if any.len() == 1 { any[0].clone() } else { json!({"op": "or", "args": any}) });
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                conditions.push(json!({"op": "=", "args": [p, value]}))
            }
            other => return Err(format!("property '{property}': cannot filter on {other}")),
        }
    }
    Ok(if conditions.len() == 1 { conditions.remove(0) } else { json!({"op": "and", "args": conditions}) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(props: Value) -> Value {
        json!({"type": "Feature", "id": "x", "collection": "c", "properties": props})
    }

    fn keeps(filter: Value, props: Value) -> std::result::Result<bool, String> {
        DatasetFilters::new(&[filter]).unwrap().keep(&item(props))
    }

    #[test]
    fn cql2_text_json_and_odc_stats_values_filter_items() {
        let s2a = json!({"eo:cloud_cover": 12.5, "platform": "sentinel-2a", "gqa_iterative_mean_xy": 0.4, "dataset_maturity": "final", "landsat:collection_category": "T1"});
        assert_eq!(keeps(json!("eo:cloud_cover < 60"), s2a.clone()), Ok(true));
        assert_eq!(keeps(json!("eo:cloud_cover < 10"), s2a.clone()), Ok(false));
        assert_eq!(keeps(json!("platform IN ('sentinel-2a', 'sentinel-2b')"), s2a.clone()), Ok(true));
        assert_eq!(keeps(json!("\"landsat:collection_category\" = 'T1'"), s2a.clone()), Ok(true));
        assert_eq!(keeps(json!({"op": "<", "args": [{"property": "eo:cloud_cover"}, 5]}), s2a.clone()), Ok(false));
        assert_eq!(keeps(json!({"dataset_maturity": "final"}), s2a.clone()), Ok(true));
        assert_eq!(keeps(json!({"dataset_maturity": "interim"}), s2a.clone()), Ok(false));
        assert_eq!(keeps(json!({"gqa_iterative_mean_xy": [0, 1]}), s2a.clone()), Ok(true));
        assert_eq!(keeps(json!({"gqa_iterative_mean_xy": [0.5, 1]}), s2a.clone()), Ok(false));
        assert_eq!(keeps(json!({"platform": ["sentinel-2b", "sentinel-2a"]}), s2a.clone()), Ok(true));
        assert_eq!(
            keeps(json!({"platform": ["landsat-8", "landsat-9"], "dataset_maturity": "final"}), s2a.clone()),
            Ok(false)
        );
        assert_eq!(keeps(json!("collection = 'c'"), s2a), Ok(true));
    }

    /// odc-stats' run-time `dataset_filters`, as DEA's fractional-cover configuration has
    /// it: alternatives joined by `|`, each its properties and a `datetime` period.
    #[test]
    fn odc_stats_alternatives_with_datetime_periods() {
        let filter = json!(
            "{\"datetime\": \"1987-01--P17Y\"}|{\"datetime\": \"2004-01--P6Y\", \"eo:platform\": \"landsat-5\"}|\n{\"datetime\": \"2010-01--P3Y\"}|{\"datetime\": \"2013-01--P5M\"}|{\"eo:platform\": \"landsat-8\"}"
        );
        let at = |when: &str, platform: &str| keeps(filter.clone(), json!({"datetime": when, "eo:platform": platform}));
        assert_eq!(at("1990-06-01T10:00:00Z", "landsat-5"), Ok(true), "1987-2003: any platform");
        assert_eq!(at("2003-12-31T23:59:59Z", "landsat-7"), Ok(true));
        assert_eq!(at("2005-03-01T10:00:00Z", "landsat-5"), Ok(true), "2004-2009: landsat-5 only");
        assert_eq!(at("2005-03-01T10:00:00Z", "landsat-7"), Ok(false));
        assert_eq!(at("2011-07-01T00:00:00Z", "landsat-7"), Ok(true));
        assert_eq!(at("2013-05-31T23:00:00Z", "landsat-7"), Ok(true), "to the end of May 2013");
        assert_eq!(at("2013-06-01T00:00:00Z", "landsat-7"), Ok(false), "June 2013: no longer");
        assert_eq!(at("2020-01-01T00:00:00Z", "landsat-8"), Ok(true), "landsat-8 at any time");
        let e = DatasetFilters::new(&[json!("{\"datetime\": \"2013\"}")]).err().unwrap().to_string();
        assert!(e.contains("datetime") && e.contains("2013-01--P5M"), "{e}");
    }

    #[test]
    fn each_filter_counts_what_it_drops_and_a_missing_property_is_named() {
        let f = DatasetFilters::new(&[json!("eo:cloud_cover < 50"), json!({"platform": "sentinel-2a"})]).unwrap();
        let items = [
            json!({"eo:cloud_cover": 10, "platform": "sentinel-2a"}),
            json!({"eo:cloud_cover": 90, "platform": "sentinel-2a"}),
            json!({"eo:cloud_cover": 95, "platform": "sentinel-2b"}),
            json!({"eo:cloud_cover": 5, "platform": "sentinel-2b"}),
        ];
        let kept = items.iter().filter(|p| f.keep(&item((*p).clone())).unwrap()).count();
        assert_eq!(kept, 1);
        let counts = f.counts();
        assert_eq!((counts[0].dropped, counts[1].dropped), (2, 1), "{counts:?}");
        let e = f.keep(&item(json!({"platform": "sentinel-2a"}))).unwrap_err();
        assert!(e.contains("eo:cloud_cover") && e.contains("cannot be decided"), "{e}");
    }

    #[test]
    fn bad_filters_are_named_with_the_forms_that_work() {
        for bad in
            [json!("eo:cloud_cover <"), json!({"op": 3}), json!([1, 2]), json!({"platform": {"a": 1}}), json!({})]
        {
            let e = DatasetFilters::new(std::slice::from_ref(&bad)).err().unwrap().to_string();
            assert!(e.contains("dataset filter") && e.contains("CQL2 text"), "{bad}: {e}");
        }
    }
}
