//! libCacheSim's **oracleGeneral** format and the next-use times it (and Belady) needs.
//!
//! ```text
//! record (24 bytes, packed, little-endian; no header: requests = file size / 24)
//! 0            4        12         16                  24
//! +------------+--------+----------+-------------------+
//! | clock_time | obj_id | obj_size | next_access_vtime |
//! | u32        | u64    | u32      | i64               |
//! +------------+--------+----------+-------------------+
//!  next_access_vtime: the 1-based request index of the object's next access, -1 if none.
//! ```
//!
//! Conversion: `clock_time` is whole seconds since the trace's first access (saturating at `u32::MAX`);
//! `obj_size` saturates at `u32::MAX` bytes (4 GiB), far above any column chunk.

use std::io::{self, Read, Write};

use crate::{Access, ObjectId};

/// Bytes per oracleGeneral record.
pub const ORACLE_RECORD_LEN: usize = 24;

/// "Never accessed again" in [`next_use`]'s result.
pub const NEVER: u64 = u64::MAX;

/// For each access, the 0-based index of the next access to the same object, or [`NEVER`]. One backward pass.
pub fn next_use(trace: &[Access]) -> Vec<u64> {
    let mut last: rustc_hash::FxHashMap<ObjectId, u64> = rustc_hash::FxHashMap::default();
    let mut next = vec![NEVER; trace.len()];
    for (i, a) in trace.iter().enumerate().rev() {
        if let Some(&j) = last.get(&a.id) {
            next[i] = j;
        }
        last.insert(a.id, i as u64);
    }
    next
}

/// Writes `trace` as oracleGeneral records.
pub fn write_oracle_general(trace: &[Access], out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    let start = trace.first().map_or(0, |a| a.time_us);
    for (a, next) in trace.iter().zip(next_use(trace)) {
        let clock = u32::try_from(a.time_us.saturating_sub(start) / 1_000_000).unwrap_or(u32::MAX);
        let size = u32::try_from(a.bytes).unwrap_or(u32::MAX);
        // libCacheSim's vtime is the 1-based request number.
        let next_vtime = if next == NEVER { -1 } else { i64::try_from(next + 1).unwrap_or(i64::MAX) };
        out.write_all(&clock.to_le_bytes())?;
        out.write_all(&a.id.to_le_bytes())?;
        out.write_all(&size.to_le_bytes())?;
        out.write_all(&next_vtime.to_le_bytes())?;
    }
    out.flush()
}

/// One oracleGeneral record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleRecord {
    /// Seconds.
    pub clock_time: u32,
    /// The object.
    pub obj_id: u64,
    /// Bytes.
    pub obj_size: u32,
    /// 1-based request index of the next access, -1 if none.
    pub next_access_vtime: i64,
}

/// Reads oracleGeneral records; a trailing partial record is `InvalidData`.
pub fn read_oracle_general(mut input: impl Read) -> io::Result<Vec<OracleRecord>> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    if bytes.len() % ORACLE_RECORD_LEN != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "oracleGeneral size is not a multiple of 24 bytes"));
    }
    Ok(bytes
        .chunks_exact(ORACLE_RECORD_LEN)
        .map(|r| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&r[4..12]);
            let mut next = [0u8; 8];
            next.copy_from_slice(&r[16..24]);
            OracleRecord {
                clock_time: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                obj_id: u64::from_le_bytes(id),
                obj_size: u32::from_le_bytes([r[12], r[13], r[14], r[15]]),
                next_access_vtime: i64::from_le_bytes(next),
            }
        })
        .collect())
}

/// Point accesses from oracleGeneral records (time in microseconds from `clock_time`), for simulating a trace
/// that came from elsewhere.
pub fn accesses_from_oracle(records: &[OracleRecord]) -> Vec<Access> {
    records.iter().map(|r| Access::point(r.obj_id, u64::from(r.obj_size), u64::from(r.clock_time) * 1_000_000)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_access_is_one_based_and_minus_one_at_the_end() {
        let trace: Vec<Access> =
            [5u64, 6, 5, 7, 6].iter().enumerate().map(|(t, &id)| Access::point(id, 100, t as u64 * 2_000_000)).collect();
        assert_eq!(next_use(&trace), vec![2, 4, NEVER, NEVER, NEVER]);
        let mut bytes = Vec::new();
        write_oracle_general(&trace, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 5 * ORACLE_RECORD_LEN);
        let records = read_oracle_general(&bytes[..]).unwrap();
        let nexts: Vec<i64> = records.iter().map(|r| r.next_access_vtime).collect();
        assert_eq!(nexts, vec![3, 5, -1, -1, -1]);
        assert_eq!((records[4].clock_time, records[4].obj_id, records[4].obj_size), (8, 6, 100));
        assert_eq!(accesses_from_oracle(&records)[1], Access::point(6, 100, 2_000_000));
        assert!(read_oracle_general(&bytes[..23]).is_err());
    }
}
