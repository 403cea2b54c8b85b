//! OmenDB's primary keys and indexes in PostgreSQL's catalogs: index rows
//! in `pg_class`, `pg_index`, primary keys in `pg_constraint`, and the
//! functions that print them (`pg_get_indexdef`, `pg_get_constraintdef`).
//! psql's `\d table` footer and `\di`, and SQLAlchemy's key and index
//! reflection, read these.
//!
//! `datafusion-pg-catalog` lists tables but not their indexes: its
//! `pg_index` and `pg_constraint` hold only PostgreSQL's own system rows.
//! [`PgCatalog`] wraps its schema: `pg_class` gains a row per index (and
//! `relhasindex` on tables that have one); `pg_index` and `pg_constraint`
//! are OmenDB's rows alone, with the key columns as arrays (`indkey`,
//! `conkey`), so that `unnest` works on them (psql prints `indkey` as
//! `{1,2}`, not PostgreSQL's `1 2`).
//!
//! OIDs: a table's is the one the crate's `pg_class` gives it; an index's
//! and a constraint's are computed from the table id and the index's place
//! (0 for the primary key, then the table's indexes in order), so the
//! functions can find them again without a lookup. Dropping an index
//! renumbers the table's later ones. Tables with ids past 2^21 and indexes
//! past the 255th of a table are not listed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::cast::{as_int32_array, as_string_array};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use omen_rowstore::{Store, TableId};

use crate::pg::computed::{Computed, Row, Rows, batch_of};
use crate::pg::schemas::PUBLIC;

/// Field metadata of an array column that is an `int2vector`/`oidvector`
/// in PostgreSQL, whose subscripts start at 0 (see `pg_functions`'
/// `pg_subscript`).
pub(crate) const VECTOR: &str = "omendb.pg_vector";

/// `pg_am.oid` of btree, the access method every OmenDB index reports.
const BTREE: i32 = 403;

/// Index OIDs are `INDEX_OIDS + (table id << 8) + place`.
const INDEX_OIDS: i64 = 1 << 30;
/// Primary-key constraint OIDs are `CONSTRAINT_OIDS + (table id << 8)`.
const CONSTRAINT_OIDS: i64 = 3 << 29;
/// Tables with ids from here on have no listed indexes (their OIDs would
/// overflow PostgreSQL's 31 bits).
const MAX_TABLE_ID: TableId = 1 << 21;

/// One index of a table, the primary key's included.
struct Key {
    table: TableId,
    table_name: String,
    /// 0 for the primary key, then the table's indexes in order.
    place: usize,
    name: String,
    /// Column names, in key order.
    columns: Vec<String>,
    /// 1-based column numbers (`attnum`), in key order.
    attnums: Vec<i16>,
    unique: bool,
    primary: bool,
}

impl Key {
    fn oid(&self) -> i32 {
        oid(INDEX_OIDS, self.table, self.place)
    }

    fn constraint_oid(&self) -> i32 {
        oid(CONSTRAINT_OIDS, self.table, 0)
    }

    /// What `pg_get_indexdef` prints.
    fn index_def(&self) -> String {
        format!(
            "CREATE {}INDEX {} ON {PUBLIC}.{} USING btree ({})",
            if self.unique { "UNIQUE " } else { "" },
            quote(&self.name),
            quote(&self.table_name),
            self.quoted_columns()
        )
    }

    fn quoted_columns(&self) -> String {
        self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    }
}

fn oid(base: i64, table: TableId, place: usize) -> i32 {
    // Callers keep table < MAX_TABLE_ID and place < 256: fits in 31 bits.
    i32::try_from(base + ((table as i64) << 8) + place as i64).unwrap_or(i32::MAX)
}

/// `name` as PostgreSQL prints an identifier: bare if it is lower-case
/// letters, digits and underscores (not leading with a digit), else quoted.
fn quote(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// Every table's primary key and indexes, tables by name.
fn keys(rows: &Store) -> Vec<Key> {
    let mut tables = rows.tables();
    tables.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let mut keys = Vec::new();
    for (id, schema) in tables.into_iter().filter(|(id, _)| *id < MAX_TABLE_ID) {
        let column = |i: usize| (schema.columns[i].name.clone(), i16::try_from(i + 1).unwrap_or(i16::MAX));
        let primary = (!schema.primary_key.is_empty()).then(|| (format!("{}_pkey", schema.name), schema.primary_key.clone(), true, true));
        let indexes = rows.indexes(&schema.name).into_iter().map(|d| (d.name, d.columns, d.unique, false));
        for (place, (name, columns, unique, is_primary)) in primary.into_iter().chain(indexes).enumerate().take(256) {
            let (columns, attnums) = columns.into_iter().map(column).unzip();
            keys.push(Key { table: id, table_name: schema.name.clone(), place, name, columns, attnums, unique, primary: is_primary });
        }
    }
    keys
}

/// `datafusion-pg-catalog`'s `pg_catalog` schema with OmenDB's indexes
/// added (see the module docs).
#[derive(Debug)]
pub(crate) struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    rows: Store,
}

