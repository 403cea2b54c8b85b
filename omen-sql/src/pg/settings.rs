//! Session settings: `SET`, `SHOW` and `RESET` of PostgreSQL's run-time
//! parameters, which clients and drivers send when they connect.
//!
//! OmenDB keeps each session's values and reports them truthfully. Only the
//! settings OmenDB honours can take values that change behaviour: text is
//! always UTF-8, strings always standard-conforming, and isolation is READ
//! COMMITTED or REPEATABLE READ (see [`Isolation`]). The others (`application_name`,
//! `TimeZone`, `DateStyle`, `extra_float_digits`, ...) are kept and shown
//! but do not change how values are computed or printed: timestamps with
//! time zone are UTC, output is ISO. A name with a dot (`myapp.tenant`) is
//! a custom setting, kept as given.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use datafusion::sql::sqlparser::ast::{
    ContextModifier, Expr, Ident, ObjectName, Reset, Set, Statement as SqlStatement, TransactionIsolationLevel, TransactionMode,
    Value as SqlValue,
};

use crate::error::{Error, Result};

/// What a setting accepts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Reported, never changed (`server_version`).
    ReadOnly,
    /// Only these values (case-insensitive), as OmenDB has no other behaviour.
    OneOf(&'static [&'static str]),
    /// Any value; kept and reported.
    Free,
    /// A duration as PostgreSQL spells it ([`parse_duration`]).
    Duration,
}

/// The settings OmenDB knows: canonical name, default, what it accepts.
const KNOWN: &[(&str, &str, Kind)] = &[
    ("application_name", "", Kind::Free),
    ("client_encoding", "UTF8", Kind::OneOf(&["UTF8", "UTF-8", "UNICODE"])),
    ("client_min_messages", "notice", Kind::Free),
    ("DateStyle", "ISO, MDY", Kind::Free),
    ("deadlock_timeout", "1s", Kind::Duration),
    ("default_table_access_method", "heap", Kind::OneOf(&["heap"])),
    ("default_transaction_isolation", "repeatable read", Kind::OneOf(&["repeatable read", "read committed", "read uncommitted"])),
    ("default_transaction_read_only", "off", Kind::OneOf(&["off", "false"])),
    ("extra_float_digits", "1", Kind::Free),
    ("idle_in_transaction_session_timeout", "0", Kind::Free),
    ("in_hot_standby", "off", Kind::ReadOnly),
    ("integer_datetimes", "on", Kind::ReadOnly),
    ("IntervalStyle", "postgres", Kind::Free),
    ("is_superuser", "on", Kind::ReadOnly),
    ("lock_timeout", "0", Kind::Duration),
    ("max_identifier_length", "63", Kind::ReadOnly),
    ("search_path", "\"$user\", public", Kind::Free),
    ("server_encoding", "UTF8", Kind::ReadOnly),
    ("server_version", SERVER_VERSION, Kind::ReadOnly),
    ("server_version_num", "150000", Kind::ReadOnly),
    ("session_authorization", "omendb", Kind::ReadOnly),
    ("standard_conforming_strings", "on", Kind::OneOf(&["on", "true"])),
    ("statement_timeout", "0", Kind::Duration),
    ("synchronous_commit", "on", Kind::Free),
    ("TimeZone", "UTC", Kind::Free),
    ("transaction_isolation", "repeatable read", Kind::OneOf(&["repeatable read", "read committed", "read uncommitted"])),
    ("transaction_read_only", "off", Kind::OneOf(&["off", "false"])),
];

/// How a transaction's statements see other transactions' writes
/// (`transaction_isolation`; the default for new transactions is
/// `default_transaction_isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// PostgreSQL's default: each statement reads the newest committed
    /// state, and a write to a row another open transaction holds waits
    /// for it to end, then applies to the newest version. `READ
    /// UNCOMMITTED` means this too, as in PostgreSQL.
    ReadCommitted,
    /// Snapshot isolation, the embedded API's default: every statement
    /// reads the transaction's snapshot, and a write to a row another
    /// transaction wrote after it (or holds) fails at once with a
    /// serialization conflict (40001); PostgreSQL waits for the holder first.
    RepeatableRead,
}

