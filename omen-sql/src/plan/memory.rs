//! The per-query memory limit: each query execution draws on the engine's
//! memory pool (the database's budget) through a pool of its own that
//! also caps what that one query holds, so a single large sort or join
//! cannot take the whole budget from the others. Past the cap the query
//! spills where DataFusion can, or fails with "Resources exhausted".
//!
//! Within the query the cap is shared as DataFusion's `FairSpillPool`
//! shares a budget: each spilling operator (a sort or aggregation per
//! partition) gets an equal part. A first-come cap let one partition's
//! sort take it all and left the other spilling every batch alone, which
//! made merges of thousands of tiny runs.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionState;

use crate::context::Context;

/// One query's share of `inner`, at most `limit` bytes.
#[derive(Debug)]
pub(crate) struct QueryPool {
    inner: Arc<dyn MemoryPool>,
    /// The query's own accounting: the limit, fairly shared.
    own: FairSpillPool,
    limit: usize,
}

impl QueryPool {
    pub(crate) fn new(inner: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self { inner, own: FairSpillPool::new(limit), limit }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query pool: {} of {} bytes, over {}", self.reserved(), self.limit, self.inner)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "omendb-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.own.register(consumer);
        self.inner.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.own.unregister(consumer);
        self.inner.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.inner.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.inner.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let over = |what: String| DataFusionError::ResourcesExhausted(format!("{what} (the query's limit, Options::query_memory_limit)"));
        self.own.try_grow(reservation, additional).map_err(|e| match e {
            DataFusionError::ResourcesExhausted(m) => over(m),
            other => other,
        })?;
        // The fair pool checks each spilling operator against its share
        // when it grows, not the total: a share taken before another
        // operator registered can leave the query over its limit.
        if self.own.reserved() > self.limit {
            self.own.shrink(reservation, additional);
            return Err(over(format!("{} wants {additional} more bytes past {} held", reservation.consumer().name(), self.limit)));
        }
        if let Err(e) = self.inner.try_grow(reservation, additional) {
            self.own.shrink(reservation, additional);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.inner.memory_limit() {
            MemoryLimit::Finite(budget) => MemoryLimit::Finite(budget.min(self.limit)),
            _ => MemoryLimit::Finite(self.limit),
        }
    }
}

/// The context one query execution runs in: `state`'s, with a memory
/// pool of its own under the per-query limit, if one is set.
pub(crate) fn task_ctx(context: &Context, state: &SessionState) -> Arc<TaskContext> {
    if context.query_memory_limit == 0 {
        return state.task_ctx();
    }
    let runtime = state.runtime_env();
    let pool = QueryPool::new(Arc::clone(&runtime.memory_pool), context.query_memory_limit);
    let runtime = RuntimeEnv { memory_pool: Arc::new(pool), ..runtime.as_ref().clone() };
    Arc::new(TaskContext::from(state).with_runtime(Arc::new(runtime)))
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    use super::*;

    #[test]
    fn a_query_is_capped_below_the_shared_budget() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let query: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Arc::clone(&shared), 300));
        let a = MemoryConsumer::new("sort").register(&query);
        a.try_grow(200).unwrap();
        assert!(a.try_grow(200).unwrap_err().to_string().contains("query_memory_limit"));
        assert_eq!((query.reserved(), shared.reserved()), (200, 200), "a refused grow takes nothing");
        a.shrink(150);
        a.try_grow(250).unwrap();
        assert_eq!((query.reserved(), shared.reserved()), (300, 300));
        // The shared budget still binds: another query took most of it.
        let other: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(Arc::clone(&shared), 1000));
        let b = MemoryConsumer::new("join").register(&other);
        assert!(b.try_grow(800).is_err());
        assert_eq!(other.reserved(), 0);
        drop(a);
        b.try_grow(800).unwrap();
        assert_eq!(shared.reserved(), 800);
    }
}
