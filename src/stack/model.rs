//! The stack format: serde types for one app, target-neutral.
//!
//! Every struct denies unknown fields. Named things are maps keyed by name
//! (definition order is kept), so environment overlays merge them by name.
//! These types are what an environment's merged YAML deserialises into;
//! `validate` then checks what types cannot (references, names, ranges).

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A map that keeps definition order. Keys are hashed with foldhash, not
/// std's SipHash: looking names up and inserting them (every service, env
/// var, port… of every environment) hashed them about 9,000 times in a
/// render of the built-in stacks. Iteration order is insertion order
/// whatever the hasher.
pub type Map<V> = IndexMap<String, V, foldhash::fast::RandomState>;

/// One app: its services and everything around them, for one environment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stack {
    /// Stack name; must match the file name. A DNS-1123 label.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Targets rendered for this stack (default: kubernetes).
    #[serde(default = "default_targets")]
    pub targets: Vec<Target>,
    /// The Kubernetes namespace (the Compose project is named after the stack).
    pub namespace: Namespace,
    /// Labels added to every rendered object.
    #[serde(default)]
    pub labels: Map<String>,
    #[serde(default)]
    pub services: Map<Service>,
    #[serde(default)]
    pub volumes: Map<Volume>,
    #[serde(default)]
    pub secrets: Map<Secret>,
    #[serde(default)]
    pub configs: Map<Config>,
    #[serde(default)]
    pub datastores: Map<Datastore>,
    #[serde(default)]
    pub routes: Map<Route>,
    /// One-off jobs such as database migrations.
    #[serde(default)]
    pub tasks: Map<Task>,
    /// Checks listed in the generated VERIFY.md besides the generated ones.
    #[serde(default)]
    pub verify: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Named networks services join (Compose networks).
    #[serde(default)]
    pub networks: Map<NetworkDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<Gitops>,
}

fn default_targets() -> Vec<Target> {
    vec![Target::Kubernetes]
}

/// An output target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Kubernetes,
    Compose,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Kubernetes => "kubernetes",
            Target::Compose => "compose",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Namespace {
    pub name: String,
    /// Render the Namespace object itself (default true).
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default)]
    pub labels: Map<String>,
    #[serde(default)]
    pub annotations: Map<String>,
}

fn yes() -> bool {
    true
}

/// A long-running workload: one main container, optional sidecars and init
/// containers, replicas, and how it is exposed.
//
// Kept out of the doc comment, which is the JSON Schema's description: the main
// container's fields repeat those of `Container` on purpose:
// `#[serde(flatten)]` cannot be combined with `deny_unknown_fields`, and a
// flat service is what people write. `Service::main_container` borrows
// them as a `ContainerRef`, as `Container::borrowed` does a container's.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Service {
    pub image: Option<String>,
    /// Build the image from source (Compose only; Kubernetes needs `image`).
    pub build: Option<Build>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub ports: Map<Port>,
    #[serde(default)]
    pub env: Map<EnvValue>,
    #[serde(default)]
    pub env_from: Vec<EnvFrom>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub probes: Probes,
    pub resources: Option<Resources>,
    #[serde(default)]
    pub security: Security,
    /// Name of the main container (default: the service name).
    pub container_name: Option<String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Extra containers in the same pod, by name.
    #[serde(default)]
    pub sidecars: Map<Container>,
    /// Containers run to completion before the others start (in order on
    /// Kubernetes; on Compose each is a one-shot service the main one waits for).
    #[serde(default)]
    pub init: Map<Container>,
    pub expose: Option<Expose>,
    pub strategy: Option<Strategy>,
    /// Pod labels and annotations in addition to the stack's.
    #[serde(default)]
    pub labels: Map<String>,
    #[serde(default)]
    pub annotations: Map<String>,
    /// Mount a service-account token into the pod (default false).
    #[serde(default)]
    pub service_account_token: bool,
    /// Services and datastores this one needs first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Networks this service joins (default: the stack's default network).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Restart policy (Compose; Kubernetes Deployments always restart).
    pub restart: Option<Restart>,
    /// Where Prometheus scrapes metrics: a ServiceMonitor on Kubernetes
    /// (Prometheus operator); Compose stacks configure Prometheus themselves.
    pub metrics: Option<Metrics>,
}

