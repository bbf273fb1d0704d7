//! Lock recovery, in one place.
//!
//! A `std::sync::Mutex` is poisoned when a thread panics while holding it. Every mutex in this
//! crate guards state that stays consistent across such a panic (counters, maps whose entries are
//! replaced whole, timestamps), and a panic in one mount must not wedge every later mount, so a
//! poisoned lock is taken over rather than propagated. [`lock`] is the one spelling of that rule.
//! Code that needs the poison signal must not use it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking over the guard if a previous holder panicked (see the module doc).
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let holder = std::sync::Arc::clone(&mutex);
        let panicked = std::thread::spawn(move || {
            let _guard = holder.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
    }
}
