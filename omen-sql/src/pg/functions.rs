//! PostgreSQL functions that drivers call and `datafusion-pg-catalog`
//! does not provide: `version()`, `to_regtype()`, `current_setting()`,
//! `pg_get_serial_sequence()`, `pg_collation_is_visible()` and
//! `json_build_object()` (SQLAlchemy's reflection queries use the last
//! four), and `_pg_expandarray()` and `pg_subscript()` (JDBC's key and
//! index metadata).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, Int32Array, ListArray, StringArray, StringBuilder, StructArray};
use arrow::datatypes::{DataType as ArrowType, Field};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf};
use postgres_types::Type;

/// The functions, to register in each session's context.
pub(crate) fn all() -> Vec<ScalarUDF> {
    [
        version(),
        to_regtype(),
        current_setting(),
        pg_get_serial_sequence(),
        pg_collation_is_visible(),
        ScalarUDF::from(JsonBuildObject::new()),
        ScalarUDF::from(ExpandArray::new()),
        ScalarUDF::from(Subscript::new()),
        pg_size_pretty(),
        constant("obj_description", vec![ArrowType::Int32, ArrowType::Utf8], ScalarValue::Utf8(None)),
    ]
    .into_iter()
    .chain(
        // Sizes OmenDB does not track per relation: NULL, not a made-up 0
        // (psql's \dt+ shows them blank).
        ["pg_table_size", "pg_relation_size", "pg_total_relation_size", "pg_indexes_size"]
            .map(|name| constant(name, vec![ArrowType::Int32], ScalarValue::Int64(None))),
    )
    .collect()
}

/// `version()`: drivers (SQLAlchemy, JDBC) read PostgreSQL's version from it.
fn version() -> ScalarUDF {
    let text =
        format!("PostgreSQL {} (OmenDB {}) on {}", crate::pg::settings::SERVER_VERSION, env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
    create_udf(
        "version",
        vec![],
        ArrowType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![text.clone()]))))),
    )
}

/// `current_setting(name)`: the setting's default value. Plans are shared
/// between sessions, so a session's own `SET` does not show here (`SHOW
/// name` gives it); an unknown name is an error.
fn current_setting() -> ScalarUDF {
    let defaults = crate::pg::settings::Settings::default();
    of_text("current_setting", ArrowType::Utf8, move |name| {
        let value =
            defaults.get(name).ok_or_else(|| DataFusionError::Execution(format!("unrecognized configuration parameter \"{name}\"")))?;
        Ok(ScalarValue::Utf8(Some(value)))
    })
}

/// A function of one text argument, `f` applied to each non-NULL value.
fn of_text(
    name: &str,
    returns: ArrowType,
    f: impl Fn(&str) -> datafusion::error::Result<ScalarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    create_udf(
        name,
        vec![ArrowType::Utf8],
        returns.clone(),
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let null = ScalarValue::try_from(&returns)?;
            let apply = |text: Option<&str>| text.map_or_else(|| Ok(null.clone()), &f);
            Ok(match &args[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(text)) => ColumnarValue::Scalar(apply(text.as_deref())?),
                ColumnarValue::Scalar(_) => ColumnarValue::Scalar(null.clone()),
                ColumnarValue::Array(a) if a.is_empty() => ColumnarValue::Array(arrow::array::new_empty_array(&returns)),
                ColumnarValue::Array(a) => {
                    let values =
                        datafusion::common::cast::as_string_array(a)?.iter().map(apply).collect::<datafusion::error::Result<Vec<_>>>()?;
                    ColumnarValue::Array(ScalarValue::iter_to_array(values)?)
                }
            })
        }),
    )
}

/// `pg_size_pretty(bytes)`: PostgreSQL's rendering, in bytes below 10 kB,
/// then kB, MB, GB, TB and PB, each rounded half away from zero.
fn pg_size_pretty() -> ScalarUDF {
    create_udf(
        "pg_size_pretty",
        vec![ArrowType::Int64],
        ArrowType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = args.iter().find_map(|a| if let ColumnarValue::Array(a) = a { Some(a.len()) } else { None }).unwrap_or(1);
            let sizes = args[0].to_array(rows)?;
            let sizes = datafusion::common::cast::as_int64_array(&sizes)?;
            let out: StringArray = sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// PostgreSQL's `pg_size_pretty` on one value.
fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if bytes.unsigned_abs() < LIMIT.unsigned_abs() {
        return format!("{bytes} bytes");
    }
    // One extra bit kept for the rounding.
    let mut size = bytes / (1 << 9);
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.unsigned_abs() < LIMIT2.unsigned_abs() {
            return format!("{} {unit}", half_rounded(size));
        }
        size /= 1 << 10;
    }
    format!("{} PB", half_rounded(size))
}

/// `pg_get_serial_sequence(table, column)`: always NULL, as OmenDB has no
/// sequences (SQLAlchemy asks it for every column it reflects).
fn pg_get_serial_sequence() -> ScalarUDF {
    constant("pg_get_serial_sequence", vec![ArrowType::Utf8, ArrowType::Utf8], ScalarValue::Utf8(None))
}

