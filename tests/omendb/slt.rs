//! SQL logic tests through the `sqllogictest` crate, one fresh in-memory
//! database (and one `Connection`, plus one per `connection <name>` record)
//! per file, run as the `postgresql` engine (label) and as `omendb`.
//!
//! - `sqlite_corpus`: SQLite's corpus in `tests/slt/sqlite/*.test`, read as
//!   `tests/slt/README.md` describes (valuewise results, hashing past 8
//!   values, comments cut from `skipif`/`onlyif` lines). Every record runs,
//!   whatever failed before it; the test prints a table of counts per file and
//!   fails on a failing record that `tests/slt/sqlite.skip` does not list, or
//!   on a listed one that no longer fails (a stale entry: remove it).
//! - `omendb_slt`: OmenDB's own `tests/slt/*.slt`, run as written with column
//!   types checked; every record must pass.
//!
//! One file: `OMENDB_SLT_FILTER=select1 cargo test --test omendb slt` (a
//! substring of the file name). The table goes to stdout: add
//! `-- --nocapture` to see it when the test passes.
//!
//! Cells are printed as sqllogictest expects: NULL as `NULL`, the empty string
//! as `(empty)` and control characters as `@` (as SQLite's runner does),
//! integers as integers, floating-point and NUMERIC values as `%.3f`, booleans
//! as PostgreSQL prints them (`t`, `f`), other types by Arrow's formatter.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use omendb::arrow::array::{Array, ArrayAccessor, AsArray, PrimitiveArray, RecordBatch};
use omendb::arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, DecimalType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use omendb::arrow::util::display::{ArrayFormatter, FormatOptions};
use omendb::{Connection, Database, Output, params};
use sqllogictest::{DB, DBOutput, DefaultColumnType, Record, RecordOutput, Runner};

const NULL: &str = "NULL";

/// Records the corpus needs before its own (`tests/slt/README.md`).
const SQLITE_PREAMBLE: &str = "control resultmode valuewise\nhash-threshold 8\n";

/// How many failures a failing test prints in full.
const SHOWN: usize = 30;

#[test]
fn sqlite_corpus() {
    let root = slt_dir();
    let skip_path = root.join("sqlite.skip");
    let skip = read_skip_file(&skip_path);
    let filtered = std::env::var("OMENDB_SLT_FILTER").is_ok();
    let mut counts = Vec::new();
    let mut failures = Vec::new();
    let mut stale = Vec::new();
    let mut listed_seen = BTreeSet::new();
    for path in files(&root.join("sqlite"), "test") {
        let name = file_name(&path);
        let mut c = Counts::default();
        for (line, outcome) in run_file(&path, Kind::Sqlite) {
            let key = format!("{name}:{line}");
            let listed = skip.contains(&key);
            if listed {
                listed_seen.insert(key.clone());
            }
            match outcome {
                Outcome::Passed => {
                    c.passed += 1;
                    if listed {
                        stale.push(format!("{key} passes"));
                    }
                }
                Outcome::Failed(_) if listed => c.skipped += 1,
                Outcome::Failed(error) => {
                    c.failed += 1;
                    failures.push((key, error));
                }
                Outcome::Excluded => {
                    c.excluded += 1;
                    if listed {
                        stale.push(format!("{key} does not run as postgresql"));
                    }
                }
            }
        }
        counts.push((name, c));
    }
    // Entries naming no statement or query of a file that ran (or, on a full
    // run, of any file).
    let ran: BTreeSet<&str> = counts.iter().map(|(name, _)| name.as_str()).collect();
    for key in skip.difference(&listed_seen) {
        let file = key.rsplit_once(':').map_or(key.as_str(), |(file, _)| file);
        if !filtered || ran.contains(file) {
            stale.push(format!("{key} names no statement or query"));
        }
    }

    let summary = table(&counts);
    println!("SQLite sqllogictest corpus, run as postgresql:\n{summary}");
    // Every failure, one line each, for triage and for writing skip entries.
    if let Ok(report) = std::env::var("OMENDB_SLT_REPORT") {
        let lines: String = failures.iter().map(|(at, e)| format!("{at}\t{}\n", e.replace('\n', " | "))).collect();
        std::fs::write(&report, lines).unwrap();
    }
    if !failures.is_empty() || !stale.is_empty() {
        let mut msg = String::new();
        if !failures.is_empty() {
            writeln!(msg, "{} records failed that {} does not list:", failures.len(), skip_path.display()).unwrap();
        }
        msg += &failure_list(&failures);
        for s in &stale {
            writeln!(msg, "stale entry in {}: {s}; remove it", skip_path.display()).unwrap();
        }
        panic!("{msg}\n{summary}");
    }
}

