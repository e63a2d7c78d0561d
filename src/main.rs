use std::io::Write;

use clap::Parser;

#[global_allocator]
static GLOBAL: stackgen::alloc::MiMalloc = stackgen::alloc::MiMalloc;

fn main() {
    let cli = stackgen::cli::Cli::parse();
    let code = stackgen::run(cli);
    // Everything is written and closed; what is left is printed output in
    // `stdout`'s buffer. The process then ends without its exit handlers:
    // mimalloc's one collects and purges the whole heap page by page (about
    // 30 `madvise` calls for the built-in stacks, some 5% of the run), work
    // the kernel does anyway when the process goes. A flush error is
    // ignored, as the runtime's own flush at exit ignores it.
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process at once, as returning from `main`
    // would after the exit handlers: nothing buffered remains (stderr is
    // unbuffered, stdout was just flushed), and a thread still running (the
    // one that frees a large render's trees) ends with the process either way.
    unsafe { libc::_exit(i32::from(code)) }
}
