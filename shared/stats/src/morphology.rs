//! Binary morphology with disk footprints (skimage's `disk(r)`: x^2 + y^2 <= r^2), done as
//! one horizontal run per disk row so a radius-r operation costs O(pixels x (2r+1)).

use ndarray::Array2;

/// A mask operation: (operation, radius). Radius 0 is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MorphOp {
    Dilation(usize),
    Erosion(usize),
    Opening(usize),
    Closing(usize),
}

impl MorphOp {
    pub fn parse(op: &str, radius: usize) -> Result<MorphOp, String> {
        Ok(match op.to_ascii_lowercase().as_str() {
            "dilation" | "dilate" => MorphOp::Dilation(radius),
            "erosion" | "erode" => MorphOp::Erosion(radius),
            "opening" | "open" => MorphOp::Opening(radius),
            "closing" | "close" => MorphOp::Closing(radius),
            _ => return Err(format!("unknown mask operation '{op}': use opening, closing, dilation or erosion")),
        })
    }
    /// How far (in pixels) the result at a pixel depends on its neighbours.
    pub fn reach(&self) -> usize {
        match *self {
            MorphOp::Dilation(r) | MorphOp::Erosion(r) => r,
            MorphOp::Opening(r) | MorphOp::Closing(r) => 2 * r,
        }
    }
}

/// Horizontal dilation of one row by `w` pixels each side, via a running count.
fn dilate_row(src: &[bool], w: usize, out: &mut [bool]) {
    let n = src.len();
    // prefix[i] = number of set pixels in src[..i]
    let mut prefix = vec![0u32; n + 1];
    for i in 0..n {
        prefix[i + 1] = prefix[i] + src[i] as u32;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let lo = i.saturating_sub(w);
        let hi = (i + w + 1).min(n);
        *o = prefix[hi] > prefix[lo];
    }
}

/// Dilation by a disk of radius `r`; pixels outside the array count as unset.
pub fn dilate(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    let (h, w) = mask.dim();
    // Half-widths of the disk's rows.
    let widths: Vec<usize> = (0..=r).map(|dy| (((r * r - dy * dy) as f64).sqrt()).floor() as usize).collect();
    // Horizontal dilations of every row for each distinct half-width.
    let mut distinct: Vec<usize> = widths.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let rows: Vec<Vec<bool>> = (0..h).map(|y| mask.row(y).iter().copied().collect()).collect();
    let mut hdil: Vec<Vec<Vec<bool>>> = Vec::with_capacity(distinct.len());
    for &hw in &distinct {
        hdil.push(
            rows.iter()
                .map(|row| {
                    let mut o = vec![false; w];
                    dilate_row(row, hw, &mut o);
                    o
                })
                .collect(),
        );
    }
    let which = |hw: usize| distinct.iter().position(|&d| d == hw).unwrap();
    let mut out = Array2::from_elem((h, w), false);
    for y in 0..h {
        let mut acc = vec![false; w];
        for dy in -(r as isize)..=(r as isize) {
            let yy = y as isize + dy;
            if yy < 0 || yy >= h as isize {
                continue;
            }
            let src = &hdil[which(widths[dy.unsigned_abs()])][yy as usize];
            for (a, s) in acc.iter_mut().zip(src) {
                *a |= *s;
            }
        }
        for (x, a) in acc.into_iter().enumerate() {
            out[[y, x]] = a;
        }
    }
    out
}

/// Erosion by a disk; pixels outside the array count as set (skimage's border rule), so
/// a mask touching the edge is not eaten from outside.
pub fn erode(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    dilate(&mask.mapv(|v| !v), r).mapv(|v| !v)
}

pub fn apply(mask: &Array2<bool>, op: MorphOp) -> Array2<bool> {
    match op {
        MorphOp::Dilation(r) => dilate(mask, r),
        MorphOp::Erosion(r) => erode(mask, r),
        MorphOp::Opening(r) => dilate(&erode(mask, r), r),
        MorphOp::Closing(r) => erode(&dilate(mask, r), r),
    }
}

/// Apply operations in order.
pub fn apply_all(mask: &Array2<bool>, ops: &[MorphOp]) -> Array2<bool> {
    ops.iter().fold(mask.clone(), |m, op| apply(&m, *op))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force reference: OR/AND over the disk.
    fn brute(mask: &Array2<bool>, r: usize, dilation: bool) -> Array2<bool> {
        let (h, w) = mask.dim();
        let r = r as isize;
        Array2::from_shape_fn((h, w), |(y, x)| {
            let mut any = false;
            let mut all = true;
            for dy in -r..=r {
                for dx in -r..=r {
                    if dx * dx + dy * dy > r * r {
                        continue;
                    }
                    let (yy, xx) = (y as isize + dy, x as isize + dx);
                    let v = if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                        !dilation
                    } else {
                        mask[[yy as usize, xx as usize]]
                    };
                    any |= v;
                    all &= v;
                }
            }
            if dilation {
                any
            } else {
                all
            }
        })
    }

    fn pseudo_random_mask(h: usize, w: usize, seed: u64) -> Array2<bool> {
        let mut s = seed;
        Array2::from_shape_fn((h, w), |_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33).is_multiple_of(7)
        })
    }

    #[test]
    fn dilation_and_erosion_match_brute_force() {
        for r in [1, 2, 3, 5, 10] {
            let m = pseudo_random_mask(37, 41, r as u64);
            assert_eq!(dilate(&m, r), brute(&m, r, true), "dilate r={r}");
            let dense = dilate(&m, 2);
            assert_eq!(erode(&dense, r), brute(&dense, r, false), "erode r={r}");
        }
    }

    #[test]
    fn single_pixel_dilates_to_a_disk() {
        let mut m = Array2::from_elem((11, 11), false);
        m[[5, 5]] = true;
        let d = dilate(&m, 2);
        // skimage disk(2) has 13 pixels.
        assert_eq!(d.iter().filter(|v| **v).count(), 13);
        // Opening removes specks smaller than the disk.
        assert_eq!(apply(&m, MorphOp::Opening(1)).iter().filter(|v| **v).count(), 0);
        assert_eq!(apply_all(&m, &[MorphOp::Opening(0), MorphOp::Dilation(0)]), m);
    }
}
