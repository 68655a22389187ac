//! Advisory file locks (flock) between xtask processes.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive flock on a file, held until dropped.
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Lock `path` (created if missing), saying what is being waited for
    /// when another process holds it.
    pub fn acquire(path: &Path, waiting: &str) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let fd = f.as_raw_fd();
        // SAFETY: fd is an open descriptor owned by `f` for this whole call.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            println!("{waiting}");
            // SAFETY: as above; a blocking flock on a valid descriptor.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(FileLock { _file: f })
    }
}
