//! Order-keeping parallel map over a slice, on the machine's cores.
//!
//! Used wherever items are independent: stack files, environments,
//! rendered documents, reading back the output tree, pieces of a large
//! stack file. Each new thread is placed on a CPU other than its parent's
//! before it starts (`on_threads`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

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
    let mut all: Vec<(usize, R)> = on_threads(threads, |_| work()).into_iter().flatten().collect();
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Runs `a` and `b` at once, the calling thread starting with `a` and a
/// new thread with `b`; a thread that finishes takes the other if it has
/// not started (so with one core, or no thread to be had, both run here).
/// Returns both results.
pub fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    /// Runs `f` unless another thread took it first; taken under the lock,
    /// run without it.
    fn run_once<R>(f: &Mutex<Option<impl FnOnce() -> R>>, out: &Mutex<Option<R>>) {
        let f = lock(f).take();
        if let Some(f) = f {
            *lock(out) = Some(f());
        }
    }
    let (a, b) = (Mutex::new(Some(a)), Mutex::new(Some(b)));
    let (ra, rb) = (Mutex::new(None), Mutex::new(None));
    on_threads(threads().min(2), |i| {
        if i == 0 {
            run_once(&a, &ra);
            run_once(&b, &rb);
        } else {
            run_once(&b, &rb);
            run_once(&a, &ra);
        }
    });
    // Both ran: `on_threads` returns only after every thread has finished,
    // and it re-raises a panic of any of them.
    match (lock(&ra).take(), lock(&rb).take()) {
        (Some(ra), Some(rb)) => (ra, rb),
        _ => unreachable!("join: both halves run before on_threads returns"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work(i)` on the calling thread (`i` = 0) and on `n - 1` new
/// threads (`i` = 1, 2…; fewer if the system has none to give), and
/// returns what each returned, the caller's first. Every thread is joined before this returns, also when
/// one panics (the panic is then raised here).
///
/// A new thread starts on its parent's CPU. On the 2-core reference machine
/// the scheduler took 1-3 ms to move it to the idle CPU, longer than most
/// parallel steps of a render, so each new thread is placed on a CPU of
/// its own first (`place`).
pub fn on_threads<R: Send>(n: usize, work: impl Fn(usize) -> R + Sync) -> Vec<R> {
    /// Joins the helpers still held when dropped: on the way out of a
    /// panic of `work` on the calling thread, the helpers still borrow it.
    struct Helpers<R>(Vec<std::thread::JoinHandle<R>>);
    impl<R> Drop for Helpers<R> {
        fn drop(&mut self) {
            for h in self.0.drain(..) {
                let _ = h.join();
            }
        }
    }
    let work = &work;
    let mut helpers = Helpers(Vec::new());
    for i in 1..n {
        let (placed, wait) = std::sync::mpsc::channel::<()>();
        let job = move || {
            // Placed (or given up on) before it starts: see `place`.
            let _ = wait.recv();
            place::release();
            work(i)
        };
        // SAFETY: the thread borrows `work` (and what it borrows), which
        // outlive this call; every handle is joined before it returns, on
        // every path: below, or by `Helpers::drop` while unwinding.
        // `std::thread::scope` would do the same, but its handles give no
        // pthread id to place the thread with.
        let Ok(handle) = (unsafe { std::thread::Builder::new().spawn_unchecked(job) }) else { break };
        // Held (and so joined) before anything else can happen.
        helpers.0.push(handle);
        if let Some(handle) = helpers.0.last() {
            place::pin(handle, i);
        }
        let _ = placed.send(());
    }
    let mut all = vec![work(0)];
    let mut panicked = None;
    for h in std::mem::take(&mut helpers.0) {
        match h.join() {
            Ok(r) => all.push(r),
            Err(panic) => panicked = panicked.or(Some(panic)),
        }
    }
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
    all
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

/// Where new threads start: on Linux, each on a CPU of its own.
#[cfg(target_os = "linux")]
mod place {
    use std::os::unix::thread::JoinHandleExt;
    use std::sync::OnceLock;

    /// The CPUs this process may run on (its affinity mask), and their numbers.
    fn allowed() -> Option<&'static (libc::cpu_set_t, Vec<usize>)> {
        static ALLOWED: OnceLock<Option<(libc::cpu_set_t, Vec<usize>)>> = OnceLock::new();
        ALLOWED
            .get_or_init(|| {
                // SAFETY: `cpu_set_t` is plain data, valid all zero; the
                // kernel writes at most `size_of::<cpu_set_t>()` bytes of it.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
                    return None;
                }
                // SAFETY: reads bits of a valid set, below its size.
                let cpus: Vec<usize> =
                    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
                (cpus.len() > 1).then_some((set, cpus))
            })
            .as_ref()
    }

    /// Moves the new thread `i` (not started yet: it waits to be placed)
    /// to the `i`-th allowed CPU after the caller's.
    pub fn pin<R>(handle: &std::thread::JoinHandle<R>, i: usize) {
        let Some((_, cpus)) = allowed() else { return };
        // SAFETY: `sched_getcpu` has no preconditions.
        let here = usize::try_from(unsafe { libc::sched_getcpu() }).ok();
        let from = here.and_then(|h| cpus.iter().position(|&c| c == h)).unwrap_or(0);
        let cpu = cpus[(from + i) % cpus.len()];
        // SAFETY: the handle names a live thread (it waits for the caller),
        // the set is valid; a failed call leaves the thread where it is.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            libc::pthread_setaffinity_np(handle.as_pthread_t(), std::mem::size_of::<libc::cpu_set_t>(), &one);
        }
    }

    /// Gives the calling (placed) thread its whole mask back: it stays where
    /// it was put, but the scheduler may move it off a CPU that gets busy.
    pub fn release() {
        if let Some((set, _)) = allowed() {
            // SAFETY: `set` is the valid mask read by `allowed`.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod place {
    pub fn pin<R>(_handle: &std::thread::JoinHandle<R>, _i: usize) {}
    pub fn release() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_returns_both_results_and_on_threads_runs_every_thread() {
        let (a, b) = join(|| 1, || "two");
        assert_eq!((a, b), (1, "two"));
        // `a` starts on the calling thread.
        let caller = std::thread::current().id();
        let (on, _) = join(|| std::thread::current().id(), || std::thread::sleep(std::time::Duration::from_millis(5)));
        assert_eq!(on, caller);
        let ran = AtomicUsize::new(0);
        let got = on_threads(3, |_| ran.fetch_add(1, Ordering::SeqCst));
        assert_eq!(ran.load(Ordering::SeqCst), got.len());
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..got.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_of_any_thread_reaches_the_caller_after_all_have_finished() {
        let started = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_threads(2, |_| {
                let me = started.fetch_add(1, Ordering::SeqCst);
                if me == 0 {
                    panic!("first thread fails");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(result.is_err());
        // The other thread, if there was one, had finished before the panic
        // got out: nothing still borrows the closure.
        assert_eq!(finished.load(Ordering::SeqCst), started.load(Ordering::SeqCst) - 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn helpers_are_not_left_held_to_one_cpu() {
        fn mask() -> Vec<bool> {
            // SAFETY: as in `place::allowed`.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
            assert_eq!(got, 0);
            (0..libc::CPU_SETSIZE as usize).map(|c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
        }
        let here = mask();
        for seen in on_threads(2, |_| mask()) {
            assert_eq!(seen, here);
        }
    }

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
