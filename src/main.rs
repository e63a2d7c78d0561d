use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = stackgen::cli::Cli::parse();
    ExitCode::from(stackgen::run(cli))
}
