//! The EndpointSlice plan for one Service: which slices to create, update and delete so that
//! the Service's endpoints are covered with as few writes as possible (Kubernetes'
//! `reconcileByPortMapping` and `finalize`):
//!
//! 1. Endpoints are grouped by their resolved port list; a slice holds one group.
//! 2. Each existing slice keeps the endpoints still wanted (updated in place if changed) and
//!    drops the others; a slice left empty is deleted, a changed one updated, the rest stay.
//! 3. New endpoints go first into slices being updated anyway (fullest first), then — if
//!    fewer than a slice's worth remain — into the fullest unchanged slice they fit in,
//!    else into new slices of at most `max` endpoints.
//! 4. A create paired with a delete becomes an update of the slice that would have gone.
//! 5. A Service without endpoints keeps one empty "placeholder" slice.

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// A port list in a comparable, order-independent form.
pub type PortsKey = Vec<(String, i32, String, Option<String>)>;

/// The identity of an endpoint across syncs: its addresses and the pod it points to.
type EndpointKey = (Vec<String>, String, String);

/// The key of a port list.
pub fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut k: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

fn endpoint_key(e: &Endpoint) -> EndpointKey {
    let mut addrs = e.addresses.clone();
    addrs.sort();
    let (ns, name) = e
        .target_ref
        .as_ref()
        .map_or((String::new(), String::new()), |r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        });
    (addrs, ns, name)
}

/// The endpoints a Service should have, grouped by port list.
#[derive(Debug, Default, Clone)]
pub struct Desired {
    groups: BTreeMap<PortsKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>,
}

impl Desired {
    /// Adds one endpoint serving on `ports`.
    pub fn add(&mut self, ports: Vec<EndpointPort>, endpoint: Endpoint) {
        let g = self
            .groups
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        g.1.insert(endpoint_key(&endpoint), endpoint);
    }

    /// How many endpoints there are in all.
    pub fn len(&self) -> usize {
        self.groups.values().map(|g| g.1.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What every slice of the Service carries.
#[derive(Debug, Clone)]
pub struct SliceMeta {
    pub namespace: String,
    /// `generateName` of new slices (`<service>-`).
    pub generate_name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
    pub address_type: String,
    /// Most endpoints per slice (`--max-endpoints-per-slice`).
    pub max: usize,
}

/// The writes a sync makes.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn new_slice(meta: &SliceMeta, ports: Vec<EndpointPort>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(meta.generate_name.clone()),
            namespace: Some(meta.namespace.clone()),
            labels: Some(meta.labels.clone()),
            owner_references: Some(vec![meta.owner.clone()]),
            ..Default::default()
        },
        address_type: meta.address_type.clone(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

fn owned_by(slice: &EndpointSlice, owner: &OwnerReference) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner.uid)
}

fn labels_of(slice: &EndpointSlice) -> BTreeMap<String, String> {
    slice.metadata.labels.clone().unwrap_or_default()
}

fn is_placeholder(slice: &EndpointSlice, meta: &SliceMeta) -> bool {
    slice.endpoints.is_empty()
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
        && slice.address_type == meta.address_type
        && labels_of(slice) == meta.labels
        && owned_by(slice, &meta.owner)
}

/// Plans the writes that turn `existing` (this Service's slices, managed by this
/// controller) into `desired`.
pub fn plan(existing: Vec<EndpointSlice>, desired: Desired, meta: &SliceMeta) -> Plan {
    let max = meta.max.max(1);
    let existing_count = existing.len();
    let mut plan = Plan::default();
    let mut by_ports: BTreeMap<PortsKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if slice.address_type != meta.address_type {
            plan.delete.push(slice);
            continue;
        }
        by_ports
            .entry(ports_key(slice.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(slice);
    }
    for (key, (ports, mut wanted)) in desired.groups {
        let mut to_update: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<EndpointSlice> = Vec::new();
        for mut slice in by_ports.remove(&key).unwrap_or_default() {
            let before = slice.endpoints.len();
            let mut changed = false;
            let mut kept = Vec::with_capacity(before);
            for ep in std::mem::take(&mut slice.endpoints) {
                if let Some(want) = wanted.remove(&endpoint_key(&ep)) {
                    changed |= want != ep;
                    kept.push(want);
                }
            }
            let labels_changed = labels_of(&slice) != meta.labels;
            slice.endpoints = kept;
            if changed || slice.endpoints.len() != before {
                if slice.endpoints.is_empty() {
                    plan.delete.push(slice);
                } else {
                    slice.metadata.labels = Some(meta.labels.clone());
                    to_update.push(slice);
                }
            } else if labels_changed {
                slice.metadata.labels = Some(meta.labels.clone());
                to_update.push(slice);
            } else {
                unchanged.push(slice);
            }
        }
        let mut remaining: VecDeque<Endpoint> = wanted.into_values().collect();
        // Fill the slices written anyway, fullest first.
        to_update.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for slice in &mut to_update {
            while slice.endpoints.len() < max {
                let Some(e) = remaining.pop_front() else {
                    break;
                };
                slice.endpoints.push(e);
            }
        }
        while !remaining.is_empty() {
            let left = remaining.len();
            // Fewer than a slice's worth: the fullest unchanged slice they fit in.
            let fill = if left < max {
                unchanged
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.endpoints.len() + left <= max)
                    .max_by_key(|(_, s)| s.endpoints.len())
                    .map(|(i, _)| i)
            } else {
                None
            };
            let (mut slice, existing_slice) = match fill {
                Some(i) => (unchanged.swap_remove(i), true),
                None => (new_slice(meta, ports.clone()), false),
            };
            while slice.endpoints.len() < max {
                let Some(e) = remaining.pop_front() else {
                    break;
                };
                slice.endpoints.push(e);
            }
            if existing_slice {
                to_update.push(slice);
            } else {
                plan.create.push(slice);
            }
        }
        plan.update.extend(to_update);
    }
    // Slices whose port list nothing wants any more.
    plan.delete.extend(by_ports.into_values().flatten());

    // Keep (or make) one placeholder when nothing else would remain.
    if existing_count == plan.delete.len() && plan.create.is_empty() {
        if plan.delete.len() == 1 && is_placeholder(&plan.delete[0], meta) {
            plan.delete.clear();
        } else {
            plan.create.push(new_slice(meta, Vec::new()));
        }
    }

    // Recycle: rather than delete one slice and create another, rewrite the first.
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let candidate = &plan.delete[i];
        if candidate.address_type == meta.address_type && owned_by(candidate, &meta.owner) {
            let old = plan.delete.remove(i);
            let mut slice = plan.create.pop().expect("checked non-empty");
            slice.metadata.name = old.metadata.name;
            slice.metadata.generate_name = old.metadata.generate_name;
            slice.metadata.resource_version = old.metadata.resource_version;
            slice.metadata.uid = old.metadata.uid;
            slice.metadata.annotations = old.metadata.annotations;
            slice.metadata.creation_timestamp = old.metadata.creation_timestamp;
            plan.update.push(slice);
        } else {
            i += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests;
