//! The kernel pipeline: pinned base source -> git tree -> patches -> config
//! -> build.
//!
//! Layout under target/kernel/:
//!   dl/            the downloaded .deb and its unpacked tarball
//!   src/           git repo: tag `base` = pristine source, HEAD = base +
//!                  patches/series; the tree `build-kernel` builds from
//!   dev/           a worktree of src/ for editing (`patches apply`)
//!   base-src/      a worktree of src/ at `base`, never patched (`regress`)
//!   build-<prof>/  out-of-tree (O=) build directory per profile
//!   build-base/    the unpatched base kernel (fast profile, `regress`)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::flags::{BuildArgs, Profile};
use crate::git::{add_worktree, am_on_base, blob_at_head, git, git_dir, At};
use crate::incremental::TreeState;
use crate::kbuild::{self, Check, Make, Stderr, Steps};
use crate::kconfig::Fragment;
use crate::patches::series::Series;
use crate::stamp::{self, Stamp};

/// Marks a finished base tree; the name changes whenever the way the base
/// tree is made changes, so older trees are rebuilt.
const BASE_STAMP: &str = ".git/uring-ipc-base-v2";
/// Fixed date of the base commit, so its hash depends only on the source.
pub const BASE_DATE: &str = "2025-01-01T00:00:00Z";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSource {
    pub package: String,
    pub version: String,
    pub tarball: String,
    /// Of the tarball inside the package.
    pub sha256: String,
    /// The package file(s) by content, and where to get them.
    pub fetch: crate::fetch::Pin,
}

impl BaseSource {
    pub fn load() -> Result<BaseSource> {
        let path = patch_dir().join("base.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let b: BaseSource =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if b.sha256.len() != 64 || !b.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{}: sha256 must be 64 hex digits", path.display());
        }
        b.fetch.validate(&path.display().to_string())?;
        if b.fetch.files.len() != 1 {
            bail!("{}: [fetch] must pin exactly one .deb", path.display());
        }
        Ok(b)
    }
}

pub fn patch_dir() -> PathBuf {
    crate::project_root().join("patches")
}
pub fn kernel_dir() -> PathBuf {
    crate::target_dir().join("kernel")
}
pub fn src_dir() -> PathBuf {
    kernel_dir().join("src")
}
pub fn dev_dir() -> PathBuf {
    kernel_dir().join("dev")
}
pub fn base_src_dir() -> PathBuf {
    kernel_dir().join("base-src")
}
pub fn base_build_dir() -> PathBuf {
    kernel_dir().join("build-base")
}
pub fn build_dir(profile: Profile) -> PathBuf {
    kernel_dir().join(format!("build-{}", profile.name()))
}
pub fn bzimage(profile: Profile) -> PathBuf {
    image_in(&build_dir(profile))
}
fn image_in(out: &Path) -> PathBuf {
    out.join("arch/x86/boot/bzImage")
}

/// The result of a successful build.
#[derive(Debug, Clone)]
pub struct Built {
    pub bzimage: PathBuf,
    pub release: String,
    pub build_dir: PathBuf,
    /// The tree it was built from (for scripts/decode_stacktrace.sh).
    pub src: PathBuf,
}

