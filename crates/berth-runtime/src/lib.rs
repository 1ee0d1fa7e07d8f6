//! The container runtime layer: OCI spec generation with Docker's defaults (`spec`, `caps`,
//! `seccomp`), the per-container shim that runs libcontainer outside the daemon (`shim`), the
//! daemon↔shim protocol (`proto`) and the json-file log format (`jsonlog`).

pub mod caps;
pub mod jsonlog;
pub mod proto;
pub mod seccomp;
pub mod shim;
pub mod spec;