/// How to build a service's image.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Build {
    #[serde(default = "dot")]
    pub context: String,
    pub dockerfile: Option<String>,
    pub target: Option<String>,
}

fn dot() -> String {
    ".".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metrics {
    /// Name of the container port serving metrics.
    pub port: String,
    #[serde(default = "metrics_path")]
    pub path: String,
}

fn metrics_path() -> String {
    "/metrics".to_string()
}

/// A named network.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkDef {
    pub description: Option<String>,
    /// Created outside the stack (e.g. a shared reverse-proxy network).
    #[serde(default)]
    pub external: bool,
    /// No route to the outside world.
    #[serde(default)]
    pub internal: bool,
}

fn one() -> u32 {
    1
}

/// A run-to-completion job, e.g. `alembic upgrade head`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Task {
    /// Service whose image, environment, mounts, security and dependencies the task reuses.
    pub from: Option<String>,
    /// Image (default: that of `from`).
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to those of `from`.
    #[serde(default)]
    pub env: Map<EnvValue>,
    /// Services that start only once the task has succeeded.
    #[serde(default)]
    pub before: Vec<String>,
    /// Retries before the task counts as failed (Kubernetes).
    #[serde(default = "six")]
    pub backoff_limit: u32,
    /// Seconds a finished Job is kept (Kubernetes).
    #[serde(default = "hour")]
    pub ttl_seconds_after_finished: u32,
}

fn six() -> u32 {
    6
}

fn hour() -> u32 {
    3600
}

/// A manual check for VERIFY.md.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Check {
    pub description: String,
    /// Command to run inside a service's main container (Kubernetes: `kubectl exec`; Compose: `docker compose exec`).
    pub exec: Option<Vec<String>>,
    /// The service `exec` runs in.
    pub service: Option<String>,
    /// What a passing check shows.
    pub expect: Option<String>,
}

/// A sidecar or init container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub ports: Map<Port>,
    #[serde(default)]
    pub env: Map<EnvValue>,
    #[serde(default)]
    pub env_from: Vec<EnvFrom>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub probes: Probes,
    pub resources: Option<Resources>,
    #[serde(default)]
    pub security: Security,
}

/// A container's fields, borrowed: those of a sidecar or init container
/// (`Container::borrowed`), or those a service gives its main container
/// (`Service::main_container`), so that both are read the same way
/// without a copy.
#[derive(Debug, Clone, Copy)]
pub struct ContainerRef<'a> {
    /// Empty for a service without `image` (one built from source).
    pub image: &'a str,
    pub command: &'a [String],
    pub args: &'a [String],
    pub working_dir: Option<&'a str>,
    pub ports: &'a Map<Port>,
    pub env: &'a Map<EnvValue>,
    pub env_from: &'a [EnvFrom],
    pub mounts: &'a [Mount],
    pub probes: &'a Probes,
    pub resources: Option<&'a Resources>,
    pub security: &'a Security,
}

/// A `ContainerRef` of `$c`'s container fields, `$image` its image: the
/// field list of `Container` and of a service's main container, in one place.
macro_rules! container_ref {
    ($c:expr, image: $image:expr) => {
        ContainerRef {
            image: $image,
            command: &$c.command,
            args: &$c.args,
            working_dir: $c.working_dir.as_deref(),
            ports: &$c.ports,
            env: &$c.env,
            env_from: &$c.env_from,
            mounts: &$c.mounts,
            probes: &$c.probes,
            resources: $c.resources.as_ref(),
            security: &$c.security,
        }
    };
}

impl Container {
    /// This container's fields, borrowed.
    pub fn borrowed(&self) -> ContainerRef<'_> {
        container_ref!(self, image: &self.image)
    }
}

