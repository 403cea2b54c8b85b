//! The access-trace file: a 16-byte header, then fixed-size 41-byte records, all integers little-endian.
//!
//! ```text
//! header (16 bytes)
//! 0        8          12             16
//! +--------+----------+--------------+
//! | magic  | version  | record bytes |
//! | 8 B    | u32 = 1  | u32 = 41     |
//! +--------+----------+--------------+
//!  magic = b"OMENTRCE"
//!
//! record (41 bytes)
//! 0         8      16       24          32           36           40     41
//! +---------+------+--------+-----------+------------+------------+------+
//! | time_us | id   | bytes  | statement | scan index | scan count | kind |
//! | u64     | u64  | u64    | u64       | u32        | u32        | u8   |
//! +---------+------+--------+-----------+------------+------------+------+
//!  kind: bits 0-1 = 0 Scan, 1 Point, 2 Prefetch; bit 7 = the scan position is present
//!  (scan index and count are 0 when it is absent); other bits 0.
//! ```
//!
//! Version history: 1 (this layout). The record size sits in the header so that a reader can reject a file
//! of another layout before misreading it. Records carry no checksum: a trace is diagnostic data, and the only
//! expected damage, a record cut short by a crash while appending, is reported as an `UnexpectedEof` error by
//! the reader after every whole record before it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{Access, AccessKind};

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"OMENTRCE";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes per header.
pub const HEADER_LEN: usize = 16;
/// Bytes per record.
pub const RECORD_LEN: usize = 41;

const HAS_SCAN_POSITION: u8 = 0x80;

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    h
}

