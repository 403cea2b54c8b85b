//! `COPY table [(columns)] FROM STDIN`: bulk loads in PostgreSQL's text and
//! CSV formats, as psql's `\copy`, drivers and `pgbench -i` send them.
//!
//! [`Session::copy_from`](crate::Session::copy_from) starts a load and
//! returns a [`CopyIn`]; the caller feeds it the data in chunks of any size
//! ([`CopyIn::write`]) and ends it with
//! [`Session::finish_copy`](crate::Session::finish_copy). Rows are decoded
//! and inserted in chunks as they arrive, in the session's transaction (or
//! one of their own), so a load commits whole or not at all.
//!
//! Fields are converted to the column types by Arrow's casts from text;
//! `bytea` takes PostgreSQL's `\x` hex form. COPY TO, COPY from a server
//! file or program, the binary format and FORCE_NULL / FORCE_NOT_NULL are
//! refused with [`Error::Unsupported`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use omen_rowstore::{DataType, TableId, TableSchema, Transaction, Value};
use omen_sync::convert::{array_to_values, arrow_type};

use crate::error::{Error, Result};
use crate::names::{normalize_ident, table_name};

/// Rows decoded before they are converted and inserted together.
const CHUNK_ROWS: usize = 4096;

/// A parsed `COPY ... FROM STDIN`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CopyFrom {
    pub(crate) table: String,
    /// The columns the data holds, in order; empty for all of them.
    pub(crate) columns: Vec<String>,
    format: Format,
}

/// How the data is spelled.
#[derive(Debug, Clone, PartialEq)]
struct Format {
    csv: bool,
    delimiter: u8,
    /// The spelling of NULL, compared before de-escaping.
    null: Vec<u8>,
    header: bool,
    quote: u8,
    escape: u8,
}

/// The options as given; [`Options::format`] fills the defaults of the
/// chosen format and checks them together.
#[derive(Debug, Default)]
struct Options {
    csv: bool,
    delimiter: Option<u8>,
    null: Option<Vec<u8>>,
    header: bool,
    quote: Option<u8>,
    escape: Option<u8>,
}

impl Options {
    fn format(self) -> Result<Format> {
        if !self.csv && (self.quote.is_some() || self.escape.is_some()) {
            return Err(Error::Plan("COPY quote and escape are available only in CSV mode".into()));
        }
        let delimiter = self.delimiter.unwrap_or(if self.csv { b',' } else { b'\t' });
        let quote = self.quote.unwrap_or(b'"');
        let format = Format {
            csv: self.csv,
            delimiter,
            null: self.null.unwrap_or_else(|| if self.csv { Vec::new() } else { b"\\N".to_vec() }),
            header: self.header,
            quote,
            escape: self.escape.unwrap_or(quote),
        };
        if format.null.contains(&delimiter) || (format.csv && delimiter == quote) || matches!(delimiter, b'\r' | b'\n' | b'\\') {
            return Err(Error::Plan("COPY delimiter must differ from the NULL string, the quote, newlines and backslash".into()));
        }
        Ok(format)
    }
}

impl CopyFrom {
    /// Parses `sql` if it is a COPY statement: `Ok(None)` for any other.
    pub(crate) fn parse(sql: &str) -> Result<Option<Self>> {
        let dialect = PostgreSqlDialect {};
        let mut p = Parser::new(&dialect).try_with_sql(sql)?;
        if !p.parse_keyword(Keyword::COPY) {
            return Ok(None);
        }
        let table = table_name(&p.parse_object_name(false)?)?;
        let mut columns = Vec::new();
        if p.consume_token(&Token::LParen) {
            columns = p.parse_comma_separated(|p| p.parse_identifier())?.into_iter().map(normalize_ident).collect();
            p.expect_token(&Token::RParen)?;
        }
        if p.parse_keyword(Keyword::TO) {
            return Err(Error::Unsupported("COPY ... TO (run the query and read its rows)".into()));
        }
        p.expect_keyword(Keyword::FROM)?;
        if !p.parse_keyword(Keyword::STDIN) {
            return Err(Error::Unsupported("COPY FROM a server file or program: send the data FROM STDIN (psql's \\copy)".into()));
        }
        let mut given = Options::default();
        let _ = p.parse_keyword(Keyword::WITH);
        if p.consume_token(&Token::LParen) {
            options(&mut p, &mut given)?;
        } else {
            legacy_options(&mut p, &mut given)?;
        }
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token() != Token::EOF {
            return Err(Error::Parse(format!("unexpected {} after COPY", p.peek_token())));
        }
        Ok(Some(Self { table, columns, format: given.format()? }))
    }
}

