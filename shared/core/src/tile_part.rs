//! Sub-tile parts: a tile too big for one Lambda invocation is split into k x k parts,
//! each a rectangle of whole chunks, processed on its own and assembled into the tile.
//! Because a part is a set of the tile's own chunks (each read with the tile's halo),
//! its pixels are exactly those the unsplit tile computes.
//!
//! A part's task id is its tile's followed by `/part-{row}-{col}-of-{k}x{k}`, so a tile's
//! parts are the ledger's tasks under `{tile}/`.

use crate::error::{CoreError, Result};
use crate::task_id::TaskId;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TilePart {
    /// Parts per side.
    pub k: u32,
    pub row: u32,
    pub col: u32,
}

/// A pixel window of a tile: column and row offsets, width and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelWindow {
    pub col0: usize,
    pub row0: usize,
    pub width: usize,
    pub height: usize,
}

impl PixelWindow {
    pub fn whole(width: usize, height: usize) -> PixelWindow {
        PixelWindow { col0: 0, row0: 0, width, height }
    }
}

/// Split `n` chunks into `k` runs as even as whole chunks allow: the first `n % k` runs get
/// one chunk more. Returns (first chunk, chunks) of run `i`.
fn chunk_run(n: usize, k: usize, i: usize) -> (usize, usize) {
    let (base, extra) = (n / k, n % k);
    let first = i * base + i.min(extra);
    (first, base + usize::from(i < extra))
}

impl TilePart {
    /// Every part of a k x k split, row by row.
    pub fn all(k: u32) -> Vec<TilePart> {
        (0..k).flat_map(|row| (0..k).map(move |col| TilePart { k, row, col })).collect()
    }

    /// The most parts per side a tile of `tile` pixels in chunks of `chunk` can have (each
    /// part at least one chunk a side).
    pub fn max_k(tile_width: usize, tile_height: usize, chunk: usize) -> u32 {
        let chunks = |px: usize| px.div_ceil(chunk.max(1));
        chunks(tile_width).min(chunks(tile_height)) as u32
    }

    /// This part's window of a `tile_width` x `tile_height` tile processed in `chunk`-pixel
    /// chunks: whole chunks, the parts as even as chunks allow. None if the split has
    /// more parts a side than the tile has chunks.
    pub fn window(&self, tile_width: usize, tile_height: usize, chunk: usize) -> Option<PixelWindow> {
        let chunk = chunk.max(1);
        let k = self.k as usize;
        if k == 0 || self.row >= self.k || self.col >= self.k || self.k > Self::max_k(tile_width, tile_height, chunk) {
            return None;
        }
        let axis = |px: usize, i: usize| {
            let (first, n) = chunk_run(px.div_ceil(chunk), k, i);
            let start = first * chunk;
            (start, (start + n * chunk).min(px) - start)
        };
        let (col0, width) = axis(tile_width, self.col as usize);
        let (row0, height) = axis(tile_height, self.row as usize);
        Some(PixelWindow { col0, row0, width, height })
    }

    /// The task id of this part of `tile`.
    pub fn task_id(&self, tile: &TaskId) -> String {
        format!("{tile}/{self}")
    }

    /// The prefix under which `tile`'s parts' task ids are.
    pub fn prefix(tile: &TaskId) -> String {
        format!("{tile}/part-")
    }

    /// A task id as a tile and, for a part, which part.
    pub fn parse_task_id(s: &str) -> Result<(TaskId, Option<TilePart>)> {
        match s.trim().rsplit_once("/part-") {
            None => Ok((s.parse()?, None)),
            Some((tile, part)) => Ok((tile.parse()?, Some(format!("part-{part}").parse()?))),
        }
    }
}

impl fmt::Display for TilePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "part-{}-{}-of-{}x{}", self.row, self.col, self.k, self.k)
    }
}

impl std::str::FromStr for TilePart {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<TilePart> {
        let bad = || CoreError::BadTaskId(format!("{s} (a part is part-ROW-COL-of-KxK)"));
        let rest = s.strip_prefix("part-").ok_or_else(bad)?;
        let (rc, kk) = rest.split_once("-of-").ok_or_else(bad)?;
        let (row, col) = rc.split_once('-').ok_or_else(bad)?;
        let (k1, k2) = kk.split_once('x').ok_or_else(bad)?;
        let num = |t: &str| -> Result<u32> {
            if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let part = TilePart { k: num(k1)?, row: num(row)?, col: num(col)? };
        if num(k2)? != part.k || part.k < 2 || part.row >= part.k || part.col >= part.k {
            return Err(bad());
        }
        Ok(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_tile_in_whole_chunks_without_overlap() {
        for (w, h, chunk) in [(3200, 3200, 512), (9600, 9600, 1024), (100, 100, 64), (640, 512, 64)] {
            for k in 2..=TilePart::max_k(w, h, chunk).min(7) {
                let mut covered = vec![0u8; w * h];
                for p in TilePart::all(k) {
                    let win = p.window(w, h, chunk).unwrap();
                    assert_eq!(win.col0 % chunk, 0);
                    assert_eq!(win.row0 % chunk, 0);
                    assert!(win.width > 0 && win.height > 0);
                    for r in win.row0..win.row0 + win.height {
                        for c in win.col0..win.col0 + win.width {
                            covered[r * w + c] += 1;
                        }
                    }
                }
                assert!(covered.iter().all(|&n| n == 1), "{w}x{h} chunk {chunk} k {k}");
            }
        }
    }

    #[test]
    fn a_split_beyond_the_chunks_has_no_window() {
        assert_eq!(TilePart::max_k(100, 100, 64), 2);
        assert!(TilePart { k: 3, row: 0, col: 0 }.window(100, 100, 64).is_none());
    }

    #[test]
    fn part_task_ids_round_trip_and_sit_under_their_tile() {
        let tile: TaskId = "x+204/y-057/2023--P1Y".parse().unwrap();
        let part = TilePart { k: 3, row: 2, col: 0 };
        let id = part.task_id(&tile);
        assert_eq!(id, "x+204/y-057/2023--P1Y/part-2-0-of-3x3");
        assert!(id.starts_with(&TilePart::prefix(&tile)));
        assert_eq!(TilePart::parse_task_id(&id).unwrap(), (tile, Some(part)));
        assert_eq!(TilePart::parse_task_id("x+204/y-057/2023--P1Y").unwrap(), (tile, None));
        for bad in ["x+1/y+1/2023--P1Y/part-3-0-of-3x3", "x+1/y+1/2023--P1Y/part-0-0-of-2x3", "x+1/y+1/2023--P1Y/part-"]
        {
            assert!(TilePart::parse_task_id(bad).is_err(), "{bad}");
        }
    }
}
