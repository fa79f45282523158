//! kadm-apiserver: the Kubernetes API over HTTPS, stored in etcd.
//!
//! Request path: TLS (client cert → user) → [`request::parse`] (which resource,
//! which verb) → [`handlers`] (decode, default, validate) → [`storage`] (one
//! guarded etcd transaction; lists and watches from the [`cache`]) → a JSON object,
//! list, table, stream or `Status`.

pub mod admission;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod cache;
pub mod config;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod handlers;
pub mod limits;
pub mod openapi;
pub mod partial;
pub mod request;
pub mod response;
pub mod server;
pub mod services;
pub mod storage;
pub mod strategy;
pub mod tls;

pub use config::Config;
pub use error::{Error, Result};
