//! `VACUUM`, `ANALYZE` and `CHECKPOINT`, which PostgreSQL tools (pgbench
//! among them) and operators send.
//!
//! VACUUM and ANALYZE check that the tables they name exist. `VACUUM` runs a garbage
//! collection pass of the row store at once (the background collector runs
//! it anyway) and compacts the column store's tables (dropping versions no
//! open snapshot sees, sorting by key); `VACUUM FULL` also merges every
//! table's checkpoint runs into
//! one ([`omen_rowstore::Store::compact`]; tables named or not, it merges
//! them all). `ANALYZE` has nothing to do, since the planner reads
//! statistics from the column store as it plans. Other options in either
//! spelling, `VACUUM (VERBOSE, ANALYZE) t` or `VACUUM FREEZE ANALYZE t`, are
//! accepted and change nothing. `CHECKPOINT` writes a row-store checkpoint
//! at once ([`omen_rowstore::Store::checkpoint`]), so the log is cut and the
//! next open replays little; it runs on the calling thread, for as long as
//! writing what changed since the last one takes.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Word};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::names::table_name;
use crate::output::Output;

/// A parsed `VACUUM`, `ANALYZE` or `CHECKPOINT`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Maintenance {
    kind: Kind,
    /// `VACUUM FULL`: merge the checkpoint runs too.
    full: bool,
    tables: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Vacuum,
    Analyze,
    Checkpoint,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Vacuum => "VACUUM",
            Kind::Analyze => "ANALYZE",
            Kind::Checkpoint => "CHECKPOINT",
        }
    }
}

impl Maintenance {
    /// Parses `sql` if it is a VACUUM, ANALYZE or CHECKPOINT statement:
    /// `Ok(None)` for any other.
    pub(crate) fn parse(sql: &str) -> Result<Option<Self>> {
        let dialect = PostgreSqlDialect {};
        let mut p = Parser::new(&dialect).try_with_sql(sql)?;
        let kind = match p.parse_one_of_keywords(&[Keyword::VACUUM, Keyword::ANALYZE]) {
            Some(Keyword::VACUUM) => Kind::Vacuum,
            Some(_) => Kind::Analyze,
            None => match p.peek_token().token {
                Token::Word(w) if w.value.eq_ignore_ascii_case("checkpoint") => {
                    p.next_token();
                    Kind::Checkpoint
                }
                _ => return Ok(None),
            },
        };
        // CHECKPOINT takes no options and no tables.
        let options = kind != Kind::Checkpoint;
        let mut full = false;
        if options && p.consume_token(&Token::LParen) {
            p.parse_comma_separated(|p| {
                let option = p.parse_identifier()?;
                let on = match p.peek_token().token {
                    Token::Comma | Token::RParen => true,
                    Token::Word(Word { value, .. }) | Token::SingleQuotedString(value) => {
                        p.next_token();
                        !["false", "off", "0", "no"].iter().any(|off| value.eq_ignore_ascii_case(off))
                    }
                    Token::Number(n, _) => {
                        p.next_token();
                        n != "0"
                    }
                    _ => {
                        p.next_token();
                        true
                    }
                };
                full |= on && option.value.eq_ignore_ascii_case("full");
                Ok(())
            })?;
            p.expect_token(&Token::RParen)?;
        } else if options {
            while let Some(k) = p.parse_one_of_keywords(&[Keyword::FULL, Keyword::FREEZE, Keyword::VERBOSE, Keyword::ANALYZE]) {
                full |= k == Keyword::FULL;
            }
        }
        let full = full && kind == Kind::Vacuum;
        let mut tables = Vec::new();
        if options && !matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
            tables = p
                .parse_comma_separated(|p| {
                    let name = p.parse_object_name(false)?;
                    if p.consume_token(&Token::LParen) {
                        p.parse_comma_separated(|p| p.parse_identifier())?;
                        p.expect_token(&Token::RParen)?;
                    }
                    Ok(name)
                })?
                .iter()
                .map(table_name)
                .collect::<Result<_>>()?;
        }
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token() != Token::EOF {
            return Err(Error::Parse(format!("unexpected {} in {}", p.peek_token(), kind.tag())));
        }
        Ok(Some(Self { kind, full, tables }))
    }

    pub(crate) fn run(&self, ctx: &Context, explicit: bool) -> Result<Output> {
        if self.kind == Kind::Vacuum && explicit {
            return Err(Error::Unsupported("VACUUM inside a transaction block".into()));
        }
        if let Some(missing) = self.tables.iter().find(|t| ctx.rows.table(t).is_none()) {
            return Err(Error::UnknownTable(missing.clone()));
        }
        match self.kind {
            Kind::Vacuum => {
                ctx.rows.collect_garbage();
                // The column store drops the versions no open snapshot sees.
                blocking(|| ctx.sync.compact(true))?;
                if self.full {
                    blocking(|| ctx.rows.compact())?;
                }
            }
            Kind::Analyze => {}
            Kind::Checkpoint => drop(blocking(|| ctx.rows.checkpoint())?),
        }
        Ok(Output::Command(self.kind.tag()))
    }
}

/// Runs `f`, which may take long, without holding up the other tasks of a
/// multi-threaded runtime it is called from.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_spellings_parse() {
        let m = |sql: &str| Maintenance::parse(sql).unwrap().unwrap();
        assert_eq!(
            m("vacuum analyze pgbench_branches"),
            Maintenance { kind: Kind::Vacuum, full: false, tables: vec!["pgbench_branches".into()] }
        );
        assert_eq!(m("VACUUM (VERBOSE, ANALYZE true) a, b (x, y);").tables, ["a", "b"]);
        assert_eq!(m("VACUUM FULL FREEZE VERBOSE"), Maintenance { kind: Kind::Vacuum, full: true, tables: vec![] });
        assert!(m("VACUUM (FULL) t").full && m("VACUUM (VERBOSE, FULL true) t").full);
        assert!(
            !m("VACUUM (FULL 'off') t").full
                && !m("VACUUM (FULL false) t").full
                && !m("VACUUM (FULL 0, VERBOSE)").full
                && !m("ANALYZE VERBOSE t").full
        );
        assert_eq!(m("ANALYZE t"), Maintenance { kind: Kind::Analyze, full: false, tables: vec!["t".into()] });
        assert_eq!(m("checkpoint;"), Maintenance { kind: Kind::Checkpoint, full: false, tables: vec![] });
        assert!(Maintenance::parse("SELECT 1").unwrap().is_none());
        for bad in ["VACUUM (", "VACUUM t u", "ANALYZE t (", "VACUUM other.t", "CHECKPOINT t"] {
            assert!(Maintenance::parse(bad).is_err(), "{bad}");
        }
    }
}