impl Isolation {
    /// The setting's value for this level.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
        }
    }
}

/// The PostgreSQL version OmenDB speaks for, as `server_version` reports it.
/// Clients (libpq, JDBC, pgbench) choose features by it.
pub const SERVER_VERSION: &str = "15.0";

/// The settings whose changes a PostgreSQL server reports to its client
/// (`ParameterStatus`), as the wire protocol needs them at startup.
pub const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
];

const TRANSACTION_ISOLATION: &str = "transaction_isolation";
const DEFAULT_ISOLATION: &str = "default_transaction_isolation";

fn known(name: &str) -> Option<&'static (&'static str, &'static str, Kind)> {
    KNOWN.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name))
}

/// One session's settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Values that differ from the defaults, by canonical name (custom
    /// settings by their lower-case name).
    changed: BTreeMap<String, String>,
}

impl Settings {
    /// A duration setting (`statement_timeout`, `lock_timeout`,
    /// `deadlock_timeout`); `None` for an unknown name. Zero means no limit
    /// where PostgreSQL says so.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        self.get(name).and_then(|v| parse_duration(&v))
    }

    /// The current value of `name` (any case), if it is a setting.
    pub fn get(&self, name: &str) -> Option<String> {
        let canonical = canonical(name)?;
        if canonical == TRANSACTION_ISOLATION && !self.changed.contains_key(TRANSACTION_ISOLATION) {
            // Outside BEGIN ... ISOLATION LEVEL, transactions take the default.
            return self.get(DEFAULT_ISOLATION);
        }
        self.changed.get(&canonical).cloned().or_else(|| known(&canonical).map(|(_, d, _)| (*d).to_owned()))
    }

    /// The isolation level statements run at now (`transaction_isolation`).
    pub fn isolation(&self) -> Isolation {
        let level = self.changed.get(TRANSACTION_ISOLATION).or_else(|| self.changed.get(DEFAULT_ISOLATION));
        match level {
            Some(l) if !l.eq_ignore_ascii_case("repeatable read") => Isolation::ReadCommitted,
            _ => Isolation::RepeatableRead,
        }
    }

    /// Sets the level new transactions start at.
    pub(crate) fn set_default_isolation(&mut self, level: Isolation) {
        self.changed.insert(DEFAULT_ISOLATION.into(), level.name().into());
    }

    /// Sets the isolation level of the open transaction, until it ends.
    pub(crate) fn set_transaction_isolation(&mut self, level: Option<Isolation>) {
        match level {
            Some(level) => self.changed.insert(TRANSACTION_ISOLATION.into(), level.name().into()),
            None => self.changed.remove(TRANSACTION_ISOLATION),
        };
    }

    /// Sets `name` to `value` (`None` resets it to its default).
    pub fn set(&mut self, name: &str, value: Option<String>) -> Result<()> {
        let canonical = canonical(name).ok_or_else(|| Error::UnknownSetting(name.to_owned()))?;
        if let (Some((_, _, kind)), Some(v)) = (known(&canonical), &value) {
            match kind {
                Kind::ReadOnly => return Err(Error::Unsupported(format!("changing parameter {canonical:?}"))),
                Kind::OneOf(allowed) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) => {
                    return Err(Error::Unsupported(format!("{canonical} = {v:?} (OmenDB supports {})", allowed.join(", "))));
                }
                Kind::Duration if parse_duration(v).is_none() => {
                    return Err(Error::Parameter(format!(
                        "invalid value for parameter {canonical:?}: {v:?} (milliseconds, or a number with ms, s, min or h)"
                    )));
                }
                _ => {}
            }
        }
        match value {
            Some(v) => self.changed.insert(canonical, v),
            None => self.changed.remove(&canonical),
        };
        Ok(())
    }

    /// Resets every setting to its default.
    pub fn reset_all(&mut self) {
        // The open transaction's level is the transaction's, not a
        // session setting RESET ALL returns to its default.
        self.changed.retain(|name, _| name == TRANSACTION_ISOLATION);
    }

    /// Every setting and its value, by name.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = KNOWN.iter().map(|(n, d, _)| ((*n).to_owned(), (*d).to_owned())).collect();
        all.extend(self.changed.clone());
        all.into_iter().collect()
    }
}

