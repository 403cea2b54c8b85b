//! Byte encodings: rows, memcomparable keys, and the reader they share.

pub(crate) mod bytes;
pub mod key;
pub mod row;
