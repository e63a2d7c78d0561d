//! Order-keeping parallel map over a slice, on the machine's cores.
//!
//! Used wherever items are independent: stack files, environments,
//! rendered documents, reading back the output tree, pieces of a large
//! stack file.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads to use: the machine's parallelism, at most 8. Asked once: the
/// standard library reads the cgroup quota files on every call.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8))
}

/// Runs `f` over `items` on up to `threads()` threads, keeping order.
/// Threads take the next item as they finish one, so uneven items (a large
/// environment beside small ones) still share the work. Fewer than `min`
/// items stay on the calling thread (spawning costs more than it saves).
pub fn map_min<T: Sync, R: Send>(items: &[T], min: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads().min(items.len());
    if threads < 2 || items.len() < min {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return done };
            done.push((i, f(item)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().expect("parallel worker panicked"));
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// `map_min` for many small items (64 or more go parallel).
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_min(items, 64, f)
}
