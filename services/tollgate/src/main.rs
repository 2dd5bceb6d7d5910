//! `tollgate`: the gateway server and operator CLI. Everything but start-up lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tollgate::cli::main(std::env::args_os().skip(1).collect())
}
