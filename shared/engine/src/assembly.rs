//! Assembling a split tile: when every part is done, its bands (in the run's scratch
//! space) are pasted into the tile's bands, which are then finished exactly as an unsplit
//! tile's (the same COG creation, overviews and STAC item, written last); the parts'
//! scratch objects are deleted after the item. The worker runs this under the tile's own
//! task, claimed like any other, so it happens once.

use crate::error::{EngineError, Result};
use crate::layout::Layout;
use crate::tile::{band_writers, commit_tile, peak_rss_mb, SkippedInput, TileInputs, TileJob, TileResult, Timings};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::time::Instant;
use stratus_core::TilePart;

/// A done part and what its worker recorded.
pub struct DonePart {
    pub part: TilePart,
    pub result: TileResult,
}

/// Assemble `job`'s tile from `parts` (all of them, done).
pub fn assemble_tile(job: &TileJob, parts: &[DonePart]) -> Result<TileResult> {
    let started = Instant::now();
    let cfg = job.cfg;
    let tile_box = cfg.grid_spec()?.tile_geobox(job.task.tile);
    let outputs = job.statistic.output_bands();
    let layout = Layout::of(cfg);
    let scratch = crate::scratch::Scratch::new()?;
    let mut writers = band_writers(scratch.path(), &outputs, &tile_box)?;
    // Each band from its parts, the bands side by side.
    writers.par_iter_mut().zip(outputs.par_iter()).try_for_each(|(writer, o)| -> Result<()> {
        for p in parts {
            if job.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(EngineError::Interrupted);
            }
            let area = p.part.window(tile_box.width, tile_box.height, cfg.chunk_size).ok_or_else(|| {
                EngineError::Task { task: job.task.to_string(), why: format!("{} does not fit the tile", p.part) }
            })?;
            let key = layout.part_key(job.run_id, &job.task, &p.part, &o.name);
            let local = scratch.path().join(format!("{}-{}.tif", p.part, o.name));
            let bytes = job.output.get(&key).map_err(|e| EngineError::Task {
                task: job.task.to_string(),
                why: format!(
                    "part {} of the tile has no band '{}' ({e}): run `stratus retry` on the run",
                    p.part, o.name
                ),
            })?;
            std::fs::write(&local, bytes)
                .map_err(|e| EngineError::Io { path: local.display().to_string(), source: e })?;
            writer.paste(&local, area.col0, area.row0)?;
            let _ = std::fs::remove_file(&local);
        }
        Ok(())
    })?;
    let read_s = started.elapsed().as_secs_f64();
    // The tile's inputs as the parts read them, in plan order of first use.
    let mut inputs = Vec::new();
    let mut seen = BTreeSet::new();
    for id in parts.iter().flat_map(|p| &p.result.inputs) {
        if seen.insert(id.clone()) {
            inputs.push(id.clone());
        }
    }
    let mut skipped: Vec<SkippedInput> = Vec::new();
    for s in parts.iter().flat_map(|p| &p.result.skipped_inputs) {
        if !skipped.iter().any(|k| k.href == s.href) {
            skipped.push(s.clone());
        }
    }
    let skipped_ids: Vec<String> =
        skipped.iter().map(|s| s.dataset.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let observation_days = parts.iter().map(|p| p.result.observation_days).max().unwrap_or(0);
    let lineage: BTreeSet<String> = parts.iter().flat_map(|p| p.result.lineage.iter().cloned()).collect();
    let products: BTreeSet<String> = parts.iter().flat_map(|p| p.result.input_products.iter().cloned()).collect();
    let mut inherited = crate::eo3_output::InheritedProperties::default();
    for p in parts {
        inherited.merge(&p.result.inherited);
    }
    let t_write = Instant::now();
    let n_inputs = inputs.len();
    let tile_inputs = TileInputs {
        ids: inputs,
        skipped: skipped_ids,
        lineage: lineage.into_iter().collect(),
        products: products.into_iter().collect(),
        observation_days,
        inherited,
    };
    let (keys, stac_key) = commit_tile(job, &scratch, writers, &outputs, tile_inputs)?;
    // The tile is complete: its parts' scratch objects go.
    for p in parts {
        for o in &outputs {
            job.output.delete(&layout.part_key(job.run_id, &job.task, &p.part, &o.name))?;
        }
    }
    Ok(TileResult {
        outputs: keys.iter().map(|k| job.output.url(k)).collect(),
        stac_item: job.output.url(&stac_key),
        datasets: n_inputs,
        observation_days,
        skipped_inputs: skipped,
        timings: Timings { read_s, compute_s: 0.0, write_s: t_write.elapsed().as_secs_f64() },
        chunks: 0,
        peak_rss_mb: peak_rss_mb(),
        inputs: vec![],
        lineage: vec![],
        input_products: vec![],
        inherited: Default::default(),
    })
}
