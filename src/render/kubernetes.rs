//! The Kubernetes target: which objects a stack becomes, in kustomize's
//! order, each rendered by its template under `templates/kubernetes/`.
//!
//! Ordering is kustomize's legacy kind order (Namespace, ConfigMap, Secret,
//! Service, PersistentVolumeClaim, Deployment, ... first; webhooks last;
//! other kinds between, by `group_version_kind`), then by name. The
//! `kustomization.yaml` lists the files in that order, so the directory
//! reads the way `kubectl kustomize` prints it.

use minijinja::Value;
use minijinja::value::Serde;

use crate::render::datastore;
use crate::render::view::{self, common_labels};
use crate::stack::model::{Backup, Map, Stack, Target};
use crate::stack::validate::volume_users;

/// One object to render.
pub struct Object {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub template: &'static str,
    /// Extra context: the view the template lays out.
    pub item: Value,
}

impl Object {
    fn new(api_version: &'static str, kind: &'static str, name: &str, template: &'static str, item: Value) -> Object {
        Object { api_version, kind, name: name.to_string(), template, item }
    }

    /// File name inside the target directory: `<kind>-<name>.yaml`. Names
    /// are validated DNS names; anything else is refused here too, so no
    /// name can ever form a path.
    pub fn file_name(&self) -> String {
        let safe = crate::stack::validate::is_dns_subdomain(&self.name);
        let name = if safe { self.name.clone() } else { self.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-") };
        format!("{}-{name}.yaml", self.kind.to_ascii_lowercase())
    }
}

/// kustomize's `orderFirst` and `orderLast` kind lists.
const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/// Sort key matching kustomize's legacy resource order.
pub fn sort_key(api_version: &str, kind: &str, name: &str) -> (usize, String, String) {
    let rank = if let Some(i) = ORDER_FIRST.iter().position(|k| *k == kind) {
        i
    } else if let Some(i) = ORDER_LAST.iter().position(|k| *k == kind) {
        ORDER_FIRST.len() + 1 + i
    } else {
        ORDER_FIRST.len()
    };
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("~G", api_version),
    };
    (rank, format!("{group}_{version}_{kind}"), name.to_string())
}