/// Download the pinned package, verify the tarball, extract a git tree with
/// the pristine source as commit `base`. Idempotent: a tree already made from
/// the same tarball is reused as it is.
pub fn prepare_base(sh: &Shell) -> Result<PathBuf> {
    let base = BaseSource::load()?;
    let src = src_dir();
    if Stamp::new(src.join(BASE_STAMP), &base.sha256).holds() {
        return Ok(src);
    }
    let t0 = Instant::now();
    let dl = kernel_dir().join("dl");
    std::fs::create_dir_all(&dl)?;
    let spec = format!("{}={}", base.package, base.version);
    let mut fetcher =
        crate::fetch::Fetcher::new(&base.fetch, &spec, &dl, &crate::fetch::cache_dir());
    let deb_name = base.fetch.files[0].name.clone();
    let deb = fetcher.path(&deb_name);
    for (name, origin) in fetcher
        .fetch_all()
        .with_context(|| format!("getting {spec} (patches/base.toml [fetch])"))?
    {
        if let crate::fetch::Origin::Source(s) = origin {
            println!("[base] {name}: sha256 ok, from {s}");
        }
    }
    let unpacked = dl.join("unpacked");
    let tarball = unpacked.join(&base.tarball);
    let unpack = || -> Result<()> {
        println!("[base] unpacking {deb_name}");
        let _ = std::fs::remove_dir_all(&unpacked);
        cmd!(sh, "dpkg-deb -x {deb} {unpacked}").run()?;
        Ok(())
    };
    let fresh = !tarball.exists();
    if fresh {
        unpack()?;
    }
    print!("[base] verifying sha256 of {} ... ", base.tarball);
    let mut got = crate::fetch::sha256_file(&tarball)?;
    if got != base.sha256 && !fresh {
        // Left there by another pin (say, before a rebase): unpack the
        // .deb just verified again.
        println!("left by another .deb");
        unpack()?;
        print!("[base] verifying sha256 of {} ... ", base.tarball);
        got = crate::fetch::sha256_file(&tarball)?;
    }
    if got != base.sha256 {
        println!("MISMATCH");
        bail!(
            "checksum mismatch for {}:\n  expected {}\n  got      {}\n\
             nothing was extracted or built; delete {} to download again",
            tarball.display(),
            base.sha256,
            got,
            dl.display()
        );
    }
    println!("ok");

    let tmp = kernel_dir().join("src.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    println!("[base] extracting into a git tree (about a minute)");
    cmd!(sh, "tar -xf {tarball} -C {tmp} --strip-components=1").run()?;
    strip_debian_gitignore(&tmp.join(".gitignore"))?;
    cmd!(sh, "git init -q -b build {tmp}").run()?;
    // 86k loose objects would make every later `git am` start a background
    // `gc --auto` that competes with the kernel build for CPU.
    git(sh, &tmp).args(["config", "gc.auto", "0"]).run()?;
    // --force: the base must be exactly the tarball, including the 385
    // dot-files the kernel's own .gitignore matches (".*").
    git(sh, &tmp).args(["add", "-A", "--force"]).run()?;
    let msg = base_commit_message(&base.package, &base.version, &base.sha256);
    git(sh, &tmp)
        .args(["commit", "-q", "--no-verify", "-m", &msg])
        .env("GIT_AUTHOR_DATE", BASE_DATE)
        .env("GIT_COMMITTER_DATE", BASE_DATE)
        .run()?;
    git(sh, &tmp).args(["tag", "base"]).run()?;
    crate::incremental::mark_new_copy(&tmp.join(".git"))?;
    Stamp::new(tmp.join(BASE_STAMP), &base.sha256).write()?;
    if src.exists() {
        std::fs::remove_dir_all(&src)?;
    }
    std::fs::rename(&tmp, &src)?;
    println!("[base] ready in {:.0?}", t0.elapsed());
    Ok(src)
}

/// The message of the base commit: what it was made from. With the fixed
/// dates and the workspace's identity, the commit's hash depends only on
/// the source.
pub fn base_commit_message(package: &str, version: &str, tarball_sha256: &str) -> String {
    format!("Linux {version} ({package} {tarball_sha256})")
}

/// Debian's tarball ships a .gitignore whose last block ignores everything at
/// the top level (it is meant for Debian's packaging repository). Left in, it
/// would hide new files from git in the trees developers edit.
pub fn strip_debian_gitignore(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(i) = text.find("#\n# Debian packaging") {
        std::fs::write(path, &text[..i])?;
    }
    Ok(())
}

/// Apply the series to `repo` (reset to `base` first). Strict: the first
/// patch that does not apply stops everything, named, with git's reason.
///
/// Files whose content ends up the same as before keep their mtime, so make
/// rebuilds only what a changed patch really changed.
pub fn apply_series(sh: &Shell, repo: &Path, series: &Series, stamp_name: &str) -> Result<bool> {
    let stamp = Stamp::new(
        git_dir(sh, repo)?.join(stamp_name),
        series.hash(&patch_dir())?,
    );
    if stamp.holds() {
        let dirty = git(sh, repo)
            .args(["status", "--porcelain"])
            .quiet()
            .read()?;
        if dirty.is_empty() {
            return Ok(false);
        }
    }
    stamp.clear();

    // Remember content and mtime of every file the old series touched.
    let touched = git(sh, repo)
        .args(["diff", "--name-only", "base", "HEAD"])
        .quiet()
        .read()
        .unwrap_or_default();
    let mut before: BTreeMap<String, (String, SystemTime)> = BTreeMap::new();
    for f in touched.lines() {
        let p = repo.join(f);
        if let (Ok(meta), Ok(blob)) = (std::fs::metadata(&p), blob_at_head(sh, repo, f)) {
            before.insert(f.to_string(), (blob, meta.modified()?));
        }
    }

    if let Err(e) = am_on_base(sh, repo, None, &series.paths(&patch_dir()))? {
        bail!(
            "patches/{} does not apply to the tree (base + the patches before it):\n  {}",
            series.patches[e.index],
            e.reason.join("\n  ")
        );
    }

    let mut kept = 0;
    for (f, (blob, mtime)) in &before {
        let now = blob_at_head(sh, repo, f).unwrap_or_default();
        if &now == blob {
            let file = std::fs::File::options().write(true).open(repo.join(f))?;
            file.set_modified(*mtime)?;
            kept += 1;
        }
    }
    if !before.is_empty() {
        println!(
            "[patches] {kept} of {} previously patched files unchanged (mtimes kept)",
            before.len()
        );
    }
    stamp.write()?;
    Ok(true)
}

pub fn fragments(profile: Profile) -> Vec<PathBuf> {
    let dir = crate::project_root().join("kernel-config");
    let mut v = vec![
        dir.join("base.config"),
        dir.join("ipc.config"),
        dir.join("postmortem.config"),
    ];
    match profile {
        // BTF costs build time on top of DWARF: only the everyday profile
        // carries it, the debug one is slow enough already.
        Profile::Fast => v.push(dir.join("trace.config")),
        Profile::Debug => v.push(dir.join("debug.config")),
    }
    v
}

/// The merged request for a profile.
pub fn merged_fragment(profile: Profile) -> Result<Fragment> {
    let frags = fragments(profile)
        .iter()
        .map(|p| Fragment::load(p))
        .collect::<Result<Vec<_>>>()?;
    Ok(Fragment::merge(&frags))
}

/// What a patched kernel of `profile` is configured from: kernel-config/'s
/// fragments, then the `config` files of the in-tree kselftests
/// `cargo xtask test` runs, from the patched tree `src` (as
/// `make kselftest-merge` adds them). Every value is verified after
/// olddefconfig, so a selftest need that Kconfig drops fails the build. The
/// second value names the parts for the log.
pub fn request(src: &Path, profile: Profile) -> Result<(Fragment, String)> {
    let mut frags = vec![merged_fragment(profile)?];
    let mut names = fragment_names(profile);
    for (name, f) in crate::kselftest::config_fragments(src, &crate::kselftest::TARGETS)? {
        frags.push(f);
        names.push_str(&format!(" + {name}"));
    }
    Ok((Fragment::merge(&frags), names))
}

fn configure(sh: &Shell, src: &Path, profile: Profile, series_hash: &str) -> Result<()> {
    let (request, names) = request(src, profile)?;
    kbuild::configure(
        sh,
        src,
        &build_dir(profile),
        &request,
        series_hash,
        Check::Strict(&names),
    )
}

fn fragment_names(profile: Profile) -> String {
    fragments(profile)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Held while the shared source tree or a build directory changes: two
/// xtask processes (say `test` and `bench` in two terminals) must not run
/// `git am` or `make` in the same tree at once. Released when dropped.
pub struct TreeLock {
    _lock: crate::lock::FileLock,
}

impl TreeLock {
    pub fn acquire() -> Result<TreeLock> {
        crate::lock::FileLock::acquire(
            &kernel_dir().join(".lock"),
            "[build] another xtask is using target/kernel; waiting for it",
        )
        .map(|l| TreeLock { _lock: l })
    }
}

/// `build` with the defaults: what `vm`, `bench` and `trace` boot.
pub fn build_profile(sh: &Shell, profile: Profile) -> Result<Built> {
    build(
        sh,
        &BuildArgs {
            profile,
            jobs: None,
            force: false,
        },
    )
}

pub fn build(sh: &Shell, args: &BuildArgs) -> Result<Built> {
    let _lock = TreeLock::acquire()?;
    let t0 = Instant::now();
    let profile = args.profile;
    let src = prepare_base(sh)?;
    let series = Series::load(&patch_dir())?;
    let changed = apply_series(sh, &src, &series, "uring-ipc-series")?;
    println!(
        "[patches] {} patch{} from patches/series{}",
        series.patches.len(),
        if series.patches.len() == 1 { "" } else { "es" },
        if changed { " applied" } else { " (unchanged)" }
    );
    let shash = series.hash(&patch_dir())?;
    let out = build_dir(profile);
    let tree = prepare_build_dir(sh, &src, &out)?;
    configure(sh, &src, profile, &shash)?;

    make_bzimage(&src, &out, &shash, profile.name(), args.jobs, args.force)?;
    finish(src, out, &tree, bzimage(profile), "done", t0)
}

/// make bzImage in `out`, unless it was made before from this .config and
/// `source` (what identifies the tree) and `force` is not set. `name`
/// names the kernel in messages.
fn make_bzimage(
    src: &Path,
    out: &Path,
    source: &str,
    name: &str,
    jobs: Option<usize>,
    force: bool,
) -> Result<()> {
    let config = std::fs::read(out.join(".config"))?;
    let key = stamp::hash(&[&config, source.as_bytes(), b"bzImage"]);
    let kept = image_in(out).exists() && !force;
    let made = Stamp::new(out.join(".xtask-built"), key).run(kept, || {
        let jobs = kbuild::jobs(jobs);
        println!(
            "[build] make -j{jobs} bzImage (CC={}) in {}",
            kbuild::cc(),
            out.display()
        );
        Make {
            tree: src,
            out,
            jobs: Some(jobs),
            args: vec!["bzImage".into()],
            label: &format!("build {name}"),
            stderr: Stderr::Echo,
            steps: Steps::FullBuild,
        }
        .run()
        .map(drop)
    })?;
    if !made {
        println!("[build] {name} kernel is up to date");
    }
    Ok(())
}

/// Record what `out` was built from and say what was built.
fn finish(
    src: PathBuf,
    out: PathBuf,
    tree: &TreeState,
    image: PathBuf,
    done: &str,
    t0: Instant,
) -> Result<Built> {
    crate::incremental::record(&out, tree)?;
    let release = release_of(&out)?;
    println!(
        "[build] {done} in {}\n  image:   {}\n  release: {}",
        crate::progress::fmt_duration(t0.elapsed()),
        image.display(),
        release
    );
    Ok(Built {
        bzimage: image,
        release,
        build_dir: out,
        src,
    })
}

/// Make `out` safe to build from `src` (see incremental.rs), saying what
/// was done; returns the tree's state to record after the build.
fn prepare_build_dir(sh: &Shell, src: &Path, out: &Path) -> Result<TreeState> {
    use crate::incremental::Prepared;
    let (what, state) = crate::incremental::prepare(sh, src, out)?;
    match what {
        Prepared::Kept => {}
        Prepared::Redated(files) => println!(
            "[build] {} was built from another copy of the tree: every source \
             re-dated older than its objects, except {} file(s) whose content differs",
            out.display(),
            files.len()
        ),
        Prepared::Discarded(why) => println!(
            "[build] discarded {}: {why}; building from scratch",
            out.display()
        ),
    }
    Ok(state)
}

/// The release string the build in `out` wrote (what `uname -r` will say).
fn release_of(out: &Path) -> Result<String> {
    let f = out.join("include/config/kernel.release");
    let r = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
    Ok(r.trim().to_string())
}

/// Release suffix of the unpatched kernel, so no result can be mistaken for
/// the patched kernel's.
const BASE_LOCALVERSION: &str = "\"-uring-ipc-base\"";

/// Config symbols the series itself introduces (`+config FOO` lines in the
/// Kconfig files its patches change): the base tree does not know them.
pub fn series_only_symbols(series: &Series) -> Result<Vec<String>> {
    let mut syms = Vec::new();
    for path in series.paths(&patch_dir()) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        syms.extend(added_config_symbols(&text));
    }
    Ok(syms)
}

fn added_config_symbols(diff: &str) -> Vec<String> {
    let mut in_kconfig = false;
    let mut syms = Vec::new();
    for l in diff.lines() {
        if let Some(files) = l.strip_prefix("diff --git ") {
            in_kconfig = files
                .rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with("Kconfig"));
            continue;
        }
        let Some(added) = l.strip_prefix('+').filter(|_| in_kconfig) else {
            continue;
        };
        let mut w = added.split_whitespace();
        if let (Some("config" | "menuconfig"), Some(sym)) = (w.next(), w.next()) {
            syms.push(format!("CONFIG_{sym}"));
        }
    }
    syms
}

