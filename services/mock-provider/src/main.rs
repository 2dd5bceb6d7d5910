//! `mock-provider`: parse the command line, bind, announce the URL on stdout, serve.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use mock_provider::settings::{self, Command};
use mock_provider::{telemetry, Application, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match settings::from_process() {
        Ok(Command::Serve(settings)) => settings,
        Ok(Command::Help) => {
            print!("{}", settings::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("mock-provider: {err}\n\n{}", settings::USAGE);
            return ExitCode::from(2);
        }
    };
    telemetry::init();
    match actix_web::rt::System::new().block_on(serve(&settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-provider: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &Settings) -> io::Result<()> {
    let app = Application::build(settings)?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "mock-provider listening on {}", app.url())?;
        stdout.flush()?;
    }
    app.run_until_stopped().await
}