/// The objects of the `kubernetes/` directory. `initdb` holds the init SQL
/// of each datastore that has extensions (rendered by its own template).
pub fn plan(stack: &Stack, initdb: &Map<String>) -> Vec<Object> {
    let mut objects = Vec::new();
    if !stack.targets.contains(&Target::Kubernetes) {
        return objects;
    }
    let ns = &stack.namespace;
    if ns.create {
        objects.push(Object::new("v1", "Namespace", &ns.name, "kubernetes/namespace.yaml.j2", Value::from(())));
    }
    for (key, cfg) in &stack.configs {
        let name = view::config_name(stack, key);
        objects.push(Object::new("v1", "ConfigMap", &name, "kubernetes/configmap.yaml.j2", Value::from(Serde(cfg))));
    }
    for (key, secret) in &stack.secrets {
        if secret.external.is_some() {
            let name = view::secret_name(stack, key);
            objects.push(Object::new(
                "external-secrets.io/v1",
                "ExternalSecret",
                &name,
                "kubernetes/externalsecret.yaml.j2",
                Value::from(Serde(secret)),
            ));
        }
    }
    let users = volume_users(stack);
    for (key, vol) in &stack.volumes {
        if !vol.ephemeral && vol.bind.is_none() && users.contains_key(key.as_str()) {
            let item = Value::from(Serde(vol));
            objects.push(Object::new("v1", "PersistentVolumeClaim", key, "kubernetes/pvc.yaml.j2", item));
        }
    }
    // The views of many services are built in parallel, kept in order.
    let services: Vec<_> = stack.services.iter().collect();
    let per_service = crate::par::map(&services, |(key, svc)| {
        let mut objects = Vec::new();
        if let Some(s) = view::service(stack, key, svc) {
            if let Some(m) = &svc.metrics {
                let port = s.ports.iter().find(|p| p.target == m.port).map(|p| p.name.clone());
                let item = minijinja::context! { service => Serde(&s), port => port, path => &m.path };
                let template = "kubernetes/servicemonitor.yaml.j2";
                objects.push(Object::new("monitoring.coreos.com/v1", "ServiceMonitor", key, template, item));
            }
            let name = s.name.clone();
            objects.push(Object::new("v1", "Service", &name, "kubernetes/service.yaml.j2", Value::from(Serde(s))));
        }
        let w = view::workload(stack, key, svc);
        objects.push(Object::new("apps/v1", "Deployment", key, "kubernetes/deployment.yaml.j2", Value::from(Serde(w))));
        objects
    });
    objects.extend(per_service.into_iter().flatten());
    for (key, ds) in &stack.datastores {
        match datastore::statefulset(stack, key, ds) {
            None => {
                let item = Value::from(Serde(ds));
                objects.push(Object::new("acid.zalan.do/v1", "postgresql", key, "kubernetes/postgresql.yaml.j2", item));
            }
            Some((scoped, svc)) => {
                if let Some(sql) = initdb.get(key) {
                    let files: Map<String> = [("10-extensions.sql".to_string(), sql.clone())].into_iter().collect();
                    let cfg = minijinja::context! { files => Serde(files) };
                    let name = datastore::initdb_config(key);
                    objects.push(Object::new("v1", "ConfigMap", &name, "kubernetes/configmap.yaml.j2", cfg));
                }
                if let Some(s) = view::service(&scoped, key, &svc) {
                    objects.push(Object::new(
                        "v1",
                        "Service",
                        key,
                        "kubernetes/service.yaml.j2",
                        Value::from(Serde(s)),
                    ));
                }
                let mut w = view::workload(&scoped, key, &svc);
                w.volumes.retain(|v| v.name != "data");
                let item = minijinja::context! { workload => Serde(w), datastore => Serde(ds) };
                objects.push(Object::new("apps/v1", "StatefulSet", key, "kubernetes/statefulset.yaml.j2", item));
            }
        }
        if let Some((scoped, svc, job)) = datastore::backup_job(stack, key, ds) {
            let claim = Backup::dumps_volume(&job);
            let item = Value::from(Serde(&scoped.volumes[&claim]));
            objects.push(Object::new("v1", "PersistentVolumeClaim", &claim, "kubernetes/pvc.yaml.j2", item));
            let w = view::workload(&scoped, &job, &svc);
            let item = minijinja::context! { workload => Serde(w), backup => Serde(ds.backup.as_ref()) };
            objects.push(Object::new("batch/v1", "CronJob", &job, "kubernetes/cronjob.yaml.j2", item));
        }
    }
    for (key, t) in &stack.tasks {
        let svc = crate::render::task::as_service(stack, t);
        let w = view::workload(stack, key, &svc);
        let item = minijinja::context! { workload => Serde(w), task => Serde(t) };
        objects.push(Object::new("batch/v1", "Job", key, "kubernetes/job.yaml.j2", item));
    }
    for (key, route) in &stack.routes {
        let svc = &stack.services[&route.service];
        let backend = view::service(stack, &route.service, svc);
        let port = route.port.or_else(|| backend.as_ref().and_then(|b| b.ports.first()).map(|p| p.port));
        let item = minijinja::context! {
            route => Serde(route),
            backend => backend.map(|b| b.name),
            port => port,
        };
        if route.gateway.is_some() {
            objects.push(Object::new(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                key,
                "kubernetes/httproute.yaml.j2",
                item,
            ));
        } else {
            objects.push(Object::new("networking.k8s.io/v1", "Ingress", key, "kubernetes/ingress.yaml.j2", item));
        }
    }
    network_policies(stack, &mut objects);
    if let Some(net) = &stack.network {
        objects.push(Object::new(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            &stack.name,
            "kubernetes/networkpolicy.yaml.j2",
            Value::from(Serde(net)),
        ));
    }
    objects.sort_by_cached_key(|o| sort_key(o.api_version, o.kind, &o.name));
    objects
}

/// Objects of one kind with one name: they would be one file (the second
/// overwriting the first) and one object in the cluster, and kustomize
/// refuses such a list.
#[derive(Debug)]
pub struct Clashes(pub Vec<Clash>);

#[derive(Debug)]
pub struct Clash {
    pub kind: &'static str,
    pub name: String,
    /// The stack fields the name comes from (field paths), when found.
    pub from: Vec<String>,
}

impl std::fmt::Display for Clashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.0.iter().map(|c| format!("{} `{}`", c.kind, c.name)).collect();
        write!(f, "two objects of one kind would have the same name (one replacing the other): {}", all.join(", "))
    }
}

impl std::error::Error for Clashes {}