/// `( name [value] [, ...] )`, PostgreSQL 9.0's option list.
fn options(p: &mut Parser<'_>, format: &mut Options) -> Result<()> {
    loop {
        let name = p.parse_identifier()?.value.to_ascii_lowercase();
        let value = match p.peek_token().token {
            Token::Comma | Token::RParen => None,
            Token::SingleQuotedString(s) => {
                p.next_token();
                Some(s)
            }
            Token::Word(w) => {
                p.next_token();
                Some(w.value.to_ascii_lowercase())
            }
            Token::Number(n, _) => {
                p.next_token();
                Some(n)
            }
            other => return Err(Error::Parse(format!("unexpected {other} in COPY options"))),
        };
        set_option(format, &name, value.as_deref())?;
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    Ok(())
}

/// The pre-9.0 spelling: `[BINARY] [DELIMITER [AS] 'c'] [NULL [AS] 's'] [CSV [HEADER] [QUOTE [AS] 'c'] [ESCAPE [AS] 'c']]`.
fn legacy_options(p: &mut Parser<'_>, format: &mut Options) -> Result<()> {
    let string = |p: &mut Parser<'_>| -> Result<String> {
        let _ = p.parse_keyword(Keyword::AS);
        Ok(p.parse_literal_string()?)
    };
    while let Some(k) = p.parse_one_of_keywords(&[
        Keyword::BINARY,
        Keyword::DELIMITER,
        Keyword::NULL,
        Keyword::CSV,
        Keyword::HEADER,
        Keyword::QUOTE,
        Keyword::ESCAPE,
    ]) {
        match k {
            Keyword::BINARY => set_option(format, "format", Some("binary"))?,
            Keyword::CSV => set_option(format, "format", Some("csv"))?,
            Keyword::HEADER => set_option(format, "header", None)?,
            Keyword::DELIMITER => set_option(format, "delimiter", Some(&string(p)?))?,
            Keyword::NULL => set_option(format, "null", Some(&string(p)?))?,
            Keyword::QUOTE => set_option(format, "quote", Some(&string(p)?))?,
            _ => set_option(format, "escape", Some(&string(p)?))?,
        }
    }
    if p.parse_keyword(Keyword::FORCE) {
        return Err(Error::Unsupported("COPY ... FORCE NOT NULL / FORCE QUOTE".into()));
    }
    Ok(())
}

fn set_option(format: &mut Options, name: &str, value: Option<&str>) -> Result<()> {
    let bad = || Error::Plan(format!("invalid value {value:?} for COPY option {name}"));
    let flag = || match value {
        None | Some("true" | "on" | "1") => Ok(true),
        Some("false" | "off" | "0") => Ok(false),
        _ => Err(bad()),
    };
    let byte = || match value.map(str::as_bytes) {
        Some([b]) if b.is_ascii() => Ok(*b),
        _ => Err(Error::Plan(format!("COPY {name} must be a single one-byte character"))),
    };
    match name {
        "format" => match value {
            Some("text") => format.csv = false,
            Some("csv") => format.csv = true,
            Some("binary") => return Err(Error::Unsupported("COPY in the binary format (use text or csv)".into())),
            _ => return Err(bad()),
        },
        // Rows are written committed with the load's transaction in any case.
        "freeze" => {
            flag()?;
        }
        "header" => format.header = flag()?,
        "delimiter" => format.delimiter = Some(byte()?),
        "null" => format.null = Some(value.ok_or_else(bad)?.as_bytes().to_vec()),
        "quote" => format.quote = Some(byte()?),
        "escape" => format.escape = Some(byte()?),
        "encoding" => {
            if !value.is_some_and(|v| v.eq_ignore_ascii_case("utf8") || v.eq_ignore_ascii_case("utf-8")) {
                return Err(Error::Unsupported(format!("COPY encoding {value:?} (only UTF8)")));
            }
        }
        "force_null" | "force_not_null" | "force_quote" => return Err(Error::Unsupported(format!("COPY option {name}"))),
        other => return Err(Error::Plan(format!("COPY option {other:?} not recognized"))),
    }
    Ok(())
}

