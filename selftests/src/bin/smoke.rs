//! Smoke test: the suite runs, and in the kernel this workspace built.

use selftests::{cases, check, check_eq, skip, Suite, TestResult};

const MARKER: &str = "-uring-ipc";

/// `cargo xtask test` passes the release string of the kernel it built; the
/// guest must be running exactly that kernel.
fn release_matches_build() -> TestResult {
    let Ok(want) = std::env::var("URING_IPC_EXPECT_RELEASE") else {
        skip!("URING_IPC_EXPECT_RELEASE unset: not started by `cargo xtask test`");
    };
    check_eq!(selftests::kernel_release(), want);
    Ok(())
}

/// The project's LOCALVERSION marks the patched kernel.
fn localversion_marks_project_kernel() -> TestResult {
    let r = selftests::kernel_release();
    if !r.contains(MARKER) {
        skip!("running kernel {r} is not this project's build");
    }
    check!(r.starts_with("6.12."), "unexpected base version in {r}");
    Ok(())
}

/// The kernel log is readable: `cargo xtask test` relies on it to find splats.
fn kernel_log_is_readable() -> TestResult {
    // SAFETY: SYSLOG_ACTION_SIZE_BUFFER (10) takes no buffer.
    let n = unsafe { libc::klogctl(10, std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = selftests::util::errno();
        if e == libc::EPERM {
            skip!("klogctl needs CAP_SYSLOG here");
        }
        return Err(selftests::Outcome::Fail(format!(
            "klogctl: {}",
            selftests::util::errno_name(e)
        )));
    }
    check!(n > 0, "kernel log buffer size is {n}");
    Ok(())
}

fn main() {
    Suite::new(
        "smoke",
        cases![
            release_matches_build,
            localversion_marks_project_kernel,
            kernel_log_is_readable
        ],
    )
    .run()
}
