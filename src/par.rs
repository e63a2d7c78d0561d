//! Order-keeping parallel map over a slice, on the machine's cores.
//!
//! Used wherever items are independent: stack files, environments,
//! rendered documents, reading back the output tree, pieces of a large
//! stack file. The work is shared with helper threads that live as long
//! as the process (`pool`), each placed on a CPU of its own.

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

/// Runs `work(i)` on the calling thread (`i` = 0) and, for `i` = 1, 2…
/// up to `n - 1`, on the helper threads of the [`pool`] (fewer if it has
/// fewer helpers), and returns what each returned, the caller's first.
/// Every part has run to its end before this returns, also when one
/// panics (the panic is then raised here).
///
/// The parts a helper has not started when the caller is done with its
/// own, the caller takes back and runs itself; while a helper still runs
/// one, the caller runs other queued work (of a nested `on_threads`)
/// instead of idling.
pub fn on_threads<R: Send>(n: usize, work: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let n = n.min(pool::helpers() + 1);
    if n < 2 {
        return vec![work(0)];
    }
    let work = &work;
    // Never resized once queued: the queue holds their addresses.
    let parts: Vec<pool::Part<_, R>> = (1..n).map(|i| pool::Part::new(move || work(i))).collect();
    pool::submit(&parts);
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(0)));
    // Every part finishes before `parts` can go out of scope.
    for part in &parts {
        part.finish();
    }
    let mut all = Vec::with_capacity(n);
    let mut panicked = None;
    for out in std::iter::once(first).chain(parts.into_iter().map(pool::Part::into_result)) {
        match out {
            Ok(r) => all.push(r),
            Err(panic) => panicked = panicked.or(Some(panic)),
        }
    }
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
    all
}

/// The helper threads: `threads() - 1` of them, started on first use, each
/// placed on a CPU of its own, and kept for the rest of the process.
///
/// Until then every parallel step started new threads (a render of the
/// built-in stacks started four, one of 1,000 services about ten), each
/// with a fresh stack and fresh allocator pages. Alternating runs into
/// tmpfs on the 2-core reference machine: built-in stacks wall x0.93-0.94,
/// CPU x0.94-0.95; 1,000 services x0.93 / x0.93 (bench/README.md).
mod pool {
    use std::cell::UnsafeCell;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
    use std::time::{Duration, Instant};

    /// Work waiting for a thread: a part of an `on_threads` call, by address.
    #[derive(Clone, Copy)]
    struct Queued {
        part: *const (),
        run: unsafe fn(*const ()),
    }

    // SAFETY: a `Queued` points at a `Part` whose closure and result are
    // `Send`; the `Part` outlives its time on the queue (`Part::finish`).
    unsafe impl Send for Queued {}

    struct State {
        queue: VecDeque<Queued>,
        /// Threads waiting on `Shared::changed`.
        sleepers: usize,
        /// The helpers (bit `i` for helper `i`) asleep, and those of them
        /// placed again by `submit` since.
        asleep: u64,
        placed: u64,
    }

    struct Shared {
        state: Mutex<State>,
        /// Signalled when work is queued and when a part finishes, if
        /// anyone sleeps.
        changed: Condvar,
        /// The length of the queue, read without the lock while spinning.
        queued: AtomicUsize,
    }

    static SHARED: Shared = Shared {
        state: Mutex::new(State { queue: VecDeque::new(), sleepers: 0, asleep: 0, placed: 0 }),
        changed: Condvar::new(),
        queued: AtomicUsize::new(0),
    };

    /// How long a thread out of work watches for more before it sleeps: the
    /// parallel steps of a render often follow each other within that, and
    /// a thread still watching needs neither a wake-up call from the thread
    /// that queues the work nor placing (`submit`).
    const SPIN: Duration = Duration::from_micros(50);

    fn state() -> MutexGuard<'static, State> {
        SHARED.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl State {
        fn pop(&mut self) -> Option<Queued> {
            let next = self.queue.pop_front()?;
            SHARED.queued.fetch_sub(1, Ordering::Relaxed);
            Some(next)
        }

        /// Wakes the sleepers, if any.
        fn wake(&self) {
            if self.sleepers > 0 {
                SHARED.changed.notify_all();
            }
        }
    }

