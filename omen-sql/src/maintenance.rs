//! `VACUUM` and `ANALYZE`, which PostgreSQL tools (pgbench among them) send.
//!
//! Both check that the tables they name exist. `VACUUM` runs a garbage
//! collection pass of the row store at once (the background collector runs
//! it anyway); `ANALYZE` has nothing to do, since the planner reads
//! statistics from the column store as it plans. Options in either
//! spelling, `VACUUM (VERBOSE, ANALYZE) t` or `VACUUM FULL ANALYZE t`, are
//! accepted and change nothing.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::ddl::table_name;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::session::Output;

/// A parsed `VACUUM` or `ANALYZE`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Maintenance {
    vacuum: bool,
    tables: Vec<String>,
}

impl Maintenance {
    /// Parses `sql` if it is a VACUUM or ANALYZE statement: `Ok(None)` for
    /// any other.
    pub(crate) fn parse(sql: &str) -> Result<Option<Self>> {
        let dialect = PostgreSqlDialect {};
        let mut p = Parser::new(&dialect).try_with_sql(sql)?;
        let vacuum = match p.parse_one_of_keywords(&[Keyword::VACUUM, Keyword::ANALYZE]) {
            Some(Keyword::VACUUM) => true,
            Some(_) => false,
            None => return Ok(None),
        };
        if p.consume_token(&Token::LParen) {
            p.parse_comma_separated(|p| {
                p.parse_identifier()?;
                if !matches!(p.peek_token().token, Token::Comma | Token::RParen) {
                    p.next_token();
                }
                Ok(())
            })?;
            p.expect_token(&Token::RParen)?;
        } else {
            while p.parse_one_of_keywords(&[Keyword::FULL, Keyword::FREEZE, Keyword::VERBOSE, Keyword::ANALYZE]).is_some() {}
        }
        let mut tables = Vec::new();
        if !matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
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
            return Err(Error::Parse(format!("unexpected {} in {}", p.peek_token(), if vacuum { "VACUUM" } else { "ANALYZE" })));
        }
        Ok(Some(Self { vacuum, tables }))
    }

    pub(crate) fn run(&self, engine: &Engine, explicit: bool) -> Result<Output> {
        if self.vacuum && explicit {
            return Err(Error::Unsupported("VACUUM inside a transaction block".into()));
        }
        if let Some(missing) = self.tables.iter().find(|t| engine.rows.table(t).is_none()) {
            return Err(Error::UnknownTable(missing.clone()));
        }
        if self.vacuum {
            engine.rows.collect_garbage();
        }
        Ok(Output::Command(if self.vacuum { "VACUUM" } else { "ANALYZE" }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_spellings_parse() {
        let m = |sql: &str| Maintenance::parse(sql).unwrap().unwrap();
        assert_eq!(m("vacuum analyze pgbench_branches"), Maintenance { vacuum: true, tables: vec!["pgbench_branches".into()] });
        assert_eq!(m("VACUUM (VERBOSE, ANALYZE true) a, b (x, y);").tables, ["a", "b"]);
        assert_eq!(m("VACUUM FULL FREEZE VERBOSE"), Maintenance { vacuum: true, tables: vec![] });
        assert_eq!(m("ANALYZE t"), Maintenance { vacuum: false, tables: vec!["t".into()] });
        assert!(Maintenance::parse("SELECT 1").unwrap().is_none());
        for bad in ["VACUUM (", "VACUUM t u", "ANALYZE t (", "VACUUM other.t"] {
            assert!(Maintenance::parse(bad).is_err(), "{bad}");
        }
    }
}