impl PgCatalog {
    pub(crate) fn new(inner: Arc<dyn SchemaProvider>, rows: Store) -> Self {
        Self { inner, rows }
    }

    async fn inner_table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        self.inner.table(name).await?.ok_or_else(|| DataFusionError::Internal(format!("pg_catalog has no {name}")))
    }
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    /// The three tables are computed when scanned, not here: the crate's
    /// `pg_class` asks every catalog table for its schema while it scans.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (kind, schema) = match name {
            "pg_class" => (Kind::Class, with_reloptions(&self.inner_table(name).await?.schema())),
            "pg_index" => (
                Kind::Index,
                with_arrays(self.inner_table(name).await?.schema(), &[("indkey", ArrowType::Int16), ("indclass", ArrowType::Int32)]),
            ),
            "pg_constraint" => (
                Kind::Constraint,
                with_arrays(self.inner_table(name).await?.schema(), &[("conkey", ArrowType::Int16), ("confkey", ArrowType::Int16)]),
            ),
            _ => return self.inner.table(name).await,
        };
        let pg_class = self.inner_table("pg_class").await?;
        Ok(Some(Arc::new(Computed(IndexCatalog { kind, schema, pg_class, rows: self.rows.clone() }))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Class,
    Index,
    Constraint,
}

/// `pg_class`, `pg_index` or `pg_constraint` with OmenDB's indexes.
#[derive(Debug)]
struct IndexCatalog {
    kind: Kind,
    schema: SchemaRef,
    /// The crate's `pg_class`: table OIDs come from it.
    pg_class: Arc<dyn TableProvider>,
    rows: Store,
}

#[async_trait]
impl Rows for IndexCatalog {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn batches(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let plan = self.pg_class.scan(state, None, &[], None).await?;
        let classes = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        Ok(match self.kind {
            Kind::Class => self.pg_class_rows(classes)?,
            Kind::Index => vec![self.pg_index_rows(&classes)?],
            Kind::Constraint => vec![self.pg_constraint_rows(&classes)?],
        })
    }
}

impl IndexCatalog {
    /// The OIDs of OmenDB's tables in the crate's `pg_class`, by name, and
    /// the `public` schema's OID.
    fn table_oids(classes: &[RecordBatch]) -> Result<(HashMap<String, i32>, Option<i32>)> {
        let mut oids = HashMap::new();
        let mut public = None;
        for batch in classes {
            let column =
                |name: &str| batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("pg_class has no {name}")));
            let (oid, name, namespace, kind) = (
                as_int32_array(column("oid")?)?,
                as_string_array(column("relname")?)?,
                as_int32_array(column("relnamespace")?)?,
                as_string_array(column("relkind")?)?,
            );
            for row in 0..batch.num_rows() {
                // OmenDB's tables are the ordinary tables outside the system
                // catalogs, all in the one user schema.
                if kind.value(row) == "r" && !name.value(row).starts_with("pg_") {
                    oids.insert(name.value(row).to_owned(), oid.value(row));
                    public.get_or_insert(namespace.value(row));
                }
            }
        }
        Ok((oids, public))
    }

    fn pg_class_rows(&self, classes: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let (oids, public) = Self::table_oids(&classes)?;
        let keys: Vec<Key> = keys(&self.rows).into_iter().filter(|k| oids.contains_key(&k.table_name)).collect();
        let indexed: HashSet<i32> = keys.iter().filter_map(|k| oids.get(&k.table_name).copied()).collect();
        let mut out = classes.into_iter().map(|b| class_batch(b, &self.schema, &indexed)).collect::<Result<Vec<_>>>()?;
        let rows: Vec<Row<'_>> = keys
            .iter()
            .map(|k| {
                HashMap::from([
                    ("oid", ScalarValue::Int32(Some(k.oid()))),
                    ("relname", ScalarValue::from(k.name.as_str())),
                    ("relnamespace", ScalarValue::Int32(public)),
                    ("relowner", ScalarValue::Int32(Some(10))),
                    ("relam", ScalarValue::Int32(Some(BTREE))),
                    ("relfilenode", ScalarValue::Int32(Some(k.oid()))),
                    ("relpages", ScalarValue::Int32(Some(1))),
                    ("relpersistence", ScalarValue::from("p")),
                    ("relkind", ScalarValue::from("i")),
                    ("relnatts", ScalarValue::Int16(i16::try_from(k.columns.len()).ok())),
                    ("relispopulated", ScalarValue::Boolean(Some(true))),
                    ("relreplident", ScalarValue::from("n")),
                ])
            })
            .collect();
        out.push(batch_of(&self.schema, &rows)?);
        Ok(out)
    }

    fn pg_index_rows(&self, classes: &[RecordBatch]) -> Result<RecordBatch> {
        let (oids, _) = Self::table_oids(classes)?;
        let rows: Vec<Row<'_>> = keys(&self.rows)
            .iter()
            .filter_map(|k| {
                let table = *oids.get(&k.table_name)?;
                let count = ScalarValue::Int16(i16::try_from(k.columns.len()).ok());
                // int2vector text, as PostgreSQL prints it (SQLAlchemy
                // splits indoption at spaces but unnests indclass).
                let zeros = ScalarValue::from(vec!["0"; k.columns.len()].join(" "));
                Some(HashMap::from([
                    ("indexrelid", ScalarValue::Int32(Some(k.oid()))),
                    ("indrelid", ScalarValue::Int32(Some(table))),
                    ("indnatts", count.clone()),
                    ("indnkeyatts", count),
                    ("indisunique", ScalarValue::Boolean(Some(k.unique))),
                    ("indisprimary", ScalarValue::Boolean(Some(k.primary))),
                    ("indimmediate", ScalarValue::Boolean(Some(true))),
                    ("indisvalid", ScalarValue::Boolean(Some(true))),
                    ("indisready", ScalarValue::Boolean(Some(true))),
                    ("indislive", ScalarValue::Boolean(Some(true))),
                    ("indkey", attnum_list(&k.attnums)),
                    ("indoption", zeros.clone()),
                    ("indcollation", zeros),
                    ("indclass", list(&ArrowType::Int32, &vec![ScalarValue::Int32(Some(0)); k.columns.len()])),
                ]))
            })
            .collect();
        batch_of(&self.schema, &rows)
    }

    fn pg_constraint_rows(&self, classes: &[RecordBatch]) -> Result<RecordBatch> {
        let (oids, public) = Self::table_oids(classes)?;
        let rows: Vec<Row<'_>> = keys(&self.rows)
            .iter()
            .filter(|k| k.primary)
            .filter_map(|k| {
                let table = *oids.get(&k.table_name)?;
                Some(HashMap::from([
                    ("oid", ScalarValue::Int32(Some(k.constraint_oid()))),
                    ("conname", ScalarValue::from(k.name.as_str())),
                    ("connamespace", ScalarValue::Int32(public)),
                    ("contype", ScalarValue::from("p")),
                    ("convalidated", ScalarValue::Boolean(Some(true))),
                    ("conrelid", ScalarValue::Int32(Some(table))),
                    ("conindid", ScalarValue::Int32(Some(k.oid()))),
                    ("confupdtype", ScalarValue::from(" ")),
                    ("confdeltype", ScalarValue::from(" ")),
                    ("confmatchtype", ScalarValue::from(" ")),
                    ("conislocal", ScalarValue::Boolean(Some(true))),
                    ("connoinherit", ScalarValue::Boolean(Some(true))),
                    ("conkey", attnum_list(&k.attnums)),
                ]))
            })
            .collect();
        batch_of(&self.schema, &rows)
    }
}