impl Service {
    /// The service's own container fields, borrowed as its main container.
    pub fn main_container(&self) -> ContainerRef<'_> {
        container_ref!(self, image: self.image.as_deref().unwrap_or_default())
    }
}

/// A container port. Written as a number or as a map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub port: i64,
    pub protocol: Protocol,
    /// Host port to publish on (Compose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
}

/// A port written as a map.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PortFull {
    port: i64,
    #[serde(default)]
    protocol: Protocol,
    publish: Option<i64>,
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a map with `port` and `protocol`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Ok(Port { port: v, protocol: Protocol::Tcp, publish: None })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                Ok(Port { port: i64::try_from(v).unwrap_or(i64::MAX), protocol: Protocol::Tcp, publish: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Port, A::Error> {
                let full = PortFull::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(Port { port: full.port, protocol: full.protocol, publish: full.publish })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [{ "type": "integer" }, g.subschema_for::<PortFull>()] })
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A literal (string, integer or boolean), or a key of a declared secret or config.",
            "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "boolean" }, g.subschema_for::<EnvRef>()]
        })
    }
}

impl JsonSchema for Keys {
    fn schema_name() -> Cow<'static, str> {
        "Keys".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "array", "items": { "type": "string" } },
                { "type": "object", "additionalProperties": { "anyOf": [g.subschema_for::<KeySpec>(), { "type": "null" }] } }
            ]
        })
    }
}

/// An environment variable: a literal, or a key of a declared secret or config.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    Literal(String),
    Ref(EnvRef),
}

