//! Deterministic noise fields: hash-based value noise and fractal sums of it.

/// SplitMix64 finaliser: a well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of three coordinates: one mixing round over odd-multiplier products, which is
/// plenty for noise and several times cheaper than mixing each coordinate.
pub fn hash3(seed: u64, a: i64, b: i64, c: u64) -> u64 {
    mix(seed
        ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9))
}

/// Uniform in [0, 1).
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [0, 1) at lattice coordinates (x, y).
pub fn value_noise(seed: u64, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = (smooth(x - x0), smooth(y - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let v = |dx: i64, dy: i64| unit(hash3(seed, ix + dx, iy + dy, 0));
    let a = v(0, 0) + (v(1, 0) - v(0, 0)) * tx;
    let b = v(0, 1) + (v(1, 1) - v(0, 1)) * tx;
    a + (b - a) * ty
}

/// Fractal sum of `octaves` value noises, normalised to [0, 1).
pub fn fbm(seed: u64, x: f64, y: f64, octaves: u32) -> f64 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(o as u64 * 7919), x * f, y * f);
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        assert_eq!(fbm(1, 3.3, 4.4, 4), fbm(1, 3.3, 4.4, 4));
        assert_ne!(fbm(1, 3.3, 4.4, 4), fbm(2, 3.3, 4.4, 4));
        for i in 0..1000 {
            let v = fbm(9, i as f64 * 0.37, i as f64 * 0.11, 3);
            assert!((0.0..1.0).contains(&v));
        }
        // Continuous: nearby points have nearby values.
        assert!((value_noise(5, 1.5, 1.5) - value_noise(5, 1.5001, 1.5)).abs() < 1e-3);
    }
}
