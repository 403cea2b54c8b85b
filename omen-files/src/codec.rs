//! The byte codec every OmenDB binary format is written and read with:
//! little-endian fixed-width integers, LEB128 varints, length-prefixed
//! bytes, and the frame that every whole file (or self-contained section)
//! of OmenDB's uses:
//!
//! ```text
//! | magic: 8 bytes | version: u32 (most formats) | body | crc32c(all before): u32 |
//! ```
//!
//! [`Writer::framed`] starts a frame and [`Writer::seal`] ends it;
//! [`Reader::unseal`] checks the magic and the checksum and reads the rest.
//! Formats that are not one frame (a log segment's records, a run's
//! sections) read their integers through [`Reader`] alone.
//!
//! Reading never panics and never allocates more than the input holds: a
//! short or damaged input is a [`DecodeError`] saying why, which each store
//! turns into its own corruption error naming the file.
//!
//! ```
//! use omen_files::codec::{Reader, Writer};
//!
//! let mut w = Writer::framed(b"EXAMPLE\0");
//! w.u32(1); // the format's version
//! w.var_bytes(b"key");
//! let bytes = w.seal();
//! let mut r = Reader::unseal(&bytes, b"EXAMPLE\0")?;
//! assert_eq!(r.u32()?, 1);
//! assert_eq!(r.var_bytes()?, b"key");
//! r.finish()?;
//! # Ok::<(), omen_files::codec::DecodeError>(())
//! ```

use std::fmt;

/// Why bytes do not decode (or a value cannot be encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    /// An error saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<String> for DecodeError {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

impl From<&str> for DecodeError {
    fn from(reason: &str) -> Self {
        Self(reason.to_owned())
    }
}

/// Result of decoding.
pub type Decoded<T> = Result<T, DecodeError>;

/// The CRC32C of `bytes`, as every frame and record checksum uses it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Appends a LEB128 varint to `out`.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Bytes being encoded.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty buffer (no frame).
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame that starts with `magic`; end it with [`Writer::seal`].
    pub fn framed(magic: &[u8; 8]) -> Self {
        Self { out: magic.to_vec() }
    }

    /// Room for `n` more bytes, so a writer that knows its size allocates once.
    pub fn reserve(&mut self, n: usize) {
        self.out.reserve(n);
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// A LEB128 varint.
    pub fn varint(&mut self, v: u64) {
        put_varint(&mut self.out, v);
    }

    /// `| len: varint | bytes |`
    pub fn var_bytes(&mut self, b: &[u8]) {
        put_bytes(&mut self.out, b);
    }

    /// A count or length as a `u32`; an error past `u32::MAX`.
    pub fn len32(&mut self, n: usize) -> Decoded<()> {
        self.u32(u32::try_from(n).map_err(|_| DecodeError(format!("{n} is past a u32 count")))?);
        Ok(())
    }

    /// `| len: u32 | UTF-8 bytes |`
    pub fn str32(&mut self, s: &str) -> Decoded<()> {
        self.len32(s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// The bytes so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// The bytes with the CRC32C of all of them appended: the end of a frame.
    pub fn seal(mut self) -> Vec<u8> {
        let crc = crc32c(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// A cursor over untrusted bytes: every read checks bounds.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The body of a frame: `bytes` must start with `magic` and end with
    /// the CRC32C of everything before it. Reading starts after the magic
    /// and stops before the checksum.
    pub fn unseal(bytes: &'a [u8], magic: &[u8; 8]) -> Decoded<Self> {
        if bytes.len() < magic.len() + 4 {
            return Err(DecodeError(format!("{} bytes: shorter than a frame", bytes.len())));
        }
        if !bytes.starts_with(magic) {
            return Err(DecodeError(format!("bad magic (expected {:?})", String::from_utf8_lossy(magic))));
        }
        let (covered, crc) = bytes.split_at(bytes.len() - 4);
        let stored = Reader::new(crc).u32()?;
        if crc32c(covered) != stored {
            return Err("checksum mismatch".into());
        }
        Ok(Self { bytes: covered, at: magic.len() })
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| DecodeError(format!("truncated: need {n} bytes at offset {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Decoded<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Decoded<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Decoded<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Decoded<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// A varint that fits in `usize` and is at most the bytes left (it
    /// counts bytes, or items of at least one byte), so a corrupt length
    /// can never make a caller allocate more than the input holds.
    pub fn len(&mut self) -> Decoded<usize> {
        let n = self.varint()?;
        let left = self.remaining();
        usize::try_from(n).ok().filter(|&n| n <= left).ok_or_else(|| DecodeError(format!("length {n} exceeds the {left} bytes left")))
    }

    /// `| len: varint | bytes |`
    pub fn var_bytes(&mut self) -> Decoded<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// `| len: varint | UTF-8 bytes |`
    pub fn var_str(&mut self) -> Decoded<&'a str> {
        std::str::from_utf8(self.var_bytes()?).map_err(|e| DecodeError(format!("invalid UTF-8: {e}")))
    }

    /// `| len: u32 | UTF-8 bytes |`
    pub fn str32(&mut self) -> Decoded<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| DecodeError(format!("invalid UTF-8: {e}")))
    }

    /// Where the next read starts, from the start of the input (a frame's
    /// magic included).
    pub fn position(&self) -> usize {
        self.at
    }

    /// Bytes left (before a frame's checksum).
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Checks the input was read to its end.
    pub fn finish(self) -> Decoded<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError(format!("{n} trailing bytes"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_damage_is_an_error() {
        let mut w = Writer::framed(b"TESTMAG\0");
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.str32("héllo").unwrap();
        w.varint(300);
        w.var_bytes(b"abc");
        let good = w.seal();
        let mut r = Reader::unseal(&good, b"TESTMAG\0").unwrap();
        assert_eq!((r.u8(), r.u32(), r.u64(), r.str32()), (Ok(7), Ok(0xdead_beef), Ok(u64::MAX - 1), Ok("héllo".into())));
        assert_eq!((r.varint(), r.var_bytes()), (Ok(300), Ok(&b"abc"[..])));
        assert_eq!(r.finish(), Ok(()));
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(Reader::unseal(&bad, b"TESTMAG\0").is_err(), "flip at {at}");
        }
        for cut in 0..good.len() {
            assert!(Reader::unseal(&good[..cut], b"TESTMAG\0").is_err(), "cut at {cut}");
        }
        // Reading past the body, or leaving some of it, is an error too.
        let mut r = Reader::unseal(&good, b"TESTMAG\0").unwrap();
        assert!(r.u64().is_ok() && r.u64().is_ok() && r.u64().is_ok() && r.u64().is_err());
        assert!(Reader::unseal(&good, b"TESTMAG\0").unwrap().finish().is_err());
    }

    #[test]
    fn varints_round_trip_and_bad_lengths_fail() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[5, 1, 2]).var_bytes().is_err(), "a length past the input");
        assert!(Reader::new(&[1, 2]).u64().is_err());
        assert!(Reader::new(&[1, 0xff]).var_str().is_err(), "not UTF-8");
    }
}
