//! kadm's API machinery: the object model without I/O.
//!
//! Everything the apiserver needs to decide about an object — which resource it is,
//! whether it is valid, how a patch applies, which error a client sees — lives here,
//! so the same rules can be unit-tested without etcd and reused by clients.

pub mod defaults;
pub mod error;
pub mod events;
pub mod managedfields;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod registry;
pub mod selector;
pub mod status;
pub mod table;
pub mod validation;

pub use error::{Error, Result};
pub use registry::{ResourceInfo, Scope};
pub use status::{ApiError, Cause, Reason};
