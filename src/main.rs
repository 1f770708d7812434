use clap::Parser;
use nuclio_ort::config::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => nuclio_ort::app::serve(*args),
        Command::Healthcheck(args) => nuclio_ort::app::healthcheck(&args),
        Command::Bench(args) => nuclio_ort::bench::run(&args),
    }
}
