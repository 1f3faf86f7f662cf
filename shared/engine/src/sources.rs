//! Reading STAC sources: item / ItemCollection / NDJSON files, static catalogs (followed
//! through their links) and directories of such files. Datasets are handed to a callback
//! in batches as they are parsed, so the caller decides what to keep.

use crate::dataset_filter::DatasetFilters;
use crate::error::{EngineError, Result};
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use stratus_core::stac_input::{dataset_from_item, dataset_from_item_text, parse_document, resolve_href, StacDocument};
use stratus_core::Dataset;
use stratus_raster::vsi::VsiReader;

/// An item that could not be used, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadItem {
    pub source: String,
    pub reason: String,
}

/// The largest JSON document (item, ItemCollection, catalog) read whole; bigger sources
/// are NDJSON, which is streamed.
const MAX_DOCUMENT_BYTES: u64 = 512 << 20;
/// The longest NDJSON line (one item).
const MAX_LINE_BYTES: u64 = 64 << 20;

fn read_text(path: &str) -> Result<String> {
    let fail = |why: String| EngineError::Source { source_name: path.into(), why };
    if is_remote(path) {
        if path.starts_with("http") {
            crate::access_policy::guard_http_inputs()?;
        }
        // Through GDAL's virtual file systems: the same credentials and endpoint as the
        // rasters (and the same cap as below).
        return stratus_raster::vsi::read_text(path).map_err(|e| fail(e.to_string()));
    }
    let p = path.strip_prefix("file://").unwrap_or(path);
    let file = File::open(p).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES + 1).read_to_string(&mut text).map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(fail(format!(
            "larger than {} MB: give a collection this big as NDJSON (one item per line, streamed)",
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    Ok(text)
}

fn is_remote(path: &str) -> bool {
    path.starts_with("s3://") || path.starts_with("http://") || path.starts_with("https://")
}

/// A dataset parsed from an item, or the item that could not be used.
pub type Parsed = std::result::Result<Dataset, BadItem>;

/// Items are parsed this many at a time, in parallel.
const BATCH: usize = 4096;

/// Every item of a run's input (see [`for_each_batch`]); a STAC API search's items come
/// within `default_datetime` (the run's temporal range) unless it gives its own.
/// Items the `filters` refuse are left out (and counted by them).
pub fn for_each_input<T: Send>(
    input: &crate::config::Input,
    default_datetime: Option<&str>,
    filters: &DatasetFilters,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
) -> Result<()> {
    match input {
        crate::config::Input::Source(source) => for_each_source(source, filters, map, on_batch),
        crate::config::Input::StacApi(search) => {
            crate::stac_api::for_each_batch(search, default_datetime, filters, map, on_batch).map(|_| ())
        }
    }
}

/// Every item of `source` parsed and passed through `map` in parallel, then handed to
/// `on_batch` in batches, in a stable order. NDJSON is a pipeline: one thread reads lines,
/// the pool parses and maps, and `on_batch` runs on its own thread, so a file of a million
/// items keeps both cores busy and never sits in memory whole.
pub fn for_each_batch<T: Send>(
    source: &str,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
) -> Result<()> {
    for_each_source(source, &DatasetFilters::default(), map, on_batch)
}

fn for_each_source<T: Send>(
    source: &str,
    filters: &DatasetFilters,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
) -> Result<()> {
    let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
    if path.is_dir() {
        let catalog = path.join("catalog.json");
        if catalog.is_file() {
            return for_each_in_document(
                &catalog.display().to_string(),
                filters,
                map,
                on_batch,
                0,
                &mut HashSet::new(),
            );
        }
        let mut files: Vec<PathBuf> = Vec::new();
        collect_files(path, &mut files)
            .map_err(|e| EngineError::Source { source_name: source.into(), why: e.to_string() })?;
        files.sort();
        if files.is_empty() {
            return Err(EngineError::Source {
                source_name: source.into(),
                why: "directory holds no .json, .geojson or .ndjson files".into(),
            });
        }
        let mut visited = HashSet::new();
        for f in files {
            for_each_in_document(&f.display().to_string(), filters, map, on_batch, 0, &mut visited)?;
        }
        return Ok(());
    }
    if !source.contains("://") && !path.exists() {
        return Err(EngineError::Source { source_name: source.into(), why: "no such file or directory".into() });
    }
    for_each_in_document(source, filters, map, on_batch, 0, &mut HashSet::new())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("json" | "geojson" | "ndjson" | "jsonl")) {
            out.push(p);
        }
    }
    Ok(())
}

fn for_each_in_document<T: Send>(
    href: &str,
    filters: &DatasetFilters,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
    depth: usize,
    visited: &mut HashSet<String>,
) -> Result<()> {
    crate::access_policy::check_input(href)?;
    // Each document once: a catalog whose children link to the same documents (a DAG)
    // would otherwise be read once per path to them, 2^depth times.
    if !visited.insert(href.to_string()) {
        return Ok(());
    }
    if depth > 32 {
        return Err(EngineError::Source {
            source_name: href.into(),
            why: "catalog links nest more than 32 deep (a cycle?)".into(),
        });
    }
    if href.starts_with("http") {
        crate::access_policy::guard_http_inputs()?;
    }
    if let Some(lines) = ndjson_lines(href)? {
        return stream_ndjson(href, lines, filters, map, on_batch);
    }
    let text = read_text(href)?;
    match parse_document(&text, href)? {
        StacDocument::Items(mut items) => {
            while !items.is_empty() {
                let rest = items.split_off(items.len().min(BATCH));
                on_batch(
                    items.into_par_iter().filter_map(|item| parse_item(item, href, href, filters).map(map)).collect(),
                )?;
                items = rest;
            }
        }
        StacDocument::Catalog { items, children } => {
            for i in items.iter().chain(children.iter()) {
                for_each_in_document(&resolve_href(i, Some(href)), filters, map, on_batch, depth + 1, visited)?;
            }
        }
    }
    Ok(())
}

