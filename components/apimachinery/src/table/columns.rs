//! The column definitions of every served resource, as Kubernetes' printers declare them
//! (`pkg/printers/internalversion`): names, types, formats, priorities (1 = `-o wide`)
//! and descriptions.
//!
//! Kubernetes takes most descriptions from the API types' documentation
//! (`SwaggerDoc()`); for the `v1` types that is the text of the OpenAPI definitions this
//! crate embeds, so those are looked up there ([`Doc::Field`]). A few printers quote
//! older versions of a type (`extensions/v1beta1`, `batch/v1beta1`, …) whose text
//! differs from `v1`; those, and the printers' own sentences, are literal ([`Doc::Text`]).

use serde_json::{Value, json};

use crate::openapi;
use crate::registry::ResourceInfo;

/// Where a column's description comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Doc {
    Text(&'static str),
    /// The description of `field` in the OpenAPI definition `definition`.
    Field(&'static str, &'static str),
}

impl Doc {
    pub(super) fn text(self) -> &'static str {
        match self {
            Doc::Text(t) => t,
            Doc::Field(def, field) => openapi::definition(def)
                .and_then(|d| d.pointer(&format!("/properties/{field}/description")))
                .and_then(Value::as_str)
                .unwrap_or(""),
        }
    }
}

/// One `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub priority: u8,
    pub doc: Doc,
}

impl Column {
    pub(super) fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.doc.text(),
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        name,
        ty,
        format: "",
        priority: 0,
        doc,
    }
}

/// A `-o wide` column (priority 1).
const fn wide(name: &'static str, ty: &'static str, doc: Doc) -> Column {
    Column {
        priority: 1,
        ..col(name, ty, doc)
    }
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const POD_STATUS: &str = "io.k8s.api.core.v1.PodStatus";
const NODE_INFO: &str = "io.k8s.api.core.v1.NodeSystemInfo";
const SERVICE_SPEC: &str = "io.k8s.api.core.v1.ServiceSpec";
const EVENT: &str = "io.k8s.api.core.v1.Event";
const JOB_SPEC: &str = "io.k8s.api.batch.v1.JobSpec";
const PVC_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeClaimSpec";
const PVC_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeClaimStatus";
const PRIORITY_CLASS: &str = "io.k8s.api.scheduling.v1.PriorityClass";

const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", Doc::Field(META, "name"))
};
const AGE: Column = col("Age", "string", Doc::Field(META, "creationTimestamp"));
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    Doc::Text("Names of each container in the template."),
);
const IMAGES: Column = wide(
    "Images",
    "string",
    Doc::Text("Images referenced by each container in the template."),
);
const READY_PODS: Doc = Doc::Text("Number of the pod with ready state");