/// Fails with [`Clashes`] when two of `objects` (sorted, so such objects
/// are adjacent) have the same kind and name.
pub fn ensure_unique(stack: &Stack, objects: &[Object]) -> Result<(), Clashes> {
    let mut clashes: Vec<Clash> = Vec::new();
    for pair in objects.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let seen = clashes.last().is_some_and(|c| c.kind == a.kind && c.name == a.name);
        if a.kind == b.kind && a.api_version == b.api_version && a.name == b.name && !seen {
            clashes.push(Clash { kind: a.kind, name: a.name.clone(), from: origins(stack, a.kind, &a.name) });
        }
    }
    if clashes.is_empty() { Ok(()) } else { Err(Clashes(clashes)) }
}

/// The stack fields that name a `kind` object `name` (see `plan`).
fn origins(stack: &Stack, kind: &str, name: &str) -> Vec<String> {
    let named = |section: &str, key: &str, explicit: bool| {
        if explicit { format!("{section}.{key}.name") } else { format!("{section}.{key}") }
    };
    let mut out = Vec::new();
    match kind {
        "ConfigMap" => {
            for (k, c) in &stack.configs {
                if view::config_name(stack, k) == name {
                    out.push(named("configs", k, c.name.is_some()));
                }
            }
            for (k, d) in &stack.datastores {
                if !d.extensions.is_empty() && datastore::initdb_config(k) == name {
                    out.push(format!("datastores.{k}.extensions"));
                }
            }
        }
        "ExternalSecret" => {
            for (k, sec) in &stack.secrets {
                if view::secret_name(stack, k) == name {
                    out.push(named("secrets", k, sec.name.is_some()));
                }
            }
        }
        "Service" => {
            for (k, svc) in &stack.services {
                if let Some(e) = &svc.expose
                    && view::service_name(k, svc) == name
                {
                    out.push(if e.name.is_some() {
                        format!("services.{k}.expose.name")
                    } else {
                        format!("services.{k}")
                    });
                }
            }
            out.extend(stack.datastores.keys().filter(|k| *k == name).map(|k| format!("datastores.{k}")));
        }
        "PersistentVolumeClaim" | "CronJob" => {
            if kind == "PersistentVolumeClaim" {
                out.extend(stack.volumes.keys().filter(|k| *k == name).map(|k| format!("volumes.{k}")));
            }
            for (k, d) in &stack.datastores {
                let Some(b) = &d.backup else { continue };
                let job = b.job_name(k);
                if job == name || Backup::dumps_volume(&job) == name {
                    out.push(format!("datastores.{k}.backup"));
                }
            }
        }
        "NetworkPolicy" => {
            out.extend(
                stack
                    .networks
                    .keys()
                    .filter(|n| network_policy_name(stack, n) == name)
                    .map(|n| format!("networks.{n}")),
            );
            out.extend(
                stack.services.keys().filter(|k| public_policy_name(k) == name).map(|k| format!("services.{k}")),
            );
            if stack.network.is_some() && stack.name == name {
                out.push("network".to_string());
            }
        }
        _ => {}
    }
    out
}

/// The NetworkPolicy of the members of stack network `network`.
fn network_policy_name(stack: &Stack, network: &str) -> String {
    format!("{}-network-{network}", stack.name)
}

/// The NetworkPolicy admitting outside traffic to service `service`.
fn public_policy_name(service: &str) -> String {
    format!("{service}-public")
}

fn network_policy(name: &str, item: Value) -> Object {
    Object::new("networking.k8s.io/v1", "NetworkPolicy", name, "kubernetes/networkpolicy-network.yaml.j2", item)
}

/// Stack networks become NetworkPolicies: members of a network accept
/// traffic from each other; services behind a route or a LoadBalancer also
/// from outside, on their exposed ports.
fn network_policies(stack: &Stack, objects: &mut Vec<Object>) {
    let own: Vec<&String> = stack.networks.iter().filter(|(_, n)| !n.external).map(|(k, _)| k).collect();
    if own.is_empty() {
        return;
    }
    for n in own {
        let label = view::network_label(n);
        let sel: Map<String> = [(label, "member".to_string())].into_iter().collect();
        let item = minijinja::context! { selector => Serde(&sel), members => Serde(&sel), from_anywhere => false };
        objects.push(network_policy(&network_policy_name(stack, n), item));
    }
    for (key, svc) in &stack.services {
        let routed = stack.routes.values().any(|r| r.service == *key);
        let Some(sv) = view::service(stack, key, svc) else { continue };
        let lb = sv.r#type != crate::stack::model::ExposeType::ClusterIP;
        if !routed && !lb {
            continue;
        }
        let ports: Vec<_> = sv
            .ports
            .iter()
            .map(|p| minijinja::context! { port => p.target_number, protocol => Serde(p.protocol) })
            .collect();
        let item = minijinja::context! {
            selector => Serde(view::selector(stack, key)),
            members => Value::from(()),
            from_anywhere => true,
            external => lb,
            ports => ports,
        };
        objects.push(network_policy(&public_policy_name(key), item));
    }
}

