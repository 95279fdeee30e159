//! The async runtime a shard's Raft group runs on: tokio, as openraft's own
//! `TokioRuntime`, except for where its randomness comes from. openraft
//! draws each election timeout from the runtime's thread-local random
//! generator; here that generator can be seeded per thread
//! ([`seed_this_thread`]), so that a simulation running every node on one
//! thread with tokio's paused clock replays exactly from its seed. Threads
//! nobody seeded draw from the operating system's entropy, as before.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// From now on, Raft's random draws on this thread come from `seed`
/// (`None`: from entropy again).
pub fn seed_this_thread(seed: Option<u64>) {
    SEEDED.with(|rng| *rng.borrow_mut() = seed.map(StdRng::seed_from_u64));
}

/// This thread's generator: the seeded one if [`seed_this_thread`] set
/// one, else `rand`'s thread-local one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardRng;

impl ShardRng {
    fn with<T>(draw: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|seeded| match seeded.borrow_mut().as_mut() {
            Some(rng) => draw(rng),
            None => draw(&mut rand::thread_rng()),
        })
    }
}

impl RngCore for ShardRng {
    fn next_u32(&mut self) -> u32 {
        ShardRng::with(|rng| rng.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        ShardRng::with(|rng| rng.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        ShardRng::with(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        ShardRng::with(|rng| rng.try_fill_bytes(dest))
    }
}

/// See the module documentation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShardRuntime;

type Tokio = TokioRuntime;

impl AsyncRuntime for ShardRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ShardRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ShardRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts_again() {
        let draw = || -> Vec<u64> {
            (0..8)
                .map(|_| ShardRuntime::thread_rng().gen_range(150..300))
                .collect()
        };
        seed_this_thread(Some(7));
        let first = draw();
        seed_this_thread(Some(7));
        assert_eq!(draw(), first);
        seed_this_thread(Some(8));
        assert_ne!(draw(), first, "another seed, other draws");
        seed_this_thread(None);
    }
}
