//! Names as PostgreSQL treats them: identifiers folded and quoted
//! ([`normalize_ident`], [`table_name`], [`quote`]), and result column
//! names.
//!
//! ## Result column names
//!
//! DataFusion names an unaliased output column by its expression
//! (`count(*)`, `sum(orders.total)`, `Int64(1)`); PostgreSQL by a short
//! rule (its `FigureColname`): a column reference by the column, a
//! function call by the function, `CASE` as `case`, a cast by what it
//! casts (or else its type), anything else `?column?`. Clients read
//! columns by these names (psycopg's dict rows, ORMs), so a query's
//! results are renamed at the Arrow level after planning; the plan keeps
//! DataFusion's names, which must be unique.
//!
//! Queries with `*` keep DataFusion's names (they are the columns' own).

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{DataType, Expr, Ident, ObjectName, Query, SelectItem, SetExpr, Statement};

use crate::error::{Error, Result};

/// A column name as PostgreSQL (and DataFusion's planner) folds it:
/// unquoted names to lower case, quoted ones as written.
pub(crate) fn normalize_ident(ident: Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value,
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The table name of a DDL statement: bare, or qualified by `public`.
pub(crate) fn table_name(name: &ObjectName) -> Result<String> {
    let reference = object_name_to_table_reference(name.clone(), true)?;
    match reference.schema() {
        None | Some("public") if reference.catalog().is_none() => Ok(reference.table().to_owned()),
        _ => Err(Error::Unsupported(format!("schema-qualified name {name} (only the schema public exists)"))),
    }
}

/// An identifier quoted for SQL text.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's name for each output column of `statement`, if it is a
/// query whose columns can be named without planning (no `*`); `None` for
/// columns whose DataFusion name is already PostgreSQL's (aliases, bare
/// columns), and `None` in all if no column needs renaming, so such
/// queries (most point reads) pass through untouched.
pub(crate) fn of_statement(statement: &DfStatement) -> Option<Vec<Option<String>>> {
    let names = match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => of_query(q)?,
            _ => return None,
        },
        _ => return None,
    };
    names.iter().any(Option::is_some).then_some(names)
}

fn of_query(query: &Query) -> Option<Vec<Option<String>>> {
    of_set_expr(&query.body)
}

fn of_set_expr(body: &SetExpr) -> Option<Vec<Option<String>>> {
    match body {
        SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) | SelectItem::ExprWithAlias { .. } => Some(None),
                SelectItem::UnnamedExpr(e) => Some(Some(name_of(e).unwrap_or_else(|| "?column?".to_owned()))),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) | SelectItem::ExprWithAliases { .. } => None,
            })
            .collect(),
        // As PostgreSQL: a set operation's columns are named by its first
        // branch.
        SetExpr::SetOperation { left, .. } => of_set_expr(left),
        SetExpr::Query(q) => of_query(q),
        _ => None,
    }
}

/// The name PostgreSQL gives `e`, or `None` where it says `?column?`.
fn name_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(normalize_ident(i.clone())),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| normalize_ident(i.clone())),
        Expr::Function(f) => last_name(&f.name),
        Expr::Nested(e) => name_of(e),
        Expr::Case { .. } => Some("case".to_owned()),
        Expr::Exists { .. } => Some("exists".to_owned()),
        Expr::Cast { expr, data_type, .. } => name_of(expr).or_else(|| Some(type_name(data_type))),
        _ => None,
    }
}

fn last_name(name: &ObjectName) -> Option<String> {
    name.0.last().and_then(|p| p.as_ident()).map(|i| normalize_ident(i.clone()))
}

/// PostgreSQL's internal name of a cast's target type, for the common ones.
fn type_name(t: &DataType) -> String {
    let written = t.to_string().to_ascii_lowercase();
    let base = written.split('(').next().unwrap_or_default().trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "decimal" | "numeric" => "numeric",
        "character varying" | "varchar" => "varchar",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// `schema` with the fields `names` gives renamed; unchanged if the counts
/// differ (the names were worked out for another shape).
pub(crate) fn rename(schema: &SchemaRef, names: &[Option<String>]) -> SchemaRef {
    if names.len() != schema.fields().len() {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(f, n)| match n {
            Some(n) => f.as_ref().clone().with_name(n),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Option<Vec<Option<String>>> {
        let statement = datafusion::sql::parser::DFParser::parse_sql(sql).unwrap().pop_front().unwrap();
        of_statement(&statement)
    }

    #[test]
    fn names_follow_postgres() {
        let got = names("SELECT count(*), t.v, V, \"Q\", sum(v) AS total, 1, v + 1, CASE WHEN v THEN 1 END, CAST(v AS INT), 2::bigint, (upper(s)) FROM t").unwrap();
        let expect = ["count", "", "", "", "", "?column?", "?column?", "case", "v", "int8", "upper"];
        let got: Vec<String> = got.into_iter().map(Option::unwrap_or_default).collect();
        assert_eq!(got, expect);
        assert_eq!(names("SELECT upper(a) FROM t UNION SELECT count(*) FROM u").unwrap(), [Some("upper".to_owned())]);
        assert_eq!(names("SELECT a, t.b AS c FROM t"), None);
        assert_eq!(names("SELECT *, count(*) FROM t"), None);
        assert_eq!(names("INSERT INTO t VALUES (1)"), None);
    }
}