/// A worktree of src/ at `base`, made once and never switched, so the
/// unpatched kernel builds without touching the tree others build from.
fn base_worktree(sh: &Shell, src: &Path) -> Result<PathBuf> {
    let wt = base_src_dir();
    let want = git(sh, src).args(["rev-parse", "base^{commit}"]).read()?;
    let have = git(sh, &wt)
        .args(["rev-parse", "HEAD"])
        .ignore_stderr()
        .read()
        .ok();
    if wt.join(".git").exists() && have.as_deref() == Some(want.as_str()) {
        let dirty = git(sh, &wt).args(["status", "--porcelain"]).read()?;
        if dirty.is_empty() {
            return Ok(wt);
        }
        println!("[base] {} has local changes; recreating it", wt.display());
    }
    if wt.exists() {
        std::fs::remove_dir_all(&wt)?;
    }
    println!(
        "[base] checking out the unpatched base into {}",
        wt.display()
    );
    add_worktree(sh, src, &wt, At::Base)?;
    crate::incremental::mark_new_copy(&git_dir(sh, &wt)?)?;
    Ok(wt)
}

/// Build the unpatched base kernel: the fast profile's fragments minus the
/// options only the series provides, in build-base/ from base-src/.
pub fn build_base(sh: &Shell, jobs: Option<usize>) -> Result<Built> {
    let _lock = TreeLock::acquire()?;
    let t0 = Instant::now();
    let src = prepare_base(sh)?;
    let dropped = series_only_symbols(&Series::load(&patch_dir())?)?;
    let base_tree = base_worktree(sh, &src)?;
    let mut request = merged_fragment(Profile::Fast)?;
    for sym in &dropped {
        request.entries.remove(sym);
    }
    request
        .entries
        .insert("CONFIG_LOCALVERSION".into(), BASE_LOCALVERSION.into());
    let base_commit = git(sh, &base_tree).args(["rev-parse", "HEAD"]).read()?;
    let what = format!(
        "{} without the series' options ({})",
        fragment_names(Profile::Fast),
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        }
    );
    let out = base_build_dir();
    let tree = prepare_build_dir(sh, &base_tree, &out)?;
    kbuild::configure(
        sh,
        &base_tree,
        &out,
        &request,
        &base_commit,
        Check::Strict(&what),
    )?;
    make_bzimage(&base_tree, &out, &base_commit, "base", jobs, false)?;
    let image = image_in(&out);
    finish(base_tree, out, &tree, image, "base done", t0)
}

#[cfg(test)]
mod base_tests {
    use super::*;

    #[test]
    fn finds_symbols_the_series_adds() {
        let diff = "diff --git a/io_uring/ipc.c b/io_uring/ipc.c\n\
                    +config NOT_KCONFIG\n\
                    diff --git a/init/Kconfig b/init/Kconfig\n\
                    +config IO_URING_IPC\n\
                    +\tbool \"io_uring IPC channels\"\n\
                    + depends on IO_URING\n\
                    -config GONE\n\
                    \x20config IO_URING\n\
                    +menuconfig NEW_MENU\n";
        assert_eq!(
            added_config_symbols(diff),
            vec!["CONFIG_IO_URING_IPC", "CONFIG_NEW_MENU"]
        );
    }
}