/// `{ secret: NAME, key: KEY }` or `{ config: NAME, key: KEY }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvRef {
    pub secret: Option<String>,
    pub config: Option<String>,
    pub key: String,
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an integer, a boolean, or `{ secret: NAME, key: KEY }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<EnvValue, E> {
                Err(E::custom("a decimal number would lose its spelling; quote it as a string"))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<EnvValue, A::Error> {
                EnvRef::deserialize(de::value::MapAccessDeserializer::new(a)).map(EnvValue::Ref)
            }
        }
        d.deserialize_any(V)
    }
}

/// Import every key of a secret or config as environment variables.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvFrom {
    pub secret: Option<String>,
    pub config: Option<String>,
}

/// A mount of a volume, config or secret at `path`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    pub volume: Option<String>,
    pub config: Option<String>,
    pub secret: Option<String>,
    pub path: String,
    pub sub_path: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probes {
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
}

/// A health check: exactly one of `http`, `tcp`, `exec`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    pub http: Option<HttpCheck>,
    /// Name of a container port to open a TCP connection to.
    pub tcp: Option<String>,
    pub exec: Option<Vec<String>>,
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub failure_threshold: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCheck {
    #[serde(default = "root_path")]
    pub path: String,
    /// Name of a container port.
    pub port: String,
}

fn root_path() -> String {
    "/".to_string()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub requests: Quantities,
    #[serde(default)]
    pub limits: Quantities,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Quantities {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// Security settings. Defaults are the restrictive ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Security {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub fs_group: Option<i64>,
    /// Allow running as root (default false). Say why in `reason`.
    #[serde(default)]
    pub run_as_root: bool,
    /// Writable root filesystem (default false: read-only).
    #[serde(default)]
    pub writable_root_filesystem: bool,
    /// Capabilities to add back after dropping ALL.
    #[serde(default)]
    pub add_capabilities: Vec<String>,
    /// Why a default was relaxed; rendered as an annotation.
    pub reason: Option<String>,
}

/// How a service is reachable inside the cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expose {
    /// Service name (default: the service name).
    pub name: Option<String>,
    #[serde(default)]
    pub r#type: ExposeType,
    /// Service port -> container port name.
    pub ports: Vec<ExposedPort>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ExposeType {
    #[default]
    ClusterIP,
    LoadBalancer,
    NodePort,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExposedPort {
    pub port: i64,
    /// Name of the container port traffic goes to.
    pub target: String,
    /// Name of the Service port (default: the target's name).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Strategy {
    RollingUpdate,
    Recreate,
}

/// Storage shared by mounts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    /// Size of a persistent volume (e.g. `20Gi`); absent for scratch space.
    pub size: Option<String>,
    pub storage_class: Option<String>,
    #[serde(default)]
    pub access_mode: AccessMode,
    /// Scratch space that lives as long as the pod (emptyDir).
    #[serde(default)]
    pub ephemeral: bool,
    /// A host path bind-mounted into containers (Compose only), e.g. `./src`.
    pub bind: Option<String>,
    /// Keep the claim when GitOps prunes (a persistent volume on
    /// Kubernetes): Argo CD's `Prune=false` and Flux's `prune: disabled`
    /// annotations, so that removing the volume from the stack, or the
    /// delivery object, never deletes its data.
    #[serde(default)]
    pub keep: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum AccessMode {
    #[default]
    ReadWriteOnce,
    ReadWriteMany,
    ReadOnlyMany,
    ReadWriteOncePod,
}

/// A secret the stack uses, always by reference: its value never appears.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    /// Name of the Kubernetes Secret (default: the secret's key in `secrets`).
    pub name: Option<String>,
    pub description: Option<String>,
    /// Keys this secret holds: a list of names, or names with details.
    /// With `external`, the keys are those of its `data`.
    #[serde(default)]
    pub keys: Keys,
    /// Prefix of the Compose variables that carry this secret's keys.
    pub variable_prefix: Option<String>,
    /// Fetched by External Secrets from a secret store.
    pub external: Option<ExternalSource>,
    /// Created by something else in the stack (e.g. a datastore operator).
    pub provided_by: Option<String>,
}

/// The keys of a secret, in definition order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Keys(pub Map<KeySpec>);

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeySpec {
    pub description: Option<String>,
    /// Whether the value must be set (default true).
    #[serde(default = "yes")]
    pub required: bool,
}

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of key names, or a map of key name to `{ description, required }`")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Keys, A::Error> {
                let mut m = Map::default();
                while let Some(k) = a.next_element::<String>()? {
                    m.insert(k, KeySpec { description: None, required: true });
                }
                Ok(Keys(m))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Keys, A::Error> {
                let m = Map::<Option<KeySpec>>::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(Keys(
                    m.into_iter()
                        .map(|(k, v)| (k, v.unwrap_or(KeySpec { description: None, required: true })))
                        .collect(),
                ))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalSource {
    pub store: String,
    #[serde(default = "cluster_store")]
    pub store_kind: String,
    #[serde(default = "hourly")]
    pub refresh_interval: String,
    /// Secret key -> where it lives in the store.
    pub data: Map<RemoteRef>,
}

fn cluster_store() -> String {
    "ClusterSecretStore".to_string()
}

fn hourly() -> String {
    "1h".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteRef {
    pub key: String,
    pub property: Option<String>,
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub required: bool,
}

/// Files shipped to containers (ConfigMap / compose config).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub name: Option<String>,
    /// File name -> contents.
    pub files: Map<String>,
}

/// A managed database.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Datastore {
    pub engine: Engine,
    pub version: String,
    /// How the kubernetes target runs it (default `zalando`).
    #[serde(default)]
    pub kubernetes: DatastoreMapping,
    #[serde(default = "one")]
    pub instances: u32,
    pub size: String,
    pub storage_class: Option<String>,
    /// Database name -> owner user.
    #[serde(default)]
    pub databases: Map<String>,
    /// User name -> role flags (e.g. `createdb`).
    #[serde(default)]
    pub users: Map<Vec<String>>,
    /// Team that owns the cluster (Zalando operator); the name must start with it.
    pub team: Option<String>,
    pub resources: Option<Resources>,
    /// Image for targets that run the database themselves (default `postgres:<version>`).
    pub image: Option<String>,
    /// Extensions created on first start.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Server settings (`postgresql.conf` parameters).
    #[serde(default)]
    pub parameters: Map<String>,
    /// Password of the owner of the first database, by reference (Compose).
    pub password: Option<SecretKeyRef>,
    /// Scheduled dumps.
    pub backup: Option<Backup>,
    /// Networks the database joins (Compose).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Host port to publish on (Compose).
    pub publish: Option<i64>,
    /// Restart policy (Compose).
    pub restart: Option<Restart>,
}

/// `{ secret: NAME, key: KEY }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub secret: String,
    pub key: String,
}

