//! An owned encoded key that keeps short keys inline.
//!
//! The row heap's maps compare keys on every probe. With `Vec<u8>` keys each
//! comparison chases a pointer to another cache line: at 100k rows that made
//! three quarters of a point lookup's time (`bench-compare/benches/index.rs`).
//! Keys up to [`INLINE`] bytes (every single-column numeric key, short text)
//! live inside the map's node instead.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest key stored inline; the enum stays 24 bytes.
const INLINE: usize = 22;

#[derive(Clone)]
pub(crate) enum KeyBuf {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyBuf {
    pub(crate) fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            // INLINE < 256, so the length fits.
            Self::Inline { len: key.len() as u8, bytes }
        } else {
            Self::Heap(key.into())
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

// Eq, Ord and Hash agree with `[u8]`'s, as `Borrow<[u8]>` requires: the maps
// are probed with borrowed slices, never with a built `KeyBuf`.
impl PartialEq for KeyBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for KeyBuf {}
impl PartialOrd for KeyBuf {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyBuf {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}
impl Hash for KeyBuf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}
impl Borrow<[u8]> for KeyBuf {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_as_its_bytes(a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let (ka, kb) = (KeyBuf::new(&a), KeyBuf::new(&b));
            prop_assert_eq!(ka.as_slice(), &a[..]);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
            let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                x(&mut h);
                h.finish()
            };
            prop_assert_eq!(hash(&|h| ka.hash(h)), hash(&|h| a[..].hash(h)));
        }
    }

    #[test]
    fn boundary_lengths() {
        for n in [0, 1, INLINE - 1, INLINE, INLINE + 1, 100] {
            let bytes: Vec<u8> = (0..n as u8).collect();
            let k = KeyBuf::new(&bytes);
            assert_eq!(k.as_slice(), &bytes[..]);
            assert_eq!(matches!(k, KeyBuf::Heap(_)), n > INLINE);
        }
    }
}
