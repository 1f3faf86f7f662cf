//! Output grids (odc-dscache tilings) and tile geometry.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A regular tiling of a projected CRS into tiles of `tile_width` x `tile_height` square
/// pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    /// The name it was given by (`au-30`, `africa-10`, `epsg:6933;30;3200`).
    pub name: String,
    pub epsg: u32,
    /// Pixel size in CRS units (metres).
    pub resolution: f64,
    /// Tile size in pixels: columns and rows (equal for every named grid).
    pub tile_width: usize,
    pub tile_height: usize,
    /// Origin of tile (0, 0): its minimum x and minimum y.
    pub origin: (f64, f64),
}

/// Index of one tile in a grid. `y` grows northwards, as in odc-dscache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TileIndex {
    pub x: i32,
    pub y: i32,
}

impl TileIndex {
    pub fn new(x: i32, y: i32) -> Self {
        Self { x, y }
    }
    /// The region code used in output names and STAC items, e.g. `x03y04`.
    pub fn region_code(&self) -> String {
        format!("x{:02}y{:02}", self.x, self.y)
    }
}

impl fmt::Display for TileIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x{:+04}/y{:+04}", self.x, self.y)
    }
}

/// Axis-aligned bounds in a CRS: (min_x, min_y, max_x, max_y).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

impl Bounds {
    pub fn intersects(&self, o: &Bounds) -> bool {
        self.min_x < o.max_x && o.min_x < self.max_x && self.min_y < o.max_y && o.min_y < self.max_y
    }
    pub fn from_points(points: &[(f64, f64)]) -> Option<Bounds> {
        let mut it = points.iter().filter(|p| p.0.is_finite() && p.1.is_finite());
        let first = it.next()?;
        let mut b = Bounds { min_x: first.0, min_y: first.1, max_x: first.0, max_y: first.1 };
        for p in it {
            b.min_x = b.min_x.min(p.0);
            b.min_y = b.min_y.min(p.1);
            b.max_x = b.max_x.max(p.0);
            b.max_y = b.max_y.max(p.1);
        }
        Some(b)
    }
}

/// A raster footprint: a north-up affine transform plus a shape, in one CRS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoBox {
    pub epsg: u32,
    /// Top-left corner x and y.
    pub left: f64,
    pub top: f64,
    pub resolution: f64,
    pub width: usize,
    pub height: usize,
}

impl GeoBox {
    /// GDAL-style geotransform.
    pub fn geo_transform(&self) -> [f64; 6] {
        [self.left, self.resolution, 0.0, self.top, 0.0, -self.resolution]
    }
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min_x: self.left,
            max_x: self.left + self.width as f64 * self.resolution,
            min_y: self.top - self.height as f64 * self.resolution,
            max_y: self.top,
        }
    }
    /// A pixel window of this box (`col`, `row` offsets), clipped to nothing: windows may
    /// extend past the box (a halo) and keep the same pixel lattice.
    pub fn window(&self, col: isize, row: isize, width: usize, height: usize) -> GeoBox {
        GeoBox {
            epsg: self.epsg,
            left: self.left + col as f64 * self.resolution,
            top: self.top - row as f64 * self.resolution,
            resolution: self.resolution,
            width,
            height,
        }
    }
    /// Centre of pixel (col, row) in CRS coordinates.
    pub fn pixel_centre(&self, col: usize, row: usize) -> (f64, f64) {
        (self.left + (col as f64 + 0.5) * self.resolution, self.top - (row as f64 + 0.5) * self.resolution)
    }
}

/// `A` or `AxB` as (A, A) or (A, B).
fn pair<T: Copy>(s: &str, parse: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    match s.split_once('x') {
        Some((a, b)) => Some((parse(a)?, parse(b)?)),
        None => parse(s).map(|v| (v, v)),
    }
}

