//! Compilers for kernel builds of other architectures (`patches check`'s
//! cross builds): i386 with the host's gcc (`-m32`, which the x86_64 gcc
//! has), arm64 with Debian's cross gcc.
//!
//! The arm64 compiler is taken from PATH when it is there. Otherwise its
//! Debian packages are downloaded (`apt-get download`, no root needed) and
//! unpacked into target/cross/<triple>/: on bookworm, installing
//! gcc-12-aarch64-linux-gnu removes gcc-multilib, which the 32-bit
//! selftests need, so it is not installed system-wide.
//!
//! The unpacked binutils link against libraries of the same packages
//! (libopcodes-2.40-arm64.so and friends, in usr/lib/<host multiarch>/),
//! which the dynamic loader does not look for there; gcc also runs its
//! assembler by its own path. So bin/ holds small shell wrappers that put
//! those directories on LD_LIBRARY_PATH, for the tool and everything it
//! starts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// An architecture the gate builds the series for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Name in messages and directories.
    pub name: &'static str,
    /// Kbuild's ARCH.
    pub arch: &'static str,
    /// GNU triple of the cross tools; None: the host's gcc builds it.
    pub triple: Option<&'static str>,
    /// kernel-config/ fragment merged on top of tinyconfig.
    pub fragment: &'static str,
}

pub const ARM64: Target = Target {
    name: "arm64",
    arch: "arm64",
    triple: Some("aarch64-linux-gnu"),
    fragment: "cross-arm64.config",
};

pub const I386: Target = Target {
    name: "i386",
    arch: "i386",
    triple: None,
    fragment: "cross-i386.config",
};

/// Debian's packages of the cross compiler for `triple`: gcc, its cpp, the
/// binutils and libgcc's development files (gcc looks for them).
fn packages(triple: &str) -> Vec<String> {
    let lib_arch = match triple {
        "aarch64-linux-gnu" => "arm64",
        other => other,
    };
    vec![
        format!("gcc-12-{triple}"),
        format!("cpp-12-{triple}"),
        format!("binutils-{triple}"),
        format!("libgcc-12-dev-{lib_arch}-cross"),
    ]
}

/// The tools kbuild runs as $(CROSS_COMPILE)<tool>, and the file each is in
/// the unpacked packages (gcc and cpp carry the version suffix).
fn tools(triple: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = ["gcc", "cpp"]
        .iter()
        .map(|t| (format!("{triple}-{t}"), format!("{triple}-{t}-12")))
        .collect();
    for t in [
        "as", "ld", "ld.bfd", "nm", "objcopy", "objdump", "ar", "strip", "readelf", "ranlib",
    ] {
        v.push((format!("{triple}-{t}"), format!("{triple}-{t}")));
    }
    v
}

/// Version of the layout under target/cross/<triple>/: a tree unpacked by
/// an older xtask (plain symlinks, no wrappers) is unpacked again.
const LAYOUT: &str = "wrappers-v2";

/// What `.complete` holds once a tree is unpacked and checked.
fn stamp(pkgs: &[String]) -> String {
    format!("{LAYOUT} {}", pkgs.join(" "))
}

/// Directory of the host's shared libraries in a Debian tree.
fn host_multiarch_libdir() -> String {
    format!("usr/lib/{}-linux-gnu", std::env::consts::ARCH)
}

/// A /bin/sh script that runs `real` with `libdir` first on the loader's
/// path.
fn wrapper(real: &Path, libdir: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # runs the unpacked cross tool with its own libraries\n\
         LD_LIBRARY_PATH='{lib}'${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n\
         export LD_LIBRARY_PATH\n\
         exec '{real}' \"$@\"\n",
        lib = libdir.display(),
        real = real.display()
    )
}

/// Where the unpacked compiler for `triple` lives.
pub fn prefix(triple: &str) -> PathBuf {
    crate::target_dir().join("cross").join(triple)
}

/// Make variables for building `target`: ARCH, and for a cross target
/// CROSS_COMPILE and CC (through ccache like every build here). Downloads
/// the cross compiler when neither PATH nor target/cross/ has it.
pub fn make_vars(sh: &Shell, target: Target) -> Result<Vec<String>> {
    let mut vars = vec![format!("ARCH={}", target.arch)];
    let Some(triple) = target.triple else {
        return Ok(vars);
    };
    let cross_compile = if crate::deps::which(&format!("{triple}-gcc")).is_some() {
        format!("{triple}-")
    } else {
        let bin = provision(sh, triple)?;
        format!("{}/{triple}-", bin.display())
    };
    let ccache = if crate::deps::which("ccache").is_some() {
        "ccache "
    } else {
        ""
    };
    vars.push(format!("CROSS_COMPILE={cross_compile}"));
    vars.push(format!("CC={ccache}{cross_compile}gcc"));
    Ok(vars)
}

