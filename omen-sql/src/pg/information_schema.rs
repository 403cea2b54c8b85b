//! The SQL standard's `information_schema`, as PostgreSQL spells it, over
//! OmenDB's tables: `tables`, `columns`, `schemata`, `table_constraints`
//! and `key_column_usage`. ORMs and admin tools read these to list tables
//! and columns portably.
//!
//! Limits: only the user schema's tables are listed (PostgreSQL also lists
//! its system catalogs); constraints are primary keys (a UNIQUE constraint
//! is a unique index in OmenDB, and PostgreSQL lists no index here);
//! types are PostgreSQL's names (`integer`, `numeric`, `timestamp without
//! time zone`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use omen_rowstore::{DataType, Store, TableSchema};

use crate::pg::computed::{Computed, Row, Rows, batch_of};
use crate::pg::schemas::{DATABASE, INFORMATION_SCHEMA, PG_CATALOG, PUBLIC};

const TABLES: [&str; 5] = ["columns", "key_column_usage", "schemata", "table_constraints", "tables"];

/// `information_schema` over the row store's tables.
#[derive(Debug)]
pub(crate) struct InformationSchema {
    rows: Store,
}

impl InformationSchema {
    pub(crate) fn new(rows: Store) -> Self {
        Self { rows }
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| (*t).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let view = match name {
            "tables" => View::Tables,
            "columns" => View::Columns,
            "schemata" => View::Schemata,
            "table_constraints" => View::TableConstraints,
            "key_column_usage" => View::KeyColumnUsage,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(Computed(Listing { view, schema: view.schema(), rows: self.rows.clone() }))))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

#[derive(Debug, Clone, Copy)]
enum View {
    Tables,
    Columns,
    Schemata,
    TableConstraints,
    KeyColumnUsage,
}

impl View {
    fn schema(self) -> SchemaRef {
        let text = |name: &str| Field::new(name, ArrowType::Utf8, true);
        let int = |name: &str| Field::new(name, ArrowType::Int32, true);
        let table = || vec![text("table_catalog"), text("table_schema"), text("table_name")];
        let constraint = || vec![text("constraint_catalog"), text("constraint_schema"), text("constraint_name")];
        let fields = match self {
            View::Tables => [table(), ["table_type", "is_insertable_into", "is_typed", "commit_action"].map(text).to_vec()].concat(),
            View::Columns => [
                table(),
                vec![text("column_name"), int("ordinal_position"), text("column_default"), text("is_nullable"), text("data_type")],
                ["character_maximum_length", "character_octet_length", "numeric_precision", "numeric_precision_radix", "numeric_scale"]
                    .map(int)
                    .to_vec(),
                vec![int("datetime_precision"), text("udt_catalog"), text("udt_schema"), text("udt_name")],
                ["is_identity", "is_generated", "is_updatable"].map(text).to_vec(),
            ]
            .concat(),
            View::Schemata => ["catalog_name", "schema_name", "schema_owner"].map(text).to_vec(),
            View::TableConstraints => {
                [constraint(), table(), ["constraint_type", "is_deferrable", "initially_deferred", "enforced"].map(text).to_vec()].concat()
            }
            View::KeyColumnUsage => {
                [constraint(), table(), vec![text("column_name"), int("ordinal_position"), int("position_in_unique_constraint")]].concat()
            }
        };
        Arc::new(Schema::new(fields))
    }
}

/// One of the views, listed from the row store's catalog.
#[derive(Debug)]
struct Listing {
    view: View,
    schema: SchemaRef,
    rows: Store,
}

#[async_trait]
impl Rows for Listing {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn batches(&self, _: &dyn Session) -> Result<Vec<RecordBatch>> {
        let mut tables: Vec<Arc<TableSchema>> = self.rows.tables().into_iter().map(|(_, s)| s).collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let text = |s: &str| ScalarValue::from(s);
        let of_table =
            |t: &TableSchema| Row::from([("table_catalog", text(DATABASE)), ("table_schema", text(PUBLIC)), ("table_name", text(&t.name))]);
        let pkey = |t: &TableSchema| format!("{}_pkey", t.name);
        let keyed = || tables.iter().filter(|t| !t.primary_key.is_empty());
        let rows: Vec<Row<'_>> = match self.view {
            View::Tables => tables
                .iter()
                .map(|t| {
                    let mut row = of_table(t);
                    row.extend([("table_type", text("BASE TABLE")), ("is_insertable_into", text("YES")), ("is_typed", text("NO"))]);
                    row
                })
                .collect(),
            View::Columns => tables
                .iter()
                .flat_map(|t| {
                    t.columns.iter().enumerate().map(|(i, c)| {
                        let mut row = of_table(t);
                        row.extend(describe(&c.data_type));
                        row.extend([
                            ("column_name", text(&c.name)),
                            ("ordinal_position", ScalarValue::Int32(i32::try_from(i + 1).ok())),
                            ("column_default", ScalarValue::Utf8(c.default.as_ref().map(|d| default_text(d, &c.data_type)))),
                            ("is_nullable", text(if c.nullable { "YES" } else { "NO" })),
                            ("udt_catalog", text(DATABASE)),
                            ("udt_schema", text(PG_CATALOG)),
                            ("is_identity", text("NO")),
                            ("is_generated", text("NEVER")),
                            ("is_updatable", text("YES")),
                        ]);
                        row
                    })
                })
                .collect(),
            View::Schemata => [PUBLIC, PG_CATALOG, INFORMATION_SCHEMA]
                .into_iter()
                .map(|s| Row::from([("catalog_name", text(DATABASE)), ("schema_name", text(s)), ("schema_owner", text("postgres"))]))
                .collect(),
            View::TableConstraints => keyed()
                .map(|t| {
                    let mut row = of_table(t);
                    row.extend([
                        ("constraint_catalog", text(DATABASE)),
                        ("constraint_schema", text(PUBLIC)),
                        ("constraint_name", ScalarValue::from(pkey(t))),
                        ("constraint_type", text("PRIMARY KEY")),
                        ("is_deferrable", text("NO")),
                        ("initially_deferred", text("NO")),
                        ("enforced", text("YES")),
                    ]);
                    row
                })
                .collect(),
            View::KeyColumnUsage => keyed()
                .flat_map(|t| {
                    t.primary_key.iter().enumerate().map(move |(place, &column)| {
                        let mut row = of_table(t);
                        row.extend([
                            ("constraint_catalog", text(DATABASE)),
                            ("constraint_schema", text(PUBLIC)),
                            ("constraint_name", ScalarValue::from(pkey(t))),
                            ("column_name", text(&t.columns[column].name)),
                            ("ordinal_position", ScalarValue::Int32(i32::try_from(place + 1).ok())),
                        ]);
                        row
                    })
                })
                .collect(),
        };
        Ok(vec![batch_of(&self.schema, &rows)?])
    }
}