/// A COPY in progress: rows are decoded as data arrives and inserted in
/// chunks into the load's transaction. Dropping it abandons the load (the
/// transaction rolls back).
pub struct CopyIn {
    table: TableId,
    schema: Arc<TableSchema>,
    /// The table column each field fills.
    targets: Vec<usize>,
    format: Format,
    pub(crate) txn: crate::write::txn::Txn,
    /// Received bytes not yet part of a whole row.
    pending: Vec<u8>,
    /// Decoded fields of the current chunk, by field position.
    fields: Vec<Vec<Option<String>>>,
    /// Rows decoded so far (including those in `fields`), for messages.
    decoded: u64,
    header_left: bool,
    /// The end-of-data marker `\.` arrived: the rest is ignored.
    ended: bool,
    error: Option<Error>,
}

impl std::fmt::Debug for CopyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyIn").field("table", &self.schema.name).field("rows", &self.decoded).finish_non_exhaustive()
    }
}

impl CopyIn {
    pub(crate) fn new(copy: &CopyFrom, table: TableId, schema: Arc<TableSchema>, targets: Vec<usize>, txn: crate::write::txn::Txn) -> Self {
        Self {
            table,
            fields: vec![Vec::with_capacity(CHUNK_ROWS); targets.len()],
            targets,
            header_left: copy.format.header,
            format: copy.format.clone(),
            schema,
            txn,
            pending: Vec::new(),
            decoded: 0,
            ended: false,
            error: None,
        }
    }

    /// The table columns a load's fields go to, in order: those it names,
    /// or all. Checked before the load takes its transaction.
    pub(crate) fn targets(copy: &CopyFrom, schema: &TableSchema) -> Result<Vec<usize>> {
        if copy.columns.is_empty() {
            return Ok((0..schema.columns.len()).collect());
        }
        let mut targets = Vec::with_capacity(copy.columns.len());
        for name in &copy.columns {
            let i = schema.column_index(name).ok_or_else(|| Error::UnknownColumn(format!("{name} of table {}", schema.name)))?;
            if targets.contains(&i) {
                return Err(Error::Plan(format!("column {name:?} specified more than once")));
            }
            targets.push(i);
        }
        Ok(targets)
    }

    /// How many columns each row holds.
    pub fn columns(&self) -> usize {
        self.targets.len()
    }

    /// Feeds the next bytes of data; rows may be split across calls at any
    /// byte. A failure (a malformed row, a value that does not convert, a
    /// duplicate key) is kept, the rest of the data is ignored, and
    /// [`Session::finish_copy`](crate::Session::finish_copy) reports it, as
    /// PostgreSQL reports it when the client ends the copy.
    pub fn write(&mut self, data: &[u8]) {
        if self.error.is_some() || self.ended {
            return;
        }
        self.pending.extend_from_slice(data);
        if let Err(e) = self.decode(false) {
            self.error = Some(e);
            self.pending = Vec::new();
        }
    }

