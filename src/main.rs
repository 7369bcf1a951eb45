//! `sheaf`: the binary. Parses the command line and hands over to `boot`.
#![allow(unreachable_pub)] // a binary: `pub` marks what modules share

mod admin;
mod boot;
mod cluster;
mod config;
mod control;
mod host_checks;
mod sinks;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sheaf", version, about = "thread-per-core, lock-free streaming metrics aggregator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the aggregator (with no --config: the embedded single-node default).
    Run {
        /// YAML config; see tuning/config-template.yaml.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Validate a config file and exit.
    CheckConfig { file: PathBuf },
    /// Print this host's CPUs (sockets, NUMA nodes, SMT siblings) and a suggested pinning.
    Topology,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => boot::run(config.as_deref()),
        Command::CheckConfig { file } => boot::check_config(&file),
        Command::Topology => {
            print!("{}", topology::render(&topology::cpus()));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sheaf: {e:#}");
            ExitCode::FAILURE
        }
    }
}
