//! Band sample types, and the 16-bit code space a chunk's stack holds them in.
//!
//! Every 8- and 16-bit integer type maps into `u16` without loss and in order: unsigned
//! values are their own code, signed ones are shifted by 32768. So the read path, the
//! stack and the kernels stay 16-bit (their speed is the product), sorting codes sorts
//! values (percentiles), and resampling in code space equals resampling the values (a
//! constant shift commutes with weighted sums and with GDAL's `floor(x + 0.5)` rounding).

use serde::{Deserialize, Serialize};

/// A band's sample type, as STAC's `raster:bands` `data_type` and GDAL name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    Int8,
    Uint8,
    Int16,
    #[default]
    Uint16,
    Int32,
    Uint32,
    Float32,
    Float64,
}

impl SampleType {
    pub const ALL: [SampleType; 8] = [
        SampleType::Int8,
        SampleType::Uint8,
        SampleType::Int16,
        SampleType::Uint16,
        SampleType::Int32,
        SampleType::Uint32,
        SampleType::Float32,
        SampleType::Float64,
    ];

    /// From a STAC `data_type` or GDAL type name (`int16`, `UInt16`, `Float32`).
    pub fn parse(name: &str) -> Option<SampleType> {
        SampleType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            SampleType::Int8 => "int8",
            SampleType::Uint8 => "uint8",
            SampleType::Int16 => "int16",
            SampleType::Uint16 => "uint16",
            SampleType::Int32 => "int32",
            SampleType::Uint32 => "uint32",
            SampleType::Float32 => "float32",
            SampleType::Float64 => "float64",
        }
    }

    /// The value code 0 stands for, for the types the stack holds (8 and 16 bits).
    pub fn code_zero(self) -> Option<i32> {
        match self {
            SampleType::Uint8 | SampleType::Uint16 => Some(0),
            SampleType::Int8 | SampleType::Int16 => Some(-32768),
            _ => None,
        }
    }

    /// Held by the stack as float32 values beside the 16-bit codes (float32 itself, and
    /// int32 where its values are within float32's exact integers).
    pub fn held_as_float(self) -> bool {
        matches!(self, SampleType::Float32 | SampleType::Int32)
    }

    pub fn is_signed(self) -> bool {
        matches!(self, SampleType::Int8 | SampleType::Int16 | SampleType::Int32)
    }

    /// The smallest and largest value of an integer type the stack holds.
    pub fn range(self) -> Option<(i32, i32)> {
        Some(match self {
            SampleType::Int8 => (-128, 127),
            SampleType::Uint8 => (0, 255),
            SampleType::Int16 => (-32768, 32767),
            SampleType::Uint16 => (0, 65535),
            _ => return None,
        })
    }

    /// The code of `value`, when it is a whole value of this type.
    pub fn code(self, value: f64) -> Option<u16> {
        let (lo, hi) = self.range()?;
        let zero = self.code_zero()?;
        (value.fract() == 0.0 && value >= lo as f64 && value <= hi as f64).then(|| (value as i32 - zero) as u16)
    }

    /// The value a code stands for.
    #[inline(always)]
    pub fn value(self, code: u16) -> i32 {
        code as i32 + self.code_zero().unwrap_or(0)
    }

    /// Whether every value of `source` is a value of this type (reading widens only).
    pub fn holds(self, source: SampleType) -> bool {
        use SampleType::*;
        self == source
            || matches!(
                (self, source),
                (Uint16, Uint8) | (Int16, Uint8) | (Int16, Int8) | (Int32 | Float32, Int8 | Uint8 | Int16 | Uint16)
            )
    }
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_every_value_and_their_order() {
        for t in [SampleType::Int8, SampleType::Uint8, SampleType::Int16, SampleType::Uint16] {
            let (lo, hi) = t.range().unwrap();
            let mut last = None;
            for v in lo..=hi {
                let c = t.code(v as f64).unwrap();
                assert_eq!(t.value(c), v, "{t} {v}");
                assert!(last.is_none_or(|l| l < c), "{t}: codes keep the order");
                last = Some(c);
            }
            assert_eq!(t.code(lo as f64 - 1.0), None);
            assert_eq!(t.code(hi as f64 + 1.0), None);
        }
        assert_eq!(SampleType::Int16.code(-999.0), Some(31769));
        assert_eq!(SampleType::Int16.code(0.5), None);
        assert_eq!(SampleType::Float32.code(1.0), None);
        assert_eq!(SampleType::parse("UInt16"), Some(SampleType::Uint16));
        assert_eq!(SampleType::parse("cint16"), None);
        assert!(SampleType::Int16.holds(SampleType::Uint8) && !SampleType::Int16.holds(SampleType::Uint16));
        assert!(!SampleType::Uint16.holds(SampleType::Int8));
        assert!(SampleType::Float32.holds(SampleType::Uint16) && !SampleType::Float32.holds(SampleType::Int32));
    }
}