/// The crate's `pg_class` schema and `reloptions` (always NULL: OmenDB
/// keeps no storage options), which SQLAlchemy's index reflection reads.
fn with_reloptions(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("reloptions", ArrowType::new_list(ArrowType::Utf8, true), true));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` of the crate's `pg_class` as a batch of `schema`: `relhasindex`
/// set on `indexed`, `reloptions` added.
fn class_batch(batch: RecordBatch, schema: &SchemaRef, indexed: &HashSet<i32>) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    if let (Some(oids), Ok(at)) = (batch.column_by_name("oid"), batch.schema().index_of("relhasindex")) {
        let oids = as_int32_array(oids)?;
        let old = datafusion::common::cast::as_boolean_array(batch.column(at))?;
        columns[at] =
            Arc::new((0..batch.num_rows()).map(|i| Some(old.value(i) || indexed.contains(&oids.value(i)))).collect::<BooleanArray>());
    }
    for field in &schema.fields()[columns.len()..] {
        columns.push(arrow::array::new_null_array(field.data_type(), batch.num_rows()));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// `schema` with the `arrays` columns made arrays of their integer type
/// (PostgreSQL's `int2vector`, `oidvector` or `int2[]`, text in the crate),
/// so that `unnest` and `ANY` work on them. The vectors (`indkey`,
/// `indclass`) are marked [`VECTOR`]: PostgreSQL subscripts them from 0.
fn with_arrays(schema: SchemaRef, arrays: &[(&str, ArrowType)]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match arrays.iter().find(|(name, _)| name == f.name()) {
            Some((name, item)) => {
                let field = f.as_ref().clone().with_data_type(ArrowType::new_list(item.clone(), true));
                if name.starts_with("ind") { field.with_metadata([(VECTOR.to_owned(), "true".to_owned())].into()) } else { field }
            }
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn list(item: &ArrowType, values: &[ScalarValue]) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(values, item))
}

/// Attribute numbers as an `int2` array.
fn attnum_list(attnums: &[i16]) -> ScalarValue {
    list(&ArrowType::Int16, &attnums.iter().map(|&a| ScalarValue::Int16(Some(a))).collect::<Vec<_>>())
}

/// `pg_get_indexdef(oid [, column, pretty])` and
/// `pg_get_constraintdef(oid [, pretty])` over OmenDB's indexes and keys;
/// other OIDs give NULL. A column number other than 0 prints that key
/// column alone, as PostgreSQL does.
#[derive(Debug)]
struct Definition {
    name: &'static str,
    signature: Signature,
    rows: Store,
}

impl PartialEq for Definition {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Definition {}

impl std::hash::Hash for Definition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The two functions, over `rows`.
pub(crate) fn functions(rows: &Store) -> Vec<ScalarUDF> {
    ["pg_get_indexdef", "pg_get_constraintdef"]
        .into_iter()
        .map(|name| ScalarUDF::from(Definition { name, signature: Signature::variadic_any(Volatility::Stable), rows: rows.clone() }))
        .collect()
}

impl ScalarUDFImpl for Definition {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        let Some(oids) = arrays.first() else {
            return Err(DataFusionError::Plan(format!("{} takes an OID", self.name)));
        };
        let oids = arrow::compute::cast(oids, &ArrowType::Int32)?;
        let oids = as_int32_array(&oids)?;
        let columns = match (self.name, arrays.get(1)) {
            ("pg_get_indexdef", Some(c)) => Some(arrow::compute::cast(c, &ArrowType::Int32)?),
            _ => None,
        };
        let columns = columns.as_ref().map(|c| as_int32_array(c)).transpose()?;
        let keys = keys(&self.rows);
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let column = columns.filter(|c| c.is_valid(row)).map_or(0, |c| c.value(row));
            let text = oids.is_valid(row).then(|| oids.value(row)).and_then(|oid| match self.name {
                "pg_get_indexdef" => keys.iter().find(|k| k.oid() == oid).and_then(|k| match usize::try_from(column) {
                    Ok(0) => Some(k.index_def()),
                    Ok(n) => k.columns.get(n - 1).map(|c| quote(c)),
                    Err(_) => None,
                }),
                _ => keys.iter().find(|k| k.primary && k.constraint_oid() == oid).map(|k| format!("PRIMARY KEY ({})", k.quoted_columns())),
            });
            out.append_option(text);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_print_as_postgresql_prints_them() {
        assert_eq!(quote("orders_pkey"), "orders_pkey");
        assert_eq!(quote("Orders"), "\"Orders\"");
        assert_eq!(quote("1st"), "\"1st\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn oids_stay_in_31_bits_and_apart() {
        let last = oid(CONSTRAINT_OIDS, MAX_TABLE_ID - 1, 255);
        assert!(last > 0 && i64::from(last) < (1 << 31));
        assert!(i64::from(oid(INDEX_OIDS, MAX_TABLE_ID - 1, 255)) < CONSTRAINT_OIDS);
    }
}
