//! Ctrl-C (SIGINT), SIGTERM (a cancelled CI job) and SIGHUP (a closed
//! terminal) while the output tree is being written.
//!
//! Outside a write these signals keep their default action: the process
//! ends at once, and nothing on disk has changed. While a [`Deferral`] is
//! alive (`output::apply` holds one from its first write to its last
//! removal), such a signal is only recorded: the writers stop before their
//! next file, `apply` removes what it staged (or, in the middle of its
//! renames, puts the old files back) and returns an error; once the renames
//! are done, it finishes. The command then ends by that same signal
//! ([`end_if_deferred`]), so its parent sees the usual status (130 for
//! Ctrl-C in a shell). Further signals meanwhile change nothing (the same
//! signal often comes twice, and the rollback must not be cut short);
//! SIGKILL still ends it. A signal that was ignored when the process started
//! (`nohup`, a background job of a non-interactive shell) stays ignored.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Deferrals alive, on any thread.
static DEFERRING: AtomicUsize = AtomicUsize::new(0);
/// The signal recorded while deferring; 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// Ends the process by `sig` with its default action; `_exit(128 + sig)`
/// should that return. Async-signal-safe.
fn end_by(sig: libc::c_int) {
    // SAFETY: sigaction, sigprocmask, raise and _exit are async-signal-safe;
    // the structures are zeroed plain C data.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Recorded while a write defers it (the first one; later ones change
    // nothing: the same signal often comes twice, from a cancelled job's
    // process group and from a parent passing it on, and the rollback must
    // not be cut short). The second look at `DEFERRING` closes the race with
    // a deferral that ends between the first look and the record: either
    // the ending thread sees the record, or this handler sees that nothing
    // defers any more.
    if DEFERRING.load(SeqCst) > 0 {
        let _ = RECEIVED.compare_exchange(0, sig, SeqCst, SeqCst);
        if DEFERRING.load(SeqCst) > 0 {
            return;
        }
    }
    end_by(sig);
}

fn install() {
    for sig in SIGNALS {
        // SAFETY: plain C structures, zeroed, then filled; the handler only
        // touches atomics and async-signal-safe calls.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            new.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(sig, &new, std::ptr::null_mut());
        }
    }
}

/// While alive, SIGINT, SIGTERM and SIGHUP are recorded instead of ending
/// the process (see the module documentation).
#[must_use = "the signals are deferred only while the value lives"]
pub struct Deferral(());

/// Defers SIGINT, SIGTERM and SIGHUP until the returned value is dropped.
pub fn defer() -> Deferral {
    INSTALL.call_once(install);
    DEFERRING.fetch_add(1, SeqCst);
    Deferral(())
}

impl Drop for Deferral {
    fn drop(&mut self) {
        DEFERRING.fetch_sub(1, SeqCst);
    }
}

/// The signal received while deferring, if any: work in progress should
/// stop and undo itself.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(SeqCst)).filter(|&sig| sig != 0)
}

/// Forgets the signal received while deferring and returns it.
pub fn take() -> Option<i32> {
    Some(RECEIVED.swap(0, SeqCst)).filter(|&sig| sig != 0)
}

/// Ends the process by the signal received while deferring, if one was.
pub fn end_if_deferred() {
    if let Some(sig) = take() {
        end_by(sig);
    }
}

/// The name of a deferred signal, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// An error for work stopped by a deferred signal: an `io::Error` of kind
/// `Interrupted`.
pub fn stopped(sig: i32) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, format!("interrupted by {}", name(sig)))
}
