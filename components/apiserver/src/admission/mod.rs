//! Admission: what Kubernetes' admission plugins change (mutating phase) or refuse
//! (validating phase) in a write after it was authenticated, authorized, decoded and
//! defaulted, and before it is stored.
//!
//! Each plugin is a module of plain functions over [`Request`]; this module owns the
//! order, which is Kubernetes' (`NamespaceLifecycle, LimitRanger, ServiceAccount,
//! NodeRestriction, PodSecurity, Priority, DefaultTolerationSeconds, …, ResourceQuota`):
//! later plugins see what earlier ones changed, and quota is charged last, for the object
//! that will actually be stored.

pub mod limit_ranger;
mod lookup;
pub mod namespace_lifecycle;
pub mod node_restriction;
pub mod plugins;
pub mod pod_security;
pub mod priority;
pub mod resource_quota;
pub mod service_account;
pub mod tolerations;

use kadm_apimachinery::{ApiError, ResourceInfo};
use serde_json::Value;

use crate::server::State;
use crate::tls::UserInfo;

pub use plugins::{Plugin, Plugins};
pub use tolerations::{DEFAULT_TOLERATION_SECONDS, NOT_READY_TAINT, UNREACHABLE_TAINT};

/// The kind of write, as admission webhooks and audit name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One write as the plugins see it (Kubernetes' `admission.Attributes`).
pub struct Request<'a> {
    pub res: &'static ResourceInfo,
    /// `""` for the object itself, else `status`, `scale`, `binding`, …
    pub subresource: &'a str,
    pub operation: Operation,
    pub namespace: &'a str,
    /// Empty for a create with `generateName` (the name is picked after admission).
    pub name: &'a str,
    pub user: &'a UserInfo,
    /// The stored object, for updates and deletes.
    pub old: Option<&'a Value>,
    /// Plugins with side effects (quota charges) skip them on dry runs.
    pub dry_run: bool,
}

impl Request<'_> {
    /// Whether this is a write of core/v1 `plural` itself (not a subresource).
    pub fn is_core(&self, plural: &str) -> bool {
        self.res.group.is_empty() && self.res.plural == plural && self.subresource.is_empty()
    }
}

/// What admission says besides yes or no.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Sent back as `Warning` headers (PodSecurity's `warn` mode, deprecations).
    pub warnings: Vec<String>,
}

/// The chain's settings, from the apiserver's flags.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub default_toleration_seconds: tolerations::DefaultTolerationSeconds,
    /// Which plugins run (`--enable-admission-plugins` / `--disable-admission-plugins`).
    pub plugins: Plugins,
    /// ResourceQuota's per-namespace charging locks.
    pub quota: resource_quota::QuotaAdmission,
    /// LimitRanger's live lookups of namespaces without cached LimitRanges.
    pub limit_ranges: limit_ranger::LiveLookups,
}

impl Admission {
    /// The mutating phase: each plugin may change `obj` or refuse the write (none of
    /// kadm's mutating plugins warns).
    pub async fn mutate(
        &self,
        state: &State,
        req: &Request<'_>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let on = |p| self.plugins.enabled(p);
        if on(Plugin::NamespaceLifecycle) {
            namespace_lifecycle::admit(state, req).await?;
        }
        if on(Plugin::LimitRanger) {
            limit_ranger::mutate(state, req, obj).await?;
        }
        if on(Plugin::ServiceAccount) {
            service_account::mutate(state, req, obj).await?;
        }
        if on(Plugin::Priority) {
            priority::mutate(state, req, obj).await?;
        }
        if on(Plugin::DefaultTolerationSeconds) {
            self.default_toleration_seconds
                .mutate(req.res, req.subresource, obj);
        }
        Ok(())
    }

    /// The validating phase, after the object passed validation: plugins may only refuse.
    /// `obj` is `None` for deletes.
    pub async fn validate(
        &self,
        state: &State,
        req: &Request<'_>,
        obj: Option<&Value>,
        out: &mut Outcome,
    ) -> Result<(), ApiError> {
        let on = |p| self.plugins.enabled(p);
        if let Some(obj) = obj
            && on(Plugin::LimitRanger)
        {
            limit_ranger::validate(state, req, obj).await?;
        }
        if let Some(obj) = obj
            && on(Plugin::ServiceAccount)
        {
            service_account::validate(state, req, obj).await?;
        }
        // NodeRestriction is a mutating plugin in Kubernetes; it runs here because every
        // write (deletes and TokenRequests included) passes this phase.
        if on(Plugin::NodeRestriction) {
            node_restriction::admit(&*state.cache, req, obj)?;
        }
        if on(Plugin::PodSecurity) {
            pod_security::validate(state, req, obj, out).await?;
        }
        if let Some(obj) = obj
            && on(Plugin::Priority)
        {
            priority::validate(state, req, obj).await?;
        }
        // Last: quota is charged only for what every other plugin let through.
        if let Some(obj) = obj
            && on(Plugin::ResourceQuota)
        {
            self.quota.validate(state, req, obj).await?;
        }
        Ok(())
    }
}
