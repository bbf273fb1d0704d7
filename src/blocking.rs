//! The bounded pool for blocking and CPU-heavy work that tenant input can trigger: reading a
//! file named by a SecretProviderClass, PKCS#12 key derivation, large PEM bundles.
//!
//! The async runtime's worker threads must never run such work: one slow job there stalls
//! `Version`, every other mount and `/healthz`. [`run`] moves a job to tokio's blocking threads,
//! but admits at most [`BlockingLimits::max_jobs`] jobs at once (further jobs queue for a slot)
//! and gives up waiting after [`BlockingLimits::timeout`], counted from the call (queueing
//! included). A job that overruns keeps its slot until its thread actually finishes, so a job
//! that cannot be stopped still cannot multiply: the pool stays bounded, and callers get a clear
//! error instead of waiting.
//!
//! The limits are process-wide, set once at start-up from the flags (`--max-blocking-jobs`,
//! `--blocking-timeout`) by [`configure`]; without that call the defaults apply.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Limits of the blocking pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockingLimits {
    /// Most jobs running at once; more wait for a slot.
    pub max_jobs: usize,
    /// Longest a caller waits for its job, queueing included.
    pub timeout: Duration,
}

/// Default of `--max-blocking-jobs`: enough for a node's concurrent cold mounts, few enough that
/// a flood of expensive jobs cannot take every core.
pub const DEFAULT_MAX_JOBS: usize = 4;
/// Default of `--blocking-timeout`: far above what a legitimate job takes (milliseconds), well
/// inside the kubelet's 2-minute mount deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for BlockingLimits {
    fn default() -> Self {
        Self {
            max_jobs: DEFAULT_MAX_JOBS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a blocking job gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockingError {
    /// The job (or its wait for a slot) took longer than the pool's timeout.
    #[error("took longer than {0:?}")]
    TimedOut(Duration),
    /// The job panicked; the panic is contained to it.
    #[error("failed unexpectedly")]
    Panicked,
}

struct Pool {
    limits: BlockingLimits,
    slots: Arc<Semaphore>,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(BlockingLimits::default()))
}

impl Pool {
    fn new(limits: BlockingLimits) -> Self {
        let limits = BlockingLimits {
            max_jobs: limits.max_jobs.max(1),
            timeout: limits.timeout.max(Duration::from_millis(1)),
        };
        Self {
            slots: Arc::new(Semaphore::new(limits.max_jobs)),
            limits,
        }
    }
}

/// Sets the process-wide limits. Only the first call (or the first use of the pool) counts;
/// returns false when the limits were already fixed.
pub fn configure(limits: BlockingLimits) -> bool {
    POOL.set(Pool::new(limits)).is_ok()
}

/// The limits in force.
pub fn limits() -> BlockingLimits {
    pool().limits
}

/// Runs `job` on a blocking thread, at most `max_jobs` at once, and waits at most `timeout`
/// (queueing included) for its result.
pub async fn run<T, F>(job: F) -> Result<T, BlockingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pool().run(job).await
}

impl Pool {
    async fn run<T, F>(&self, job: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let timeout = self.limits.timeout;
        let slots = self.slots.clone();
        let work = async move {
            let permit = slots
                .acquire_owned()
                .await
                .map_err(|_| BlockingError::Panicked)?;
            // The permit moves into the thread: a job that overruns the timeout keeps its slot
            // until it really ends.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job()
            })
            .await
            .map_err(|_| BlockingError::Panicked)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(BlockingError::TimedOut(timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_contains_panics() {
        assert_eq!(run(|| 2 + 2).await, Ok(4));
        let panicked: Result<(), _> = run(|| panic!("boom")).await;
        assert_eq!(panicked, Err(BlockingError::Panicked));
    }

    #[tokio::test]
    async fn a_slow_job_times_out_and_keeps_its_slot_until_it_ends() {
        let pool = Pool::new(BlockingLimits {
            max_jobs: 1,
            timeout: Duration::from_millis(100),
        });
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slow = pool.run(move || {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        });
        assert_eq!(
            slow.await,
            Err(BlockingError::TimedOut(Duration::from_millis(100)))
        );
        // Still running: the next job cannot get the slot in time.
        assert_eq!(
            pool.run(|| 1).await,
            Err(BlockingError::TimedOut(Duration::from_millis(100)))
        );
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.slots.available_permits() == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }
}
