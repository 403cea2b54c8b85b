//! PostgreSQL's face for psql and drivers: the system catalogs
//! (`catalog.rs` installs them; `indexes.rs` adds keys and indexes), the
//! functions clients call (`functions.rs`), `information_schema`, and the
//! session settings (`settings.rs`).
//!
//! Layering, bottom up: `schemas`, `computed` (tables computed per scan)
//! and `settings`; `indexes`; `functions` and `information_schema`;
//! `catalog`. Nothing here plans or runs a user statement.

pub(crate) mod catalog;
pub(crate) mod computed;
pub(crate) mod functions;
pub(crate) mod indexes;
pub(crate) mod information_schema;
pub(crate) mod schemas;
pub(crate) mod settings;

pub(crate) use catalog::install;
pub(crate) use schemas::{DATABASE, PUBLIC};
pub use settings::{Isolation, REPORTED, SERVER_VERSION, Settings};
