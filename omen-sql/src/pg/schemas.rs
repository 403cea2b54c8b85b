//! The names of the database and schemas OmenDB shows PostgreSQL clients.

/// The database's name, as `current_database()` and `pg_database` give it.
pub(crate) const DATABASE: &str = "omendb";

/// The user schema.
pub(crate) const PUBLIC: &str = "public";

/// The schema of the system catalogs.
pub(crate) const PG_CATALOG: &str = "pg_catalog";

/// The SQL standard's catalog schema (`information_schema.rs`).
pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";
