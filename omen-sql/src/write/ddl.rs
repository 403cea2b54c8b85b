//! CREATE TABLE, CREATE INDEX, and DROP of either.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType as ArrowType;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef as SqlColumnDef, ColumnOption, CreateIndex, CreateTable, CreateTableOptions,
    DataType as SqlType, ExactNumberInfo, Expr, IndexColumn, IndexType, ObjectName, ObjectType, Query, RenameTableNameKind, SqlOption,
    Statement as SqlStatement, TableConstraint, TimezoneInfo, UnaryOperator,
};
use futures::TryStreamExt;
use omen_rowstore::{Alteration, ColumnDef, DataType, IndexDef, TableSchema, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::names::{normalize_ident, table_name};
use crate::output::Output;
use crate::plan::memory::task_ctx;
use crate::plan::query;
use crate::write::dml::insert_batches;

pub(crate) async fn run(ctx: &Context, statement: SqlStatement) -> Result<Output> {
    match statement {
        SqlStatement::CreateTable(create) => create_table(ctx, create).await,
        SqlStatement::CreateIndex(create) => create_index(ctx, create),
        SqlStatement::AlterTable(alter) => alter_table(ctx, alter).await,
        SqlStatement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => drop_tables(ctx, names, if_exists),
        SqlStatement::Drop { object_type: ObjectType::Index, if_exists, names, .. } => drop_indexes(ctx, names, if_exists),
        other => Err(Error::Unsupported(format!("DROP {}", other.to_string().split_whitespace().nth(1).unwrap_or_default()))),
    }
}

async fn create_table(ctx: &Context, create: CreateTable) -> Result<Output> {
    let unsupported = [
        (create.or_replace, "CREATE OR REPLACE TABLE"),
        (create.temporary, "CREATE TEMPORARY TABLE"),
        (create.external, "CREATE EXTERNAL TABLE"),
        (create.query.is_some() && !create.columns.is_empty(), "a column list in CREATE TABLE ... AS SELECT"),
        (create.like.is_some(), "CREATE TABLE ... LIKE"),
        (create.clone.is_some(), "CREATE TABLE ... CLONE"),
        (create.inherits.is_some(), "CREATE TABLE ... INHERITS"),
        (create.partition_by.is_some() || create.partition_of.is_some(), "partitioned tables"),
        (create.on_commit.is_some(), "CREATE TABLE ... ON COMMIT"),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
        return Err(Error::Unsupported((*what).into()));
    }
    storage_parameters(&create.table_options)?;
    let name = table_name(&create.name)?;
    if ctx.rows.table(&name).is_some() {
        return if create.if_not_exists { Ok(Output::Command("CREATE TABLE")) } else { Err(Error::DuplicateRelation(name)) };
    }

    if let Some(query) = create.query {
        return create_table_as(ctx, name, *query).await;
    }

    let mut columns = Vec::with_capacity(create.columns.len());
    // UNIQUE constraints: (constraint name, column names), built as unique indexes.
    let mut uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut primary_key: Option<Vec<usize>> = None;
    let mut set_key = |key: Vec<usize>| match primary_key.replace(key) {
        None => Ok(()),
        Some(_) => Err(Error::Plan(format!("multiple primary keys for table {name:?} are not allowed"))),
    };
    for (i, c) in create.columns.into_iter().enumerate() {
        let column = column(ctx, c).await?;
        if column.primary_key {
            set_key(vec![i])?;
        }
        if let Some(name) = column.unique {
            uniques.push((name, vec![column.def.name.clone()]));
        }
        columns.push(column.def);
    }
    for constraint in create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                let names = column_names(&pk.columns, "primary key")?;
                let key = names
                    .into_iter()
                    .map(|n| columns.iter().position(|c| c.name == n).ok_or(Error::UnknownColumn(n)))
                    .collect::<Result<_>>()?;
                set_key(key)?;
            }
            TableConstraint::Unique(u) => uniques.push((u.name.map(normalize_ident), column_names(&u.columns, "unique constraint")?)),
            other => return Err(Error::Unsupported(format!("table constraint {other}"))),
        }
    }
    let primary_key = primary_key.unwrap_or_default();
    for &k in &primary_key {
        columns[k].nullable = false;
    }
    let schema = TableSchema { name, columns, primary_key };
    // Check the constraints before creating anything, so a bad one leaves no table.
    let mut indexes: Vec<IndexDef> = Vec::with_capacity(uniques.len());
    for (constraint, names) in uniques {
        let columns =
            names.iter().map(|n| schema.column_index(n).ok_or_else(|| Error::UnknownColumn(n.clone()))).collect::<Result<Vec<_>>>()?;
        // PostgreSQL's name for the index behind a UNIQUE constraint.
        let name = constraint.unwrap_or_else(|| index_name(ctx, &schema.name, &names, "key", &indexes));
        if indexes.iter().any(|i| i.name == name) || ctx.rows.index_exists(&name) {
            return Err(Error::DuplicateRelation(name));
        }
        indexes.push(IndexDef { name, columns, unique: true });
    }
    let table = schema.name.clone();
    match ctx.rows.create_table(schema) {
        Ok(_) => {}
        Err(omen_rowstore::Error::TableExists(_)) if create.if_not_exists => return Ok(Output::Command("CREATE TABLE")),
        Err(e) => return Err(e.into()),
    }
    for def in indexes {
        if let Err(e) = ctx.rows.create_index(&table, def) {
            // The table is new and empty: only a concurrent DDL can get here.
            let _ = ctx.rows.drop_table(&table);
            return Err(e.into());
        }
    }
    Ok(Output::Command("CREATE TABLE"))
}

