use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stackgen::cli::Cli::parse();
    ExitCode::from(stackgen::run(cli))
}
