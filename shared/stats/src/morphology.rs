//! Binary morphology with disk footprints (skimage's `disk(r)`: x^2 + y^2 <= r^2), done as
//! one horizontal run per disk row so a radius-r operation costs O(pixels x (2r+1)), on
//! masks packed 64 pixels to a word.

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
    /// The same operation with its radius times `factor`, rounded: a radius given in
    /// an input's native pixels expressed in output pixels (0 leaves the mask as is).
    pub fn scaled(self, factor: f64) -> MorphOp {
        let s = |r: usize| (r as f64 * factor).round() as usize;
        match self {
            MorphOp::Dilation(r) => MorphOp::Dilation(s(r)),
            MorphOp::Erosion(r) => MorphOp::Erosion(s(r)),
            MorphOp::Opening(r) => MorphOp::Opening(s(r)),
            MorphOp::Closing(r) => MorphOp::Closing(s(r)),
        }
    }
    /// How far (in pixels) the result at a pixel depends on its neighbours.
    pub fn reach(&self) -> usize {
        match *self {
            MorphOp::Dilation(r) | MorphOp::Erosion(r) => r,
            MorphOp::Opening(r) | MorphOp::Closing(r) => 2 * r,
        }
    }
}

/// A mask as rows of bits (bit `x % 64` of word `x / 64` is pixel x), so that shifting
/// and OR-ing a word handles 64 pixels at once. Bits past the row's end stay clear.
struct Bits {
    h: usize,
    w: usize,
    /// Words per row.
    words: usize,
    data: Vec<u64>,
}

impl Bits {
    fn from_mask(mask: &Array2<bool>) -> Bits {
        let (h, w) = mask.dim();
        let words = w.div_ceil(64);
        let mut data = vec![0u64; h * words];
        for (y, row) in mask.rows().into_iter().enumerate() {
            let out = &mut data[y * words..(y + 1) * words];
            for (x, &v) in row.iter().enumerate() {
                out[x / 64] |= (v as u64) << (x % 64);
            }
        }
        Bits { h, w, words, data }
    }

    fn to_mask(&self) -> Array2<bool> {
        Array2::from_shape_fn((self.h, self.w), |(y, x)| (self.data[y * self.words + x / 64] >> (x % 64)) & 1 == 1)
    }

    fn row(&self, y: usize) -> &[u64] {
        &self.data[y * self.words..(y + 1) * self.words]
    }

    /// The valid bits of a row's last word.
    fn tail_mask(&self) -> u64 {
        if self.w.is_multiple_of(64) {
            !0
        } else {
            (1u64 << (self.w % 64)) - 1
        }
    }

    /// Clear the bits past the row's end in `row`.
    fn clear_tail(&self, row: &mut [u64]) {
        if let Some(last) = row.last_mut() {
            *last &= self.tail_mask();
        }
    }
}

/// Horizontal dilation of one row by `hw` pixels each side: `hw` steps of one pixel (a
/// segment of 2hw+1 is the sum of hw segments of 3). `prev`: scratch of the row's length.
fn dilate_row(src: &[u64], hw: usize, out: &mut [u64], prev: &mut [u64]) {
    out.copy_from_slice(src);
    let n = out.len();
    for _ in 0..hw {
        prev.copy_from_slice(out);
        for i in 0..n {
            let left_carry = if i > 0 { prev[i - 1] >> 63 } else { 0 };
            let right_carry = if i + 1 < n { prev[i + 1] << 63 } else { 0 };
            out[i] = prev[i] | (prev[i] << 1) | left_carry | (prev[i] >> 1) | right_carry;
        }
    }
}

/// Dilation of the set bits by a disk of radius `r`; pixels outside count as unset.
fn dilate_bits(m: &Bits, r: usize) -> Bits {
    let (h, words) = (m.h, m.words);
    // Half-widths of the disk's rows.
    let widths: Vec<usize> = (0..=r).map(|dy| (((r * r - dy * dy) as f64).sqrt()).floor() as usize).collect();
    let mut distinct: Vec<usize> = widths.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // Horizontal dilations of every row for each distinct half-width.
    let mut prev = vec![0u64; words];
    let hdil: Vec<Vec<u64>> = distinct
        .iter()
        .map(|&hw| {
            let mut d = vec![0u64; h * words];
            for y in 0..h {
                let out = &mut d[y * words..(y + 1) * words];
                dilate_row(m.row(y), hw, out, &mut prev);
                m.clear_tail(out);
            }
            d
        })
        .collect();
    let which: Vec<usize> = widths.iter().map(|hw| distinct.iter().position(|d| d == hw).unwrap()).collect();
    let mut data = vec![0u64; h * words];
    for y in 0..h {
        let acc = &mut data[y * words..(y + 1) * words];
        let lo = y.saturating_sub(r);
        let hi = (y + r).min(h.saturating_sub(1));
        for yy in lo..=hi {
            let src = &hdil[which[yy.abs_diff(y)]][yy * words..(yy + 1) * words];
            acc.iter_mut().zip(src).for_each(|(a, s)| *a |= s);
        }
    }
    Bits { h, w: m.w, words, data }
}

impl Bits {
    /// The complement, tail bits kept clear.
    fn inverted(mut self) -> Bits {
        let tail = self.tail_mask();
        for row in self.data.chunks_exact_mut(self.words.max(1)) {
            row.iter_mut().for_each(|v| *v = !*v);
            if let Some(last) = row.last_mut() {
                *last &= tail;
            }
        }
        self
    }

    fn apply(self, op: MorphOp) -> Bits {
        // Erosion is the complement's dilation: outside pixels, unset in the complement,
        // count as set (skimage's border rule), so a mask touching the edge is not eaten.
        let erode = |m: Bits, r: usize| if r == 0 { m } else { dilate_bits(&m.inverted(), r).inverted() };
        let dilate = |m: Bits, r: usize| if r == 0 { m } else { dilate_bits(&m, r) };
        match op {
            MorphOp::Dilation(r) => dilate(self, r),
            MorphOp::Erosion(r) => erode(self, r),
            MorphOp::Opening(r) => dilate(erode(self, r), r),
            MorphOp::Closing(r) => erode(dilate(self, r), r),
        }
    }
}

/// Dilation by a disk of radius `r`; pixels outside the array count as unset.
pub fn dilate(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    apply(mask, MorphOp::Dilation(r))
}

/// Erosion by a disk; pixels outside the array count as set (skimage's border rule), so
/// a mask touching the edge is not eaten from outside.
pub fn erode(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    apply(mask, MorphOp::Erosion(r))
}

pub fn apply(mask: &Array2<bool>, op: MorphOp) -> Array2<bool> {
    apply_all(mask, &[op])
}

/// Apply operations in order.
pub fn apply_all(mask: &Array2<bool>, ops: &[MorphOp]) -> Array2<bool> {
    ops.iter().fold(Bits::from_mask(mask), |m, op| m.apply(*op)).to_mask()
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
        // Widths within one word, across words, and a whole number of words.
        for w in [41, 130, 128] {
            for r in [1, 2, 3, 5, 10] {
                let m = pseudo_random_mask(37, w, r as u64);
                assert_eq!(dilate(&m, r), brute(&m, r, true), "dilate r={r} w={w}");
                let dense = dilate(&m, 2);
                assert_eq!(erode(&dense, r), brute(&dense, r, false), "erode r={r} w={w}");
            }
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
