//! The run report: a self-contained HTML page and its JSON twin, next to the outputs
//! (`{run dir}/report.html`, `report.json`): what ran, what failed and why, per-tile
//! timings, inputs used and skipped, and a map of the tiles coloured by state over the
//! mosaic preview. No external resources: styles inline, the preview a data URI.

use crate::config::RunRecordExt;
use crate::context::Context;
use crate::error::Result;
use crate::layout::Layout;
use crate::mosaic::MosaicReport;
use base64::Engine as _;
use serde::Serialize;
use stratus_core::TaskId;
use stratus_ports::TaskState;

#[derive(Debug, Clone, Serialize)]
pub struct TileRow {
    pub task_id: String,
    pub state: TaskState,
    pub attempts: u32,
    pub error: Option<String>,
    pub datasets: u64,
    pub observation_days: u64,
    pub read_s: f64,
    pub compute_s: f64,
    pub write_s: f64,
    pub skipped_inputs: Vec<serde_json::Value>,
    /// The tile's extent in the grid's CRS: min x, min y, max x, max y.
    pub bounds: [f64; 4],
}

/// The run report: `report.json`, rendered as `report.html` (tasks, timings, failures,
/// the mosaic). The short outcome is [`crate::runner::RunSummary`] (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub generated_at: String,
    pub stratus_version: String,
    pub product: String,
    pub counts: stratus_ports::RunCounts,
    pub completions: u64,
    pub tiles: Vec<TileRow>,
    pub mosaic: Option<MosaicReport>,
}

/// Where the report of a run is written.
pub fn report_keys(layout: &Layout, run_id: &str) -> (String, String) {
    let dir = layout.run_dir(run_id);
    (format!("{dir}/report.html"), format!("{dir}/report.json"))
}

/// Gather the report from the ledger (and the mosaic, if built).
pub fn gather(ctx: &Context, run_id: &str, mosaic: Option<MosaicReport>) -> Result<RunReport> {
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    let cfg = run.run_config()?;
    let grid = cfg.grid_spec()?;
    let mut tiles = Vec::new();
    let tasks = ctx.ledger.tasks(run_id, None)?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    // A split tile is one row: its parts' times are added to its own (the assembly's).
    let mut part_times: std::collections::HashMap<TaskId, [f64; 3]> = std::collections::HashMap::new();
    for t in &tasks {
        if let (tile, Some(_)) = stratus_core::TilePart::parse_task_id(&t.task_id)? {
            let r = t.result.clone().unwrap_or_default();
            let sum = part_times.entry(tile).or_default();
            for (s, k) in sum.iter_mut().zip(["read_s", "compute_s", "write_s"]) {
                *s += num(&r["timings"][k]);
            }
        }
    }
    for t in tasks {
        let (id, part) = stratus_core::TilePart::parse_task_id(&t.task_id)?;
        if part.is_some() {
            continue;
        }
        let b = grid.tile_bounds(id.tile);
        let r = t.result.clone().unwrap_or_default();
        let planned = crate::task_summary::TaskSummary::of(&t);
        let [pr, pc, pw] = part_times.get(&id).copied().unwrap_or_default();
        tiles.push(TileRow {
            task_id: t.task_id.clone(),
            state: t.state,
            attempts: t.attempts,
            error: t.error.clone(),
            datasets: r["datasets"].as_u64().unwrap_or(planned.datasets as u64),
            observation_days: r["observation_days"].as_u64().unwrap_or(planned.observation_days as u64),
            read_s: num(&r["timings"]["read_s"]) + pr,
            compute_s: num(&r["timings"]["compute_s"]) + pc,
            write_s: num(&r["timings"]["write_s"]) + pw,
            skipped_inputs: r["skipped_inputs"].as_array().cloned().unwrap_or_default(),
            bounds: [b.min_x, b.min_y, b.max_x, b.max_y],
        });
    }
    Ok(RunReport {
        run_id: run_id.into(),
        generated_at: chrono::Utc::now().to_rfc3339(),
        stratus_version: crate::VERSION.into(),
        product: format!("{} {}", cfg.product.name, cfg.product.version),
        counts: run.counts,
        completions: run.completions,
        tiles,
        mosaic,
    })
}

/// Write `report.html` and `report.json`; returns the HTML's address.
pub fn write_report(ctx: &Context, run_id: &str, mosaic: Option<MosaicReport>) -> Result<String> {
    let doc = gather(ctx, run_id, mosaic)?;
    let run = ctx.ledger.run(run_id)?.ok_or_else(|| stratus_ports::PortError::RunNotFound(run_id.into()))?;
    let layout = Layout::of(&run.run_config()?);
    let preview_png = match doc.mosaic.as_ref().and_then(|m| m.preview.as_ref()) {
        Some(_) => {
            let key = format!("{}/{}_preview.png", crate::mosaic::mosaic_dir(&layout, run_id), layout.product);
            ctx.output.get(&key).ok()
        }
        None => None,
    };
    let (html_key, json_key) = report_keys(&layout, run_id);
    ctx.output.put(&json_key, serde_json::to_string_pretty(&doc).unwrap().as_bytes())?;
    ctx.output.put(&html_key, render_html(&doc, preview_png.as_deref()).as_bytes())?;
    Ok(ctx.output.url(&html_key))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn state_colour(s: TaskState) -> &'static str {
    match s {
        TaskState::Done => "#2e9d4d",
        TaskState::Failed => "#d7263d",
        TaskState::Running => "#f2a541",
        TaskState::Queued => "#5b8def",
        TaskState::Pending => "#9aa0a6",
    }
}

