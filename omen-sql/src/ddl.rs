//! CREATE TABLE and DROP TABLE.

use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, CreateTableOptions, DataType as SqlType, ExactNumberInfo, Expr, Ident, ObjectName, ObjectType,
    Statement as SqlStatement, TableConstraint, TimezoneInfo, UnaryOperator,
};
use futures::TryStreamExt;
use omen_rowstore::{ColumnDef, DataType, TableSchema, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::session::Output;

pub(crate) async fn run(engine: &Engine, statement: SqlStatement) -> Result<Output> {
    match statement {
        SqlStatement::CreateTable(create) => create_table(engine, create).await,
        SqlStatement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => drop_tables(engine, names, if_exists),
        other => Err(Error::Unsupported(format!("DROP {}", other.to_string().split_whitespace().nth(1).unwrap_or_default()))),
    }
}

/// A column name as PostgreSQL (and DataFusion's planner) folds it:
/// unquoted names to lower case, quoted ones as written.
fn normalize_ident(ident: Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value,
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The table name of a DDL statement: bare, or qualified by `public`.
fn table_name(name: &ObjectName) -> Result<String> {
    let reference = object_name_to_table_reference(name.clone(), true)?;
    match reference.schema() {
        None | Some("public") if reference.catalog().is_none() => Ok(reference.table().to_owned()),
        _ => Err(Error::Unsupported(format!("schema-qualified name {name} (only the schema public exists)"))),
    }
}

async fn create_table(engine: &Engine, create: CreateTable) -> Result<Output> {
    let unsupported = [
        (create.or_replace, "CREATE OR REPLACE TABLE"),
        (create.temporary, "CREATE TEMPORARY TABLE"),
        (create.external, "CREATE EXTERNAL TABLE"),
        (create.query.is_some(), "CREATE TABLE ... AS SELECT"),
        (create.like.is_some(), "CREATE TABLE ... LIKE"),
        (create.clone.is_some(), "CREATE TABLE ... CLONE"),
        (create.inherits.is_some(), "CREATE TABLE ... INHERITS"),
        (create.partition_by.is_some() || create.partition_of.is_some(), "partitioned tables"),
        (!matches!(create.table_options, CreateTableOptions::None), "table options (WITH ...)"),
        (create.on_commit.is_some(), "CREATE TABLE ... ON COMMIT"),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
        return Err(Error::Unsupported((*what).into()));
    }
    let name = table_name(&create.name)?;
    if engine.rows.table(&name).is_some() {
        return if create.if_not_exists {
            Ok(Output::Command("CREATE TABLE"))
        } else {
            Err(Error::Plan(format!("relation {name:?} already exists")))
        };
    }

    let mut columns = Vec::with_capacity(create.columns.len());
    let mut primary_key: Option<Vec<usize>> = None;
    let mut set_key = |key: Vec<usize>| match primary_key.replace(key) {
        None => Ok(()),
        Some(_) => Err(Error::Plan(format!("multiple primary keys for table {name:?} are not allowed"))),
    };
    for (i, c) in create.columns.into_iter().enumerate() {
        let cname = normalize_ident(c.name);
        if cname == omen_colstore::KEY_COLUMN {
            return Err(Error::Plan(format!("column name {cname:?} is reserved")));
        }
        let data_type = sql_type(&c.data_type)?;
        let mut col = ColumnDef::new(cname, data_type);
        for option in c.options {
            match option.option {
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Null => col.nullable = true,
                ColumnOption::Default(expr) => col.default = Some(constant(engine, &expr, &data_type).await?),
                ColumnOption::PrimaryKey(_) => set_key(vec![i])?,
                other => return Err(Error::Unsupported(format!("column constraint {other}"))),
            }
        }
        columns.push(col);
    }
    for constraint in create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                let key = pk
                    .columns
                    .iter()
                    .map(|ic| match &ic.column.expr {
                        Expr::Identifier(ident) => {
                            let n = normalize_ident(ident.clone());
                            columns.iter().position(|c| c.name == n).ok_or(Error::UnknownColumn(n))
                        }
                        other => Err(Error::Unsupported(format!("primary key on expression {other}"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                set_key(key)?;
            }
            other => return Err(Error::Unsupported(format!("table constraint {other}"))),
        }
    }
    let primary_key = primary_key.unwrap_or_default();
    for &k in &primary_key {
        columns[k].nullable = false;
    }
    let schema = TableSchema { name, columns, primary_key };
    match engine.rows.create_table(schema) {
        Ok(_) => Ok(Output::Command("CREATE TABLE")),
        Err(omen_rowstore::Error::TableExists(_)) if create.if_not_exists => Ok(Output::Command("CREATE TABLE")),
        Err(e) => Err(e.into()),
    }
}

fn drop_tables(engine: &Engine, names: Vec<ObjectName>, if_exists: bool) -> Result<Output> {
    let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
    // Check every name first, so a bad one drops nothing.
    if !if_exists && let Some(missing) = names.iter().find(|n| engine.rows.table(n).is_none()) {
        return Err(Error::UnknownTable(missing.clone()));
    }
    for n in &names {
        match engine.rows.drop_table(n) {
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
async fn constant(engine: &Engine, expr: &Expr, ty: &DataType) -> Result<Value> {
    let is_constant = match expr {
        Expr::Value(_) | Expr::TypedString { .. } => true,
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => matches!(expr.as_ref(), Expr::Value(_)),
        Expr::Cast { expr, .. } => matches!(expr.as_ref(), Expr::Value(_)),
        _ => false,
    };
    if !is_constant {
        return Err(Error::Unsupported(format!("DEFAULT {expr}: only constant defaults are supported")));
    }
    let plan = engine.state.create_logical_plan(&format!("SELECT {expr}")).await?;
    let physical = engine.state.create_physical_plan(&plan).await?;
    let batches: Vec<_> = datafusion::physical_plan::execute_stream(physical, engine.state.task_ctx())?.try_collect().await?;
    let column = batches.first().map(|b| b.column(0)).ok_or_else(|| Error::Internal("DEFAULT produced no value".into()))?;
    let mut values = omen_sync::convert::array_to_values(column.as_ref(), ty).map_err(|e| Error::Plan(format!("DEFAULT {expr}: {e}")))?;
    Ok(values.swap_remove(0))
}
