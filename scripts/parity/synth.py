"""Deterministic synthetic reflectance stacks and a numpy percentile reference.

Shared by make_fixtures.py and bench_reference.py. Layout of every stack is
(y, x, band, time), integer dtype, scaled reflectance (reflectance * 1e4).
Only numpy is needed here.
"""

import numpy as np

# Two spectral end-members (6 bands, DN = reflectance * 1e4), mixed per pixel.
VEGETATION = np.array([400, 700, 500, 3500, 2200, 1200], dtype=np.float64)
SOIL = np.array([900, 1300, 1700, 2600, 3200, 2800], dtype=np.float64)
WATER = np.array([600, 500, 300, 250, 200, 200], dtype=np.float64)

VALUE_MIN = 200
VALUE_MAX = 4000


def smooth_field(rng, ny, nx, sigma):
    """Gaussian-smoothed white noise (periodic, via FFT), normalised to zero mean / unit std."""
    noise = rng.standard_normal((ny, nx))
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (ky**2 + kx**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(ny, nx))
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def blob_mask(rng, ny, nx, nt, mean_cover=0.4, sigma=None):
    """Spatially correlated cloud mask, shape (y, x, time); True = masked.

    Each time step thresholds its own smoothed noise field so that a fraction
    cover_t of the pixels is masked, cover_t ~ U(0, 2*mean_cover) re-centred to
    average exactly mean_cover (clear days and very cloudy days both occur).
    """
    if sigma is None:
        sigma = max(2.0, min(ny, nx) / 8.0)
    covers = rng.uniform(0.0, 2.0 * mean_cover, size=nt)
    # Re-centre so the realised overall cover is mean_cover even for few time steps.
    covers = np.clip(covers - covers.mean() + mean_cover, 0.0, 0.95)
    mask = np.zeros((ny, nx, nt), dtype=bool)
    for t in range(nt):
        field = smooth_field(rng, ny, nx, sigma)
        thr = np.quantile(field, 1.0 - covers[t])
        mask[:, :, t] = field > thr
    return mask


def reflectance_stack(rng, ny, nx, nt, dtype, nb=6):
    """Clean reflectance-like DN values in [VALUE_MIN, VALUE_MAX], shape (y, x, band, time)."""
    assert nb == 6, "end-members are defined for 6 bands"
    veg = (np.tanh(smooth_field(rng, ny, nx, max(2.0, min(ny, nx) / 6.0))) + 1.0) / 2.0
    water = smooth_field(rng, ny, nx, max(2.0, min(ny, nx) / 5.0)) > 1.2
    base = veg[..., None] * VEGETATION + (1.0 - veg[..., None]) * SOIL  # y x b
    base[water] = WATER
    out = np.empty((ny, nx, nb, nt), dtype=dtype)
    phase = rng.uniform(0, 2 * np.pi)
    for t in range(nt):
        season = 1.0 + 0.15 * np.sin(2 * np.pi * t / max(nt, 1) + phase)
        vals = base * season + rng.normal(0.0, 80.0, size=base.shape)
        # Unmasked outliers the geomedian must be robust to: cloud edges / haze
        # (bright in all bands) and shadows (dark), ~5% and ~3% of pixel-times.
        u = rng.uniform(size=(ny, nx))
        bright = u < 0.05
        dark = (u >= 0.05) & (u < 0.08)
        vals[bright] += rng.uniform(800, 2000, size=(int(bright.sum()), 1))
        vals[dark] *= 0.4
        out[..., t] = np.clip(np.rint(vals), VALUE_MIN, VALUE_MAX).astype(dtype)
    return out


def masked_stack(seed, ny, nx, nt, dtype, nodata, mean_cover=0.4):
    """Stack with ~mean_cover of the pixel-times masked (all bands set to nodata) in blobs."""
    rng = np.random.default_rng(seed)
    data = reflectance_stack(rng, ny, nx, nt, dtype)
    mask = blob_mask(rng, ny, nx, nt, mean_cover=mean_cover)
    data[np.broadcast_to(mask[:, :, None, :], data.shape)] = nodata
    return data


PERCENTILES = (0.1, 0.5, 0.9)


def percentile_index(p, n):
    """The spec: index round(p*(n-1)) into the ascending valid values.

    p*(n-1) is evaluated in IEEE float64 (p = 0.1, 0.5, 0.9 as float64
    literals) and rounded with numpy.round, i.e. round-half-to-even
    (same as Python's round(); Rust: f64::round_ties_even).
    """
    return np.round(np.float64(p) * (np.asarray(n, dtype=np.int64) - 1)).astype(np.int64)


def percentiles_sort(stack, nodata, ps=PERCENTILES, min_valid=3):
    """Vectorised sort-based percentiles over time, per pixel-band.

    stack: (y, x, band, time) integer array; returns (y, x, band, len(ps)) in the
    same dtype, nodata where fewer than min_valid values are valid (!= nodata).
    Validity is per band: a value is used iff it differs from nodata.
    """
    dtype = stack.dtype
    valid = stack != nodata
    n = valid.sum(axis=-1)
    # Push nodata to the end of the ascending sort: replace it by the dtype max.
    # Exact even if a valid value equals the max (the selected value is the same).
    keyed = np.where(valid, stack, np.iinfo(dtype).max)
    keyed.sort(axis=-1)
    out = np.empty(stack.shape[:-1] + (len(ps),), dtype=dtype)
    for k, p in enumerate(ps):
        idx = np.clip(percentile_index(p, n), 0, stack.shape[-1] - 1)
        vals = np.take_along_axis(keyed, idx[..., None], axis=-1)[..., 0]
        out[..., k] = np.where(n >= min_valid, vals, nodata)
    return out


def percentiles_loop(stack, nodata, ps=PERCENTILES, min_valid=3):
    """Slow, obviously-correct version of percentiles_sort (used as a cross-check)."""
    ny, nx, nb, _ = stack.shape
    out = np.full((ny, nx, nb, len(ps)), nodata, dtype=stack.dtype)
    for y in range(ny):
        for x in range(nx):
            for b in range(nb):
                v = stack[y, x, b]
                v = np.sort(v[v != nodata])
                n = len(v)
                if n >= min_valid:
                    for k, p in enumerate(ps):
                        out[y, x, b, k] = v[int(round(p * (n - 1)))]
    return out