/// The map: the preview image under one rectangle per tile, in the grid's CRS (y up).
fn map_svg(doc: &RunReport, preview_png: Option<&[u8]>) -> String {
    let ext = doc.mosaic.as_ref().map(|m| m.bounds).unwrap_or_else(|| {
        doc.tiles.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |a, t| {
            [a[0].min(t.bounds[0]), a[1].min(t.bounds[1]), a[2].max(t.bounds[2]), a[3].max(t.bounds[3])]
        })
    });
    let (w, h) = ((ext[2] - ext[0]).max(1.0), (ext[3] - ext[1]).max(1.0));
    let mut svg = format!(
        r#"<svg id="map" viewBox="0 0 {w} {h}" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="tiles by state">"#
    );
    if let Some(png) = preview_png {
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        svg.push_str(&format!(
            r#"<image x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none" href="data:image/png;base64,{b64}"/>"#
        ));
    }
    let stroke = w.max(h) / 400.0;
    for t in &doc.tiles {
        let (x, y) = (t.bounds[0] - ext[0], ext[3] - t.bounds[3]);
        let (tw, th) = (t.bounds[2] - t.bounds[0], t.bounds[3] - t.bounds[1]);
        let fill = if t.state == TaskState::Done { "none" } else { state_colour(t.state) };
        svg.push_str(&format!(
            r#"<rect class="tile {state}" x="{x}" y="{y}" width="{tw}" height="{th}" fill="{fill}" fill-opacity="0.45" stroke="{c}" stroke-width="{stroke}"><title>{id}: {state}</title></rect>"#,
            state = t.state,
            c = state_colour(t.state),
            id = esc(&t.task_id),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The HTML page. Everything inline: it opens from a file, an S3 download or an email.
pub fn render_html(doc: &RunReport, preview_png: Option<&[u8]>) -> String {
    let c = &doc.counts;
    let mut h = String::new();
    h.push_str(&format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stratus run {id}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;max-width:1200px}}
h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:1.6em}}
table{{border-collapse:collapse;width:100%}} th,td{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.counts span{{display:inline-block;margin-right:1.2em}}
#map{{width:100%;max-height:70vh;background:#eef0f2;border:1px solid #ccc}}
.key i{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}}
.failed td{{color:#a3001b}}
</style></head><body>
<h1>Run {id}</h1>
<p>{product} &middot; generated {gen} by Stratus {ver}</p>
<p class="counts"><span><b>{total}</b> tasks</span><span><b>{done}</b> done</span><span><b>{failed}</b> failed</span><span><b>{pending}</b> pending</span><span><b>{queued}</b> queued</span><span><b>{running}</b> running</span><span>completed {completions} time(s)</span></p>
"#,
        id = esc(&doc.run_id),
        product = esc(&doc.product),
        gen = esc(&doc.generated_at),
        ver = esc(&doc.stratus_version),
        total = c.total,
        done = c.done,
        failed = c.failed,
        pending = c.pending,
        queued = c.queued,
        running = c.running,
        completions = doc.completions,
    ));
    h.push_str("<h2>Map</h2>");
    h.push_str(&map_svg(doc, preview_png));
    h.push_str(r#"<p class="key">"#);
    for s in TaskState::ALL {
        h.push_str(&format!(r#"<i style="background:{}"></i>{s}"#, state_colour(s)));
    }
    h.push_str("</p>");
    if let Some(m) = &doc.mosaic {
        h.push_str(&format!(
            "<h2>Mosaic</h2><p>{} x {} px at {} m (EPSG:{}), built in {:.1} s.</p><ul>",
            m.width, m.height, m.resolution, m.epsg, m.elapsed_s
        ));
        for b in &m.bands {
            h.push_str(&format!("<li>{} ({} tiles): <code>{}</code></li>", esc(&b.band), b.tiles, esc(&b.url)));
        }
        h.push_str("</ul>");
        if !m.missing.is_empty() {
            h.push_str("<p>Left as nodata in the mosaic:</p><ul>");
            for x in &m.missing {
                h.push_str(&format!("<li>{}</li>", esc(x)));
            }
            h.push_str("</ul>");
        }
    }
    let failed: Vec<&TileRow> = doc.tiles.iter().filter(|t| t.state == TaskState::Failed).collect();
    if !failed.is_empty() {
        h.push_str("<h2>Failures</h2><table><tr><th>task</th><th>attempts</th><th>reason</th></tr>");
        for t in failed {
            h.push_str(&format!(
                r#"<tr class="failed"><td>{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&t.task_id),
                t.attempts,
                esc(t.error.as_deref().unwrap_or(""))
            ));
        }
        h.push_str("</table>");
    }
    let skipped: Vec<(&str, &serde_json::Value)> =
        doc.tiles.iter().flat_map(|t| t.skipped_inputs.iter().map(move |s| (t.task_id.as_str(), s))).collect();
    if !skipped.is_empty() {
        h.push_str("<h2>Skipped inputs</h2><table><tr><th>task</th><th>input</th><th>reason</th></tr>");
        for (task, s) in skipped {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(task),
                esc(s["href"].as_str().unwrap_or("")),
                esc(s["reason"].as_str().unwrap_or(""))
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Tiles</h2><table><tr><th>task</th><th>state</th><th>attempts</th><th>datasets</th><th>days</th><th>read s</th><th>compute s</th><th>write s</th></tr>");
    for t in &doc.tiles {
        h.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{:.1}</td><td class="n">{:.1}</td><td class="n">{:.1}</td></tr>"#,
            esc(&t.task_id),
            t.state,
            t.attempts,
            t.datasets,
            t.observation_days,
            t.read_s,
            t.compute_s,
            t.write_s
        ));
    }
    h.push_str("</table></body></html>\n");
    h
}
