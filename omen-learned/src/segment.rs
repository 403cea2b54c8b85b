//! One linear piece of the key -> position model.

use crate::plr::Line;

/// Keys from `first_key` up to the next segment's first key are predicted at
/// `intercept + slope * (key - first_key)`. The slope is relative to the
/// segment's own first key, so predictions stay precise for keys anywhere
/// in the u64 range. Stored as is in serialized indexes (24 bytes, LE).
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct Segment {
    pub(crate) first_key: u64,
    pub(crate) slope: f64,
    pub(crate) intercept: f64,
}

impl Segment {
    /// The predicted position of `key`, rounded; never negative.
    #[inline]
    pub(crate) fn predict(&self, key: u64) -> usize {
        let dx = key.saturating_sub(self.first_key) as f64;
        // Float-to-int `as` saturates: negative and NaN give 0, huge gives MAX.
        (self.intercept + self.slope * dx).round() as usize
    }
}

impl From<Line> for Segment {
    fn from(l: Line) -> Self {
        Self { first_key: l.first_x, slope: l.slope, intercept: l.intercept }
    }
}
