//! `berth`: the command-line client. Docker's command grammar, output and exit codes, spoken
//! over the Engine API to a berth (or Docker) daemon.

mod cli;
mod client;
mod commands;
mod credentials;
mod format;
mod opts;
mod progress;
mod reference;
mod term;

use clap::Parser;
use client::{Client, ClientError};
use std::io::Write;

/// A failed command: what to print and the exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Msg(String),
    /// Exit with a status; the message (if any) was not printed yet.
    #[error("{1}")]
    Status(i32, String),
}

impl CliError {
    fn code(&self) -> i32 {
        match self {
            CliError::Status(c, _) => *c,
            _ => 1,
        }
    }
}

/// What commands return: an exit status, or an error to print.
pub type CmdResult = Result<i32, CliError>;

fn main() {
    let code = run_main();
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run_main() -> i32 {
    let parsed = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 125,
            };
            let _ = e.print();
            return code;
        }
    };
    if parsed.version {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let host = parsed
        .host
        .clone()
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| client::DEFAULT_HOST.to_string());
    let client = match Client::new(&host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let Some(cmd) = parsed.cmd else {
        use clap::CommandFactory;
        let _ = cli::Cli::command().print_help();
        return 0;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let result = rt.block_on(commands::dispatch(&client, cmd));
    // A blocking stdin read may still be pending; do not wait for it.
    rt.shutdown_background();
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            e.code()
        }
    }
}
