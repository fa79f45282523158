//! ImageLocality: prefers nodes that already have the pod's images, weighting each image's
//! size by the share of nodes that have it (so a ubiquitous image does not attract pods
//! to one node), scaled between 23 MB and 1000 MB per container.

use crate::cache::Cache;
use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;
use crate::framework::score::MAX_NODE_SCORE;

const MB: i64 = 1024 * 1024;
/// Below this the image sum scores 0.
pub const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, above this the sum scores 100.
pub const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// `calculatePriority`.
pub fn priority(sum: i64, containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * containers as i64;
    let clamped = if sum < MIN_THRESHOLD {
        MIN_THRESHOLD
    } else if sum > max {
        max
    } else {
        sum
    };
    if max == MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

pub fn score(pod: &PodInfo, node: &NodeData, cache: &Cache, total_nodes: usize) -> i64 {
    if pod.images.is_empty() || node.images.is_empty() || total_nodes == 0 {
        return priority(0, pod.container_count);
    }
    let mut sum = 0i64;
    for image in &pod.images {
        if let Some(size) = node.images.get(image) {
            let spread = cache.image_num_nodes(image) as f64 / total_nodes as f64;
            sum += (*size as f64 * spread) as i64;
        }
    }
    priority(sum, pod.container_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::objects::NodeObject;
    use serde_json::json;

    #[test]
    fn image_sizes_scale_between_thresholds() {
        assert_eq!(priority(0, 1), 0);
        assert_eq!(priority(MIN_THRESHOLD, 1), 0);
        assert_eq!(priority(MAX_CONTAINER_THRESHOLD, 1), 100);
        assert_eq!(priority(5 * MAX_CONTAINER_THRESHOLD, 1), 100);
        // Kubernetes' image_locality_test: a 250 MB image on the only node, one container:
        // 100 * (250 - 23) / (1000 - 23) = 23.
        assert_eq!(priority(250 * MB, 1), 23);
    }

    #[test]
    fn spread_weights_image_size() {
        let mut c = Cache::default();
        for name in ["n1", "n2"] {
            let images = if name == "n1" {
                json!([{"names": ["app:v1"], "sizeBytes": 500 * MB}])
            } else {
                json!([])
            };
            let n: NodeObject = serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"images": images}}))
            .expect("node");
            c.set_node(&n);
        }
        let p = pod(json!({"spec": {"containers": [{"name": "c", "image": "app:v1"}]}}));
        let n1 = c
            .node_by_name("n1")
            .and_then(|n| n.node.clone())
            .expect("n1");
        let n2 = c
            .node_by_name("n2")
            .and_then(|n| n.node.clone())
            .expect("n2");
        // 500 MB * 1/2 = 250 MB → 23.
        assert_eq!(score(&p, &n1, &c, 2), 23);
        assert_eq!(score(&p, &n2, &c, 2), 0);
        let untagged = pod(json!({"spec": {"containers": [{"name": "c", "image": "app"}]}}));
        assert_eq!(score(&untagged, &n1, &c, 2), 0);
    }
}
