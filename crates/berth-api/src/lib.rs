//! Wire-level pieces of the Docker Engine API shared by the daemon and the CLI: the error kinds
//! and their HTTP statuses, the 8-byte multiplexed stream framing, and the JSON progress message.
//! Types only, no I/O.

pub mod error;
pub mod message;
pub mod stream;
pub mod units;

pub use error::{ApiError, ErrorKind};

/// The Engine API version this implementation speaks.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted on versioned paths.
pub const MIN_API_VERSION: &str = "1.24";
