use std::io::Write;

use clap::Parser;

#[global_allocator]
static GLOBAL: stackgen::alloc::MiMalloc = stackgen::alloc::MiMalloc;

fn main() {
    // Output piped into a reader that stops early (`stackgen schema | head`)
    // ends the process quietly, as it does `cat`, instead of a failed
    // `println!` panicking: the runtime ignores SIGPIPE, this restores the
    // default. Nothing is written to disk while printing, so no write is
    // cut short by it.
    // SAFETY: setting a signal's disposition to its default, before any
    // other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = stackgen::cli::Cli::parse();
    let code = stackgen::run(cli);
    // Everything is written and closed; what is left is printed output in
    // `stdout`'s buffer. The process then ends without its exit handlers:
    // mimalloc's one collects and purges the whole heap page by page (about
    // 30 `madvise` calls for the built-in stacks, some 5% of the run), work
    // the kernel does anyway when the process goes. A flush error is
    // ignored, as the runtime's own flush at exit ignores it.
    let _ = std::io::stdout().flush();
    // A signal that came in while the output was written ended that write
    // (see `stackgen::interrupt`); the process now ends by it.
    stackgen::interrupt::end_if_deferred();
    // SAFETY: `_exit` ends the process at once, as returning from `main`
    // would after the exit handlers: nothing buffered remains (stderr is
    // unbuffered, stdout was just flushed), and a thread still running (the
    // one that frees a large render's trees) ends with the process either way.
    unsafe { libc::_exit(i32::from(code)) }
}