/// A column of CREATE TABLE or ALTER TABLE ADD COLUMN.
struct Column {
    def: ColumnDef,
    primary_key: bool,
    /// A UNIQUE constraint, and its name if it has one.
    unique: Option<Option<String>>,
}

async fn column(ctx: &Context, c: SqlColumnDef) -> Result<Column> {
    let name = normalize_ident(c.name);
    if name == omen_colstore::KEY_COLUMN {
        return Err(Error::Plan(format!("column name {name:?} is reserved")));
    }
    let data_type = sql_type(&c.data_type)?;
    let mut column = Column { def: ColumnDef::new(name, data_type), primary_key: false, unique: None };
    for option in c.options {
        match option.option {
            ColumnOption::NotNull => column.def.nullable = false,
            ColumnOption::Null => column.def.nullable = true,
            ColumnOption::Default(expr) => column.def.default = Some(constant(ctx, &expr, &data_type).await?),
            ColumnOption::PrimaryKey(_) => column.primary_key = true,
            ColumnOption::Unique(u) => column.unique = Some(u.name.map(normalize_ident)),
            other => return Err(Error::Unsupported(format!("column constraint {other}"))),
        }
    }
    Ok(column)
}

/// ALTER TABLE [IF EXISTS] name with ADD COLUMN, DROP COLUMN, RENAME
/// COLUMN and RENAME TO operations, applied together by one rewrite of
/// the table (see `omen_rowstore::Alteration`).
async fn alter_table(ctx: &Context, alter: AlterTable) -> Result<Output> {
    const TAG: &str = "ALTER TABLE";
    let name = table_name(&alter.name)?;
    let Some((_, schema)) = ctx.rows.table(&name) else {
        return if alter.if_exists { Ok(Output::Command(TAG)) } else { Err(Error::UnknownTable(name)) };
    };
    // Column names as the operations before each one leave them, for IF
    // [NOT] EXISTS.
    let mut names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let mut alterations = Vec::with_capacity(alter.operations.len());
    for op in alter.operations {
        match op {
            AlterTableOperation::AddColumn { if_not_exists, column_def, column_position: None, .. } => {
                let column = column(ctx, column_def).await?;
                if column.primary_key || column.unique.is_some() {
                    return Err(Error::Unsupported("PRIMARY KEY or UNIQUE in ADD COLUMN: add the column, then CREATE UNIQUE INDEX".into()));
                }
                if if_not_exists && names.contains(&column.def.name) {
                    continue;
                }
                names.push(column.def.name.clone());
                alterations.push(Alteration::AddColumn(column.def));
            }
            AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                for ident in column_names {
                    let column = normalize_ident(ident);
                    if if_exists && !names.contains(&column) {
                        continue;
                    }
                    names.retain(|n| *n != column);
                    alterations.push(Alteration::DropColumn(column));
                }
            }
            AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                let (from, to) = (normalize_ident(old_column_name), normalize_ident(new_column_name));
                if to == omen_colstore::KEY_COLUMN {
                    return Err(Error::Plan(format!("column name {to:?} is reserved")));
                }
                names.iter_mut().filter(|n| **n == from).for_each(|n| n.clone_from(&to));
                alterations.push(Alteration::RenameColumn { from, to });
            }
            AlterTableOperation::AddConstraint { constraint: TableConstraint::PrimaryKey(pk), .. } => {
                let columns = column_names(&pk.columns, "primary key")?;
                alterations.push(Alteration::AddPrimaryKey(columns));
            }
            AlterTableOperation::RenameTable { table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to) } => {
                let to = table_name(&to)?;
                if ctx.rows.index_exists(&to) {
                    return Err(Error::DuplicateRelation(to));
                }
                alterations.push(Alteration::RenameTable(to));
            }
            other => return Err(Error::Unsupported(format!("ALTER TABLE ... {other}"))),
        }
    }
    if !alterations.is_empty() {
        ctx.rows.alter_table(&name, &alterations)?;
    }
    Ok(Output::Command(TAG))
}