    /// Decodes and inserts what is left; the rows loaded.
    pub(crate) fn finish(&mut self) -> Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.decode(true)?;
        self.flush()?;
        Ok(self.decoded)
    }

    /// Decodes the whole rows in `pending` (with `at_end`, also a last row
    /// without its newline).
    fn decode(&mut self, at_end: bool) -> Result<()> {
        let mut start = 0;
        while !self.ended {
            let Some(end) = self.record_end(start).or((at_end && start < self.pending.len()).then_some(self.pending.len())) else { break };
            let mut record = &self.pending[start..end];
            start = (end + 1).min(self.pending.len());
            if let [rest @ .., b'\r'] = record {
                record = rest;
            }
            if record == b"\\." {
                self.ended = true;
            } else if std::mem::take(&mut self.header_left) {
                continue;
            } else {
                let fields = if self.format.csv { csv_fields(record, &self.format) } else { text_fields(record, &self.format) };
                self.decoded += 1;
                let fields = fields.map_err(|e| self.row_error(&e))?;
                if fields.len() != self.targets.len() {
                    return Err(self.row_error(&format!("expected {} fields, found {}", self.targets.len(), fields.len())));
                }
                for (column, f) in self.fields.iter_mut().zip(fields) {
                    column.push(f);
                }
                if self.fields[0].len() >= CHUNK_ROWS {
                    self.flush()?;
                }
            }
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Where the record starting at `start` ends (its newline), if whole.
    fn record_end(&self, start: usize) -> Option<usize> {
        let data = &self.pending[start..];
        if !self.format.csv {
            return data.iter().position(|&b| b == b'\n').map(|i| start + i);
        }
        let (quote, escape) = (self.format.quote, self.format.escape);
        let mut quoted = false;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if quoted && b == escape && escape != quote && data.get(i + 1).is_some_and(|&n| n == quote || n == escape) {
                i += 1;
            } else if b == quote {
                quoted = !quoted;
            } else if b == b'\n' && !quoted {
                return Some(start + i);
            }
            i += 1;
        }
        None
    }

    fn row_error(&self, message: &str) -> Error {
        Error::Execution(format!("COPY {}, row {}: {message}", self.schema.name, self.decoded))
    }

    /// Converts the decoded fields to the column types and inserts the rows.
    fn flush(&mut self) -> Result<()> {
        let n = self.fields.first().map_or(0, Vec::len);
        if n == 0 {
            return Ok(());
        }
        let first_row = self.decoded - n as u64 + 1;
        let mut rows: Vec<Vec<Value>> =
            (0..n).map(|_| self.schema.columns.iter().map(|c| c.default.clone().unwrap_or(Value::Null)).collect()).collect();
        for (fields, &target) in self.fields.iter_mut().zip(&self.targets) {
            let column = &self.schema.columns[target];
            let values = convert(std::mem::take(fields), &column.data_type).map_err(|(i, e)| {
                Error::Execution(format!("COPY {}, row {}, column {}: {e}", self.schema.name, first_row + i as u64, column.name))
            })?;
            for (row, v) in rows.iter_mut().zip(values) {
                row[target] = v;
            }
        }
        let txn: &mut Transaction = self.txn.get();
        for row in rows {
            txn.insert(self.table, row)?;
        }
        for f in &mut self.fields {
            f.reserve(CHUNK_ROWS);
        }
        Ok(())
    }
}

/// Text fields as values of `t`; on failure, the index of the first field
/// that does not convert and why.
fn convert(fields: Vec<Option<String>>, t: &DataType) -> std::result::Result<Vec<Value>, (usize, String)> {
    let array: ArrayRef = if *t == DataType::Bytes {
        let bytes =
            fields.iter().enumerate().map(|(i, f)| f.as_deref().map(|s| bytea(s).ok_or((i, format!("invalid bytea {s:?}")))).transpose());
        Arc::new(bytes.collect::<std::result::Result<BinaryArray, _>>()?)
    } else {
        let text = StringArray::from(fields);
        let options = CastOptions { safe: false, ..CastOptions::default() };
        match cast_with_options(&text, &arrow_type(t), &options) {
            Ok(a) => a,
            Err(e) => {
                // Find the field to name; only on the error path.
                let at = (0..text.len()).find(|&i| cast_with_options(&text.slice(i, 1), &arrow_type(t), &options).is_err()).unwrap_or(0);
                return Err((at, format!("invalid input {:?} for type {}: {e}", text.value(at), t.sql_name())));
            }
        }
    };
    array_to_values(array.as_ref(), t).map_err(|e| (0, e.to_string()))
}

/// PostgreSQL's bytea input: `\x` and hex digits, or the bytes as written.
fn bytea(s: &str) -> Option<Vec<u8>> {
    let Some(hex) = s.strip_prefix("\\x") else { return Some(s.as_bytes().to_vec()) };
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// The fields of a text-format row: split at unescaped delimiters, `\N`
/// (or the chosen NULL string) as NULL, backslash escapes decoded.
fn text_fields(record: &[u8], format: &Format) -> std::result::Result<Vec<Option<String>>, String> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    loop {
        if i == record.len() || record[i] == format.delimiter {
            let raw = &record[start..i];
            fields.push(if raw == format.null.as_slice() { None } else { Some(unescape(raw)?) });
            if i == record.len() {
                return Ok(fields);
            }
            start = i + 1;
        } else if record[i] == b'\\' {
            i += 1;
        }
        i += 1;
        i = i.min(record.len());
    }
}

