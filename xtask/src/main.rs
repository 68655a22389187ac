//! `cargo xtask`: build the patched kernel, boot it, run the selftests.

mod bench;
mod cross;
mod deps;
mod fetch;
mod flags;
mod git;
mod guest;
mod incremental;
mod kbuild;
mod kconfig;
mod kernel;
mod kselftest;
mod ktap;
mod liburing;
mod lock;
mod patches;
mod postmortem;
mod progress;
mod regress;
mod results;
mod splat;
mod stamp;
mod test;
mod trace;
mod uapi;
mod vm;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use xshell::Shell;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let flags = flags::Xtask::parse();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match flags.cmd {
        flags::Cmd::Deps(args) => deps::run(&sh, &args),
        flags::Cmd::BuildKernel(args) => {
            deps::require(&sh, deps::Need::Build)?;
            kernel::build(&sh, &args.request()).map(|_| ())
        }
        flags::Cmd::Patches(args) => patches::run(&sh, &args),
        flags::Cmd::Vm(args) => vm::run(&sh, &args),
        flags::Cmd::Test(args) => test::run(&sh, &args),
        flags::Cmd::Regress(args) => regress::run(&sh, &args),
        flags::Cmd::Trace(args) => trace::run(&sh, &args),
        flags::Cmd::Bench(args) => bench::run(&sh, &args),
        flags::Cmd::GuestRun(args) => guest::run(&args),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Everything the xtask generates lives under target/.
pub fn target_dir() -> PathBuf {
    project_root().join("target")
}