#[test]
fn omendb_slt() {
    let mut counts = Vec::new();
    let mut failures = Vec::new();
    for path in files(&slt_dir(), "slt") {
        let name = file_name(&path);
        let mut c = Counts::default();
        for (line, outcome) in run_file(&path, Kind::Own) {
            match outcome {
                Outcome::Passed => c.passed += 1,
                Outcome::Excluded => c.excluded += 1,
                Outcome::Failed(error) => {
                    c.failed += 1;
                    failures.push((format!("{name}:{line}"), error));
                }
            }
        }
        counts.push((name, c));
    }
    let summary = table(&counts);
    println!("OmenDB's sqllogictest files:\n{summary}");
    assert!(failures.is_empty(), "{} records failed:\n{}\n{summary}", failures.len(), failure_list(&failures));
}

/// One session of an OmenDB database, as sqllogictest drives it.
struct OmenSlt {
    conn: Connection,
}

impl DB for OmenSlt {
    type Error = omendb::Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, omendb::Error> {
        Ok(match self.conn.run(sql, params![])? {
            Output::Rows { schema, batches, .. } => DBOutput::Rows {
                types: schema.fields().iter().map(|f| column_type(f.data_type())).collect(),
                rows: batches.iter().flat_map(batch_rows).collect(),
            },
            Output::Affected { rows, .. } => DBOutput::StatementComplete(rows),
            Output::Command(_) => DBOutput::StatementComplete(0),
        })
    }

    /// A label for `skipif`/`onlyif` too, besides `postgresql`.
    fn engine_name(&self) -> &str {
        "omendb"
    }
}

/// How a file is read and run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SQLite's corpus: the preamble first, comments cut from conditions,
    /// column types not checked (the corpus writes `I` for every column).
    Sqlite,
    /// OmenDB's own files: as written, column types checked.
    Own,
}

/// What one statement or query did.
enum Outcome {
    Passed,
    Failed(String),
    /// `skipif`/`onlyif` leave it out for this engine.
    Excluded,
}

/// Runs one file record by record, so a failure does not stop the file.
/// Returns each statement and query (by the line of its `statement`/`query`
/// line) with what it did.
fn run_file(path: &Path, kind: Kind) -> Vec<(u32, Outcome)> {
    let name = file_name(path);
    let mut script = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if kind == Kind::Sqlite {
        script = strip_condition_comments(&script);
    }
    let records = match sqllogictest::parse_with_name::<DefaultColumnType>(&script, name.as_str()) {
        Ok(records) => records,
        Err(e) => return vec![(e.location().line(), Outcome::Failed(format!("parse error: {}", e.kind())))],
    };

    let db = Database::open_in_memory().unwrap();
    // The default connection and each `connection <name>` get their own
    // session of the file's database.
    let mut runner = Runner::new(move || {
        let db = db.clone();
        async move { db.connect().map(|conn| OmenSlt { conn }) }
    });
    runner.add_label("postgresql");
    match kind {
        Kind::Own => runner.with_column_validator(sqllogictest::strict_column_validator),
        Kind::Sqlite => {
            for record in sqllogictest::parse::<DefaultColumnType>(SQLITE_PREAMBLE).unwrap() {
                runner.run(record).unwrap();
            }
        }
    }

    let mut outcomes = Vec::new();
    for record in records {
        let line = match &record {
            Record::Statement { loc, .. } | Record::Query { loc, .. } | Record::System { loc, .. } | Record::Let { loc, .. } => {
                Some(loc.line())
            }
            Record::Halt { .. } => break,
            // Controls, conditions, comments: they change the runner's state.
            _ => None,
        };
        let (line, outcome) = match catch_unwind(AssertUnwindSafe(|| runner.run(record))) {
            Ok(Ok(RecordOutput::Nothing)) => (line, Outcome::Excluded),
            Ok(Ok(_)) => (line, Outcome::Passed),
            Ok(Err(e)) => (Some(e.location().line()), Outcome::Failed(e.kind().to_string())),
            Err(panic) => (Some(line.unwrap_or(0)), Outcome::Failed(format!("panicked: {}", panic_message(panic.as_ref())))),
        };
        if let Some(line) = line {
            outcomes.push((line, outcome));
        }
    }
    runner.shutdown();
    outcomes
}