/// CREATE TABLE name AS query: a table without a primary key whose columns
/// are the query's, holding its rows. The rows are read at one snapshot and
/// written in one transaction; if that fails, the table is dropped again.
async fn create_table_as(ctx: &Context, name: String, query: Query) -> Result<Output> {
    let plan = query::plan(ctx, DfStatement::Statement(Box::new(SqlStatement::Query(Box::new(query)))), None).await?;
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(plan.plan.schema().fields().len());
    for field in plan.plan.schema().fields() {
        if columns.iter().any(|c| c.name == *field.name()) {
            return Err(Error::Plan(format!("column {:?} specified more than once", field.name())));
        }
        columns.push(ColumnDef::new(field.name().clone(), column_type(field.data_type())?));
    }
    let schema = TableSchema { name: name.clone(), columns, primary_key: Vec::new() };
    schema.validate()?;
    let batches: Vec<RecordBatch> = {
        let txn = ctx.rows.begin()?;
        plan.execute(ctx, &plan.plan, &txn, &[]).await?.try_collect().await?
    };
    ctx.rows.create_table(schema)?;
    match insert_batches(ctx, &name, &batches) {
        Ok(rows) => Ok(Output::Affected { tag: "SELECT", rows }),
        Err(e) => {
            let _ = ctx.rows.drop_table(&name);
            Err(e)
        }
    }
}

/// The OmenDB type that holds a query's column of Arrow type `t`.
fn column_type(t: &ArrowType) -> Result<DataType> {
    Ok(match t {
        ArrowType::Boolean => DataType::Bool,
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => DataType::Int16,
        ArrowType::Int32 | ArrowType::UInt16 => DataType::Int32,
        ArrowType::Int64 | ArrowType::UInt32 => DataType::Int64,
        ArrowType::UInt64 => DataType::Decimal { precision: 20, scale: 0 },
        ArrowType::Float16 | ArrowType::Float32 => DataType::Float32,
        ArrowType::Float64 => DataType::Float64,
        ArrowType::Decimal128(p, s) if *p <= 38 && *s >= 0 => DataType::Decimal { precision: *p, scale: *s },
        // An untyped NULL column is TEXT, as PostgreSQL resolves `unknown`.
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View | ArrowType::Null => DataType::Text,
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView | ArrowType::FixedSizeBinary(_) => DataType::Bytes,
        ArrowType::Date32 => DataType::Date,
        ArrowType::Timestamp(_, None) => DataType::Timestamp,
        ArrowType::Timestamp(_, Some(_)) => DataType::TimestampTz,
        ArrowType::Dictionary(_, value) => column_type(value)?,
        other => return Err(Error::Unsupported(format!("a column of type {other} in CREATE TABLE ... AS SELECT"))),
    })
}

