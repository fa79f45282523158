//! The order in which nodes are tried: zones interleaved, as Kubernetes' node tree lists
//! them, so that a search that stops early (percentageOfNodesToScore) still sees every zone.

use crate::labels::Labels;

const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";

/// `utilnode.GetZoneKey`: region and zone joined, empty when neither is set.
pub fn zone_key(labels: &Labels) -> String {
    let zone = labels
        .get(crate::cache::pod_info::LABEL_ZONE)
        .or_else(|| labels.get(BETA_ZONE))
        .map(String::as_str)
        .unwrap_or("");
    let region = labels
        .get(crate::cache::pod_info::LABEL_REGION)
        .or_else(|| labels.get(BETA_REGION))
        .map(String::as_str)
        .unwrap_or("");
    if zone.is_empty() && region.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// Node slots grouped by zone, zones in the order they first appeared.
#[derive(Debug, Clone, Default)]
pub struct NodeTree {
    zones: Vec<(String, Vec<usize>)>,
    count: usize,
}

impl NodeTree {
    pub fn add(&mut self, zone: &str, slot: usize) {
        match self.zones.iter_mut().find(|(z, _)| z == zone) {
            Some((_, slots)) => {
                if slots.contains(&slot) {
                    return;
                }
                slots.push(slot);
            }
            None => self.zones.push((zone.to_string(), vec![slot])),
        }
        self.count += 1;
    }

    pub fn remove(&mut self, zone: &str, slot: usize) {
        let Some(zi) = self.zones.iter().position(|(z, _)| z == zone) else {
            return;
        };
        let slots = &mut self.zones[zi].1;
        if let Some(i) = slots.iter().position(|s| *s == slot) {
            slots.remove(i);
            self.count -= 1;
        }
        if slots.is_empty() {
            self.zones.remove(zi);
        }
    }

    /// The i-th node of every zone in turn, zones that ran out skipped.
    pub fn list(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.count);
        let mut index = 0;
        while out.len() < self.count {
            let before = out.len();
            for (_, slots) in &self.zones {
                if let Some(s) = slots.get(index) {
                    out.push(*s);
                }
            }
            if out.len() == before {
                break;
            }
            index += 1;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_interleaved() {
        let mut t = NodeTree::default();
        t.add("a", 0);
        t.add("a", 1);
        t.add("a", 2);
        t.add("b", 3);
        t.add("c", 4);
        t.add("c", 5);
        assert_eq!(t.list(), vec![0, 3, 4, 1, 5, 2]);
        t.remove("b", 3);
        t.remove("a", 0);
        assert_eq!(t.list(), vec![1, 4, 2, 5]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn zone_key_joins_region_and_zone() {
        let mut l = Labels::new();
        assert_eq!(zone_key(&l), "");
        l.insert("topology.kubernetes.io/zone".into(), "z1".into());
        assert_eq!(zone_key(&l), ":\x00:z1");
        l.insert(
            "failure-domain.beta.kubernetes.io/region".into(),
            "r1".into(),
        );
        assert_eq!(zone_key(&l), "r1:\x00:z1");
    }
}
