//! `sheaf`: the binary. Parses the command line and hands over to the control plane's
//! library (`src/lib.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sheaf::{allocator, boot, cluster, rules, topology};

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
        /// Delete the shard checkpoints in `data_dir` and start empty (e.g. after changing
        /// num_shards, which otherwise refuses to start).
        #[arg(long)]
        discard_checkpoints: bool,
    },
    /// Validate a config file (sheaf's, or m3aggregator's unchanged) and exit.
    CheckConfig {
        /// Print, key by key, what each key of an m3aggregator config became.
        #[arg(long)]
        explain: bool,
        file: PathBuf,
    },
    /// Print this host's CPUs (sockets, NUMA nodes, SMT siblings) and a suggested pinning.
    Topology,
    /// Read or change the cluster placement in etcd (the same JSON as the HTTP API).
    Placement {
        /// Config whose `cluster:` section says where etcd is.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// etcd endpoints, comma-separated (overrides the config; default 127.0.0.1:2379).
        #[arg(long, global = true)]
        etcd: Option<String>,
        #[command(subcommand)]
        op: PlacementOp,
    },
    /// Read or replace the cluster's rule set in etcd (m3coordinator's rule schema).
    Rules {
        /// Config whose `cluster:` section says where etcd is.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
        /// etcd endpoints, comma-separated (overrides the config; default 127.0.0.1:2379).
        #[arg(long, global = true)]
        etcd: Option<String>,
        #[command(subcommand)]
        op: RulesOp,
    },
}

#[derive(Subcommand)]
enum RulesOp {
    /// Print the rule set (JSON).
    Get,
    /// Replace the rule set with FILE's (JSON or YAML; - for stdin), checked whole.
    Set {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PlacementOp {
    /// Create the placement: {"num_shards":…,"replication_factor":…,"instances":[…]}.
    Init {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Print the placement and its version.
    Get,
    /// Add whole shard sets: {"instances":[…]}.
    Add {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Remove whole shard sets: {"instance_ids":[…]}.
    Remove {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Replace instances: {"leavingInstanceIDs":[…],"candidates":[…]}.
    Replace {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    allocator::purge_freed_memory_at_once();
    allocator::disable_transparent_huge_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, discard_checkpoints } => boot::run(config.as_deref(), discard_checkpoints),
        Command::CheckConfig { file, explain } => boot::check_config(&file, explain),
        Command::Placement { config, etcd, op } => {
            use cluster::api::Op;
            let (op, file) = match op {
                PlacementOp::Init { file } => (Op::Init, Some(file)),
                PlacementOp::Get => (Op::Get, None),
                PlacementOp::Add { file } => (Op::Add, Some(file)),
                PlacementOp::Remove { file } => (Op::Remove, Some(file)),
                PlacementOp::Replace { file } => (Op::Replace, Some(file)),
            };
            cluster::cli::run(config.as_deref(), etcd, op, file)
        }
        Command::Rules { config, etcd, op } => {
            let (op, file) = match op {
                RulesOp::Get => (rules::cli::Op::Get, None),
                RulesOp::Set { file } => (rules::cli::Op::Set, Some(file)),
            };
            rules::cli::run(config.as_deref(), etcd, op, file)
        }
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
