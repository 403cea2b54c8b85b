//! What the cache sees of one access: an object id, its size, and the context the learned policy feeds on.

/// An object's identity. The store chooses the encoding (e.g. segment and column packed into 64 bits).
pub type ObjectId = u64;

/// Why the object was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// Part of a scan over many objects.
    Scan,
    /// A point read or a short range.
    Point,
    /// A background read-ahead, not asked for by a statement.
    Prefetch,
}

/// One access to one object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Access {
    /// The object.
    pub id: ObjectId,
    /// Its size in bytes (what it costs to keep it resident).
    pub bytes: u64,
    /// Why it was touched.
    pub kind: AccessKind,
    /// The statement (query) that made the access; 0 if unknown.
    pub statement: u64,
    /// Monotonic time in microseconds (any epoch).
    pub time_us: u64,
    /// Position within a running scan: (index of this object among the scan's objects, their count); None outside scans.
    pub scan_position: Option<(u32, u32)>,
}

impl Access {
    /// A point access with no statement and no scan position: the shape most tests and simple callers need.
    pub fn point(id: ObjectId, bytes: u64, time_us: u64) -> Self {
        Self { id, bytes, kind: AccessKind::Point, statement: 0, time_us, scan_position: None }
    }
}
