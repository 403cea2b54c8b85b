//! The plan cache: prepared statements by SQL text, so a statement run
//! again is not parsed or planned again.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::session::PreparedStatement;

/// How many statements the cache holds before it starts over.
const STATEMENT_CACHE: usize = 1024;

/// Recently prepared statements by their SQL text.
#[derive(Default)]
pub(super) struct PlanCache(Mutex<HashMap<String, Arc<PreparedStatement>>>);

impl PlanCache {
    pub(super) fn get(&self, sql: &str) -> Option<Arc<PreparedStatement>> {
        self.0.lock().get(sql).cloned()
    }

    pub(super) fn insert(&self, sql: &str, statement: Arc<PreparedStatement>) {
        let mut cache = self.0.lock();
        if cache.len() >= STATEMENT_CACHE {
            // Cheaper than LRU bookkeeping on every hit; hot statements come back at once.
            cache.clear();
        }
        cache.insert(sql.to_owned(), statement);
    }
}
