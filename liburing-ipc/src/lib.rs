//! A small io_uring on raw syscalls, for the interfaces this workspace adds
//! to the kernel.
//!
//! The `io-uring` crate cannot build SQEs for opcodes it does not know, and
//! rustix's opcode enum cannot hold them, so this crate talks to the kernel
//! directly: [`Ring`] sets up and maps a ring, [`opcode`] builds typed SQEs.
//! Everything that needs an unpatched-kernel fallback reports
//! [`Error::Unsupported`] instead of failing obscurely.

pub mod bufring;
mod error;
pub mod ipc;
pub mod mq;
pub mod opcode;
mod ring;
mod sys;

pub use bufring::BufRing;
pub use error::{Error, Result};
pub use opcode::Sqe;
pub use ring::{Cqe, Probe, Ring, RingBuilder, RESERVED_USER_DATA, SUPPORTED_SETUP_FLAGS};
pub use uapi_headers as uapi;
