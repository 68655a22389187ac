//! The pure parts of the IPC benchmark suite: the results model,
//! statistics, message content checks, tables, plots, targets and the
//! report. The measuring itself is in the `uring-ipc-bench` binary.

pub mod date;
pub mod model;
pub mod payload;
pub mod report;
pub mod stats;
pub mod svg;
pub mod table;
pub mod targets;
