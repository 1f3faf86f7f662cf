//! A tile's thumbnail, as odc-stats makes it when the product names a
//! `preview_image_ows_style` (a datacube-ows style): a JPEG a tenth of the tile's size
//! (eodatasets3's), `{stem}_thumbnail.jpg`, listed in the eo3 document's accessories and
//! the STAC item's assets. Two kinds of datacube-ows style are drawn:
//! - `components`: each of red, green and blue a weighted sum of bands
//!   (`red: {B04: 1.0}`), stretched from `scale_range` onto 0-255;
//! - `color_ramp` over one band (`index_function` datacube-ows' `single_band` with its
//!   `band`, or one `needed_bands`): colours interpolated between the ramp's values,
//!   times their `alpha`.
//!
//! Pixels without data are black.

use crate::error::{EngineError, Result};
use serde_json::Value;
use std::path::Path;
use stratus_stats::OutputBand;

#[derive(Debug, Clone, PartialEq)]
pub enum PreviewStyle {
    Components { channels: [Vec<(String, f64)>; 3], scale: (f64, f64) },
    Ramp { band: String, ramp: Vec<(f64, [f64; 3])> },
}

fn bad(why: String) -> EngineError {
    EngineError::Config(format!("product.preview_image_ows_style: {why}"))
}

/// `#rrggbb` (or a few CSS names datacube-ows' examples use) as 0-255 channels.
fn colour(c: &Value) -> Result<[f64; 3]> {
    let s = c.as_str().ok_or_else(|| bad(format!("colour {c}: give '#rrggbb'")))?;
    let named =
        [("black", "#000000"), ("white", "#ffffff"), ("red", "#ff0000"), ("green", "#00ff00"), ("blue", "#0000ff")];
    let hex = named.iter().find(|n| n.0.eq_ignore_ascii_case(s)).map_or(s, |n| n.1);
    let h =
        hex.strip_prefix('#').filter(|h| h.len() == 6).ok_or_else(|| bad(format!("colour '{s}': give '#rrggbb'")))?;
    let at = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).map(f64::from);
    Ok([at(0), at(2), at(4)].map(|c| c.unwrap_or(f64::NAN))).and_then(|c| {
        if c.iter().any(|v| v.is_nan()) {
            Err(bad(format!("colour '{s}': give '#rrggbb'")))
        } else {
            Ok(c)
        }
    })
}

impl PreviewStyle {
    /// The style of a run's product, checked against the bands it has.
    pub fn parse(style: &Value, outputs: &[OutputBand]) -> Result<PreviewStyle> {
        let has = |b: &str| -> Result<()> {
            if outputs.iter().any(|o| o.name == b) {
                Ok(())
            } else {
                let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                Err(bad(format!("the product has no band '{b}'; its bands are {}", names.join(", "))))
            }
        };
        if let Some(c) = style.get("components") {
            let mut channels: [Vec<(String, f64)>; 3] = Default::default();
            for (i, name) in ["red", "green", "blue"].iter().enumerate() {
                let weights = c.get(name).and_then(Value::as_object).ok_or_else(|| {
                    bad(format!("components.{name}: give a mapping of band to weight, e.g. {{B04: 1.0}}"))
                })?;
                for (band, w) in weights {
                    let w = w.as_f64().ok_or_else(|| {
                        bad(format!(
                            "components.{name}.{band}: {w} is not a weight (function components are not drawn)"
                        ))
                    })?;
                    has(band)?;
                    channels[i].push((band.clone(), w));
                }
            }
            let range = style.get("scale_range").and_then(Value::as_array).and_then(|r| match r.as_slice() {
                [a, b] => Some((a.as_f64()?, b.as_f64()?)),
                _ => None,
            });
            let scale = range.filter(|(a, b)| b > a).ok_or_else(|| bad("scale_range: give [low, high]".into()))?;
            return Ok(PreviewStyle::Components { channels, scale });
        }
        if let Some(ramp) = style.get("color_ramp").and_then(Value::as_array) {
            let band = style
                .pointer("/index_function/kwargs/band")
                .and_then(Value::as_str)
                .or_else(|| match style.get("needed_bands").and_then(Value::as_array).map(Vec::as_slice) {
                    Some([b]) => b.as_str(),
                    _ => None,
                })
                .ok_or_else(|| {
                    bad("color_ramp: name its band (index_function: {function: datacube_ows.band_utils.single_band, kwargs: {band: ...}})".into())
                })?;
            has(band)?;
            let mut points = Vec::new();
            for p in ramp {
                let value = p
                    .get("value")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad(format!("color_ramp: {p} has no value")))?;
                let alpha = p.get("alpha").and_then(Value::as_f64).unwrap_or(1.0);
                let c = colour(p.get("color").unwrap_or(&Value::Null))?;
                points.push((value, c.map(|v| v * alpha)));
            }
            if points.is_empty() || points.windows(2).any(|w| w[1].0 < w[0].0) {
                return Err(bad("color_ramp: give its points in increasing value".into()));
            }
            return Ok(PreviewStyle::Ramp { band: band.to_string(), ramp: points });
        }
        Err(bad("give components (with scale_range) or a color_ramp: other datacube-ows styles are not drawn".into()))
    }

    /// The bands the picture is drawn from.
    pub fn bands(&self) -> Vec<&str> {
        let mut v: Vec<&str> = match self {
            PreviewStyle::Components { channels, .. } => channels.iter().flatten().map(|(b, _)| b.as_str()).collect(),
            PreviewStyle::Ramp { band, .. } => vec![band.as_str()],
        };
        v.sort();
        v.dedup();
        v
    }

    /// Red, green and blue of each pixel; `value(band, i)` is a band's value at pixel i
    /// (NaN without data).
    pub fn draw(&self, pixels: usize, value: impl Fn(&str, usize) -> f64) -> [Vec<u8>; 3] {
        let mut rgb: [Vec<u8>; 3] = Default::default();
        for i in 0..pixels {
            let c = match self {
                PreviewStyle::Components { channels, scale: (lo, hi) } => channels.clone().map(|ch| {
                    let v: f64 = ch.iter().map(|(b, w)| w * value(b, i)).sum();
                    255.0 * ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                }),
                PreviewStyle::Ramp { band, ramp } => {
                    let v = value(band, i);
                    let k = ramp.partition_point(|p| p.0 <= v);
                    match k {
                        _ if v.is_nan() => [f64::NAN; 3],
                        0 => ramp[0].1,
                        k if k == ramp.len() => ramp[k - 1].1,
                        k => {
                            let ((v0, c0), (v1, c1)) = (ramp[k - 1], ramp[k]);
                            let t = if v1 > v0 { (v - v0) / (v1 - v0) } else { 0.0 };
                            [0, 1, 2].map(|j| c0[j] + t * (c1[j] - c0[j]))
                        }
                    }
                }
            };
            for (plane, v) in rgb.iter_mut().zip(c) {
                plane.push(if v.is_nan() { 0 } else { v.round().clamp(0.0, 255.0) as u8 });
            }
        }
        rgb
    }
}