impl GridSpec {
    /// Parse a grid by name, as odc-dscache names them (`au_30`, `au_extended_30`,
    /// `africa_10`, `global_60`, `albers_au_25`; `-` or `_`), or a custom
    /// `epsg:N;RES;PIXELS` (also `epsg:N;-RESxRES;ROWSxCOLUMNS`, odc-dscache's long form,
    /// where the tiles may be rectangular).
    pub fn parse(name: &str) -> Result<GridSpec> {
        let lower = name.trim().to_ascii_lowercase();
        let unknown = || CoreError::UnknownGrid(name.to_string());
        if let Some(rest) = lower.strip_prefix("epsg:") {
            let parts: Vec<&str> = rest.split(';').collect();
            let [epsg, res, px] = parts.as_slice() else { return Err(unknown()) };
            let epsg: u32 = epsg.parse().map_err(|_| unknown())?;
            let res = pair(res, |s| s.parse::<f64>().ok().filter(|r| r.is_finite())).ok_or_else(unknown)?;
            let px = pair(px, |s| s.parse::<usize>().ok()).ok_or_else(unknown)?;
            // Rows run north to south: a negative y resolution (the long form's first
            // number, odc-dscache's default) is that convention, not a flip. The shape is
            // (rows, columns), as odc-dscache gives it.
            let (res_y, res_x) = (res.0.abs(), res.1.abs());
            if res_y != res_x || res.1 < 0.0 {
                return Err(CoreError::NonSquareGrid(name.to_string()));
            }
            let (rows, cols) = px;
            if res_x == 0.0 || rows == 0 || cols == 0 || rows > 100_000 || cols > 100_000 {
                return Err(unknown());
            }
            return Ok(GridSpec {
                name: lower,
                epsg,
                resolution: res_x,
                tile_width: cols,
                tile_height: rows,
                origin: (0.0, 0.0),
            });
        }
        let norm = lower.replace('-', "_");
        if norm == "albers_au_25" {
            return Ok(GridSpec {
                name: lower,
                epsg: 3577,
                resolution: 25.0,
                tile_width: 4000,
                tile_height: 4000,
                origin: (0.0, 0.0),
            });
        }
        let (family, res) = norm.rsplit_once('_').ok_or_else(unknown)?;
        let res: u32 = res.parse().map_err(|_| unknown())?;
        // Tiles of 96 km.
        let tile_pixels = match res {
            10 => 9600,
            20 => 4800,
            30 => 3200,
            60 => 1600,
            _ => return Err(unknown()),
        };
        let (epsg, origin) = match family {
            "au" => (3577, (-2_688_000.0, -5_472_000.0)),
            "au_extended" => (3577, (-4_416_000.0, -6_912_000.0)),
            "africa" | "global" => (6933, (-17_376_000.0, -7_392_000.0)),
            _ => return Err(unknown()),
        };
        Ok(GridSpec {
            name: lower,
            epsg,
            resolution: res as f64,
            tile_width: tile_pixels,
            tile_height: tile_pixels,
            origin,
        })
    }

    /// Tile width and height in CRS units.
    pub fn tile_size(&self) -> (f64, f64) {
        (self.resolution * self.tile_width as f64, self.resolution * self.tile_height as f64)
    }

    pub fn tile_bounds(&self, t: TileIndex) -> Bounds {
        let (sx, sy) = self.tile_size();
        Bounds {
            min_x: self.origin.0 + t.x as f64 * sx,
            max_x: self.origin.0 + (t.x + 1) as f64 * sx,
            min_y: self.origin.1 + t.y as f64 * sy,
            max_y: self.origin.1 + (t.y + 1) as f64 * sy,
        }
    }

    pub fn tile_geobox(&self, t: TileIndex) -> GeoBox {
        let b = self.tile_bounds(t);
        GeoBox {
            epsg: self.epsg,
            left: b.min_x,
            top: b.max_y,
            resolution: self.resolution,
            width: self.tile_width,
            height: self.tile_height,
        }
    }

