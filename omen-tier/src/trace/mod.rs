//! Access traces: the recorder format the store writes ([`TraceWriter`], [`TraceReader`]), the conversion to
//! libCacheSim's oracleGeneral format for cross-checking, and deterministic synthetic workloads.

mod format;
mod oracle;
pub mod synthetic;

pub use format::{HEADER_LEN, MAGIC, RECORD_LEN, TraceReader, TraceWriter, VERSION, decode, encode};
pub use oracle::{NEVER, ORACLE_RECORD_LEN, OracleRecord, accesses_from_oracle, next_use, read_oracle_general, write_oracle_general};