/// `pg_collation_is_visible(oid)`: true, as every collation OmenDB lists
/// is in `pg_catalog`, which is always on the search path.
fn pg_collation_is_visible() -> ScalarUDF {
    constant("pg_collation_is_visible", vec![ArrowType::Int32], ScalarValue::Boolean(Some(true)))
}

/// A function of `args` whose value is always `value`.
fn constant(name: &str, args: Vec<ArrowType>, value: ScalarValue) -> ScalarUDF {
    create_udf(
        name,
        args,
        value.data_type(),
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let rows = args.iter().find_map(|a| match a {
                ColumnarValue::Array(a) => Some(a.len()),
                ColumnarValue::Scalar(_) => None,
            });
            Ok(match rows {
                Some(rows) => ColumnarValue::Array(value.to_array_of_size(rows)?),
                None => ColumnarValue::Scalar(value.clone()),
            })
        }),
    )
}

/// `to_regtype(name)`: the OID of a built-in type by its name or SQL
/// spelling, NULL for others (psycopg looks types up with it).
fn to_regtype() -> ScalarUDF {
    of_text("to_regtype", ArrowType::Int32, |name| Ok(ScalarValue::Int32(type_oid(name))))
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

/// `json_build_object(key, value, ...)`: a JSON object as text, values
/// rendered as JSON (numbers and booleans bare, NULL as null, the rest as
/// strings).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(datafusion::error::DataFusionError::Plan(
                "json_build_object takes key/value pairs: an even number of arguments".into(),
            ));
        }
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(rows)).collect::<datafusion::error::Result<_>>()?;
        let options = FormatOptions::default();
        let formatters: Vec<ArrayFormatter> =
            arrays.iter().map(|a| ArrayFormatter::try_new(a.as_ref(), &options)).collect::<Result<_, _>>()?;
        let mut out = StringBuilder::new();
        let mut text = String::new();
        for row in 0..rows {
            text.clear();
            text.push('{');
            for (pair, (array, formatter)) in arrays.chunks(2).zip(formatters.chunks(2)).enumerate() {
                if pair > 0 {
                    text.push_str(", ");
                }
                if is_null(&array[0], row) {
                    return Err(datafusion::error::DataFusionError::Execution("json_build_object: a key is NULL".into()));
                }
                push_json_string(&mut text, &formatter[0].value(row).to_string());
                text.push_str(" : ");
                let value = &array[1];
                if is_null(value, row) {
                    text.push_str("null");
                } else if value.data_type().is_numeric() || *value.data_type() == ArrowType::Boolean {
                    text.push_str(&formatter[1].value(row).to_string());
                } else {
                    push_json_string(&mut text, &formatter[1].value(row).to_string());
                }
            }
            text.push('}');
            out.append_value(&text);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `_pg_expandarray(array)`: the elements with their 1-based positions,
/// as a list of `{x, n}` structs. PostgreSQL's (in `information_schema`)
/// returns a set; `pg_catalog::parse` wraps the call in `unnest`, which
/// gives the same rows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }

    fn fields(item: &Field) -> arrow::datatypes::Fields {
        vec![Field::new("x", item.data_type().clone(), true), Field::new("n", ArrowType::Int32, false)].into()
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        match args.first() {
            Some(ArrowType::List(item)) => Ok(ArrowType::new_list(ArrowType::Struct(Self::fields(item)), true)),
            other => Err(DataFusionError::Plan(format!("_pg_expandarray takes an array, not {other:?}"))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let lists = datafusion::common::cast::as_list_array(&array)?;
        let ArrowType::List(item) = lists.data_type() else {
            return Err(DataFusionError::Internal("_pg_expandarray over a non-list".into()));
        };
        let offsets = lists.value_offsets();
        let positions: Int32Array = offsets.windows(2).flat_map(|w| 1..=(w[1] - w[0])).collect();
        let first = usize::try_from(offsets[0]).unwrap_or(0);
        let values = lists.values().slice(first, positions.len());
        let structs = StructArray::try_new(Self::fields(item), vec![values, Arc::new(positions)], None)?;
        let rebased = arrow::buffer::OffsetBuffer::new(offsets.iter().map(|o| o - offsets[0]).collect::<Vec<_>>().into());
        let out = ListArray::try_new(
            Arc::new(Field::new_list_field(structs.data_type().clone(), true)),
            rebased,
            Arc::new(structs),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_subscript(value, i)`: `value[i]` in catalog queries, which
/// `pg_catalog::parse` rewrites to it. An array is indexed from 1, but
/// from 0 where it stands for PostgreSQL's `int2vector`/`oidvector`
/// (`pg_indexes::VECTOR`: `indkey`, `indclass`); text is such a vector as
/// OmenDB's catalogs print it (`"0 0"`, what SQLAlchemy reads), indexed
/// from 0 too (JDBC reads `indoption[n - 1]`). Out of range gives NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Subscript {
    signature: Signature,
}

impl Subscript {
    fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Subscript {
    fn name(&self) -> &str {
        "pg_subscript"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        match args.first() {
            Some(ArrowType::List(item)) => Ok(item.data_type().clone()),
            Some(ArrowType::Utf8 | ArrowType::Null) => Ok(ArrowType::Int64),
            other => Err(DataFusionError::Plan(format!("cannot subscript {other:?}"))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let values = args.args[0].to_array(rows)?;
        let index = arrow::compute::cast(&args.args[1].to_array(rows)?, &ArrowType::Int64)?;
        let index = datafusion::common::cast::as_int64_array(&index)?;
        let at = |row: usize| index.is_valid(row).then(|| index.value(row));
        let out: ArrayRef = match values.data_type() {
            ArrowType::List(item) => {
                let first = if args.arg_fields[0].metadata().contains_key(crate::pg::indexes::VECTOR) { 0 } else { 1 };
                let lists = datafusion::common::cast::as_list_array(&values)?;
                let null = ScalarValue::try_from(item.data_type())?;
                let picked = (0..rows)
                    .map(|row| match (lists.is_valid(row), at(row)) {
                        (true, Some(i)) if i >= first && i - first < lists.value_length(row).into() => {
                            ScalarValue::try_from_array(&lists.value(row), usize::try_from(i - first).unwrap_or(0))
                        }
                        _ => Ok(null.clone()),
                    })
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                if picked.is_empty() { arrow::array::new_empty_array(item.data_type()) } else { ScalarValue::iter_to_array(picked)? }
            }
            _ => {
                let texts = arrow::compute::cast(&values, &ArrowType::Utf8)?;
                let texts = datafusion::common::cast::as_string_array(&texts)?;
                Arc::new(
                    (0..rows)
                        .map(|row| {
                            let i = usize::try_from(at(row)?).ok()?;
                            texts.is_valid(row).then(|| texts.value(row).split_whitespace().nth(i)?.parse::<i64>().ok()).flatten()
                        })
                        .collect::<arrow::array::Int64Array>(),
                )
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Whether `array` holds NULL at `row` (a NULL literal's array has no
/// validity bitmap, only logical nulls).
fn is_null(array: &ArrayRef, row: usize) -> bool {
    array.logical_nulls().is_some_and(|nulls| nulls.is_null(row))
}

/// `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_resolve_in_both_spellings() {
        assert_eq!(type_oid("numeric"), Some(1700));
        assert_eq!(type_oid("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid("Double Precision"), Some(701));
        assert_eq!(type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid("no_such_type"), None);
    }

    #[tokio::test]
    async fn json_build_object_renders_postgresql_text() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(ScalarUDF::from(JsonBuildObject::new()));
        let batches = ctx
            .sql("SELECT json_build_object('n', 1, 's', 'a\"b', 'z', NULL, 't', true, 'f', 1.5) AS j")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::common::cast::as_string_array(batches[0].column(0)).unwrap().value(0).to_owned();
        assert_eq!(text, r#"{"n" : 1, "s" : "a\"b", "z" : null, "t" : true, "f" : 1.5}"#);
        let odd = ctx.sql("SELECT json_build_object('n')").await.unwrap().collect().await;
        assert!(odd.is_err(), "an odd number of arguments is refused");
    }

    #[tokio::test]
    async fn current_setting_gives_defaults_and_refuses_unknown_names() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(current_setting());
        let batches = ctx.sql("SELECT current_setting('default_table_access_method')").await.unwrap().collect().await.unwrap();
        assert_eq!(datafusion::common::cast::as_string_array(batches[0].column(0)).unwrap().value(0), "heap");
        let unknown = ctx.sql("SELECT current_setting('no_such_setting')").await.unwrap().collect().await;
        assert!(unknown.unwrap_err().to_string().contains("unrecognized configuration parameter"));
    }

    #[tokio::test]
    async fn expandarray_pairs_elements_with_positions() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(ScalarUDF::from(ExpandArray::new()));
        let sql = "SELECT e['x'] AS x, e['n'] AS n FROM (SELECT unnest(_pg_expandarray(a)) AS e FROM \
                   (VALUES (make_array(7, 8)), (make_array(9))) AS t(a))";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        for row in ["| 7 | 1 |", "| 8 | 2 |", "| 9 | 1 |"] {
            assert!(text.contains(row), "{row} in {text}");
        }
    }

    #[tokio::test]
    async fn subscripts_count_arrays_from_one_and_vectors_from_zero() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(ScalarUDF::from(Subscript::new()));
        let sql =
            "SELECT pg_subscript(make_array(7, 8), 1), pg_subscript(make_array(7, 8), 3), pg_subscript('4 5', 1), pg_subscript('4 5', 2)";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.lines().any(|l| l.replace(' ', "") == "|7||5||"), "{text}");
    }

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10_239), "10239 bytes");
        assert_eq!(size_pretty(10_240), "10 kB");
        assert_eq!(size_pretty(1_048_576), "1024 kB");
        assert_eq!(size_pretty(20_971_520), "20 MB");
        assert_eq!(size_pretty(-20_971_520), "-20 MB");
        assert_eq!(size_pretty(i64::MAX), "8192 PB");
        assert_eq!(size_pretty(i64::MIN), "-8192 PB");
    }
}
