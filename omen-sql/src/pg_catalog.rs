//! PostgreSQL's system catalogs and session functions, for psql's `\d`
//! family and the introspection queries drivers send when they connect.
//!
//! The tables (`pg_class`, `pg_attribute`, `pg_namespace`, `pg_type`, ...)
//! and functions (`current_schema()`, `format_type`, `pg_get_expr`,
//! `has_table_privilege`, ...) come from the `datafusion-pg-catalog` crate;
//! this module points them at the row store's tables and adds `version()`.
//! Queries that mention the catalogs are parsed by that crate's
//! `PostgresCompatibilityParser`, which rewrites what DataFusion does not
//! plan as PostgreSQL spells it (`OPERATOR(pg_catalog.~)`, `'t'::regclass`,
//! `COLLATE`, `ANY(array)`).
//!
//! Limits: one database (`omendb`) and one user schema (`public`); no
//! roles, constraints other than through `pg_class`/`pg_attribute`, or
//! `information_schema`. Catalog rows are computed per query, so they are
//! current, and OIDs stay fixed for a table's life.

use std::sync::{Arc, LazyLock};

use std::collections::HashMap;

use arrow::array::{Int32Array, StringArray};
use arrow::datatypes::DataType as ArrowType;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use omen_rowstore::Store;
use postgres_types::Type;

use crate::error::{Error, Result};

/// The database's name, as `current_database()` and `pg_database` give it.
pub(crate) const DATABASE: &str = "omendb";

/// The user schema.
pub(crate) const PUBLIC: &str = "public";

/// The schema of the system catalogs.
pub(crate) const PG_CATALOG: &str = "pg_catalog";

/// Installs the catalogs and functions into `state`, over the tables of
/// `rows`. Returns the new state and the `pg_catalog` schema, which
/// planning adds to each statement's catalog.
pub(crate) fn install(state: SessionState, rows: &Store) -> Result<(SessionState, Arc<dyn SchemaProvider>)> {
    let ctx = SessionContext::new_with_state(state);
    let catalog = ctx.catalog(DATABASE).ok_or_else(|| Error::Internal(format!("no catalog {DATABASE}")))?;
    // What pg_class and pg_attribute list; statements plan against their own
    // catalogs of snapshot tables (see `query::plan`).
    catalog.register_schema(PUBLIC, Arc::new(RowStoreSchema { rows: rows.clone() }))?;
    datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider).map_err(|e| Error::from(*e))?;
    ctx.register_udf(version());
    ctx.register_udf(to_regtype());
    let pg_catalog = catalog.schema(PG_CATALOG).ok_or_else(|| Error::Internal("pg_catalog was not installed".into()))?;
    Ok((ctx.state(), pg_catalog))
}

/// `version()`: drivers (SQLAlchemy, JDBC) read PostgreSQL's version from it.
fn version() -> datafusion::logical_expr::ScalarUDF {
    let text = format!("PostgreSQL {} (OmenDB {}) on {}", crate::SERVER_VERSION, env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
    create_udf(
        "version",
        vec![],
        ArrowType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![text.clone()]))))),
    )
}

/// `to_regtype(name)`: the OID of a built-in type by its name or SQL
/// spelling, NULL for others (psycopg looks types up with it).
fn to_regtype() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "to_regtype",
        vec![ArrowType::Utf8],
        ArrowType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            Ok(match &args[0] {
                ColumnarValue::Scalar(s) => ColumnarValue::Scalar(ScalarValue::Int32(match s {
                    ScalarValue::Utf8(Some(name)) => type_oid(name),
                    _ => None,
                })),
                ColumnarValue::Array(a) => {
                    let names = datafusion::common::cast::as_string_array(a)?;
                    ColumnarValue::Array(Arc::new(names.iter().map(|n| n.and_then(type_oid)).collect::<Int32Array>()))
                }
            })
        }),
    )
}

/// The OID of the built-in type `name` (as `pg_type.typname` or in SQL's
/// spelling, optionally `pg_catalog.`-qualified).
fn type_oid(name: &str) -> Option<i32> {
    static BY_NAME: LazyLock<HashMap<String, u32>> =
        LazyLock::new(|| (0..10_000).filter_map(Type::from_oid).map(|t| (t.name().to_owned(), t.oid())).collect());
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let canonical = match name {
        "integer" | "int" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" => "float8",
        "boolean" => "bool",
        "decimal" => "numeric",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "time with time zone" => "timetz",
        other => other,
    };
    BY_NAME.get(canonical).and_then(|&oid| i32::try_from(oid).ok())
}

/// Whether `sql` reads the catalogs or PostgreSQL-only syntax the
/// compatibility parser rewrites: a word starting `pg_` (a catalog table or
/// function), `::reg...`, `OPERATOR(`, `information_schema` or the session
/// user and schema functions. Other statements skip its rewrites, which
/// are made for catalog queries: among them, a subquery in a projection
/// that DataFusion cannot run becomes NULL.
pub(crate) fn needs_rewrite(sql: &str) -> bool {
    const MARKERS: [&str; 6] = ["::reg", "information_schema", "current_schema", "current_user", "session_user", "operator("];
    let lower = sql.to_ascii_lowercase();
    let word_start = |i: usize| i == 0 || !matches!(lower.as_bytes()[i - 1], b'a'..=b'z' | b'0'..=b'9' | b'_' | b'$');
    lower.match_indices("pg_").any(|(i, _)| word_start(i)) || MARKERS.iter().any(|m| lower.contains(m))
}

/// Parses `sql` as the compatibility parser rewrites it.
pub(crate) fn parse(sql: &str) -> Result<Vec<DfStatement>> {
    static PARSER: LazyLock<PostgresCompatibilityParser> = LazyLock::new(PostgresCompatibilityParser::new);
    Ok(PARSER.parse(sql)?.into_iter().map(|s| DfStatement::Statement(Box::new(s))).collect())
}

/// The row store's tables as DataFusion sees a schema, for the catalogs.
#[derive(Debug)]
struct RowStoreSchema {
    rows: Store,
}

#[async_trait]
impl SchemaProvider for RowStoreSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rows.tables().into_iter().map(|(_, s)| s.name.clone()).collect();
        names.sort();
        names
    }

    /// A table with the table's columns and no rows: the catalogs read only
    /// its schema, where (unlike in scans) NOT NULL columns are not nullable.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.rows.table(name).map(|(_, schema)| {
            let fields: Vec<_> = omen_sync::convert::arrow_schema(&schema)
                .fields()
                .iter()
                .zip(&schema.columns)
                .map(|(f, c)| f.as_ref().clone().with_nullable(c.nullable))
                .collect();
            Arc::new(EmptyTable::new(Arc::new(arrow::datatypes::Schema::new(fields)))) as _
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.rows.table(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalog_queries_take_the_rewriting_parser() {
        assert!(needs_rewrite("SELECT c.relname FROM pg_catalog.pg_class c"));
        assert!(needs_rewrite("select 'orders'::regclass::oid"));
        assert!(needs_rewrite("SELECT current_schema()"));
        assert!(!needs_rewrite("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"));
        assert!(!needs_rewrite("SELECT abalance FROM accounts WHERE aid = $1"));
        assert!(!needs_rewrite("SELECT img_pg_size FROM t"), "pg_ inside a word");
        assert!(needs_rewrite("select * from pg_tables"));
    }

    #[test]
    fn type_names_resolve_in_both_spellings() {
        assert_eq!(type_oid("numeric"), Some(1700));
        assert_eq!(type_oid("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid("Double Precision"), Some(701));
        assert_eq!(type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid("no_such_type"), None);
    }
}
