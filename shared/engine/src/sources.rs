//! Reading STAC sources: item / ItemCollection / NDJSON files, static catalogs (followed
//! through their links) and directories of such files. Datasets are handed to a callback
//! one at a time, so the caller decides what to keep.

use crate::error::{EngineError, Result};
use std::path::{Path, PathBuf};
use stratus_core::stac_input::{dataset_from_item, parse_document, resolve_href, StacDocument};
use stratus_core::Dataset;

/// An item that could not be used, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadItem {
    pub source: String,
    pub reason: String,
}

fn read_text(path: &str) -> Result<String> {
    if path.starts_with("s3://") || path.starts_with("http://") || path.starts_with("https://") {
        // Through GDAL's virtual file systems: the same credentials and endpoint as the rasters.
        return stratus_raster::vsi::read_text(path)
            .map_err(|e| EngineError::Source { source_name: path.into(), why: e.to_string() });
    }
    let p = path.strip_prefix("file://").unwrap_or(path);
    std::fs::read_to_string(p).map_err(|e| EngineError::Source { source_name: path.into(), why: e.to_string() })
}

/// Every dataset in `source`, in a stable order. `on_bad` receives items that cannot be
/// parsed (the caller decides whether that is fatal).
pub fn for_each_dataset(
    source: &str,
    on_dataset: &mut dyn FnMut(Dataset) -> Result<()>,
    on_bad: &mut dyn FnMut(BadItem) -> Result<()>,
) -> Result<()> {
    let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
    if path.is_dir() {
        let catalog = path.join("catalog.json");
        if catalog.is_file() {
            return for_each_in_document(&catalog.display().to_string(), on_dataset, on_bad, 0);
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
        for f in files {
            for_each_in_document(&f.display().to_string(), on_dataset, on_bad, 0)?;
        }
        return Ok(());
    }
    if !source.contains("://") && !path.exists() {
        return Err(EngineError::Source { source_name: source.into(), why: "no such file or directory".into() });
    }
    for_each_in_document(source, on_dataset, on_bad, 0)
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

fn for_each_in_document(
    href: &str,
    on_dataset: &mut dyn FnMut(Dataset) -> Result<()>,
    on_bad: &mut dyn FnMut(BadItem) -> Result<()>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        return Err(EngineError::Source {
            source_name: href.into(),
            why: "catalog links nest more than 32 deep (a cycle?)".into(),
        });
    }
    let text = read_text(href)?;
    match parse_document(&text, href)? {
        StacDocument::Items(items) => {
            for item in items {
                let id = item.get("id").and_then(|v| v.as_str()).unwrap_or("?").to_string();
                match dataset_from_item(item, Some(href), None) {
                    Ok(d) => on_dataset(d)?,
                    Err(e) => on_bad(BadItem { source: format!("{href} (item {id})"), reason: e.to_string() })?,
                }
            }
        }
        StacDocument::Catalog { items, children } => {
            for i in items.iter().chain(children.iter()) {
                for_each_in_document(&resolve_href(i, Some(href)), on_dataset, on_bad, depth + 1)?;
            }
        }
    }
    Ok(())
}
