//! The health endpoint (`GET /healthz`), shared with kadm-scheduler: see
//! [`kadm_base::health`].

pub use kadm_base::health::HealthServer;
