//! Byte encodings: rows and memcomparable keys (their integers and
//! lengths through `omen_files::codec`).

pub mod key;
pub mod row;
