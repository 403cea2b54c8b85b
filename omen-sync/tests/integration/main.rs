//! omen-sync integration tests.
#![allow(clippy::unwrap_used, missing_docs)]

mod differential;
mod feed;
mod restart;
