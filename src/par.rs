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

/// Items from which `map` goes parallel: below it, spawning costs more
/// than the work it shares.
pub const MANY: usize = 64;

/// `map_min` for many small items (`MANY` or more go parallel).
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_min(items, MANY, f)
}

/// `map_min`, starting with the items `weight` rates heaviest, so that a
/// large item among small ones does not run alone at the end while the
/// other threads idle. Results keep the order of `items`.
pub fn map_heaviest_first<T: Sync, R: Send, W: Ord>(
    items: &[T],
    min: usize,
    weight: impl Fn(&T) -> W,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: equal weights keep their order.
    order.sort_by_key(|&i| std::cmp::Reverse(weight(&items[i])));
    let done = map_min(&order, min, |&i| f(&items[i]));
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in order.into_iter().zip(done) {
        slots[i] = Some(r);
    }
    // Every index is in `order` exactly once, so every slot is filled.
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heaviest_first_keeps_the_order_of_results() {
        let items: Vec<u64> = (0..200).map(|i| (i * 7919) % 101).collect();
        let started = std::sync::Mutex::new(Vec::new());
        let out = map_heaviest_first(
            &items,
            2,
            |&w| w,
            |&w| {
                started.lock().unwrap().push(w);
                w * 2
            },
        );
        assert_eq!(out, items.iter().map(|w| w * 2).collect::<Vec<_>>());
        // On one thread the heaviest starts first; on more, it is among the first.
        let started = started.into_inner().unwrap();
        assert!(started[..threads().min(items.len())].contains(&100), "{:?}", &started[..4]);
    }
}