/// The bin/ directory of a working unpacked cross compiler for `triple`,
/// downloading and unpacking it first when needed.
fn provision(sh: &Shell, triple: &str) -> Result<PathBuf> {
    let root = prefix(triple);
    let bin = root.join("bin");
    let done = root.join(".complete");
    let pkgs = packages(triple);
    if done.is_file() && std::fs::read_to_string(&done)?.trim() == stamp(&pkgs) {
        return Ok(bin);
    }
    if crate::deps::which("apt-get").is_none() || crate::deps::which("dpkg-deb").is_none() {
        bail!(
            "no {triple}-gcc on PATH, and no apt-get/dpkg-deb to fetch Debian's: install \
             a cross compiler for {triple} (Debian/Ubuntu: gcc-{triple})"
        );
    }
    println!(
        "[cross] fetching the {triple} compiler into {}: {}",
        root.display(),
        pkgs.join(" ")
    );
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let debs = root.join("debs");
    let files = root.join("root");
    std::fs::create_dir_all(&debs)?;
    std::fs::create_dir_all(&bin)?;
    {
        let _cd = sh.push_dir(&debs);
        let names = &pkgs;
        cmd!(sh, "apt-get download -q {names...}")
            .quiet()
            .run()
            .with_context(|| {
                format!(
                    "`apt-get download {}` failed (is apt's package list current? \
                     `apt-get update`; or install gcc-{triple})",
                    pkgs.join(" ")
                )
            })?;
    }
    for entry in std::fs::read_dir(&debs)? {
        let deb = entry?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            cmd!(sh, "dpkg-deb -x {deb} {files}").quiet().run()?;
        }
    }
    let libdir = files.join(host_multiarch_libdir());
    for (name, file) in tools(triple) {
        let real = files.join("usr/bin").join(&file);
        if !real.exists() {
            bail!(
                "the unpacked {triple} packages have no usr/bin/{file} (package names \
                 changed?): {}",
                files.display()
            );
        }
        write_executable(&bin.join(&name), &wrapper(&real, &libdir))?;
    }
    check_compiler(sh, &bin.join(format!("{triple}-gcc")))?;
    std::fs::remove_dir_all(&debs)?;
    std::fs::write(&done, stamp(&pkgs) + "\n")?;
    Ok(bin)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Compile an empty translation unit with `gcc`: the unpacked compiler
/// finds its cc1 and assembler relative to itself, and the assembler its
/// libraries, or this fails.
fn check_compiler(sh: &Shell, gcc: &Path) -> Result<()> {
    let dir = gcc.parent().unwrap().parent().unwrap();
    let src = dir.join("check.c");
    let obj = dir.join("check.o");
    std::fs::write(&src, "int cross_check(void) { return 0; }\n")?;
    let r = cmd!(sh, "{gcc} -c {src} -o {obj}").quiet().run();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&obj);
    r.with_context(|| format!("the unpacked compiler {} does not work", gcc.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_packages_and_tools() {
        assert_eq!(
            packages("aarch64-linux-gnu"),
            vec![
                "gcc-12-aarch64-linux-gnu",
                "cpp-12-aarch64-linux-gnu",
                "binutils-aarch64-linux-gnu",
                "libgcc-12-dev-arm64-cross"
            ]
        );
        let t = tools("aarch64-linux-gnu");
        assert!(t.contains(&(
            "aarch64-linux-gnu-gcc".to_string(),
            "aarch64-linux-gnu-gcc-12".to_string()
        )));
        assert!(t.contains(&(
            "aarch64-linux-gnu-ld".to_string(),
            "aarch64-linux-gnu-ld".to_string()
        )));
    }

    #[test]
    fn wrapper_puts_the_unpacked_libs_on_the_loader_path() {
        let dir = std::env::temp_dir().join(format!("xtask-cross-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("tool");
        let w = wrapper(Path::new("/usr/bin/env"), Path::new("/opt/x/lib"));
        write_executable(&script, &w).unwrap();
        let out = std::process::Command::new(&script)
            .env("LD_LIBRARY_PATH", "/before")
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        assert!(
            env.lines()
                .any(|l| l == "LD_LIBRARY_PATH=/opt/x/lib:/before"),
            "{env}"
        );
    }

    #[test]
    fn an_old_layout_is_unpacked_again() {
        let pkgs = packages("aarch64-linux-gnu");
        assert_ne!(stamp(&pkgs), pkgs.join(" "));
        assert!(stamp(&pkgs).starts_with(LAYOUT));
    }

    #[test]
    fn native_target_needs_only_arch() {
        let sh = Shell::new().unwrap();
        assert_eq!(make_vars(&sh, I386).unwrap(), vec!["ARCH=i386"]);
    }
}
