//! Sentinel-2 scene classification (SCL) classes.

pub const NO_DATA: u16 = 0;
pub const SATURATED_DEFECTIVE: u16 = 1;
pub const DARK_AREA: u16 = 2;
pub const CLOUD_SHADOWS: u16 = 3;
pub const VEGETATION: u16 = 4;
pub const NOT_VEGETATED: u16 = 5;
pub const WATER: u16 = 6;
pub const UNCLASSIFIED: u16 = 7;
pub const CLOUD_MEDIUM: u16 = 8;
pub const CLOUD_HIGH: u16 = 9;
pub const THIN_CIRRUS: u16 = 10;
pub const SNOW: u16 = 11;

/// Classes odc-stats erases as cloud for Sentinel-2 (cloud shadows, medium and high
/// probability cloud, thin cirrus).
pub const CLOUD_CLASSES: [u16; 4] = [CLOUD_SHADOWS, CLOUD_MEDIUM, CLOUD_HIGH, THIN_CIRRUS];

pub fn is_cloud(v: u16) -> bool {
    CLOUD_CLASSES.contains(&v)
}

pub fn is_valid(v: u16) -> bool {
    v != NO_DATA
}
