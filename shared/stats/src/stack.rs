use ndarray::{Array4, ArrayView2};
use stratus_core::SampleType;

/// The observations of one spatial chunk: (time, band, y, x), one time slot per solar day
/// (same-day datasets already fused), nodata per band. Integer bands are held as 16-bit
/// codes of their sample type (`stratus_core::sample`: a uint16 band's code is its value);
/// float32 and int32 bands as float32 values, NaN where missing, in `floats` (their slots
/// in `data` stay unused).
#[derive(Debug, Clone)]
pub struct Stack {
    pub bands: Vec<String>,
    pub dtypes: Vec<SampleType>,
    /// Nodata per band, as a code.
    pub nodata: Vec<u16>,
    pub data: Array4<u16>,
    /// (time, float band, y, x): the float32 and int32 bands, in band order.
    pub floats: Array4<f32>,
    /// Each band's index in `floats`, for bands held as floats.
    pub float_index: Vec<Option<usize>>,
}

impl Stack {
    /// A stack of uint16 bands, every value nodata.
    pub fn new(bands: Vec<String>, nodata: Vec<u16>, times: usize, height: usize, width: usize) -> Stack {
        let dtypes = vec![SampleType::Uint16; bands.len()];
        Stack::typed(bands, dtypes, nodata, times, height, width)
    }
    /// A stack of bands of `dtypes`, every value nodata (`nodata`: codes).
    pub fn typed(
        bands: Vec<String>,
        dtypes: Vec<SampleType>,
        nodata: Vec<u16>,
        times: usize,
        height: usize,
        width: usize,
    ) -> Stack {
        let data = Array4::from_elem((times, bands.len(), height, width), 0u16);
        let mut next = 0;
        let float_index: Vec<Option<usize>> = dtypes
            .iter()
            .map(|t| {
                t.held_as_float().then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let floats = Array4::from_elem((times, next, height, width), f32::NAN);
        let mut s = Stack { bands, dtypes, nodata, data, floats, float_index };
        // Time slots filled side by side: a tile's chunk stack is hundreds of MB, which
        // one thread would fill (and fault in) while the others wait to read into it.
        use rayon::prelude::*;
        let nodata = &s.nodata;
        s.data.axis_iter_mut(ndarray::Axis(0)).into_par_iter().for_each(|mut slot| {
            for (b, &nd) in nodata.iter().enumerate() {
                slot.index_axis_mut(ndarray::Axis(0), b).fill(nd);
            }
        });
        s
    }
    pub fn times(&self) -> usize {
        self.data.dim().0
    }
    pub fn shape_yx(&self) -> (usize, usize) {
        let d = self.data.dim();
        (d.2, d.3)
    }
    pub fn band_index(&self, name: &str) -> Option<usize> {
        self.bands.iter().position(|b| b.eq_ignore_ascii_case(name))
    }
    /// Indices of several bands, or the first missing one.
    pub fn band_indices(&self, names: &[String]) -> Result<Vec<usize>, crate::StatError> {
        names.iter().map(|b| self.band_index(b).ok_or_else(|| crate::StatError::MissingBand(b.clone()))).collect()
    }
    pub fn plane(&self, t: usize, b: usize) -> ArrayView2<'_, u16> {
        self.data.slice(ndarray::s![t, b, .., ..])
    }
    /// A float32 band's observations at time `t` (None for an integer band).
    pub fn float_plane(&self, t: usize, b: usize) -> Option<ArrayView2<'_, f32>> {
        self.float_index[b].map(|f| self.floats.slice(ndarray::s![t, f, .., ..]))
    }
}