/// A column type's `data_type`, `udt_name` and numeric facts, as
/// PostgreSQL's `information_schema.columns` gives them.
fn describe(data_type: &DataType) -> Vec<(&'static str, ScalarValue)> {
    let int = |v: i32| ScalarValue::Int32(Some(v));
    let (name, mut facts) = match data_type {
        DataType::Bool => ("boolean", vec![]),
        DataType::Int16 => {
            ("smallint", vec![("numeric_precision", int(16)), ("numeric_precision_radix", int(2)), ("numeric_scale", int(0))])
        }
        DataType::Int32 => {
            ("integer", vec![("numeric_precision", int(32)), ("numeric_precision_radix", int(2)), ("numeric_scale", int(0))])
        }
        DataType::Int64 => ("bigint", vec![("numeric_precision", int(64)), ("numeric_precision_radix", int(2)), ("numeric_scale", int(0))]),
        DataType::Float32 => ("real", vec![("numeric_precision", int(24)), ("numeric_precision_radix", int(2))]),
        DataType::Float64 => ("double precision", vec![("numeric_precision", int(53)), ("numeric_precision_radix", int(2))]),
        DataType::Decimal { precision, scale } => (
            "numeric",
            vec![
                ("numeric_precision", int(i32::from(*precision))),
                ("numeric_precision_radix", int(10)),
                ("numeric_scale", int(i32::from(*scale))),
            ],
        ),
        DataType::Text => ("text", vec![("character_octet_length", int(1_073_741_824))]),
        DataType::Bytes => ("bytea", vec![]),
        DataType::Date => ("date", vec![("datetime_precision", int(0))]),
        DataType::Timestamp => ("timestamp without time zone", vec![("datetime_precision", int(6))]),
        DataType::TimestampTz => ("timestamp with time zone", vec![("datetime_precision", int(6))]),
    };
    facts.extend([("data_type", ScalarValue::from(name)), ("udt_name", ScalarValue::from(udt_name(data_type)))]);
    facts
}

/// The type's name in `pg_type` (`int4`, `timestamptz`).
fn udt_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Bool => "bool",
        DataType::Int16 => "int2",
        DataType::Int32 => "int4",
        DataType::Int64 => "int8",
        DataType::Float32 => "float4",
        DataType::Float64 => "float8",
        DataType::Decimal { .. } => "numeric",
        DataType::Text => "text",
        DataType::Bytes => "bytea",
        DataType::Date => "date",
        DataType::Timestamp => "timestamp",
        DataType::TimestampTz => "timestamptz",
    }
}

/// A default as PostgreSQL prints it: numbers and booleans bare, other
/// values as a typed literal (`'x'::text`).
fn default_text(value: &omen_rowstore::Value, data_type: &DataType) -> String {
    if value == &omen_rowstore::Value::Null {
        return "NULL".into();
    }
    let scalar = crate::params::scalar(value);
    match data_type {
        DataType::Bool
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal { .. } => scalar.to_string(),
        other => format!("'{}'::{}", scalar.to_string().replace('\'', "''"), udt_name(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_print_as_typed_literals() {
        assert_eq!(default_text(&omen_rowstore::Value::Int64(0), &DataType::Int64), "0");
        assert_eq!(default_text(&omen_rowstore::Value::Text("it's".into()), &DataType::Text), "'it''s'::text");
        assert_eq!(default_text(&omen_rowstore::Value::Null, &DataType::Text), "NULL");
    }
}
