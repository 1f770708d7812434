//! `nuclio-ort bench`: a load generator for any CVAT detector function.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Function URL, e.g. http://127.0.0.1:8080/
    #[arg(long)]
    pub url: String,
}

pub fn run(_args: &BenchArgs) -> ExitCode {
    eprintln!("bench: not implemented yet");
    ExitCode::FAILURE
}