/// The column name `SHOW name` answers with: the canonical spelling, as
/// PostgreSQL does (`SHOW timezone` gives a column `TimeZone`).
pub(crate) fn display_name(name: &str) -> String {
    canonical(name).unwrap_or_else(|| name.to_owned())
}

/// The canonical spelling of a setting's name; `None` if OmenDB does not
/// know it and it is not a custom (dotted) name.
fn canonical(name: &str) -> Option<String> {
    match known(name) {
        Some((n, ..)) => Some((*n).to_owned()),
        None if name.contains('.') => Some(name.to_ascii_lowercase()),
        None => None,
    }
}

/// A compiled `SET`, `RESET` or `SHOW`.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// Set (or, with `None`, reset) settings.
    Set(Vec<(String, Option<String>)>),
    /// `RESET ALL`.
    ResetAll,
    /// `SHOW name`.
    Show(String),
    /// `SHOW ALL`.
    ShowAll,
}

impl Command {
    /// The command for `statement`, if it is a settings statement. Names are
    /// checked when the command runs, as PostgreSQL does.
    pub(crate) fn compile(statement: &SqlStatement) -> Result<Option<Self>> {
        Ok(Some(match statement {
            SqlStatement::Set(set) => Command::Set(assignments(set)?),
            SqlStatement::Reset(r) => match &r.reset {
                Reset::ALL => Command::ResetAll,
                Reset::ConfigurationParameter(n) => Command::reset(n),
            },
            SqlStatement::ShowVariable { variable } => {
                let words: Vec<String> = variable.iter().map(|i| i.value.to_ascii_lowercase()).collect();
                match words.join(" ").as_str() {
                    "all" => Command::ShowAll,
                    "transaction isolation level" => Command::Show("transaction_isolation".into()),
                    "time zone" => Command::Show("TimeZone".into()),
                    "session authorization" => Command::Show("session_authorization".into()),
                    _ => Command::Show(variable.iter().map(|i| i.value.clone()).collect::<Vec<_>>().join(".")),
                }
            }
            _ => return Ok(None),
        }))
    }

    /// `RESET name` (`RESET ALL` for the name `all`).
    pub(crate) fn reset(variable: &ObjectName) -> Self {
        let name = name(variable);
        if name.eq_ignore_ascii_case("all") { Command::ResetAll } else { Command::Set(vec![(name, None)]) }
    }

    /// The schema of the rows the command returns (none for SET and RESET).
    pub(crate) fn schema(&self) -> Option<SchemaRef> {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        Some(Arc::new(match self {
            Command::Show(name) => Schema::new(vec![text(&display_name(name))]),
            Command::ShowAll => Schema::new(vec![text("name"), text("setting")]),
            Command::Set(_) | Command::ResetAll => return None,
        }))
    }

    /// The command tag of a successful run.
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            Command::Set(_) => "SET",
            Command::ResetAll => "RESET",
            Command::Show(_) | Command::ShowAll => "SHOW",
        }
    }
}

fn assignments(set: &Set) -> Result<Vec<(String, Option<String>)>> {
    Ok(match set {
        Set::SingleAssignment { scope, variable, values, .. } => {
            if matches!(scope, Some(ContextModifier::Local)) {
                return Err(Error::Unsupported("SET LOCAL (use SET, which lasts for the session)".into()));
            }
            vec![(name(variable), value(values)?)]
        }
        Set::SetTimeZone { local: false, value: v } => vec![("TimeZone".into(), value(std::slice::from_ref(v))?)],
        Set::SetNames { charset_name, collation_name: None } => vec![("client_encoding".into(), Some(charset_name.value.clone()))],
        Set::SetTransaction { modes, snapshot: None, session } => {
            let name = if *session { "default_transaction_isolation" } else { "transaction_isolation" };
            modes
                .iter()
                .map(|m| match m {
                    TransactionMode::IsolationLevel(level) => Ok((name.to_owned(), Some(isolation(level)?))),
                    TransactionMode::AccessMode(mode) => {
                        let name = if *session { "default_transaction_read_only" } else { "transaction_read_only" };
                        let read_only = matches!(mode, datafusion::sql::sqlparser::ast::TransactionAccessMode::ReadOnly);
                        Ok((name.to_owned(), Some(if read_only { "on" } else { "off" }.to_owned())))
                    }
                })
                .collect::<Result<_>>()?
        }
        other => return Err(Error::Unsupported(format!("the statement {other}"))),
    })
}

