//! Reading and writing the crate's own binary files (the manifest, delete
//! files): little-endian fields inside a common frame, an 8-byte magic
//! first and the CRC32C of every byte before it last.
//!
//! ```text
//! | magic: 8 bytes | body | crc32c(magic and body): u32 |
//! ```
//!
//! Reading never panics: a short or damaged file is an `Err` with the
//! reason, which the caller wraps as `Corruption` naming the file.

/// A reason bytes do not parse (or a value cannot be written).
pub(crate) type Parse<T> = std::result::Result<T, String>;

/// Fields of a framed file being written.
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// A file that starts with `magic`.
    pub(crate) fn new(magic: &[u8; 8]) -> Self {
        Self { out: magic.to_vec() }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// A count or length as a u32.
    pub(crate) fn len32(&mut self, n: usize) -> Parse<()> {
        self.u32(u32::try_from(n).map_err(|_| format!("{n} is past a u32 count"))?);
        Ok(())
    }

    /// `| len: u32 | UTF-8 bytes |`
    pub(crate) fn str(&mut self, s: &str) -> Parse<()> {
        self.len32(s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// The file's bytes, its checksum appended.
    pub(crate) fn seal(mut self) -> Vec<u8> {
        let crc = crc32c::crc32c(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// Fields read from a framed file's body, in order.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The body of `bytes`, a file of the kind `what` names, if it starts
    /// with `magic` and its checksum holds.
    pub(crate) fn unseal(bytes: &'a [u8], magic: &[u8; 8], what: &str) -> Parse<Self> {
        if bytes.len() < magic.len() + 4 || !bytes.starts_with(magic) {
            return Err(format!("not {what} (bad magic or too short)"));
        }
        let (covered, crc) = bytes.split_at(bytes.len() - 4);
        let stored = Reader { bytes: crc, at: 0 }.u32()?;
        if crc32c::crc32c(covered) != stored {
            return Err("checksum mismatch".into());
        }
        Ok(Self { bytes: covered, at: magic.len() })
    }

    fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Parse<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Parse<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Parse<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Parse<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `| len: u32 | UTF-8 bytes |`
    pub(crate) fn str(&mut self) -> Parse<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }

    /// Bytes left in the body.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Checks the body was read to its end.
    pub(crate) fn finish(self) -> Parse<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} trailing bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_damage_is_an_error() {
        let mut w = Writer::new(b"TESTMAG\0");
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.str("héllo").unwrap();
        let good = w.seal();
        let mut r = Reader::unseal(&good, b"TESTMAG\0", "a test file").unwrap();
        assert_eq!((r.u8(), r.u32(), r.u64(), r.str()), (Ok(7), Ok(0xdead_beef), Ok(u64::MAX - 1), Ok("héllo".into())));
        assert_eq!(r.finish(), Ok(()));
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(Reader::unseal(&bad, b"TESTMAG\0", "a test file").is_err(), "flip at {at}");
        }
        for cut in 0..good.len() {
            assert!(Reader::unseal(&good[..cut], b"TESTMAG\0", "a test file").is_err(), "cut at {cut}");
        }
        // Reading past the body, or leaving some of it, is an error too.
        let mut r = Reader::unseal(&good, b"TESTMAG\0", "a test file").unwrap();
        assert!(r.u64().is_ok() && r.u64().is_ok() && r.u64().is_err());
        assert!(Reader::unseal(&good, b"TESTMAG\0", "a test file").unwrap().finish().is_err());
    }
}
