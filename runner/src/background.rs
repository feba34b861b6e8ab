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
}

impl Default for Background {
    fn default() -> Self {
        Self::new(2)
    }
}

impl Background {
    pub fn new(concurrency: usize) -> Self {
        Background {
            inner: Arc::new(Inner {
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                slots: Semaphore::new(concurrency),
            }),
        }
    }

    /// A job that takes one of the slots (Python's job scheduler's jobs).
    pub fn spawn<F>(&self, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.start(job, true)
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
            });
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
        });
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
        bg.spawn(async { panic!("boom") });
        bg.idle().await;
        assert_eq!(bg.in_flight(), 0);
    }
}