fn isolation(level: &TransactionIsolationLevel) -> Result<String> {
    Ok(match level {
        TransactionIsolationLevel::ReadUncommitted => "read uncommitted",
        _ => level_of(level)?.name(),
    }
    .to_owned())
}

/// The level a `BEGIN` or `SET TRANSACTION` names. SERIALIZABLE is
/// refused, never quietly weakened: an application that asks for it relies
/// on more than snapshot isolation gives.
pub(crate) fn level_of(level: &TransactionIsolationLevel) -> Result<Isolation> {
    match level {
        TransactionIsolationLevel::ReadUncommitted | TransactionIsolationLevel::ReadCommitted => Ok(Isolation::ReadCommitted),
        TransactionIsolationLevel::RepeatableRead => Ok(Isolation::RepeatableRead),
        other => Err(Error::Unsupported(format!(
            "ISOLATION LEVEL {other} (OmenDB provides READ COMMITTED and REPEATABLE READ, snapshot isolation)"
        ))),
    }
}

fn name(variable: &ObjectName) -> String {
    variable.0.iter().map(|p| p.as_ident().map_or_else(|| p.to_string(), |i: &Ident| i.value.clone())).collect::<Vec<_>>().join(".")
}

/// The value of `SET name TO v1, v2`; `None` for `DEFAULT`.
fn value(values: &[Expr]) -> Result<Option<String>> {
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        parts.push(match v {
            Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default") && i.quote_style.is_none() && values.len() == 1 => {
                return Ok(None);
            }
            Expr::Identifier(i) => i.value.clone(),
            Expr::Value(v) => match &v.value {
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                SqlValue::Number(n, _) => n.clone(),
                SqlValue::Boolean(b) => if *b { "on" } else { "off" }.to_owned(),
                other => other.to_string(),
            },
            Expr::UnaryOp { .. } => v.to_string().replace(' ', ""),
            other => return Err(Error::Unsupported(format!("the SET value {other}"))),
        });
    }
    Ok(Some(parts.join(", ")))
}

/// A duration as PostgreSQL spells one: milliseconds, or a number with a
/// unit (`ms`, `s`, `min`, `h`).
pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let ms = match v[split..].trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_as_postgres_spells_them() {
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn defaults_names_and_changes() {
        let mut s = Settings::default();
        assert_eq!(s.get("timezone").unwrap(), "UTC");
        assert_eq!(s.get("SERVER_VERSION").unwrap(), SERVER_VERSION);
        s.set("TimeZone", Some("Europe/Paris".into())).unwrap();
        assert_eq!(s.get("TIMEZONE").unwrap(), "Europe/Paris");
        s.set("timezone", None).unwrap();
        assert_eq!(s.get("TimeZone").unwrap(), "UTC");
        assert!(s.get("no_such_thing").is_none());
        assert!(matches!(s.set("no_such_thing", Some("1".into())), Err(Error::UnknownSetting(_))));
        assert!(matches!(s.set("server_version", Some("16".into())), Err(Error::Unsupported(_))));
        assert!(matches!(s.set("client_encoding", Some("LATIN1".into())), Err(Error::Unsupported(_))));
        s.set("client_encoding", Some("utf8".into())).unwrap();
        s.set("MyApp.Tenant", Some("7".into())).unwrap();
        assert_eq!(s.get("myapp.tenant").unwrap(), "7");
        assert!(s.all().iter().any(|(n, v)| n == "myapp.tenant" && v == "7"));
        for name in REPORTED {
            assert!(s.get(name).is_some(), "{name}");
        }
    }
}
