//! Keys the index can model: anything with an order-preserving 8-byte prefix.

/// A key type with an order-preserving prefix: `a < b` implies
/// `a.prefix() <= b.prefix()`. The index models prefixes; lookups compare
/// full keys in the last mile, so keys that share a prefix (long strings,
/// composite keys) stay correct, only slower when many share one.
pub trait Key: Ord {
    /// The first 8 bytes of the key's order, as a big-endian `u64`.
    fn prefix(&self) -> u64;
}

impl Key for u64 {
    #[inline]
    fn prefix(&self) -> u64 {
        *self
    }
}

impl Key for i64 {
    /// Flipping the sign bit maps i64 order onto u64 order.
    #[inline]
    fn prefix(&self) -> u64 {
        (*self as u64) ^ (1 << 63)
    }
}

impl Key for [u8] {
    /// The first 8 bytes, zero-padded: a shorter string sorts first and pads
    /// with the smallest byte, so the order is kept.
    #[inline]
    fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        let n = self.len().min(8);
        b[..n].copy_from_slice(&self[..n]);
        u64::from_be_bytes(b)
    }
}

impl Key for Vec<u8> {
    #[inline]
    fn prefix(&self) -> u64 {
        self.as_slice().prefix()
    }
}

impl Key for str {
    #[inline]
    fn prefix(&self) -> u64 {
        self.as_bytes().prefix()
    }
}

impl Key for String {
    #[inline]
    fn prefix(&self) -> u64 {
        self.as_bytes().prefix()
    }
}

impl<K: Key + ?Sized> Key for &K {
    #[inline]
    fn prefix(&self) -> u64 {
        (**self).prefix()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn prefixes_preserve_order(a: i64, b: i64, x: Vec<u8>, y: Vec<u8>) {
            if a < b { prop_assert!(a.prefix() <= b.prefix()); }
            if x < y { prop_assert!(x.prefix() <= y.prefix()); }
            prop_assert_eq!(a.cmp(&b), a.prefix().cmp(&b.prefix()));
        }
    }
}
