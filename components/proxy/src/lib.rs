//! kadm-proxy: Services and EndpointSlices → one nftables table (`ip kadm`), kept in sync
//! with an atomic `nft -f` replace, plus conntrack clean-up and the service-range route.
//!
//! ```text
//!  reflectors (services, endpointslices) ─► notify ─► coalesce (min sync period)
//!        ─► build_snapshot ─► rules::generate ─► Nft::apply (only if the text changed)
//!                                             └► Conntrack::delete (UDP endpoints gone)
//! ```

pub mod bench;
pub mod cidr;
pub mod error;
pub mod model;
pub mod rules;
pub mod testdata;

pub use error::{Error, Result};
pub mod host;
pub mod netns;
pub mod options;
pub mod routes;
pub mod run;
pub mod sync;

pub use options::Options;
pub use run::run;