/// Scheduled `pg_dump`s with retention.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Backup {
    /// Name of the backup workload (default `<datastore>-backup`).
    pub name: Option<String>,
    /// Cron schedule, e.g. `0 2 * * *`, or `@daily`.
    pub schedule: String,
    #[serde(default = "seven")]
    pub keep_days: u32,
    #[serde(default)]
    pub keep_weeks: u32,
    #[serde(default)]
    pub keep_months: u32,
    /// Image of the backup job (default `prodrigestivill/postgres-backup-local:<version>`).
    pub image: Option<String>,
    /// Size of the volume holding the dumps (Kubernetes).
    #[serde(default = "backup_size")]
    pub size: String,
    /// Host directory for the dumps (Compose; default a named volume).
    pub bind: Option<String>,
    /// Format of the dumps: `plain` (SQL, gzipped, `.sql.gz`, restored with
    /// `psql`) or `custom` (`pg_dump -Fc`, `.dump`, restored with
    /// `pg_restore`).
    #[serde(default)]
    pub format: DumpFormat,
}

/// Format of a backup's dumps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// `pg_dump`'s SQL script, gzipped: `<db>-<date>.sql.gz`, restored with
    /// `gunzip | psql`.
    #[default]
    Plain,
    /// `pg_dump -Fc`, compressed: `<db>-<date>.dump`, restored with
    /// `pg_restore` (selectively, in parallel).
    Custom,
}

impl DumpFormat {
    /// postgres-backup-local's `POSTGRES_EXTRA_OPTS`: the options of its
    /// `pg_dump -d DB -f FILE`.
    pub fn pg_dump_options(self) -> &'static str {
        match self {
            DumpFormat::Plain => "-Z6 --schema=public --blobs",
            DumpFormat::Custom => "-Fc -Z6 --schema=public --blobs",
        }
    }

    /// postgres-backup-local's `BACKUP_SUFFIX`: the dump files' extension.
    pub fn suffix(self) -> &'static str {
        match self {
            DumpFormat::Plain => ".sql.gz",
            DumpFormat::Custom => ".dump",
        }
    }
}

impl Backup {
    /// Name of the backup workload of datastore `datastore`: `name`, else
    /// `<datastore>-backup`.
    pub fn job_name(&self, datastore: &str) -> String {
        self.name.clone().unwrap_or_else(|| format!("{datastore}-backup"))
    }

    /// The volume (claim) the dumps of backup workload `job` are kept on.
    pub fn dumps_volume(job: &str) -> String {
        format!("{job}-dumps")
    }
}

fn seven() -> u32 {
    7
}

fn backup_size() -> String {
    "10Gi".to_string()
}

/// Kubernetes mapping of a PostgreSQL datastore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreMapping {
    /// A Zalando postgres-operator `postgresql` cluster.
    #[default]
    Zalando,
    /// A StatefulSet and Service running the official image.
    Statefulset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
}