/// The columns of `res`'s Table. Resources without a printer in Kubernetes (Roles,
/// ClusterRoles) get the default `Name` / `Created At`.
pub(super) fn columns(res: &ResourceInfo) -> Vec<Column> {
    match (res.group, res.plural) {
        ("", "pods") => vec![
            NAME,
            col(
                "Ready",
                "string",
                Doc::Text("The aggregate readiness state of this pod for accepting traffic."),
            ),
            col(
                "Status",
                "string",
                Doc::Text("The aggregate status of the containers in this pod."),
            ),
            col(
                "Restarts",
                "string",
                Doc::Text(
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
            ),
            AGE,
            wide("IP", "string", Doc::Field(POD_STATUS, "podIP")),
            wide("Node", "string", Doc::Field(POD_SPEC, "nodeName")),
            wide(
                "Nominated Node",
                "string",
                Doc::Field(POD_STATUS, "nominatedNodeName"),
            ),
            wide(
                "Readiness Gates",
                "string",
                Doc::Field(POD_SPEC, "readinessGates"),
            ),
        ],
        ("", "nodes") => vec![
            NAME,
            col("Status", "string", Doc::Text("The status of the node")),
            col("Roles", "string", Doc::Text("The roles of the node")),
            AGE,
            col("Version", "string", Doc::Field(NODE_INFO, "kubeletVersion")),
            wide(
                "Internal-IP",
                "string",
                Doc::Field("io.k8s.api.core.v1.NodeStatus", "addresses"),
            ),
            wide(
                "External-IP",
                "string",
                Doc::Field("io.k8s.api.core.v1.NodeStatus", "addresses"),
            ),
            wide("OS-Image", "string", Doc::Field(NODE_INFO, "osImage")),
            wide(
                "Kernel-Version",
                "string",
                Doc::Field(NODE_INFO, "kernelVersion"),
            ),
            wide(
                "Container-Runtime",
                "string",
                Doc::Field(NODE_INFO, "containerRuntimeVersion"),
            ),
        ],
        ("", "services") => vec![
            NAME,
            col("Type", "string", Doc::Field(SERVICE_SPEC, "type")),
            col(
                "Cluster-IP",
                "string",
                Doc::Field(SERVICE_SPEC, "clusterIP"),
            ),
            col(
                "External-IP",
                "string",
                Doc::Field(SERVICE_SPEC, "externalIPs"),
            ),
            col("Port(s)", "string", Doc::Field(SERVICE_SPEC, "ports")),
            AGE,
            wide("Selector", "string", Doc::Field(SERVICE_SPEC, "selector")),
        ],
        ("", "endpoints") => vec![
            NAME,
            col(
                "Endpoints",
                "string",
                Doc::Field("io.k8s.api.core.v1.Endpoints", "subsets"),
            ),
            AGE,
        ],
        ("", "namespaces") => vec![
            NAME,
            col("Status", "string", Doc::Text("The status of the namespace")),
            AGE,
        ],
        ("", "persistentvolumeclaims") => vec![
            NAME,
            col("Status", "string", Doc::Field(PVC_STATUS, "phase")),
            col("Volume", "string", Doc::Field(PVC_SPEC, "volumeName")),
            col("Capacity", "string", Doc::Field(PVC_STATUS, "capacity")),
            col(
                "Access Modes",
                "string",
                Doc::Field(PVC_STATUS, "accessModes"),
            ),
            col(
                "StorageClass",
                "string",
                Doc::Text("StorageClass of the pvc"),
            ),
            col(
                "VolumeAttributesClass",
                "string",
                Doc::Text("VolumeAttributesClass of the pvc"),
            ),
            AGE,
            wide("VolumeMode", "string", Doc::Field(PVC_SPEC, "volumeMode")),
        ],
        ("", "configmaps") => vec![
            NAME,
            col(
                "Data",
                "string",
                Doc::Field("io.k8s.api.core.v1.ConfigMap", "data"),
            ),
            AGE,
        ],
        ("", "secrets") => vec![
            NAME,
            col(
                "Type",
                "string",
                Doc::Field("io.k8s.api.core.v1.Secret", "type"),
            ),
            col(
                "Data",
                "string",
                Doc::Field("io.k8s.api.core.v1.Secret", "data"),
            ),
            AGE,
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            col(
                "Secrets",
                "string",
                Doc::Field("io.k8s.api.core.v1.ServiceAccount", "secrets"),
            ),
            AGE,
        ],
        ("", "resourcequotas") => vec![
            NAME,
            AGE,
            col(
                "Request",
                "string",
                Doc::Text(
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
            ),
            col(
                "Limit",
                "string",
                Doc::Text(
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
            ),
        ],
        ("", "events") | ("events.k8s.io", "events") => vec![
            col("Last Seen", "string", Doc::Field(EVENT, "lastTimestamp")),
            col("Type", "string", Doc::Field(EVENT, "type")),
            col("Reason", "string", Doc::Field(EVENT, "reason")),
            col("Object", "string", Doc::Field(EVENT, "involvedObject")),
            wide(
                "Subobject",
                "string",
                Doc::Field("io.k8s.api.core.v1.ObjectReference", "fieldPath"),
            ),
            wide("Source", "string", Doc::Field(EVENT, "source")),
            col("Message", "string", Doc::Field(EVENT, "message")),
            wide("First Seen", "string", Doc::Field(EVENT, "firstTimestamp")),
            wide("Count", "string", Doc::Field(EVENT, "count")),
            Column {
                priority: 1,
                ..NAME
            },
        ],
        ("apps", "deployments") => vec![
            NAME,
            col("Ready", "string", READY_PODS),
            // extensions/v1beta1 DeploymentStatus, as Kubernetes' printer quotes it.
            col(
                "Up-to-date",
                "string",
                Doc::Text(
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
            ),
            col(
                "Available",
                "string",
                Doc::Text(
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                Doc::Text(
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ),
        ],
        ("apps", "replicasets") => vec![
            NAME,
            // extensions/v1beta1 ReplicaSetSpec / ReplicaSetStatus.
            col(
                "Desired",
                "integer",
                Doc::Text(
                    "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                ),
            ),
            col(
                "Current",
                "integer",
                Doc::Text(
                    "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
                ),
            ),
            col(
                "Ready",
                "integer",
                Doc::Text("The number of ready replicas for this replica set."),
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                Doc::Text(
                    "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
                ),
            ),
        ],
        ("apps", "statefulsets") => vec![
            NAME,
            col("Ready", "string", READY_PODS),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        ("apps", "daemonsets") => vec![
            NAME,
            // extensions/v1beta1 DaemonSetStatus / DaemonSetSpec.
            col(
                "Desired",
                "integer",
                Doc::Text(
                    "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
                ),
            ),
            col(
                "Current",
                "integer",
                Doc::Text(
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
                ),
            ),
            col(
                "Ready",
                "integer",
                Doc::Text(
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                ),
            ),
            col(
                "Up-to-date",
                "integer",
                Doc::Text("The total number of nodes that are running updated daemon pod"),
            ),
            col(
                "Available",
                "integer",
                Doc::Text(
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
                ),
            ),
            col(
                "Node Selector",
                "string",
                Doc::Field(POD_SPEC, "nodeSelector"),
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                Doc::Text(
                    "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
                ),
            ),
        ],
        ("apps", "controllerrevisions") => vec![
            NAME,
            col(
                "Controller",
                "string",
                Doc::Text("Controller of the object"),
            ),
            col(
                "Revision",
                "string",
                Doc::Field("io.k8s.api.apps.v1.ControllerRevision", "revision"),
            ),
            AGE,
        ],
        ("batch", "jobs") => vec![
            NAME,
            col("Status", "string", Doc::Text("Status of the job.")),
            col(
                "Completions",
                "string",
                Doc::Field("io.k8s.api.batch.v1.JobStatus", "succeeded"),
            ),
            col(
                "Duration",
                "string",
                Doc::Text("Time required to complete the job."),
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "string", Doc::Field(JOB_SPEC, "selector")),
        ],
        ("batch", "cronjobs") => vec![
            NAME,
            // batch/v1beta1 CronJobSpec / CronJobStatus.
            col(
                "Schedule",
                "string",
                Doc::Text("The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            ),
            col(
                "Timezone",
                "string",
                Doc::Text(
                    "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
                ),
            ),
            col(
                "Suspend",
                "boolean",
                Doc::Text(
                    "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
                ),
            ),
            col(
                "Active",
                "integer",
                Doc::Text("A list of pointers to currently running jobs."),
            ),
            col(
                "Last Schedule",
                "string",
                Doc::Text("Information when was the last time the job was successfully scheduled."),
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "string", Doc::Field(JOB_SPEC, "selector")),
        ],
        ("coordination.k8s.io", "leases") => vec![
            NAME,
            col(
                "Holder",
                "string",
                Doc::Field("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
            ),
            AGE,
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            NAME,
            // discovery/v1beta1 EndpointSlice.
            col(
                "AddressType",
                "string",
                Doc::Text(
                    "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.",
                ),
            ),
            col(
                "Ports",
                "string",
                Doc::Text(
                    "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.",
                ),
            ),
            col(
                "Endpoints",
                "string",
                Doc::Text(
                    "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
                ),
            ),
            AGE,
        ],
        ("rbac.authorization.k8s.io", "rolebindings") => binding_columns(
            // rbac/v1beta1 RoleBinding.
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
            [
                "Users in the roleBinding",
                "Groups in the roleBinding",
                "ServiceAccounts in the roleBinding",
            ],
        ),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => binding_columns(
            // rbac/v1beta1 ClusterRoleBinding.
            "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
            [
                "Users in the clusterRoleBinding",
                "Groups in the clusterRoleBinding",
                "ServiceAccounts in the clusterRoleBinding",
            ],
        ),
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            NAME,
            AGE,
            // certificates/v1beta1 CertificateSigningRequestSpec / Status.
            col(
                "SignerName",
                "string",
                Doc::Text(
                    "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`.",
                ),
            ),
            col(
                "Requestor",
                "string",
                Doc::Text("Base64-encoded PKCS#10 CSR data"),
            ),
            col(
                "RequestedDuration",
                "string",
                Doc::Text(
                    "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.",
                ),
            ),
            col(
                "Condition",
                "string",
                Doc::Text("Conditions applied to the request, such as approval or denial."),
            ),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            NAME,
            col(
                "Min Available",
                "string",
                Doc::Text("The minimum number of pods that must be available."),
            ),
            col(
                "Max Unavailable",
                "string",
                Doc::Text("The maximum number of pods that may be unavailable."),
            ),
            col(
                "Allowed Disruptions",
                "integer",
                Doc::Text("Calculated number of pods that may be disrupted at this time."),
            ),
            AGE,
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            NAME,
            col("Value", "integer", Doc::Field(PRIORITY_CLASS, "value")),
            col(
                "Global-Default",
                "boolean",
                Doc::Field(PRIORITY_CLASS, "globalDefault"),
            ),
            AGE,
            col(
                "PreemptionPolicy",
                "string",
                Doc::Field(PRIORITY_CLASS, "preemptionPolicy"),
            ),
        ],
        // Kubernetes' default table convertor (`rest.NewDefaultTableConvertor`).
        _ => vec![
            NAME,
            col("Created At", "date", Doc::Field(META, "creationTimestamp")),
        ],
    }
}

/// The columns of an autoscaling/v1 Scale (`printScale`); its Name has no `name` format.
pub(super) fn scale_columns() -> Vec<Column> {
    vec![
        col("Name", "string", Doc::Field(META, "name")),
        col(
            "Desired",
            "integer",
            Doc::Field("io.k8s.api.autoscaling.v1.ScaleSpec", "replicas"),
        ),
        col(
            "Available",
            "integer",
            Doc::Field("io.k8s.api.autoscaling.v1.ScaleStatus", "replicas"),
        ),
        AGE,
    ]
}

fn binding_columns(role_ref: &'static str, subjects: [&'static str; 3]) -> Vec<Column> {
    vec![
        NAME,
        col("Role", "string", Doc::Text(role_ref)),
        AGE,
        wide("Users", "string", Doc::Text(subjects[0])),
        wide("Groups", "string", Doc::Text(subjects[1])),
        wide("ServiceAccounts", "string", Doc::Text(subjects[2])),
    ]
}