/// An item as a dataset (its relative hrefs resolved against `base`, its problems named
/// as `source (item ID)`); None if a filter leaves it out.
pub(crate) fn parse_item(
    item: serde_json::Value,
    base: &str,
    source: &str,
    filters: &DatasetFilters,
) -> Option<Parsed> {
    let id = item.get("id").and_then(|v| v.as_str()).unwrap_or("?").to_string();
    let source = format!("{source} (item {id})");
    let bad = |reason: String| BadItem { source: source.clone(), reason };
    match filters.keep(&item) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(why) => return Some(Err(bad(why))),
    }
    let parsed = dataset_from_item(item, Some(base), None).map_err(|e| bad(e.to_string()));
    Some(parsed.and_then(|d| check_assets(d, &source)))
}

/// Asset hrefs are refused at planning already (items from documents and NDJSON lines
/// alike), so a plan never holds what workers would refuse.
fn check_assets(dataset: Dataset, source: &str) -> Parsed {
    for b in &dataset.assets {
        crate::access_policy::check_input(&b.href)
            .map_err(|e| BadItem { source: source.to_string(), reason: e.to_string() })?;
    }
    Ok(dataset)
}

type Lines = Box<dyn BufRead + Send>;

/// If `href` is NDJSON (by name, or a first line that is a whole STAC item), its lines.
fn ndjson_lines(href: &str) -> Result<Option<Lines>> {
    let named = href.ends_with(".ndjson") || href.ends_with(".jsonl");
    let open_err = |e: String| EngineError::Source { source_name: href.into(), why: e };
    let mut reader: Lines = if href.contains("://") && !href.starts_with("file://") {
        if !named {
            return Ok(None);
        }
        Box::new(BufReader::with_capacity(1 << 20, VsiReader::open(href).map_err(|e| open_err(e.to_string()))?))
    } else {
        let p = href.strip_prefix("file://").unwrap_or(href);
        Box::new(BufReader::with_capacity(1 << 20, File::open(p).map_err(|e| open_err(e.to_string()))?))
    };
    if !named {
        let head = reader.fill_buf().map_err(|e| open_err(e.to_string()))?;
        let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let is_item = serde_json::from_slice::<serde_json::Value>(first)
            .ok()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("Feature"));
        // A single item on one line is parsed as a document; several lines are NDJSON.
        if !is_item || first.len() == head.len() {
            return Ok(None);
        }
    }
    Ok(Some(reader))
}

/// Read up to `BATCH` non-empty lines, numbered from 1.
fn read_batch(href: &str, lines: &mut Lines, line_no: &mut usize) -> Result<Vec<(usize, String)>> {
    let mut batch = Vec::with_capacity(BATCH);
    while batch.len() < BATCH {
        let mut line = String::new();
        let fail = |why: String| EngineError::Source { source_name: format!("{href} line {}", *line_no + 1), why };
        let n = lines.by_ref().take(MAX_LINE_BYTES + 1).read_line(&mut line).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        if n as u64 > MAX_LINE_BYTES {
            return Err(fail(format!("a line longer than {} MB (one STAC item per line)", MAX_LINE_BYTES >> 20)));
        }
        *line_no += 1;
        if !line.trim().is_empty() {
            batch.push((*line_no, line));
        }
    }
    Ok(batch)
}

fn stream_ndjson<T: Send>(
    href: &str,
    mut lines: Lines,
    filters: &DatasetFilters,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
) -> Result<()> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        let (line_tx, line_rx) = sync_channel::<Result<Vec<(usize, String)>>>(2);
        let (done_tx, done_rx) = sync_channel::<Vec<T>>(1);
        scope.spawn(move || {
            let mut line_no = 0usize;
            loop {
                let batch = read_batch(href, &mut lines, &mut line_no);
                let end = matches!(&batch, Ok(b) if b.is_empty()) || batch.is_err();
                if line_tx.send(batch).is_err() || end {
                    return;
                }
            }
        });
        let consumer = scope.spawn(move || -> Result<()> {
            for batch in done_rx {
                on_batch(batch)?;
            }
            Ok(())
        });
        let mut result = Ok(());
        for batch in line_rx {
            let batch = match batch {
                Ok(b) if b.is_empty() => break,
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let mapped: Vec<T> = batch
                .into_par_iter()
                .filter_map(|(no, line)| {
                    let source = format!("{href} line {no}");
                    if !filters.is_empty() {
                        // Filters read the item's properties: parse it as JSON first.
                        return match serde_json::from_str::<serde_json::Value>(&line) {
                            Ok(item) => parse_item(item, href, &source, filters).map(map),
                            Err(e) => Some(map(Err(BadItem { source, reason: format!("not JSON: {e}") }))),
                        };
                    }
                    let parsed = dataset_from_item_text(&line, Some(href), None)
                        .map_err(|e| BadItem { source: source.clone(), reason: e.to_string() })
                        .and_then(|d| check_assets(d, &source));
                    Some(map(parsed))
                })
                .collect();
            // The consumer stopped: its error is reported below.
            if done_tx.send(mapped).is_err() {
                break;
            }
        }
        drop(done_tx);
        let consumed =
            consumer.join().unwrap_or_else(|_| Err(EngineError::Config("the plan consumer panicked".into())));
        result.and(consumed)
    })
}