/// The objects of the `gitops/` directory (delivery to a cluster).
pub fn plan_gitops(stack: &Stack) -> Vec<Object> {
    let mut objects = Vec::new();
    // They deliver the kubernetes tree: none without it (validation warns).
    let Some(g) = stack.gitops.as_ref().filter(|_| stack.targets.contains(&Target::Kubernetes)) else {
        return objects;
    };
    if let Some(argo) = &g.argocd {
        if argo.create_project {
            objects.push(Object::new(
                "argoproj.io/v1alpha1",
                "AppProject",
                &argo.project,
                "gitops/appproject.yaml.j2",
                Value::from(Serde(argo)),
            ));
        }
        if argo.application {
            objects.push(Object::new(
                "argoproj.io/v1alpha1",
                "Application",
                g.object_name(&stack.name),
                "gitops/application.yaml.j2",
                Value::from(Serde(argo)),
            ));
        }
    }
    if let Some(flux) = &g.flux {
        objects.push(Object::new(
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            g.object_name(&stack.name),
            "gitops/gitrepository.yaml.j2",
            Value::from(Serde(flux)),
        ));
        objects.push(Object::new(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            g.object_name(&stack.name),
            "gitops/kustomization-flux.yaml.j2",
            Value::from(Serde(flux)),
        ));
    }
    objects.sort_by_cached_key(|o| sort_key(o.api_version, o.kind, &o.name));
    objects
}

fn namespace_labels(stack: &Stack) -> crate::stack::model::Map<String> {
    let mut m = common_labels(stack);
    m.extend(stack.namespace.labels.clone());
    m
}

/// The stack as a template value, converted field by field on access: a
/// template reads `stack.name` thousands of times, and converting a stack of
/// thousands of services up front for each would dominate rendering.
#[derive(Debug)]
struct LazyStack(std::sync::Arc<Stack>);

const STACK_FIELDS: &[&str] = &[
    "name",
    "description",
    "targets",
    "namespace",
    "labels",
    "services",
    "volumes",
    "secrets",
    "configs",
    "datastores",
    "routes",
    "tasks",
    "verify",
    "network",
    "networks",
    "gitops",
];

impl minijinja::value::Object for LazyStack {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        let s = &self.0;
        Some(match key.as_str()? {
            "name" => Value::from(s.name.as_str()),
            "description" => Value::from(Serde(&s.description)),
            "targets" => Value::from(Serde(&s.targets)),
            "namespace" => Value::from(Serde(&s.namespace)),
            "labels" => Value::from(Serde(&s.labels)),
            "services" => Value::from(Serde(&s.services)),
            "volumes" => Value::from(Serde(&s.volumes)),
            "secrets" => Value::from(Serde(&s.secrets)),
            "configs" => Value::from(Serde(&s.configs)),
            "datastores" => Value::from(Serde(&s.datastores)),
            "routes" => Value::from(Serde(&s.routes)),
            "tasks" => Value::from(Serde(&s.tasks)),
            "verify" => Value::from(Serde(&s.verify)),
            "network" => Value::from(Serde(&s.network)),
            "networks" => Value::from(Serde(&s.networks)),
            "gitops" => Value::from(Serde(&s.gitops)),
            _ => return None,
        })
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(STACK_FIELDS)
    }
}

/// Context every template receives.
pub fn base_context(stack: &std::sync::Arc<Stack>, env: &str) -> Value {
    minijinja::context! {
        stack => Value::from_object(LazyStack(std::sync::Arc::clone(stack))),
        env => env,
        namespace => &stack.namespace.name,
        labels => Serde(common_labels(stack)),
        namespace_labels => Serde(namespace_labels(stack)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kustomize_order() {
        let mut kinds = [
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("external-secrets.io/v1", "ExternalSecret"),
            ("v1", "Namespace"),
            ("v1", "PersistentVolumeClaim"),
            ("v1", "ConfigMap"),
        ];
        kinds.sort_by_key(|(a, k)| sort_key(a, k, "x"));
        let order: Vec<&str> = kinds.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            order,
            [
                "Namespace",
                "ConfigMap",
                "Service",
                "PersistentVolumeClaim",
                "Deployment",
                "ExternalSecret",
                "NetworkPolicy"
            ]
        );
    }
}
