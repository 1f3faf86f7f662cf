use ndarray::{Array4, ArrayView2};
use stratus_core::SampleType;

/// The observations of one spatial chunk: (time, band, y, x), one time slot per solar day
/// (same-day datasets already fused), nodata per band. Values are held as 16-bit codes of
/// each band's sample type (`stratus_core::sample`): a uint16 band's code is its value.
#[derive(Debug, Clone)]
pub struct Stack {
    pub bands: Vec<String>,
    pub dtypes: Vec<SampleType>,
    /// Nodata per band, as a code.
    pub nodata: Vec<u16>,
    pub data: Array4<u16>,
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
        let mut s = Stack { bands, dtypes, nodata, data };
        for (b, nd) in s.nodata.clone().into_iter().enumerate() {
            s.data.slice_mut(ndarray::s![.., b, .., ..]).fill(nd);
        }
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
}
