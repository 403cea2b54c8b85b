//! The write-ahead log: append-only segment files, replayed on open.
//!
//! A commit (or DDL) is one record ([`record`]) appended to the newest
//! segment file ([`segment`]: format, names, and the roll to the next,
//! made ahead as a zero-filled spare). [`group`] writes records and makes
//! them durable as the [`Durability`] mode promises, sharing one write and
//! one fdatasync among concurrent commits. [`replay`] reads the log back on
//! open (cutting a torn tail) and for the change stream. [`retention`]
//! seals segments for checkpoints and removes those behind them and every
//! reader's hold. [`state`] holds the open log's state the others share.
//!
//! The bytes reach the files through an I/O backend ([`IoBackend`],
//! [`io`]): plain pwrite(2) and fdatasync(2) (the default: it measured
//! faster), or io_uring, which links a group's write and fdatasync in one
//! submission (`uring.rs`). Both run the same tests.
//!
//! Inside the folder, dependencies point one way: `record` stands alone;
//! `state` (the types the others share) sits on the backends; `segment` on
//! `state`; `group` on `segment`, `record` and `state`; `retention` and
//! `replay` on those.

mod group;
pub(crate) mod io;
mod record;
mod replay;
mod retention;
mod segment;
mod state;
#[cfg(test)]
mod testing;
mod uring;

pub use io::IoBackend;
pub(crate) use io::{LogIo, backend};
pub(crate) use record::{WalOp, WalRecord, WalWrite};
pub(crate) use replay::read_records;
pub use state::{Durability, NORMAL_SYNC_INTERVAL};
pub(crate) use state::{Wal, WalOptions};
