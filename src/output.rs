//! [`Output`]: what a statement produced, with its rows collected.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;

use crate::{Error, Result};

/// What a statement run through [`Connection::run`](crate::Connection::run) produced.
#[derive(Debug)]
pub enum Output {
    /// A query's rows (possibly none), or those a RETURNING clause made,
    /// and their schema.
    Rows {
        /// `SELECT`, or `INSERT`, `UPDATE` or `DELETE` for RETURNING.
        tag: &'static str,
        /// The schema of every batch, also when there are no rows.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
    /// INSERT, UPDATE or DELETE, and the rows it changed.
    Affected {
        /// `INSERT`, `UPDATE` or `DELETE`.
        tag: &'static str,
        /// How many rows.
        rows: u64,
    },
    /// A statement without rows (DDL, BEGIN, COMMIT, ...), by its command
    /// tag; empty for a statement with only comments.
    Command(&'static str),
}

impl Output {
    /// Rows changed by DML, or returned by a query; 0 otherwise.
    pub fn rows(&self) -> u64 {
        match self {
            Output::Rows { batches, .. } => batches.iter().map(|b| b.num_rows() as u64).sum(),
            Output::Affected { rows, .. } => *rows,
            Output::Command(_) => 0,
        }
    }

    /// The batches of a query (none for other statements).
    pub fn into_batches(self) -> Vec<RecordBatch> {
        match self {
            Output::Rows { batches, .. } => batches,
            _ => Vec::new(),
        }
    }

    /// Collects a statement's output.
    pub(crate) async fn collect(out: omen_sql::Output) -> Result<Self> {
        Ok(match out {
            omen_sql::Output::Rows { tag, stream } => {
                let schema = stream.schema();
                let batches = stream.try_collect().await.map_err(omen_sql::Error::from)?;
                Output::Rows { tag, schema, batches }
            }
            omen_sql::Output::Affected { tag, rows } => Output::Affected { tag, rows },
            omen_sql::Output::Command(tag) => Output::Command(tag),
        })
    }

    /// [`Output::collect`] of a fast-path output, whose rows are ready.
    pub(crate) fn collect_ready(out: omen_sql::Output) -> Result<Self> {
        // The stream is in memory, so one poll finishes it; no executor is
        // entered, which would panic inside the caller's own executor.
        futures::FutureExt::now_or_never(Self::collect(out))
            .unwrap_or_else(|| Err(Error::Internal("a fast-path result was not ready".into())))
    }
}