fn unescape(raw: &[u8]) -> std::result::Result<String, String> {
    if !raw.contains(&b'\\') {
        return String::from_utf8(raw.to_vec()).map_err(|_| "invalid UTF-8".to_owned());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' || i == raw.len() {
            out.push(b);
            continue;
        }
        let c = raw[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8".to_owned())
}

/// The fields of a CSV row: quoted fields keep delimiters and newlines, an
/// unquoted field equal to the NULL string (by default empty) is NULL.
fn csv_fields(record: &[u8], format: &Format) -> std::result::Result<Vec<Option<String>>, String> {
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let (mut quoted, mut was_quoted) = (false, false);
    let mut i = 0;
    let end_field = |field: &mut Vec<u8>, was_quoted: bool, fields: &mut Vec<Option<String>>| -> std::result::Result<(), String> {
        let raw = std::mem::take(field);
        fields.push(if !was_quoted && raw == format.null { None } else { Some(String::from_utf8(raw).map_err(|_| "invalid UTF-8")?) });
        Ok(())
    };
    while i < record.len() {
        let b = record[i];
        if quoted {
            if b == format.escape
                && record.get(i + 1).is_some_and(|&n| n == format.quote || (n == format.escape && format.escape != format.quote))
            {
                field.push(record[i + 1]);
                i += 1;
            } else if b == format.quote {
                quoted = false;
            } else {
                field.push(b);
            }
        } else if b == format.quote {
            quoted = true;
            was_quoted = true;
        } else if b == format.delimiter {
            end_field(&mut field, was_quoted, &mut fields)?;
            was_quoted = false;
        } else {
            field.push(b);
        }
        i += 1;
    }
    if quoted {
        return Err("unterminated CSV quoted field".into());
    }
    end_field(&mut field, was_quoted, &mut fields)?;
    Ok(fields)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text() -> Format {
        Options::default().format().unwrap()
    }

    fn texts(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_owned)).collect()
    }

    #[test]
    fn statements_parse_in_both_spellings() {
        let c = CopyFrom::parse("copy pgbench_accounts from stdin with (freeze on)").unwrap().unwrap();
        assert_eq!((c.table.as_str(), c.format.clone()), ("pgbench_accounts", text()));
        let c = CopyFrom::parse("COPY t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'x');").unwrap().unwrap();
        assert_eq!(c.columns, ["a", "B"]);
        assert!(c.format.csv && c.format.header && c.format.delimiter == b';' && c.format.null == b"x");
        let c = CopyFrom::parse("COPY t FROM STDIN CSV HEADER").unwrap().unwrap();
        assert!(c.format.csv && c.format.header && c.format.null.is_empty() && c.format.delimiter == b',');
        assert!(CopyFrom::parse("SELECT 1").unwrap().is_none());
        for bad in [
            "COPY t TO STDOUT",
            "COPY t FROM '/etc/passwd'",
            "COPY t FROM STDIN (FORMAT binary)",
            "COPY t FROM STDIN (FORMAT xml)",
            "COPY t FROM STDIN (DELIMITER 'ab')",
            r#"COPY t FROM STDIN (FORMAT csv, DELIMITER '"')"#,
            "COPY t FROM STDIN (QUOTE '''')",
            "COPY t FROM STDIN (bogus 1)",
            "COPY t FROM STDIN (FORCE_NULL (a))",
            "COPY t FROM STDIN garbage",
            "COPY FROM STDIN",
        ] {
            assert!(CopyFrom::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_rows_decode_escapes_and_nulls() {
        let f = text();
        assert_eq!(text_fields(b"1\t\\N\tx", &f).unwrap(), texts(&[Some("1"), None, Some("x")]));
        assert_eq!(text_fields(b"a\\tb\tc\\\\d\t\\101\\x41\\N", &f).unwrap(), texts(&[Some("a\tb"), Some("c\\d"), Some("AAN")]));
        assert_eq!(text_fields(b"a\\\tb", &f).unwrap(), texts(&[Some("a\tb")]), "an escaped delimiter is data");
        assert_eq!(text_fields(b"", &f).unwrap(), texts(&[Some("")]));
        assert_eq!(text_fields(b"1\t", &f).unwrap(), texts(&[Some("1"), Some("")]));
        assert!(text_fields(b"\\xff\\xfe", &f).is_err(), "not UTF-8");
    }

    #[test]
    fn csv_rows_decode_quotes() {
        let f = Options { csv: true, ..Options::default() }.format().unwrap();
        assert_eq!(csv_fields(b"1,,\"\",\"a,\"\"b\"\"\nc\"", &f).unwrap(), texts(&[Some("1"), None, Some(""), Some("a,\"b\"\nc")]));
        assert!(csv_fields(b"\"open", &f).is_err());
    }

    #[test]
    fn fields_convert_to_column_types_or_name_the_bad_one() {
        let ints = convert(texts(&[Some("1"), None, Some("-3")]), &DataType::Int32).unwrap();
        assert_eq!(ints, [Value::Int32(1), Value::Null, Value::Int32(-3)]);
        let (at, message) = convert(texts(&[Some("1"), Some("x")]), &DataType::Int64).unwrap_err();
        assert_eq!(at, 1, "{message}");
        assert_eq!(convert(texts(&[Some("\\x0aff")]), &DataType::Bytes).unwrap(), [Value::Bytes(vec![10, 255])]);
        assert!(convert(texts(&[Some("\\x0")]), &DataType::Bytes).is_err());
        assert_eq!(convert(texts(&[Some("t"), Some("false")]), &DataType::Bool).unwrap(), [Value::Bool(true), Value::Bool(false)]);
    }

    async fn count(session: &mut crate::Session) -> i64 {
        let crate::Output::Rows { stream, .. } = session.execute("SELECT count(*) FROM t", &[]).await.unwrap() else { panic!() };
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0)
    }

    /// Data split at every byte loads the same rows; a bad row anywhere
    /// loads nothing; a load inside a transaction is part of it.
    #[tokio::test]
    async fn loads_are_whole_or_nothing_however_the_data_is_split() {
        let engine = crate::Engine::open(crate::EngineOptions::default()).unwrap();
        let mut session = engine.session();
        session.execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT, n BIGINT DEFAULT 7)", &[]).await.unwrap();
        let copy = engine.prepare("COPY t (name, id) FROM STDIN (FORMAT csv, HEADER)").await.unwrap();
        let data = b"name,id\r\n\"a,b\",1\n,2\n\"line\nbreak\",3\n";
        let mut load = session.copy_from(&copy).await.unwrap();
        for b in data {
            load.write(std::slice::from_ref(b));
        }
        assert!(matches!(session.finish_copy(load).unwrap(), crate::Output::Affected { tag: "COPY", rows: 3 }));
        assert_eq!(count(&mut session).await, 3);
        let crate::Output::Rows { stream, .. } = session.execute("SELECT name, n FROM t WHERE id = 3", &[]).await.unwrap() else {
            panic!()
        };
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        assert_eq!(arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string().matches("line").count(), 1);

        // Enough rows for several chunks, the last one bad: nothing stays.
        let text = engine.prepare("COPY t FROM STDIN").await.unwrap();
        let mut load = session.copy_from(&text).await.unwrap();
        let mut rows: String = (10..10 + 3 * CHUNK_ROWS).map(|i| format!("{i}\tx\t\\N\n")).collect();
        rows.push_str("oops\tx\t1\n");
        load.write(rows.as_bytes());
        let err = session.finish_copy(load).unwrap_err();
        assert!(err.to_string().contains(&format!("row {}", 3 * CHUNK_ROWS + 1)), "{err}");
        assert_eq!(count(&mut session).await, 3);

        // In a transaction: the rows are its own until it commits; a failed
        // load aborts it.
        session.execute("BEGIN", &[]).await.unwrap();
        let mut load = session.copy_from(&text).await.unwrap();
        load.write(b"100\ty\t1\n\\.\nignored after the end marker");
        session.finish_copy(load).unwrap();
        assert_eq!(count(&mut session).await, 4);
        let mut load = session.copy_from(&text).await.unwrap();
        load.write(b"1\tduplicate\t1\n");
        assert!(matches!(session.finish_copy(load), Err(crate::Error::UniqueViolation(_))));
        assert!(session.is_failed());
        session.execute("ROLLBACK", &[]).await.unwrap();
        assert_eq!(count(&mut session).await, 3);

        // Abandoned (the client sent CopyFail): nothing stays.
        let mut load = session.copy_from(&text).await.unwrap();
        load.write(b"200\tz\t1\n");
        drop(load);
        assert_eq!(count(&mut session).await, 3);
        let select = engine.prepare("SELECT 1").await.unwrap();
        assert!(session.copy_from(&select).await.is_err());
        let missing = engine.prepare("COPY nope FROM STDIN").await.unwrap();
        assert!(matches!(session.copy_from(&missing).await, Err(crate::Error::UnknownTable(_))));
        let bad_column = engine.prepare("COPY t (nope) FROM STDIN").await.unwrap();
        assert!(matches!(session.copy_from(&bad_column).await, Err(crate::Error::UnknownColumn(_))));
    }
}