fn check_header(h: &[u8; HEADER_LEN]) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if h[..8] != MAGIC {
        return Err(invalid("not an omen-tier trace (bad magic)".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let record = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if version != VERSION || record as usize != RECORD_LEN {
        return Err(invalid(format!("trace version {version} with {record}-byte records; this reader knows version {VERSION}")));
    }
    Ok(())
}

/// Encodes one record.
pub fn encode(access: &Access) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[0..8].copy_from_slice(&access.time_us.to_le_bytes());
    r[8..16].copy_from_slice(&access.id.to_le_bytes());
    r[16..24].copy_from_slice(&access.bytes.to_le_bytes());
    r[24..32].copy_from_slice(&access.statement.to_le_bytes());
    let (index, count) = access.scan_position.unwrap_or((0, 0));
    r[32..36].copy_from_slice(&index.to_le_bytes());
    r[36..40].copy_from_slice(&count.to_le_bytes());
    let kind = match access.kind {
        AccessKind::Scan => 0,
        AccessKind::Point => 1,
        AccessKind::Prefetch => 2,
    };
    r[40] = kind | if access.scan_position.is_some() { HAS_SCAN_POSITION } else { 0 };
    r
}

/// Decodes one record; an unknown kind byte is `InvalidData`.
pub fn decode(r: &[u8; RECORD_LEN]) -> io::Result<Access> {
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&r[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let u32_at = |at: usize| u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
    let kind = match r[40] & !HAS_SCAN_POSITION {
        0 => AccessKind::Scan,
        1 => AccessKind::Point,
        2 => AccessKind::Prefetch,
        other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown access kind byte {other:#x}"))),
    };
    let scan_position = (r[40] & HAS_SCAN_POSITION != 0).then(|| (u32_at(32), u32_at(36)));
    Ok(Access { id: u64_at(8), bytes: u64_at(16), kind, statement: u64_at(24), time_us: u64_at(0), scan_position })
}

/// Writes a trace: the header on creation, then one record per [`write`](TraceWriter::write), buffered.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    records: u64,
}

impl TraceWriter<File> {
    /// Creates (or truncates) a trace file.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::new(File::create(path)?)
    }

    /// Opens a trace file to append to it, creating it if missing. An existing file's header is checked; a
    /// record cut short at its end (a crash while appending) is cut off so new records stay aligned.
    pub fn append(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Self::new(file);
        }
        let mut h = [0u8; HEADER_LEN];
        file.read_exact(&mut h)?;
        check_header(&h)?;
        let whole = (len - HEADER_LEN as u64) / RECORD_LEN as u64;
        let end = HEADER_LEN as u64 + whole * RECORD_LEN as u64;
        file.set_len(end)?;
        file.seek(SeekFrom::Start(end))?;
        Ok(Self { out: BufWriter::new(file), records: 0 })
    }
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out`, writing the header.
    pub fn new(out: W) -> io::Result<Self> {
        let mut out = BufWriter::new(out);
        out.write_all(&header())?;
        Ok(Self { out, records: 0 })
    }

    /// Appends one access.
    pub fn write(&mut self, access: &Access) -> io::Result<()> {
        self.records += 1;
        self.out.write_all(&encode(access))
    }

    /// Records written by this writer (not counting those already in an appended-to file).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(io::IntoInnerError::into_error)
    }
}

/// Reads a trace: checks the header, then yields each record.
#[derive(Debug)]
pub struct TraceReader<R: Read> {
    input: BufReader<R>,
    done: bool,
}

impl TraceReader<File> {
    /// Opens a trace file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the header from `input`.
    pub fn new(input: R) -> io::Result<Self> {
        let mut input = BufReader::new(input);
        let mut h = [0u8; HEADER_LEN];
        input.read_exact(&mut h)?;
        check_header(&h)?;
        Ok(Self { input, done: false })
    }

    /// Every remaining record, or the first error.
    pub fn read_all(self) -> io::Result<Vec<crate::Access>> {
        self.collect()
    }

    /// Reads up to a whole record: Ok(0) at a clean end, Ok(RECORD_LEN) for a record, `UnexpectedEof` for a
    /// partial one.
    fn fill(&mut self, r: &mut [u8; RECORD_LEN]) -> io::Result<usize> {
        let mut got = 0;
        while got < RECORD_LEN {
            match self.input.read(&mut r[got..]) {
                Ok(0) if got == 0 => return Ok(0),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("trace ends inside a record ({got} of {RECORD_LEN} bytes)"),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = io::Result<Access>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut r = [0u8; RECORD_LEN];
        let item = match self.fill(&mut r) {
            Ok(0) => None,
            Ok(_) => Some(decode(&r)),
            Err(e) => Some(Err(e)),
        };
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Access> {
        vec![
            Access { id: u64::MAX, bytes: 1 << 40, kind: AccessKind::Scan, statement: 7, time_us: 1, scan_position: Some((0, 0)) },
            Access::point(3, 4096, 2),
            Access { id: 9, bytes: 0, kind: AccessKind::Prefetch, statement: 0, time_us: u64::MAX, scan_position: None },
        ]
    }

    #[test]
    fn records_round_trip_including_edge_values() {
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        for a in sample() {
            w.write(&a).unwrap();
        }
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 3 * RECORD_LEN);
        assert_eq!(TraceReader::new(&bytes[..]).unwrap().read_all().unwrap(), sample());
    }

    #[test]
    fn damage_is_reported_not_misread() {
        let mut w = TraceWriter::new(Vec::new()).unwrap();
        w.write(&Access::point(1, 1, 1)).unwrap();
        let bytes = w.finish().unwrap();
        let cut = &bytes[..bytes.len() - 1];
        let read: Vec<_> = TraceReader::new(cut).unwrap().collect();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].as_ref().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut bad_kind = bytes.clone();
        bad_kind[HEADER_LEN + 40] = 3;
        assert_eq!(TraceReader::new(&bad_kind[..]).unwrap().read_all().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut bad_version = bytes;
        bad_version[8] = 2;
        assert_eq!(TraceReader::new(&bad_version[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn append_continues_after_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let mut w = TraceWriter::create(&path).unwrap();
        w.write(&Access::point(1, 1, 1)).unwrap();
        w.flush().unwrap();
        drop(w);
        // A crash left half a record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xAB; 20]).unwrap();
        drop(f);
        let mut w = TraceWriter::append(&path).unwrap();
        w.write(&Access::point(2, 2, 2)).unwrap();
        w.finish().unwrap();
        let ids: Vec<u64> = TraceReader::open(&path).unwrap().map(|a| a.unwrap().id).collect();
        assert_eq!(ids, vec![1, 2]);
    }
}
