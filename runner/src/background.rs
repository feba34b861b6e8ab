//! Background jobs (the post-finish reschedule), with a way to wait until none
//! is running, so tests and the harness observe the state they leave behind.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct Background {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    in_flight: AtomicUsize,
    idle: Notify,
    /// Python's job scheduler runs at most two jobs at once.
    slots: Semaphore,
    /// Slotted jobs queued or running. Bounded: finishes arriving faster
    /// than their reschedules run (256 closed-loop workers) otherwise
    /// queued jobs without end, ~3.5 KB each, and the runner's memory grew
    /// by 4–5 MB a second while the reschedules fell further behind.
    queued: Arc<Semaphore>,
}

/// Most slotted jobs queued or running before [`Background::spawn`] waits.
/// (Upstream's aiojobs scheduler makes `spawn` wait too, past its pending
/// limit.)
pub const MAX_QUEUED_JOBS: usize = 256;

impl Default for Background {
    fn default() -> Self {
        Self::new(2)
    }
}

impl Background {
    pub fn new(concurrency: usize) -> Self {
        Self::with_queue_limit(concurrency, MAX_QUEUED_JOBS)
    }

    pub fn with_queue_limit(concurrency: usize, queued: usize) -> Self {
        Background {
            inner: Arc::new(Inner {
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                slots: Semaphore::new(concurrency),
                queued: Arc::new(Semaphore::new(queued)),
            }),
        }
    }

    /// A job that takes one of the slots (Python's job scheduler's jobs).
    /// Waits while the queue is full, so a caller producing jobs faster
    /// than they run is slowed down instead of piling them up.
    pub async fn spawn<F>(&self, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let place = self
            .inner
            .queued
            .clone()
            .acquire_owned()
            .await
            .expect("the queue semaphore is never closed");
        self.start(
            async move {
                let _place = place;
                job.await
            },
            true,
        )
    }

    /// A job of our own that waits on a dependency for seconds (a claim
    /// released once Redis answers): counted for [`Background::idle`], but
    /// it takes no slot, so it never delays the reschedules behind it.
    pub fn spawn_unlimited<F>(&self, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.start(job, false)
    }

    fn start<F>(&self, job: F, limited: bool)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            // A guard so the count drops even if the job panics.
            struct Done(Arc<Inner>);
            impl Drop for Done {
                fn drop(&mut self) {
                    if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                        self.0.idle.notify_waiters();
                    }
                }
            }
            let done = Done(inner);
            let _permit = if limited {
                Some(done.0.slots.acquire().await)
            } else {
                None
            };
            job.await;
        });
    }

    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once no job is queued or running.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_every_job() {
        let bg = Background::new(2);
        let counter = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let c = counter.clone();
            bg.spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                c.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        }
        bg.idle().await;
        assert_eq!(counter.load(Ordering::SeqCst), 5);
        assert_eq!(bg.in_flight(), 0);
    }

    /// A job holding both slots does not delay an unlimited job, and idle
    /// waits for the unlimited one too.
    #[tokio::test]
    async fn an_unlimited_job_takes_no_slot() {
        let bg = Background::new(1);
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        bg.spawn(async move {
            let _ = held.await;
        })
        .await;
        let (done_tx, done) = tokio::sync::oneshot::channel();
        bg.spawn_unlimited(async move {
            let _ = done_tx.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("the unlimited job ran while the only slot was held")
            .unwrap();
        assert_eq!(bg.in_flight(), 1);
        release.send(()).unwrap();
        bg.idle().await;
        assert_eq!(bg.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_wedge_idle() {
        let bg = Background::new(1);
        bg.spawn(async { panic!("boom") }).await;
        bg.idle().await;
        assert_eq!(bg.in_flight(), 0);
    }

    /// Past the queue limit, `spawn` waits until a queued job is done.
    #[tokio::test]
    async fn spawn_waits_while_the_queue_is_full() {
        let bg = Background::with_queue_limit(1, 2);
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        bg.spawn(async move {
            let _ = held.await;
        })
        .await;
        bg.spawn(async {}).await;
        let third = bg.spawn(async {});
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut third)
                .await
                .is_err(),
            "two jobs queued: the third spawn waits"
        );
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("a place freed: the spawn goes through");
        bg.idle().await;
        assert_eq!(bg.in_flight(), 0);
    }
}