/// `WITH (fillfactor = n)`, which PostgreSQL schemas (pgbench's among
/// them) carry: accepted when valid, with no effect, since the row store
/// keeps no pages to leave room in. Other table options are refused.
fn storage_parameters(options: &CreateTableOptions) -> Result<()> {
    let options = match options {
        CreateTableOptions::None => return Ok(()),
        CreateTableOptions::With(options) => options,
        other => return Err(Error::Unsupported(format!("table options {other}"))),
    };
    for option in options {
        let fillfactor = match option {
            SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("fillfactor") => value.to_string().parse::<u32>().ok(),
            other => return Err(Error::Unsupported(format!("table option {other} (only fillfactor is accepted)"))),
        };
        if !fillfactor.is_some_and(|f| (10..=100).contains(&f)) {
            return Err(Error::Plan(format!("invalid value for fillfactor in {option}: an integer from 10 to 100")));
        }
    }
    Ok(())
}

/// The column names of a key or index definition; expressions are not
/// supported.
fn column_names(columns: &[IndexColumn], what: &str) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|ic| match &ic.column.expr {
            Expr::Identifier(ident) if ic.operator_class.is_none() => Ok(normalize_ident(ident.clone())),
            other => Err(Error::Unsupported(format!("{what} on expression {other}"))),
        })
        .collect()
}

/// PostgreSQL's generated name for an index: `table_col1_col2_suffix`,
/// numbered from 1 while the name is taken.
fn index_name(ctx: &Context, table: &str, columns: &[String], suffix: &str, pending: &[IndexDef]) -> String {
    let base = format!("{table}_{}_{suffix}", columns.join("_"));
    let taken = |n: &str| ctx.rows.index_exists(n) || ctx.rows.table(n).is_some() || pending.iter().any(|i| i.name == n);
    let mut name = base.clone();
    let mut i = 0;
    while taken(&name) {
        i += 1;
        name = format!("{base}{i}");
    }
    name
}

/// CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON table [USING btree] (columns).
fn create_index(ctx: &Context, create: CreateIndex) -> Result<Output> {
    let unsupported = [
        (create.predicate.is_some(), "partial indexes (CREATE INDEX ... WHERE)"),
        (!create.include.is_empty(), "CREATE INDEX ... INCLUDE"),
        (!create.with.is_empty() || !create.index_options.is_empty() || !create.alter_options.is_empty(), "index options"),
        (create.nulls_distinct == Some(false), "NULLS NOT DISTINCT"),
        (create.using.as_ref().is_some_and(|u| !matches!(u, IndexType::BTree)), "index methods other than btree"),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
        return Err(Error::Unsupported((*what).into()));
    }
    let table = table_name(&create.table_name)?;
    let (_, schema) = ctx.rows.table(&table).ok_or_else(|| Error::UnknownTable(table.clone()))?;
    let names = column_names(&create.columns, "index")?;
    let columns =
        names.iter().map(|n| schema.column_index(n).ok_or_else(|| Error::UnknownColumn(n.clone()))).collect::<Result<Vec<_>>>()?;
    let name = match &create.name {
        Some(name) => table_name(name)?,
        None => index_name(ctx, &table, &names, "idx", &[]),
    };
    if ctx.rows.index_exists(&name) || ctx.rows.table(&name).is_some() {
        return if create.if_not_exists { Ok(Output::Command("CREATE INDEX")) } else { Err(Error::DuplicateRelation(name)) };
    }
    match ctx.rows.create_index(&table, IndexDef { name, columns, unique: create.unique }) {
        Ok(_) => Ok(Output::Command("CREATE INDEX")),
        Err(omen_rowstore::Error::IndexExists(_)) if create.if_not_exists => Ok(Output::Command("CREATE INDEX")),
        Err(e) => Err(e.into()),
    }
}