    /// The tile containing a point (half-open tiles: a point on a boundary belongs to the
    /// tile above / to the right).
    pub fn tile_of(&self, x: f64, y: f64) -> TileIndex {
        let (sx, sy) = self.tile_size();
        TileIndex { x: ((x - self.origin.0) / sx).floor() as i32, y: ((y - self.origin.1) / sy).floor() as i32 }
    }

    /// Tiles whose interior a polygon (exterior ring, in this grid's CRS) overlaps.
    pub fn tiles_for_polygon(&self, ring: &[(f64, f64)]) -> Vec<TileIndex> {
        use geo::{Coord, Intersects, LineString, Polygon, Rect};
        let Some(b) = Bounds::from_points(ring) else {
            return vec![];
        };
        let lo = self.tile_of(b.min_x, b.min_y);
        let hi = self.tile_of(b.max_x, b.max_y);
        let poly =
            Polygon::new(LineString::from(ring.iter().map(|&(x, y)| Coord { x, y }).collect::<Vec<_>>()), vec![]);
        // Shrink candidate tiles by a millimetre so that a footprint merely touching a
        // tile edge does not claim that tile.
        let eps = 1e-3;
        let mut out = Vec::new();
        for ty in lo.y..=hi.y {
            for tx in lo.x..=hi.x {
                let t = TileIndex::new(tx, ty);
                let tb = self.tile_bounds(t);
                let rect = Rect::new(
                    Coord { x: tb.min_x + eps, y: tb.min_y + eps },
                    Coord { x: tb.max_x - eps, y: tb.max_y - eps },
                );
                if poly.intersects(&rect) {
                    out.push(t);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_grids_match_field_guide() {
        let g = GridSpec::parse("au-30").unwrap();
        assert_eq!((g.epsg, g.tile_width, g.tile_height, g.resolution), (3577, 3200, 3200, 30.0));
        assert_eq!(g.tile_size(), (96_000.0, 96_000.0));
        let g = GridSpec::parse("global-10").unwrap();
        assert_eq!((g.epsg, g.tile_width), (6933, 9600));
        assert_eq!(g.origin, (-17_376_000.0, -7_392_000.0));
        assert!(GridSpec::parse("au-25").is_err());
        assert!(GridSpec::parse("mars-30").is_err());
        // odc-dscache's names and spellings (odc/dscache/tools/tiling.py: GRIDS).
        assert_eq!(GridSpec::parse("au_30").unwrap().origin, GridSpec::parse("au-30").unwrap().origin);
        assert_eq!(GridSpec::parse("africa_10").unwrap().tile_size(), (96_000.0, 96_000.0));
        let ext = GridSpec::parse("au_extended_30").unwrap();
        assert_eq!((ext.epsg, ext.origin, ext.tile_width), (3577, (-4_416_000.0, -6_912_000.0), 3200));
        assert_eq!(GridSpec::parse("au-extended-10").unwrap().tile_width, 9600);
        let albers = GridSpec::parse("albers_au_25").unwrap();
        assert_eq!(
            (albers.epsg, albers.resolution, albers.tile_size(), albers.origin),
            (3577, 25.0, (100_000.0, 100_000.0), (0.0, 0.0))
        );
        let long = GridSpec::parse("epsg:6933;-10x10;9600x9600").unwrap();
        assert_eq!((long.epsg, long.resolution, long.tile_width, long.tile_height), (6933, 10.0, 9600, 9600));
        // Rectangular tiles: (rows, columns), as odc-dscache's shape.
        let rect = GridSpec::parse("epsg:6933;-10x10;100x200").unwrap();
        assert_eq!((rect.tile_width, rect.tile_height, rect.tile_size()), (200, 100, (2000.0, 1000.0)));
        let t = TileIndex::new(3, -2);
        let b = rect.tile_bounds(t);
        assert_eq!((b.min_x, b.max_x, b.min_y, b.max_y), (6000.0, 8000.0, -2000.0, -1000.0));
        assert_eq!(rect.tile_of(6000.0, -1000.5), t);
        let g = rect.tile_geobox(t);
        assert_eq!((g.width, g.height, g.left, g.top), (200, 100, 6000.0, -1000.0));
        for non_square in ["epsg:6933;-10x20;100", "epsg:6933;10x-10;100"] {
            let e = GridSpec::parse(non_square).unwrap_err().to_string();
            assert!(e.contains("pixels must be square") && e.contains(non_square), "{e}");
        }
    }

    #[test]
    fn tile_bounds_hand_computed() {
        // au-30 tile (3, -4): x from -2688000 + 3*96000 = -2400000 to -2304000,
        // y from -5472000 - 4*96000 = -5856000 to -5760000.
        let g = GridSpec::parse("au-30").unwrap();
        let b = g.tile_bounds(TileIndex::new(3, -4));
        assert_eq!((b.min_x, b.max_x), (-2_400_000.0, -2_304_000.0));
        assert_eq!((b.min_y, b.max_y), (-5_856_000.0, -5_760_000.0));
        // africa-20 tile (200, 80): x = -17376000 + 200*96000 = 1824000.
        let g = GridSpec::parse("africa-20").unwrap();
        let gb = g.tile_geobox(TileIndex::new(200, 80));
        assert_eq!(gb.left, 1_824_000.0);
        assert_eq!(gb.top, -7_392_000.0 + 81.0 * 96_000.0);
        assert_eq!((gb.width, gb.height), (4800, 4800));
        assert_eq!(gb.geo_transform(), [1_824_000.0, 20.0, 0.0, 384_000.0, 0.0, -20.0]);
    }

    #[test]
    fn point_to_tile_and_back() {
        let g = GridSpec::parse("africa-30").unwrap();
        let t = g.tile_of(1_824_000.0, 384_000.0 - 1.0);
        assert_eq!(t, TileIndex::new(200, 80));
        // On the boundary: belongs to the tile to the right / above.
        assert_eq!(g.tile_of(1_824_000.0, 384_000.0), TileIndex::new(200, 81));
    }

    #[test]
    fn custom_grid() {
        let g = GridSpec::parse("epsg:32633;20;1000").unwrap();
        assert_eq!((g.epsg, g.resolution, g.tile_width), (32633, 20.0, 1000));
        assert!(GridSpec::parse("epsg:32633;20").is_err());
        assert!(GridSpec::parse("epsg:x;20;10").is_err());
    }

    #[test]
    fn polygon_tiles_exclude_touching_and_include_diagonal() {
        let g = GridSpec::parse("epsg:3857;1;10").unwrap();
        // Square exactly covering tile (0,0): touches neighbours only on edges.
        let sq = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)];
        assert_eq!(g.tiles_for_polygon(&sq), vec![TileIndex::new(0, 0)]);
        // A thin diagonal triangle from (1,1) to (29,29): its bbox has 9 tiles but the
        // polygon itself touches only the diagonal ones and their direct neighbours.
        let tri = [(1.0, 1.0), (29.0, 28.0), (28.0, 29.0), (1.0, 1.0)];
        let tiles = g.tiles_for_polygon(&tri);
        assert!(tiles.contains(&TileIndex::new(0, 0)));
        assert!(tiles.contains(&TileIndex::new(2, 2)));
        assert!(!tiles.contains(&TileIndex::new(2, 0)));
        assert!(!tiles.contains(&TileIndex::new(0, 2)));
    }

    #[test]
    fn region_code_and_display() {
        let t = TileIndex::new(3, -4);
        assert_eq!(t.region_code(), "x03y-4");
        assert_eq!(t.to_string(), "x+003/y-004");
        assert_eq!(TileIndex::new(3, 4).region_code(), "x03y04");
    }
}
