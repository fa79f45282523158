//! Routes that keep cluster address ranges on the machine (docs: lab-hosts item 7): the
//! machine has a default route out, and a packet for a service IP that nothing DNAT'd
//! must not follow it.
//!
//! Idempotent: an existing route is left alone and not claimed; only routes this process
//! added are removed on a clean shutdown.

use crate::cidr::Cidr4;
use crate::error::Result;
use crate::host::{RouteKind, Routes};

/// The routes this process added, removed again by [`RouteGuard::release`].
pub struct RouteGuard<R: Routes> {
    routes: R,
    added: Vec<(Cidr4, RouteKind)>,
}

impl<R: Routes> RouteGuard<R> {
    /// Ensures every `(cidr, kind)` route exists, remembering the ones it added.
    pub fn ensure(routes: R, wanted: &[(Cidr4, RouteKind)]) -> Result<Self> {
        let mut guard = Self {
            routes,
            added: Vec::new(),
        };
        for (cidr, kind) in wanted {
            if guard.routes.exists(*cidr, *kind)? {
                tracing::info!(%cidr, ?kind, "route already present");
                continue;
            }
            guard.routes.add(*cidr, *kind)?;
            tracing::info!(%cidr, ?kind, "route added so that the range never leaves the machine");
            guard.added.push((*cidr, *kind));
        }
        Ok(guard)
    }

    /// Removes the routes this guard added.
    pub fn release(mut self) {
        for (cidr, kind) in std::mem::take(&mut self.added) {
            if let Err(e) = self.routes.delete(cidr, kind) {
                tracing::warn!(%cidr, error = %e, "could not remove the route kadm added");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Call, Recorder};

    #[test]
    fn adds_missing_routes_and_removes_only_those() {
        let rec = Recorder::default();
        let svc = Cidr4::parse("10.96.0.0/12").expect("cidr");
        let pods = Cidr4::parse("10.244.0.0/16").expect("cidr");
        rec.routes
            .lock()
            .expect("lock")
            .push((pods, RouteKind::Unreachable));
        let g = RouteGuard::ensure(
            rec.clone(),
            &[(svc, RouteKind::Loopback), (pods, RouteKind::Unreachable)],
        )
        .expect("ensure");
        assert_eq!(rec.take(), vec![Call::RouteAdd(svc, RouteKind::Loopback)]);
        // Idempotent: a second guard finds both present and adds nothing.
        let g2 = RouteGuard::ensure(rec.clone(), &[(svc, RouteKind::Loopback)]).expect("ensure");
        g2.release();
        assert_eq!(rec.take(), vec![]);
        g.release();
        assert_eq!(rec.take(), vec![Call::RouteDel(svc, RouteKind::Loopback)]);
        assert_eq!(
            *rec.routes.lock().expect("lock"),
            vec![(pods, RouteKind::Unreachable)]
        );
    }
}