fn drop_indexes(ctx: &Context, names: Vec<ObjectName>, if_exists: bool) -> Result<Output> {
    let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
    if !if_exists && let Some(missing) = names.iter().find(|n| !ctx.rows.index_exists(n)) {
        return Err(Error::UnknownIndex(missing.clone()));
    }
    for n in &names {
        match ctx.rows.drop_index(n) {
            Ok(()) | Err(omen_rowstore::Error::UnknownIndex(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Output::Command("DROP INDEX"))
}

fn drop_tables(ctx: &Context, names: Vec<ObjectName>, if_exists: bool) -> Result<Output> {
    let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
    // Check every name first, so a bad one drops nothing.
    if !if_exists && let Some(missing) = names.iter().find(|n| ctx.rows.table(n).is_none()) {
        return Err(Error::UnknownTable(missing.clone()));
    }
    for n in &names {
        match ctx.rows.drop_table(n) {
            Ok(_) | Err(omen_rowstore::Error::UnknownTable(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Output::Command("DROP TABLE"))
}

/// The OmenDB type of a SQL type name.
///
/// VARCHAR(n) and CHAR(n) are held as TEXT: the length is not enforced and
/// CHAR is not blank-padded (documented in the crate's limits).
fn sql_type(t: &SqlType) -> Result<DataType> {
    Ok(match t {
        SqlType::Boolean | SqlType::Bool => DataType::Bool,
        SqlType::SmallInt(_) | SqlType::Int2(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => DataType::Int32,
        SqlType::BigInt(_) | SqlType::Int8(_) => DataType::Int64,
        SqlType::Real | SqlType::Float4 => DataType::Float32,
        SqlType::DoublePrecision | SqlType::Float8 | SqlType::Double(ExactNumberInfo::None) => DataType::Float64,
        SqlType::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => DataType::Float32,
        SqlType::Float(_) => DataType::Float64,
        SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => {
            let (precision, scale) = match *info {
                // DataFusion's choice for an unconstrained NUMERIC.
                ExactNumberInfo::None => (38, 10),
                ExactNumberInfo::Precision(p) => (p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
            };
            match (u8::try_from(precision), i8::try_from(scale)) {
                (Ok(p @ 1..=38), Ok(s)) if i64::from(s) <= i64::from(p) => DataType::Decimal { precision: p, scale: s },
                _ => return Err(Error::Unsupported(format!("{t}: NUMERIC precision must be 1..=38 and scale at most the precision"))),
            }
        }
        SqlType::Text
        | SqlType::String(_)
        | SqlType::Varchar(_)
        | SqlType::CharacterVarying(_)
        | SqlType::CharVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_) => DataType::Text,
        SqlType::Bytea => DataType::Bytes,
        SqlType::Date => DataType::Date,
        SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => DataType::Timestamp,
        SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => DataType::TimestampTz,
        other => return Err(Error::Unsupported(format!("type {other}"))),
    })
}

/// Evaluates a DEFAULT. Only constants are accepted: a default such as
/// `now()` must be evaluated per insert, which this version does not do.
async fn constant(ctx: &Context, expr: &Expr, ty: &DataType) -> Result<Value> {
    let is_constant = match expr {
        Expr::Value(_) | Expr::TypedString { .. } => true,
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => matches!(expr.as_ref(), Expr::Value(_)),
        Expr::Cast { expr, .. } => matches!(expr.as_ref(), Expr::Value(_)),
        _ => false,
    };
    if !is_constant {
        return Err(Error::Unsupported(format!("DEFAULT {expr}: only constant defaults are supported")));
    }
    let plan = ctx.state.create_logical_plan(&format!("SELECT {expr}")).await?;
    let physical = ctx.state.create_physical_plan(&plan).await?;
    let batches: Vec<_> = datafusion::physical_plan::execute_stream(physical, task_ctx(ctx, &ctx.state))?.try_collect().await?;
    let column = batches.first().map(|b| b.column(0)).ok_or_else(|| Error::Internal("DEFAULT produced no value".into()))?;
    let mut values = omen_sync::convert::array_to_values(column.as_ref(), ty).map_err(|e| Error::Plan(format!("DEFAULT {expr}: {e}")))?;
    Ok(values.swap_remove(0))
}
