//! [`Output`]: what a statement produced, shared by every layer that runs
//! statements.

use datafusion::physical_plan::SendableRecordBatchStream;

/// What a statement produced.
pub enum Output {
    /// Rows: those of a query, or those a write's RETURNING clause made.
    Rows {
        /// The command: `SELECT`, or `INSERT`, `UPDATE` or `DELETE` for
        /// RETURNING (whose row count is the count of rows written).
        tag: &'static str,
        /// The rows, as a stream of Arrow batches.
        stream: SendableRecordBatchStream,
    },
    /// Rows changed by INSERT, UPDATE or DELETE.
    Affected {
        /// The command: `INSERT`, `UPDATE` or `DELETE`.
        tag: &'static str,
        /// How many rows.
        rows: u64,
    },
    /// A statement without rows (DDL, BEGIN, COMMIT, ...), by its command tag.
    Command(&'static str),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows { tag, stream } => f.debug_struct("Rows").field("tag", tag).field("schema", &stream.schema()).finish(),
            Output::Affected { tag, rows } => write!(f, "Affected({tag} {rows})"),
            Output::Command(tag) => write!(f, "Command({tag})"),
        }
    }
}