/// HTTP traffic from outside to an exposed service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    pub host: String,
    #[serde(default = "root_path")]
    pub path: String,
    /// The service whose `expose` receives the traffic.
    pub service: String,
    /// Service port (default: its first exposed port).
    pub port: Option<i64>,
    /// Gateway API HTTPRoute.
    pub gateway: Option<GatewayRef>,
    /// networking.k8s.io Ingress.
    pub ingress: Option<IngressSettings>,
    /// Traefik router labels (Compose).
    pub traefik: Option<TraefikSettings>,
    /// nginx-proxy + acme-companion variables (Compose).
    pub nginx_proxy: Option<NginxProxySettings>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TraefikSettings {
    /// ACME certificate resolver; TLS is on when set.
    pub cert_resolver: Option<String>,
    #[serde(default)]
    pub entrypoints: Vec<String>,
    /// Network shared with Traefik.
    pub network: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NginxProxySettings {
    /// Request a Let's Encrypt certificate (default true).
    #[serde(default = "yes")]
    pub letsencrypt: bool,
    /// Network shared with nginx-proxy.
    pub network: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayRef {
    pub name: String,
    pub namespace: Option<String>,
    pub section: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressSettings {
    pub class_name: Option<String>,
    /// cert-manager ClusterIssuer for the TLS certificate.
    pub cluster_issuer: Option<String>,
    /// Secret for the TLS certificate (default `<route>-tls`); TLS is on unless `tls: false`.
    pub tls_secret: Option<String>,
    #[serde(default = "yes")]
    pub tls: bool,
}

/// What traffic the stack's pods may send and receive (one NetworkPolicy).
/// Traffic between the stack's own pods is allowed unless
/// `allowWithinStack` is false.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    #[serde(default)]
    pub ingress: Vec<NetRule>,
    #[serde(default)]
    pub egress: Vec<NetRule>,
    #[serde(default = "yes")]
    pub allow_within_stack: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetRule {
    /// Why the rule exists (kept as a comment-like description).
    pub description: Option<String>,
    /// Peer namespaces by label; `{}` means every namespace.
    pub namespaces: Option<Map<String>>,
    /// Peer address range.
    pub cidr: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
}

/// How the rendered tree reaches a cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gitops {
    /// Git repository the rendered tree is committed to.
    pub repo: String,
    /// Name of the delivery objects: the Argo CD Application, the Flux
    /// GitRepository and Kustomization (default: the stack's name). Give
    /// each environment its own when two of them deliver into one cluster.
    pub name: Option<String>,
    #[serde(default = "main_branch")]
    pub branch: String,
    /// Where `rendered/` sits inside the repository.
    #[serde(default = "rendered_dir")]
    pub path: String,
    pub argocd: Option<ArgoCd>,
    pub flux: Option<Flux>,
}

impl Gitops {
    /// The name of the delivery objects of stack `stack`.
    pub fn object_name<'a>(&'a self, stack: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(stack)
    }
}

fn main_branch() -> String {
    "main".to_string()
}

fn rendered_dir() -> String {
    "rendered".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgoCd {
    #[serde(default = "argocd_ns")]
    pub namespace: String,
    pub project: String,
    pub project_description: Option<String>,
    /// Render the AppProject (default true).
    #[serde(default = "yes")]
    pub create_project: bool,
    /// Extra repositories and namespaces the project admits.
    #[serde(default)]
    pub source_repos: Vec<String>,
    #[serde(default)]
    pub destinations: Vec<String>,
    #[serde(default = "in_cluster")]
    pub server: String,
    /// Render an Application (default true).
    #[serde(default = "yes")]
    pub application: bool,
    #[serde(default)]
    pub automated: Option<AutoSync>,
    #[serde(default)]
    pub sync_options: Vec<String>,
}

fn argocd_ns() -> String {
    "argocd".to_string()
}

fn in_cluster() -> String {
    "https://kubernetes.default.svc".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutoSync {
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub self_heal: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Flux {
    #[serde(default = "flux_ns")]
    pub namespace: String,
    #[serde(default = "one_minute")]
    pub source_interval: String,
    #[serde(default = "five_minutes")]
    pub interval: String,
    #[serde(default)]
    pub substitute: Map<String>,
}

fn flux_ns() -> String {
    "flux-system".to_string()
}

fn one_minute() -> String {
    "1m".to_string()
}

fn five_minutes() -> String {
    "5m".to_string()
}
