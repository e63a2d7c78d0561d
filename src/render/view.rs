//! Normalised views of a validated stack, the context templates receive.
//!
//! Defaults are applied here (security, resources, labels), references are
//! resolved to the names objects really have (a secret's Kubernetes name,
//! a volume's claim), and order is the stack's definition order. Templates
//! only lay these out.

use serde::Serialize;

use crate::stack::model::{
    ContainerRef, EnvValue, ExposeType, Map, Probe, Protocol, Quantities, Resources, Service, Stack, Strategy,
};
use crate::stack::validate::main_name;

/// Default resources for a container that states none.
const DEFAULT_REQUESTS: (&str, &str) = ("100m", "128Mi");
const DEFAULT_LIMITS: (&str, &str) = ("1", "512Mi");
/// The user a container runs as when the stack does not say.
const DEFAULT_UID: i64 = 10001;

/// Labels on every object of a stack.
pub fn common_labels(stack: &Stack) -> Map<String> {
    let mut m = Map::default();
    m.insert("app.kubernetes.io/part-of".into(), stack.name.clone());
    m.insert("app.kubernetes.io/managed-by".into(), "stackgen".into());
    for (k, v) in &stack.labels {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// Labels that select one workload's pods.
pub fn selector(stack: &Stack, workload: &str) -> Map<String> {
    let mut m = Map::default();
    m.insert("app.kubernetes.io/name".into(), workload.to_string());
    m.insert("app.kubernetes.io/part-of".into(), stack.name.clone());
    m
}

#[derive(Debug, Serialize)]
pub struct WorkloadView {
    pub name: String,
    /// Annotations of the workload object itself (e.g. Argo CD sync waves).
    pub object_annotations: Map<String>,
    pub replicas: u32,
    pub strategy: &'static str,
    pub labels: Map<String>,
    pub pod_labels: Map<String>,
    pub selector: Map<String>,
    pub annotations: Map<String>,
    pub automount_token: bool,
    pub pod_security: PodSecurity,
    pub init_containers: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    pub volumes: Vec<PodVolume>,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PodSecurity {
    pub run_as_non_root: bool,
    pub run_as_user: i64,
    pub run_as_group: i64,
    pub fs_group: i64,
}

#[derive(Debug, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub ports: Vec<PortView>,
    pub env: Vec<EnvView>,
    pub env_from: Vec<EnvFromView>,
    pub mounts: Vec<MountView>,
    pub probes: Map<ProbeView>,
    pub resources: ResourcesView,
    pub security: ContainerSecurity,
}

#[derive(Debug, Serialize)]
pub struct PortView {
    pub name: String,
    pub port: i64,
    pub protocol: Protocol,
}

/// One environment variable: exactly one of `value`, `secret`, `config` is set.
#[derive(Debug, Serialize)]
pub struct EnvView {
    pub name: String,
    pub value: Option<String>,
    pub secret: Option<KeyRef>,
    pub config: Option<KeyRef>,
}

#[derive(Debug, Serialize)]
pub struct KeyRef {
    /// The object's real name.
    pub name: String,
    /// The key may be absent (a secret key declared `required: false`).
    pub optional: bool,
    /// The name in the stack.
    pub stack_name: String,
    pub key: String,
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EnvFromView {
    pub secret: Option<String>,
    pub config: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MountView {
    /// Pod volume name.
    pub volume: String,
    pub path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct ProbeView {
    pub kind: &'static str,
    pub path: Option<String>,
    pub port: Option<String>,
    pub port_number: Option<i64>,
    pub command: Vec<String>,
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub failure_threshold: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ResourcesView {
    pub requests: QuantitiesView,
    pub limits: QuantitiesView,
}

#[derive(Debug, Serialize)]
pub struct QuantitiesView {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Serialize)]
pub struct ContainerSecurity {
    pub run_as_non_root: bool,
    pub run_as_user: Option<i64>,
    pub read_only_root_filesystem: bool,
    pub add_capabilities: Vec<String>,
}

/// A pod-level volume: exactly one source is set.
#[derive(Debug, Serialize)]
pub struct PodVolume {
    pub name: String,
    pub claim: Option<String>,
    pub empty_dir: bool,
    pub config_map: Option<String>,
    pub secret: Option<String>,
}

/// A Kubernetes Service for an exposed workload.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub r#type: ExposeType,
    pub labels: Map<String>,
    pub selector: Map<String>,
    pub ports: Vec<ServicePortView>,
}

#[derive(Debug, Serialize)]
pub struct ServicePortView {
    pub name: String,
    pub port: i64,
    pub target: String,
    pub target_number: i64,
    pub protocol: Protocol,
}

/// Whether a secret's key is declared required (configs: always).
pub fn key_required(stack: &Stack, secret: &str, key: &str) -> bool {
    let Some(s) = stack.secrets.get(secret) else { return true };
    match &s.external {
        Some(ext) => ext.data.get(key).is_none_or(|r| r.required),
        None => s.keys.0.get(key).is_none_or(|k| k.required),
    }
}

/// Label marking a pod as a member of stack network `n`.
pub fn network_label(n: &str) -> String {
    format!("network.stackgen.io/{n}")
}

/// The stack's own (non-external) networks a workload joins: those it
/// names, else all of them.
pub fn member_networks(stack: &Stack, named: &[String]) -> Vec<String> {
    let own = |n: &String| stack.networks.get(n).is_some_and(|d| !d.external);
    if named.is_empty() {
        stack.networks.keys().filter(|n| own(n)).cloned().collect()
    } else {
        named.iter().filter(|n| own(n)).cloned().collect()
    }
}

/// The real name of a secret, config or Service.
pub fn secret_name(stack: &Stack, key: &str) -> String {
    stack.secrets.get(key).and_then(|s| s.name.clone()).unwrap_or_else(|| key.to_string())
}

pub fn config_name(stack: &Stack, key: &str) -> String {
    stack.configs.get(key).and_then(|c| c.name.clone()).unwrap_or_else(|| key.to_string())
}

pub fn service_name(name: &str, svc: &Service) -> String {
    svc.expose.as_ref().and_then(|e| e.name.clone()).unwrap_or_else(|| name.to_string())
}

fn quantities(q: Option<&Quantities>, default: (&str, &str)) -> QuantitiesView {
    QuantitiesView {
        cpu: q.and_then(|q| q.cpu.clone()).unwrap_or_else(|| default.0.to_string()),
        memory: q.and_then(|q| q.memory.clone()).unwrap_or_else(|| default.1.to_string()),
    }
}

fn resources(r: Option<&Resources>) -> ResourcesView {
    ResourcesView {
        requests: quantities(r.map(|r| &r.requests), DEFAULT_REQUESTS),
        limits: quantities(r.map(|r| &r.limits), DEFAULT_LIMITS),
    }
}

fn probe(kind: &'static str, p: &Probe, ports: &Map<crate::stack::model::Port>) -> (String, ProbeView) {
    let (k, path, port, command) = if let Some(h) = &p.http {
        ("http", Some(h.path.clone()), Some(h.port.clone()), Vec::new())
    } else if let Some(t) = &p.tcp {
        ("tcp", None, Some(t.clone()), Vec::new())
    } else {
        ("exec", None, None, p.exec.clone().unwrap_or_default())
    };
    let port_number = port.as_ref().and_then(|n| ports.get(n)).map(|p| p.port);
    (
        kind.to_string(),
        ProbeView {
            kind: k,
            path,
            port,
            port_number,
            command,
            initial_delay_seconds: p.initial_delay_seconds,
            period_seconds: p.period_seconds,
            timeout_seconds: p.timeout_seconds,
            failure_threshold: p.failure_threshold,
        },
    )
}

fn container(stack: &Stack, name: &str, c: &ContainerRef) -> ContainerView {
    let env = crate::stack::validate::env_order(c.env)
        .into_iter()
        .map(|k| (k.to_string(), &c.env[k]))
        .map(|(k, v)| match v {
            EnvValue::Literal(s) => EnvView { name: k.clone(), value: Some(s.clone()), secret: None, config: None },
            EnvValue::Ref(r) => {
                let key_ref = |stack_name: &String, real: String, description: Option<String>| KeyRef {
                    optional: !key_required(stack, stack_name, &r.key),
                    name: real,
                    stack_name: stack_name.clone(),
                    key: r.key.clone(),
                    description,
                };
                match (&r.secret, &r.config) {
                    (Some(s), _) => EnvView {
                        name: k.clone(),
                        value: None,
                        secret: Some(key_ref(
                            s,
                            secret_name(stack, s),
                            stack.secrets.get(s).and_then(|x| x.description.clone()),
                        )),
                        config: None,
                    },
                    (None, Some(cfg)) => EnvView {
                        name: k.clone(),
                        value: None,
                        secret: None,
                        config: Some(key_ref(cfg, config_name(stack, cfg), None)),
                    },
                    (None, None) => EnvView { name: k.clone(), value: None, secret: None, config: None },
                }
            }
        })
        .collect();
    let mut probes = Map::default();
    for (kind, p) in
        [("liveness", &c.probes.liveness), ("readiness", &c.probes.readiness), ("startup", &c.probes.startup)]
    {
        if let Some(p) = p {
            let (k, v) = probe(kind, p, c.ports);
            probes.insert(k, v);
        }
    }
    ContainerView {
        name: name.to_string(),
        image: c.image.to_string(),
        command: c.command.to_vec(),
        args: c.args.to_vec(),
        working_dir: c.working_dir.map(str::to_string),
        ports: c.ports.iter().map(|(n, p)| PortView { name: n.clone(), port: p.port, protocol: p.protocol }).collect(),
        env,
        env_from: c
            .env_from
            .iter()
            .map(|e| EnvFromView {
                secret: e.secret.as_ref().map(|s| secret_name(stack, s)),
                config: e.config.as_ref().map(|s| config_name(stack, s)),
            })
            .collect(),
        mounts: c
            .mounts
            .iter()
            .map(|m| MountView {
                volume: pod_volume_name(m),
                path: m.path.clone(),
                sub_path: m.sub_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        probes,
        resources: resources(c.resources),
        security: ContainerSecurity {
            run_as_non_root: !c.security.run_as_root,
            run_as_user: c.security.run_as_user,
            read_only_root_filesystem: !c.security.writable_root_filesystem,
            add_capabilities: c.security.add_capabilities.clone(),
        },
    }
}

fn pod_volume_name(m: &crate::stack::model::Mount) -> String {
    match (&m.volume, &m.config, &m.secret) {
        (Some(v), _, _) => v.clone(),
        (_, Some(c), _) => format!("config-{c}"),
        (_, _, Some(s)) => format!("secret-{s}"),
        _ => String::new(),
    }
}

/// The workload view of a service.
pub fn workload(stack: &Stack, name: &str, svc: &Service) -> WorkloadView {
    let main = svc.main_container();
    let mut containers = vec![container(stack, &main_name(name, svc), &main)];
    containers.extend(svc.sidecars.iter().map(|(n, c)| container(stack, n, &c.borrowed())));
    let init_containers: Vec<ContainerView> =
        svc.init.iter().map(|(n, c)| container(stack, n, &c.borrowed())).collect();

    let mut volumes: Vec<PodVolume> = Vec::new();
    let all_mounts = std::iter::once(main.mounts)
        .chain(svc.init.values().chain(svc.sidecars.values()).map(|c| &c.mounts[..]))
        .flatten();
    for m in all_mounts {
        let vname = pod_volume_name(m);
        if volumes.iter().any(|v| v.name == vname) {
            continue;
        }
        let mut pv = PodVolume { name: vname, claim: None, empty_dir: false, config_map: None, secret: None };
        if let Some(v) = &m.volume {
            match stack.volumes.get(v) {
                Some(vol) if vol.ephemeral => pv.empty_dir = true,
                _ => pv.claim = Some(v.clone()),
            }
        } else if let Some(c) = &m.config {
            pv.config_map = Some(config_name(stack, c));
        } else if let Some(s) = &m.secret {
            pv.secret = Some(secret_name(stack, s));
        }
        volumes.push(pv);
    }
    // A pod holding a single-attach volume must be replaced, not surged.
    let holds_rwo = volumes.iter().filter_map(|v| v.claim.as_ref()).any(|c| {
        stack.volumes.get(c).is_some_and(|vol| {
            matches!(
                vol.access_mode,
                crate::stack::model::AccessMode::ReadWriteOnce | crate::stack::model::AccessMode::ReadWriteOncePod
            )
        })
    });
    let strategy = match svc.strategy {
        Some(Strategy::Recreate) => "Recreate",
        Some(Strategy::RollingUpdate) if !holds_rwo => "RollingUpdate",
        _ if holds_rwo => "Recreate",
        _ => "RollingUpdate",
    };
    let sel = selector(stack, name);
    let mut labels = common_labels(stack);
    labels.insert("app.kubernetes.io/name".into(), name.to_string());
    let mut pod_labels = labels.clone();
    pod_labels.extend(svc.labels.clone());
    let mut annotations = svc.annotations.clone();
    if let Some(reason) = &svc.security.reason {
        annotations.insert("stackgen.io/security-exception".into(), reason.clone());
    }
    let uid = svc.security.run_as_user.unwrap_or(if svc.security.run_as_root { 0 } else { DEFAULT_UID });
    let mut object_annotations = Map::default();
    if !crate::render::task::gating(stack, name).is_empty() {
        // After the tasks it waits for, which run in wave 0.
        object_annotations.insert("argocd.argoproj.io/sync-wave".into(), "1".into());
    }
    for n in member_networks(stack, &svc.networks) {
        pod_labels.insert(network_label(&n), "member".into());
    }
    WorkloadView {
        object_annotations,
        name: name.to_string(),
        replicas: svc.replicas,
        strategy,
        labels,
        pod_labels,
        selector: sel,
        annotations,
        automount_token: svc.service_account_token,
        pod_security: PodSecurity {
            run_as_non_root: !svc.security.run_as_root,
            run_as_user: uid,
            run_as_group: svc.security.run_as_group.unwrap_or(uid),
            fs_group: svc.security.fs_group.unwrap_or(svc.security.run_as_group.unwrap_or(uid)),
        },
        init_containers,
        containers,
        volumes,
        depends_on: svc.depends_on.clone(),
    }
}

/// The Service view of an exposed service, if it is exposed.
pub fn service(stack: &Stack, name: &str, svc: &Service) -> Option<ServiceView> {
    let expose = svc.expose.as_ref()?;
    let main = svc.main_container();
    let ports_of = |target: &str| {
        std::iter::once(main.ports).chain(svc.sidecars.values().map(|c| &c.ports)).find_map(|p| p.get(target)).cloned()
    };
    let mut labels = common_labels(stack);
    labels.insert("app.kubernetes.io/name".into(), name.to_string());
    Some(ServiceView {
        name: service_name(name, svc),
        r#type: expose.r#type,
        labels,
        selector: selector(stack, name),
        ports: expose
            .ports
            .iter()
            .map(|p| {
                let target = ports_of(&p.target);
                ServicePortView {
                    name: p.name.clone().unwrap_or_else(|| p.target.clone()),
                    port: p.port,
                    target: p.target.clone(),
                    target_number: target.as_ref().map_or(p.port, |t| t.port),
                    protocol: target.map_or(Protocol::Tcp, |t| t.protocol),
                }
            })
            .collect(),
    })
}