/// The corpus as sqllogictest-rs parses it: a comment after the label of a
/// `skipif`/`onlyif` line is cut, as
/// `sed -E 's/^((skipif|onlyif) [a-z]+) *#.*$/\1/'` does. Line numbers stay.
fn strip_condition_comments(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for line in script.lines() {
        let line = match line.split_once('#') {
            Some((head, _)) if head.starts_with("skipif ") || head.starts_with("onlyif ") => head.trim_end(),
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The skip file's entries, `file.test:LINE`; each must give a reason.
fn read_skip_file(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entries = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let (key, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let well_formed = key.rsplit_once(':').is_some_and(|(file, l)| file.ends_with(".test") && l.parse::<u32>().is_ok());
        assert!(well_formed, "{at}: expected `file.test:LINE  reason`, got {line:?}");
        assert!(!reason.trim().is_empty(), "{at}: {key} gives no reason");
        assert!(entries.insert(key.to_owned()), "{at}: {key} is listed twice");
    }
    entries
}

fn slt_dir() -> PathBuf {
    // Read when the test runs (cargo sets it), so a binary built in another
    // checkout of the repository reads this one's files.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from).join("tests/slt")
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The `*.ext` files in `dir`, by name, narrowed by `OMENDB_SLT_FILTER`.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    assert!(!files.is_empty(), "no *.{ext} files in {}", dir.display());
    files.sort();
    if let Ok(filter) = std::env::var("OMENDB_SLT_FILTER") {
        files.retain(|p| file_name(p).contains(filter.as_str()));
    }
    files
}

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    /// Failed, and listed in the skip file.
    skipped: usize,
    /// Not run: `skipif postgresql`, or `onlyif` another engine.
    excluded: usize,
}

/// A Markdown table of counts per file, with a total.
fn table(counts: &[(String, Counts)]) -> String {
    let mut out = String::from("| file | passed | failed | skipped | total | other engines |\n|---|---:|---:|---:|---:|---:|\n");
    let mut sum = Counts::default();
    for (name, c) in counts {
        let total = c.passed + c.failed + c.skipped;
        writeln!(out, "| {name} | {} | {} | {} | {total} | {} |", c.passed, c.failed, c.skipped, c.excluded).unwrap();
        sum.passed += c.passed;
        sum.failed += c.failed;
        sum.skipped += c.skipped;
        sum.excluded += c.excluded;
    }
    let total = sum.passed + sum.failed + sum.skipped;
    writeln!(out, "| total | {} | {} | {} | {total} | {} |", sum.passed, sum.failed, sum.skipped, sum.excluded).unwrap();
    out
}

/// The first failures in full (each cut to 2000 characters), then how many more.
fn failure_list(failures: &[(String, String)]) -> String {
    let mut out = String::new();
    for (at, error) in failures.iter().take(SHOWN) {
        let error = error.trim_end();
        let mut shown: String = error.chars().take(2000).collect();
        if shown.len() < error.len() {
            shown.push_str(" ...");
        }
        writeln!(out, "--- {at}\n{shown}").unwrap();
    }
    if failures.len() > SHOWN {
        writeln!(out, "... and {} more", failures.len() - SHOWN).unwrap();
    }
    out
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "a non-string payload".to_owned(),
    }
}

/// The sqllogictest type of a column: `I` integers, `R` floating point and
/// NUMERIC, `T` everything else.
fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || t.is_decimal() {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

/// A batch as rows of printed cells.
fn batch_rows(batch: &RecordBatch) -> Vec<Vec<String>> {
    let mut columns: Vec<_> = batch.columns().iter().map(|c| column_cells(c.as_ref()).into_iter()).collect();
    (0..batch.num_rows()).map(|_| columns.iter_mut().map(|c| c.next().unwrap_or_default()).collect()).collect()
}

/// A column's cells as sqllogictest prints them.
fn column_cells(array: &dyn Array) -> Vec<String> {
    match array.data_type() {
        DataType::Null => vec![NULL.to_owned(); array.len()],
        DataType::Boolean => cells(array.as_boolean(), |b| String::from(if b { "t" } else { "f" })),
        DataType::Int8 => cells(array.as_primitive::<Int8Type>(), |v| v.to_string()),
        DataType::Int16 => cells(array.as_primitive::<Int16Type>(), |v| v.to_string()),
        DataType::Int32 => cells(array.as_primitive::<Int32Type>(), |v| v.to_string()),
        DataType::Int64 => cells(array.as_primitive::<Int64Type>(), |v| v.to_string()),
        DataType::UInt8 => cells(array.as_primitive::<UInt8Type>(), |v| v.to_string()),
        DataType::UInt16 => cells(array.as_primitive::<UInt16Type>(), |v| v.to_string()),
        DataType::UInt32 => cells(array.as_primitive::<UInt32Type>(), |v| v.to_string()),
        DataType::UInt64 => cells(array.as_primitive::<UInt64Type>(), |v| v.to_string()),
        DataType::Float16 => cells(array.as_primitive::<Float16Type>(), |v| real(v.to_f64())),
        DataType::Float32 => cells(array.as_primitive::<Float32Type>(), |v| real(f64::from(v))),
        DataType::Float64 => cells(array.as_primitive::<Float64Type>(), real),
        DataType::Decimal32(..) => decimals(array.as_primitive::<Decimal32Type>()),
        DataType::Decimal64(..) => decimals(array.as_primitive::<Decimal64Type>()),
        DataType::Decimal128(..) => decimals(array.as_primitive::<Decimal128Type>()),
        DataType::Decimal256(..) => decimals(array.as_primitive::<Decimal256Type>()),
        DataType::Utf8 => cells(array.as_string::<i32>(), text),
        DataType::LargeUtf8 => cells(array.as_string::<i64>(), text),
        DataType::Utf8View => cells(array.as_string_view(), text),
        _ => formatted(array),
    }
}

fn cells<A: ArrayAccessor>(array: A, show: impl Fn(A::Item) -> String) -> Vec<String> {
    (0..array.len()).map(|i| if array.is_null(i) { NULL.to_owned() } else { show(array.value(i)) }).collect()
}

fn decimals<T: DecimalType>(array: &PrimitiveArray<T>) -> Vec<String> {
    (0..array.len()).map(|i| if array.is_null(i) { NULL.to_owned() } else { round3(&array.value_as_string(i)) }).collect()
}

/// Dates, timestamps, binary and the rest: Arrow's formatter, timestamps
/// without a zone as PostgreSQL prints them (`2024-01-02 03:04:05.5`, not
/// `2024-01-02T03:04:05.500`).
fn formatted(array: &dyn Array) -> Vec<String> {
    let options = FormatOptions::default().with_null(NULL).with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    match ArrayFormatter::try_new(array, &options) {
        Ok(f) => (0..array.len()).map(|i| if array.is_null(i) { NULL.to_owned() } else { text(&f.value(i).to_string()) }).collect(),
        // A mismatch that names the type, rather than an error for the whole query.
        Err(e) => vec![format!("<cannot print {}: {e}>", array.data_type()); array.len()],
    }
}

/// Text as SQLite's runner prints it: the empty string as `(empty)`, control
/// characters as `@` (SQLite also replaces non-ASCII; this keeps it).
fn text(s: &str) -> String {
    if s.is_empty() { "(empty)".to_owned() } else { s.chars().map(|c| if c.is_control() { '@' } else { c }).collect() }
}

/// `%.3f`, as SQLite's runner prints an `R` value: a negative value that
/// rounds to zero keeps its sign (`-0.000`, as C's printf does), but -0.0
/// prints as `0.000` (SQLite's printf writes a sign only below zero). NaN and
/// the infinities as PostgreSQL spells them.
fn real(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        (if v > 0.0 { "Infinity" } else { "-Infinity" }).to_owned()
    } else if v == 0.0 {
        "0.000".to_owned()
    } else {
        format!("{v:.3}")
    }
}

/// A decimal's text (`-12.3456`) rounded to three places, exactly, half away
/// from zero (as PostgreSQL rounds NUMERIC): `-12.346`.
fn round3(s: &str) -> String {
    let (sign, digits) = match s.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    // The value times 1000, truncated, as ASCII digits.
    let mut scaled: Vec<u8> = int.bytes().chain(frac.bytes().chain(std::iter::repeat(b'0')).take(3)).collect();
    if frac.as_bytes().get(3).is_some_and(|&d| d >= b'5') {
        let mut carry = true;
        for d in scaled.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                carry = false;
                break;
            }
        }
        if carry {
            scaled.insert(0, b'1');
        }
    }
    let scaled = String::from_utf8(scaled).unwrap();
    let (int, frac) = scaled.split_at(scaled.len() - 3);
    format!("{sign}{}.{frac}", if int.is_empty() { "0" } else { int })
}

#[test]
fn cells_print_as_sqllogictest_expects() {
    assert_eq!(round3("12.3456"), "12.346");
    assert_eq!(round3("-12.3454"), "-12.345");
    assert_eq!(round3("9.9995"), "10.000");
    assert_eq!(round3("-999.9999"), "-1000.000");
    assert_eq!(round3("42"), "42.000");
    assert_eq!(round3("0.5"), "0.500");
    assert_eq!(round3("0.0004"), "0.000");
    assert_eq!(real(42.857_142_857), "42.857");
    assert_eq!(real(-0.0), "0.000");
    assert_eq!(real(-1.5), "-1.500");
    assert_eq!(real(f64::NAN), "NaN");
    assert_eq!(text(""), "(empty)");
    assert_eq!(text("a\tb"), "a@b");
    assert_eq!(text("héllo"), "héllo");
    assert_eq!(
        strip_condition_comments("skipif postgresql # PostgreSQL requires AS\r\nquery I rowsort\r\n"),
        "skipif postgresql\nquery I rowsort\n"
    );
    assert_eq!(strip_condition_comments("onlyif mysql\n# comment\n"), "onlyif mysql\n# comment\n");
}