    /// Sleeps until signalled (or spuriously woken).
    fn sleep(mut s: MutexGuard<'static, State>) -> MutexGuard<'static, State> {
        s.sleepers += 1;
        let mut s = SHARED.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        s.sleepers -= 1;
        s
    }

    /// Watches for `ready()` for up to `SPIN`. The caller looks again
    /// under the lock either way, so it is not told which it was.
    fn spin(ready: impl Fn() -> bool) {
        let start = Instant::now();
        while start.elapsed() <= SPIN {
            for _ in 0..64 {
                if ready() {
                    return;
                }
                std::hint::spin_loop();
            }
        }
    }

    /// How many helper threads run (started on the first call).
    pub fn helpers() -> usize {
        started().len()
    }

    /// The helpers, helper `i` at `i - 1`.
    fn started() -> &'static [super::place::Tid] {
        static STARTED: OnceLock<Vec<super::place::Tid>> = OnceLock::new();
        STARTED.get_or_init(|| {
            let mut started = Vec::new();
            // At most 8 threads: helper bits fit a u64.
            for i in 1..super::threads() {
                let (placed, wait) = std::sync::mpsc::channel::<()>();
                let helper = move || {
                    // Placed (or given up on) before it takes work: see `place`.
                    let _ = wait.recv();
                    super::place::release();
                    serve(i);
                };
                let Ok(handle) = std::thread::Builder::new().name(format!("stackgen-{i}")).spawn(helper) else {
                    break;
                };
                let tid = super::place::tid(&handle);
                super::place::pin(tid, i);
                let _ = placed.send(());
                started.push(tid);
            }
            started
        })
    }

    /// Helper `i`'s life: run queued work, wait for more.
    fn serve(i: usize) -> ! {
        let me = 1u64 << i;
        loop {
            spin(|| SHARED.queued.load(Ordering::Relaxed) > 0);
            let (next, placed) = {
                let mut s = state();
                let mut placed = false;
                loop {
                    if let Some(next) = s.pop() {
                        break (next, placed);
                    }
                    s.asleep |= me;
                    s = sleep(s);
                    s.asleep &= !me;
                    placed |= s.placed & me != 0;
                    s.placed &= !me;
                }
            };
            if placed {
                super::place::release();
            }
            // SAFETY: taken off the queue here, so run exactly once, while
            // its owner waits for it (`Part::finish`).
            unsafe { (next.run)(next.part) };
        }
    }

    /// One part of an `on_threads` call: its closure until it runs, then
    /// its result (or panic).
    pub struct Part<F, R> {
        f: UnsafeCell<Option<F>>,
        out: UnsafeCell<Option<std::thread::Result<R>>>,
        done: AtomicBool,
    }

    impl<F: FnOnce() -> R + Send, R: Send> Part<F, R> {
        pub fn new(f: F) -> Self {
            Part { f: UnsafeCell::new(Some(f)), out: UnsafeCell::new(None), done: AtomicBool::new(false) }
        }

        fn queued(&self) -> Queued {
            Queued { part: (self as *const Self).cast(), run: Self::run }
        }

        /// Runs the part where it was taken off the queue.
        ///
        /// # Safety
        /// `part` is a live `Part<F, R>` that was taken off the queue by
        /// the caller, so no other thread runs it.
        unsafe fn run(part: *const ()) {
            // SAFETY: as the caller promises.
            let part = unsafe { &*part.cast::<Self>() };
            // SAFETY: only the thread that took the part touches `f` and
            // `out` until `done` is set. A part is taken off the queue
            // once, so `f` is there; were it not, `out` stays empty and
            // `into_result` says so, and `done` is still set below.
            if let Some(f) = unsafe { (*part.f.get()).take() } {
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                unsafe { *part.out.get() = Some(out) };
            }
            // The last touch of `part`: its owner may free it from here on.
            // Under the lock, so that an owner about to sleep sees it set.
            let s = state();
            part.done.store(true, Ordering::Release);
            s.wake();
        }

        /// Returns once the part has run: here, if no helper took it, else
        /// when its helper is done, running other queued work meanwhile.
        pub fn finish(&self) {
            let me = self.queued().part;
            let mut s = state();
            if let Some(at) = s.queue.iter().position(|w| w.part == me) {
                s.queue.remove(at);
                SHARED.queued.fetch_sub(1, Ordering::Relaxed);
                drop(s);
                // SAFETY: taken off the queue just now.
                unsafe { Self::run(me) };
                return;
            }
            drop(s);
            loop {
                spin(|| self.done.load(Ordering::Acquire) || SHARED.queued.load(Ordering::Relaxed) > 0);
                let mut s = state();
                if self.done.load(Ordering::Acquire) {
                    return;
                }
                if let Some(other) = s.pop() {
                    drop(s);
                    // SAFETY: taken off the queue just now; its owner waits for it.
                    unsafe { (other.run)(other.part) };
                } else {
                    drop(sleep(s));
                }
            }
        }

