//! [`Txn`]: the transaction a statement runs in, as the session hands it to
//! the write paths (a COPY carries it between its calls).

use omen_rowstore::{Savepoint, Transaction};

use crate::error::Result;

/// The transaction a statement runs in, and whether the session owns it.
pub(crate) enum Txn {
    Explicit(Transaction),
    Implicit(Transaction),
}

impl Txn {
    pub(crate) fn get(&mut self) -> &mut Transaction {
        match self {
            Txn::Explicit(t) | Txn::Implicit(t) => t,
        }
    }

    /// Starts a READ COMMITTED statement, or its next run: a fresh
    /// snapshot and a savepoint to undo it to.
    pub(crate) fn statement_start(&mut self) -> Result<Savepoint> {
        self.get().refresh_snapshot()?;
        Ok(self.get().savepoint())
    }
}
