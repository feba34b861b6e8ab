//! Candidate selection shared by concurrent unfiltered assigns (issue 13).
//!
//! Concurrent assigns that each select the head of the queue all try to
//! claim the same items: all but one lose, and the losers select and claim
//! again, so round trips per assignment grow with the number of workers.
//! Here one selection serves every unfiltered assign that was waiting when it
//! started, and each candidate is handed to one request of this process only,
//! so they never fight each other. The Redis claim stays the arbiter between
//! runner processes (a candidate another process claimed is lost once, and
//! the request takes the next one).
//!
//! One request at a time sees exactly the old behaviour: a request only
//! takes candidates of a selection that started after it arrived (claims
//! read, then the queue read), so it gets the head of the queue as it is
//! then, as upstream.

use super::*;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most candidates one shared selection reads.
const MAX_SHARED_BATCH: i64 = 512;

#[derive(Default)]
pub struct SelectionPool {
    /// Tickets handed to requests; a selection covers every ticket issued
    /// before it started.
    tickets: AtomicU64,
    /// Held while selecting, so concurrent requests wait and share the result.
    pool: tokio::sync::Mutex<Pool>,
    /// Candidates handed to a request whose claim has not returned yet: a
    /// selection made meanwhile may not see their claims in Redis.
    taken: std::sync::Mutex<HashSet<i32>>,
}

#[derive(Default)]
struct Pool {
    /// Highest ticket this selection serves.
    covers: u64,
    candidates: VecDeque<db::queue::NextItem>,
    /// The selection returned as many rows as it asked for: more may follow.
    full: bool,
    /// Smallest batch asked for by a waiting request (see [`Shared::take`]).
    want: i64,
}

/// A request's place in the shared selection.
pub(super) struct Shared {
    ticket: u64,
}

impl Shared {
    pub(super) fn new(pool: &SelectionPool) -> Shared {
        Shared {
            ticket: pool.tickets.fetch_add(1, Ordering::SeqCst) + 1,
        }
    }

    /// The next candidate for this request, `None` when the queue holds no
    /// unclaimed item it may take. `skip` tells items this request must not
    /// take (reschedules of its own aborts); they are left for others.
    pub(super) async fn take(
        &mut self,
        app: &App,
        conn: &mut sqlx::PgConnection,
        skip: impl Fn(&db::queue::NextItem) -> bool,
        skipped: usize,
    ) -> Result<Option<db::queue::NextItem>, AssignError> {
        let sp = &app.selection;
        loop {
            let mut pool = sp.pool.lock().await;
            if pool.covers < self.ticket {
                select(app, conn, &mut pool).await?;
            }
            if let Some(pos) = pool.candidates.iter().position(|c| !skip(c)) {
                let item = pool.candidates.remove(pos).expect("position is in range");
                sp.taken.lock().expect("taken").insert(item.id);
                return Ok(Some(item));
            }
            if !pool.full {
                return Ok(None);
            }
            // Drained (or only items this request skips are left): wait for
            // a selection made after now, large enough to hold more than what
            // this request skips.
            pool.want = pool.want.max(skipped as i64 + SELECTION_BATCH);
            self.ticket = sp.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        }
    }
}

/// A candidate taken from the pool until its claim has returned (won or
/// lost: its state is in Redis then, where the next selection reads it).
/// Dropped, not called: a request cancelled mid-claim (the worker hung up)
/// must not leave the item hidden from every later selection of this
/// process.
pub(super) struct Taken<'a> {
    pool: &'a SelectionPool,
    id: i32,
}

impl<'a> Taken<'a> {
    /// `id` was handed out by [`Shared::take`], which marked it taken.
    pub(super) fn new(pool: &'a SelectionPool, id: i32) -> Self {
        Taken { pool, id }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.pool.taken.lock() {
            taken.remove(&self.id);
        }
    }
}

/// A fresh selection for every request waiting now: claims and rate limits
/// read from Redis, then one query, as many rows as requests waited (twice
/// that, for the claims other processes win meanwhile).
async fn select(
    app: &App,
    conn: &mut sqlx::PgConnection,
    pool: &mut Pool,
) -> Result<(), AssignError> {
    let sp = &app.selection;
    let covers = sp.tickets.load(Ordering::SeqCst);
    let waiting = i64::try_from(covers - pool.covers).unwrap_or(i64::MAX);
    let limit = waiting
        .saturating_mul(2)
        .clamp(SELECTION_BATCH, MAX_SHARED_BATCH)
        .max(pool.want);
    // Read before the claims: a candidate settled since is in Redis by then.
    let taken: Vec<i32> = sp.taken.lock().expect("taken").iter().copied().collect();
    let (claimed, limits) = state::selection_inputs(&app.runs).await?;
    let exclude_hosts = excluded_hosts(app, limits);
    let mut assigned: Vec<i32> = claimed
        .into_iter()
        .filter_map(|k| i32::try_from(k).ok())
        .collect();
    assigned.extend(taken);
    let filter = db::queue::NextItemFilter {
        codebase: None,
        campaign: None,
        exclude_hosts: &exclude_hosts,
        assigned: &assigned,
    };
    let batch = db::queue::next_items(conn, &filter, limit).await?;
    pool.full = batch.len() as i64 == limit;
    pool.candidates = batch.into();
    pool.covers = covers;
    pool.want = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_claim_releases_its_candidate() {
        let pool = SelectionPool::default();
        pool.taken.lock().unwrap().insert(7);
        // A claim that never returns, cancelled as a dropped request is.
        let claim = async {
            let _taken = Taken::new(&pool, 7);
            std::future::pending::<()>().await;
        };
        let r = tokio::time::timeout(std::time::Duration::from_millis(10), claim).await;
        assert!(r.is_err());
        assert!(pool.taken.lock().unwrap().is_empty());
    }
}