        /// The part's result once `finish` returned.
        pub fn into_result(self) -> std::thread::Result<R> {
            self.out.into_inner().unwrap_or_else(|| Err(Box::new("on_threads: a part did not run")))
        }
    }

    /// Queues `parts` for the helpers. Each must be `finish`ed before it is
    /// moved or dropped.
    pub fn submit<F: FnOnce() -> R + Send, R: Send>(parts: &[Part<F, R>]) {
        let mut s = state();
        // A sleeping helper woke on whichever CPU the scheduler chose, often
        // the caller's, and waited there for it (up to a 4 ms tick, `perf
        // sched`): it is placed on a CPU of its own first, as a new thread
        // was, and gives its mask back once awake.
        let sleeping = s.asleep & !s.placed;
        if sleeping != 0 {
            for (i, &tid) in started().iter().enumerate() {
                if sleeping & (1 << (i + 1)) != 0 {
                    super::place::pin(tid, i + 1);
                }
            }
            s.placed |= sleeping;
        }
        s.queue.extend(parts.iter().map(Part::queued));
        SHARED.queued.fetch_add(parts.len(), Ordering::Relaxed);
        s.wake();
    }
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

    /// A thread, for `pin`.
    pub type Tid = libc::pthread_t;

    pub fn tid<R>(handle: &std::thread::JoinHandle<R>) -> Tid {
        handle.as_pthread_t()
    }

    /// Moves helper `i` to the `i`-th allowed CPU after the caller's: a new
    /// helper before it starts (it waits to be placed), a sleeping one
    /// before it is woken (`pool::submit`).
    pub fn pin(tid: Tid, i: usize) {
        let Some((_, cpus)) = allowed() else { return };
        // SAFETY: `sched_getcpu` has no preconditions.
        let here = usize::try_from(unsafe { libc::sched_getcpu() }).ok();
        let from = here.and_then(|h| cpus.iter().position(|&c| c == h)).unwrap_or(0);
        let cpu = cpus[(from + i) % cpus.len()];
        // SAFETY: `tid` names a live thread (helpers never end), the set is
        // valid; a failed call leaves the thread where it is.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            libc::pthread_setaffinity_np(tid, std::mem::size_of::<libc::cpu_set_t>(), &one);
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
    pub type Tid = ();
    pub fn tid<R>(_handle: &std::thread::JoinHandle<R>) -> Tid {}
    pub fn pin(_tid: Tid, _i: usize) {}
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
        // A helper woken from its sleep was placed on one CPU first
        // (`pool::submit`); the part it runs must see the whole mask again.
        // The caller waits (up to ten seconds) for the helper to start part 1,
        // so that the helper, not the caller, runs it.
        if pool::helpers() == 0 {
            return;
        }
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let started = std::sync::atomic::AtomicBool::new(false);
            let seen = on_threads(2, |i| {
                if i == 0 {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while !started.load(Ordering::Acquire) && std::time::Instant::now() < until {
                        std::thread::yield_now();
                    }
                } else {
                    started.store(true, Ordering::Release);
                }
                (std::thread::current().id(), mask())
            });
            assert_ne!(seen[0].0, seen[1].0, "a helper ran part 1");
            for (_, m) in seen {
                assert_eq!(m, here);
            }
        }
    }

    #[test]
    fn nested_and_concurrent_calls_share_the_helpers() {
        // Several callers at once (as the test harness runs tests), each
        // nesting a parallel map in a parallel map: every call returns its
        // own results, in order, while the helpers are shared.
        let outer: Vec<usize> = (0..MANY * 2).collect();
        let callers: Vec<_> = (0..4)
            .map(|c| {
                let outer = outer.clone();
                std::thread::spawn(move || {
                    map(&outer, |&i| {
                        let inner: Vec<usize> = (0..MANY).map(|j| i * 1000 + j + c).collect();
                        map(&inner, |&x| x * 2).iter().sum::<usize>()
                    })
                })
            })
            .collect();
        for (c, caller) in callers.into_iter().enumerate() {
            let got = caller.join().unwrap();
            let want: Vec<usize> = outer.iter().map(|&i| (0..MANY).map(|j| (i * 1000 + j + c) * 2).sum()).collect();
            assert_eq!(got, want);
        }
        // A panic in a nested call reaches its own caller only, and the
        // helpers still serve the next call.
        let result = std::panic::catch_unwind(|| {
            map(&outer, |&i| {
                map(&outer, |&j| assert!(!(i == 3 && j == MANY + 1), "inner part fails"));
            })
        });
        assert!(result.is_err());
        assert_eq!(map(&outer, |&i| i + 1), outer.iter().map(|i| i + 1).collect::<Vec<_>>());
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
