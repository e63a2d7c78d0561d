//! Command-line types (clap derive). No logic here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Render typed stack definitions into Kubernetes manifests and Compose files.
#[derive(Debug, Parser)]
#[command(name = "stackgen", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "\
Examples:
  stackgen render loops                 render the built-in `loops` stack into ./rendered
  stackgen render --all --check         fail (exit 1) if ./rendered is not up to date
  stackgen render loops --env prod      render one environment
  stackgen validate                     check every stack, write nothing
  stackgen list                         stacks, environments and targets

Exit codes: 0 success, 1 differences found (--check), 2 invalid input, usage or I/O error.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render stacks into the output tree.
    Render(RenderArgs),
    /// List stacks with their environments and targets.
    List(ListArgs),
    /// Load, check and render stacks in memory; write nothing.
    Validate(ValidateArgs),
    /// Show how a fresh render differs from the tree on disk (exit 1 when it does).
    Diff(DiffArgs),
    /// Print the JSON Schema of the stack format.
    Schema,
    /// Write a commented starter stack that renders as is.
    New(NewArgs),
    /// Print shell completions.
    Completions {
        /// Shell to complete for
        shell: clap_complete::Shell,
    },
    /// List or export the built-in templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  stackgen new shop\n  stackgen new shop --stacks deploy/stacks")]
pub struct NewArgs {
    /// Stack name (a DNS-1123 label); the file is `<DIR>/<NAME>.yaml`
    pub name: String,
    /// Directory to write the stack file into
    #[arg(long = "stacks", value_name = "DIR", default_value = "stacks")]
    pub stacks: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List the built-in templates.
    List,
    /// Write the built-in templates into DIR, to edit and pass with --templates.
    Export {
        /// Directory to write into
        dir: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stackgen diff loops\n  stackgen diff --all --stat\n  stackgen diff --all --stat --format json"
)]
pub struct DiffArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub sources: Sources,
    /// Output root to compare with
    #[arg(long, value_name = "DIR", default_value = "rendered")]
    pub out: PathBuf,
    /// Only count added and removed lines per file
    #[arg(long)]
    pub stat: bool,
    /// Output format (json applies to --stat)
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Where stacks and templates come from.
#[derive(Debug, Args, Clone)]
pub struct Sources {
    /// Directory of stack files [default: ./stacks if it exists, else the built-in stacks]
    #[arg(long = "stacks", id = "stacks_dir", value_name = "DIR")]
    pub stacks: Option<PathBuf>,
    /// Directory of templates overriding the built-in ones file by file
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Kubernetes version whose API schema the output is checked against
    #[arg(long, value_name = "VERSION", default_value = "1.32", value_parser = ["1.30", "1.32"])]
    pub kube_version: String,
}

/// Which stacks and environments.
#[derive(Debug, Args, Clone)]
pub struct Selection {
    /// Stacks to process (file names without `.yaml`)
    #[arg(value_name = "STACK")]
    pub stacks: Vec<String>,
    /// Process every stack
    #[arg(long, conflicts_with = "stacks")]
    pub all: bool,
    /// Only these environments (repeatable) [default: all of each stack]
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stackgen render loops\n  stackgen render --all --out deploy/rendered\n  stackgen render --all --check"
)]
pub struct RenderArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub sources: Sources,
    /// Output root
    #[arg(long, value_name = "DIR", default_value = "rendered")]
    pub out: PathBuf,
    /// Compare with the tree on disk instead of writing; exit 1 on differences
    #[arg(long)]
    pub check: bool,
    /// Print only warnings and errors
    #[arg(long, short)]
    pub quiet: bool,
    /// Flush every written file to disk before it replaces the old one (slower; for crash safety)
    #[arg(long)]
    pub fsync: bool,
    /// Output format of the report
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub sources: Sources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