/// Draw a tile's thumbnail from its finished band files (`band_file(name)`) into `dest`.
pub fn write_thumbnail(
    style: &PreviewStyle,
    band_file: impl Fn(&str) -> std::path::PathBuf,
    dest: &Path,
) -> Result<()> {
    let bands = style.bands();
    let size = stratus_raster::thumbnail::thumbnail_size(&band_file(bands[0]))?;
    let data: Vec<(&str, Vec<f64>)> = bands
        .iter()
        .map(|b| Ok((*b, stratus_raster::thumbnail::read_scaled(&band_file(b), size)?)))
        .collect::<Result<_>>()?;
    let rgb = style.draw(size.0 * size.1, |band, i| {
        let plane = &data.iter().find(|d| d.0 == band).expect("every band the style draws was read").1;
        plane[i]
    });
    stratus_raster::thumbnail::write_jpeg(rgb, size, dest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bands(names: &[&str]) -> Vec<OutputBand> {
        names.iter().map(|n| OutputBand::float32(n)).collect()
    }

    #[test]
    fn components_and_ramps_as_datacube_ows_draws_them() {
        let out = bands(&["B02", "B03", "B04", "frequency"]);
        let rgb = PreviewStyle::parse(
            &json!({"name": "simple_rgb", "components": {"red": {"B04": 1.0}, "green": {"B03": 1.0}, "blue": {"B02": 0.5, "B03": 0.5}}, "scale_range": [0, 3000]}),
            &out,
        )
        .unwrap();
        assert_eq!(rgb.bands(), ["B02", "B03", "B04"]);
        let px = rgb.draw(2, |b, i| match (b, i) {
            (_, 1) => f64::NAN,
            ("B04", _) => 3000.0,
            ("B03", _) => 1500.0,
            _ => -10.0,
        });
        assert_eq!(px.map(|p| p.to_vec()), [vec![255, 0], vec![128, 0], vec![63, 0]]);

        // DEA's WOfS frequency ramp, alpha 0 at 0.
        let ramp = PreviewStyle::parse(
            &json!({"index_function": {"function": "datacube_ows.band_utils.single_band", "mapped_bands": true, "kwargs": {"band": "frequency"}},
                    "needed_bands": ["frequency"], "color_ramp": [{"value": 0.0, "color": "#000000", "alpha": 0.0}, {"value": 0.5, "color": "#ff0000"}, {"value": 1.0, "color": "#0000ff"}]}),
            &out,
        )
        .unwrap();
        let px = ramp.draw(4, |_, i| [0.25, 0.75, 2.0, f64::NAN][i]);
        assert_eq!(px.map(|p| p.to_vec()), [vec![128, 128, 0, 0], vec![0, 0, 0, 0], vec![0, 128, 255, 0]]);

        // Errors name the key and the fix.
        let e = PreviewStyle::parse(&json!({"components": {"red": {"B05": 1}}, "scale_range": [0, 1]}), &out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("preview_image_ows_style") && e.contains("'B05'") && e.contains("B04"), "{e}");
        let e = PreviewStyle::parse(&json!({"name": "x", "value_map": {}}), &out).unwrap_err().to_string();
        assert!(e.contains("components") && e.contains("color_ramp"), "{e}");
    }
}
