use std::fmt;

/// Errors from this crate. OS errors keep the operation that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The running kernel lacks the feature (ENOSYS, or an opcode/command
    /// it rejects as unknown).
    Unsupported(&'static str),
    /// A system call failed.
    Os { op: &'static str, errno: i32 },
    /// The submission queue has no free entry; submit first.
    SubmissionQueueFull,
    /// An argument was rejected before reaching the kernel.
    InvalidArgument(&'static str),
    /// A submission to an IORING_SETUP_SINGLE_ISSUER ring from another
    /// thread than the one the kernel accepts them from (errno EEXIST, as
    /// the kernel would answer). Nothing was submitted.
    NotSubmitterThread,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn os(op: &'static str, errno: i32) -> Error {
        Error::Os { op, errno }
    }

    /// errno of the last failed call, as an error of `op`.
    pub fn last_os(op: &'static str) -> Error {
        Error::os(
            op,
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        )
    }

    /// The errno, for OS errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            Error::Unsupported(_) => Some(libc::ENOSYS),
            Error::NotSubmitterThread => Some(libc::EEXIST),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unsupported(what) => write!(f, "{what} is unsupported by the running kernel"),
            Error::Os { op, errno } => {
                write!(f, "{op}: {}", std::io::Error::from_raw_os_error(*errno))
            }
            Error::SubmissionQueueFull => write!(f, "io_uring submission queue is full"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::NotSubmitterThread => write!(
                f,
                "io_uring_enter: a SINGLE_ISSUER ring used from another thread than its submitter"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        match e.errno() {
            Some(errno) => std::io::Error::from_raw_os_error(errno),
            None => std::io::Error::other(e.to_string()),
        }
    }
}
