//! `eventpipe-load`: reads the configuration, builds the runtime, runs the
//! test, and exits with k6's codes (0, 99, 104, 105; 1 for other errors).

use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::ErrorKind;
use eventpipe_load::Exit;
use eventpipe_load::config::{InvalidConfig, Options};

/// The allocator matters on the generator's hot path too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let parsed = Options::with_defaults()
        .try_get_matches()
        .and_then(|matches| Options::from_arg_matches(&matches));
    let options = match parsed {
        Ok(options) => options,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => code(Exit::InvalidConfig),
            };
        }
    };
    let config = match options.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return code(Exit::InvalidConfig);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interrupt = async {
        eventpipe_load::interrupted().await;
    };
    let ran = if config.forever {
        runtime.block_on(eventpipe_load::run_forever(config, interrupt))
    } else {
        runtime
            .block_on(eventpipe_load::run(config, interrupt))
            .map(Some)
    };
    match ran {
        Ok(Some(finished)) => code(finished.exit),
        Ok(None) => code(Exit::Interrupted),
        Err(e) if e.downcast_ref::<InvalidConfig>().is_some() => {
            eprintln!("{e}");
            code(Exit::InvalidConfig)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn code(exit: Exit) -> ExitCode {
    ExitCode::from(exit as u8)
}
