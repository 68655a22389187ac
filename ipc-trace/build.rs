//! Compile src/bpf/ipc_trace.bpf.c with clang (through libbpf-cargo) and
//! generate its Rust skeleton in OUT_DIR.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/ipc_trace.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("ipc_trace.skel.rs");
    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    if let Err(e) = SkeletonBuilder::new()
        .source(SRC)
        .clang(&clang)
        .clang_args(["-O2", "-g", "-Wall", "-Werror"])
        .build_and_generate(&out)
    {
        panic!(
            "building the BPF program {SRC} failed: {e:#}\n\
             (it needs clang; on Debian/Ubuntu run `cargo xtask deps`, \
             or `apt-get install clang llvm libelf-dev zlib1g-dev pkg-config make`)"
        );
    }
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf/intf.h");
    println!("cargo:rerun-if-env-changed=CLANG");
}
