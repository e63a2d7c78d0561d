//! The Compose target: a stack becomes one `compose.yaml` (Compose
//! Specification, Docker Compose v2), a `.env.example` listing every
//! variable it needs, and the files its configs and init scripts mount.
//!
//! Mapping (see docs/targets.md): a service's main container is a Compose
//! service; a sidecar is a service sharing its network namespace
//! (`network_mode: service:<main>`); an init container is a one-shot
//! service the main one waits for (`service_completed_successfully`); a
//! PostgreSQL datastore is a `postgres` service with a `pg_isready`
//! healthcheck, a named volume and an init SQL file; its backup is a
//! `postgres-backup-local` service. Secrets are `${VAR}` references, never
//! values. Every literal is escaped for Compose interpolation (`$` -> `$$`),
//! and `$(VAR)` references to a container's own variables (Kubernetes
//! syntax) become the value or `${VAR}` they stand for.

use serde::Serialize;

use crate::render::view::{self, common_labels};
use crate::stack::model::{
    Backup, Container, ContainerRef, Datastore, EnvFrom, EnvValue, Map, Mount, Probe, Quantities, Restart, Service,
    Stack,
};

/// The whole compose directory, ready for the templates.
#[derive(Debug, Serialize)]
pub struct ComposeView {
    pub name: String,
    pub services: Vec<ComposeService>,
    pub networks: Vec<NetworkView>,
    pub volumes: indexmap::IndexSet<String>,
    pub configs: Vec<ConfigFile>,
    pub secrets: Vec<SecretView>,
    pub variables: Vec<Variable>,
}

#[derive(Debug, Serialize)]
pub struct ComposeService {
    pub name: String,
    pub image: Option<String>,
    pub build: Option<BuildView>,
    pub entrypoint: Vec<String>,
    pub command: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub environment: Map<String>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub tmpfs: Vec<String>,
    pub configs: Vec<Attach>,
    pub secrets: Vec<Attach>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: Map<String>,
    pub network_mode: Option<String>,
    pub networks: Vec<String>,
    pub restart: &'static str,
    pub labels: Map<String>,
    pub replicas: u32,
    pub limits: Option<Limits>,
    pub reservations: Option<Limits>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BuildView {
    pub context: String,
    pub dockerfile: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Attach {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Limits {
    pub cpus: Option<String>,
    pub memory: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NetworkView {
    pub name: String,
    pub external: bool,
    pub internal: bool,
}

/// A file rendered beside `compose.yaml` and attached as a Compose config.
#[derive(Debug, Serialize)]
pub struct ConfigFile {
    /// Compose config name.
    pub name: String,
    /// Path relative to the compose directory.
    pub file: String,
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct SecretView {
    pub name: String,
    pub variable: String,
}

/// A variable `compose.yaml` reads from the environment / `.env`.
#[derive(Debug, Clone, Serialize)]
pub struct Variable {
    pub name: String,
    pub description: String,
    pub required: bool,
}

/// Escapes a literal for Compose interpolation.
pub fn literal(s: &str) -> String {
    s.replace('$', "$$")
}

/// The Compose variable carrying key `key` of secret `secret`: the prefix
/// and the key upper-cased, a word break of a camelCase key marked by `_`
/// (`clientId` -> `CLIENT_ID`), any other character than letters and
/// digits replaced by `_`.
/// A bind mount's host path as Compose's short syntax reads it: a path
/// that does not start with `/`, `.` or `~` would name a volume, so a
/// relative one gets its `./`.
fn bind_source(path: &str) -> std::borrow::Cow<'_, str> {
    if path.starts_with(['/', '.', '~']) { path.into() } else { format!("./{path}").into() }
}

pub fn variable_name(stack: &Stack, secret: &str, key: &str) -> String {
    let prefix = stack.secrets.get(secret).and_then(|s| s.variable_prefix.as_deref()).unwrap_or_default();
    let mut out = String::with_capacity(prefix.len() + key.len() + 2);
    for text in [prefix, key] {
        let mut after_lower = false;
        for c in text.chars() {
            if c.is_ascii_uppercase() && after_lower {
                out.push('_');
            }
            after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' });
        }
    }
    out
}

struct Builder<'a> {
    stack: &'a Stack,
    variables: Vec<Variable>,
    configs: Vec<ConfigFile>,
    secrets: Vec<SecretView>,
    volumes: indexmap::IndexSet<String>,
}

impl Builder<'_> {
    /// `${VAR:?what}` / `${VAR:-}` for a secret key, recording the variable.
    fn secret_ref(&mut self, secret: &str, key: &str) -> String {
        let name = variable_name(self.stack, secret, key);
        let s = &self.stack.secrets[secret];
        let (description, required) = match &s.external {
            Some(ext) => ext.data.get(key).map(|r| (r.description.clone(), r.required)).unwrap_or((None, true)),
            None => s.keys.0.get(key).map(|k| (k.description.clone(), k.required)).unwrap_or((None, true)),
        };
        let description = description
            .or_else(|| s.description.as_ref().map(|d| format!("{d}: {key}")))
            .unwrap_or_else(|| format!("key `{key}` of secret `{secret}`"));
        if !self.variables.iter().any(|v| v.name == name) {
            self.variables.push(Variable { name: name.clone(), description: description.clone(), required });
        }
        if required {
            let msg: String = description.chars().filter(|c| !matches!(c, '}' | '$' | '\n' | '\r')).collect();
            format!("${{{name}:?{msg}}}")
        } else {
            format!("${{{name}:-}}")
        }
    }

    /// Translates a string of a container the way Kubernetes expands `env`
    /// values, `command` and `args`: `$(VAR)` references to its own
    /// environment resolved, `$$` one literal `$` (so `$$(` a literal
    /// `$(`), any other `$` literal; literals escaped for Compose. The
    /// container then gets the same string on both targets.
    fn text(&mut self, s: &str, env: &Map<EnvValue>, depth: usize) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("$$") {
                out.push_str("$$");
                rest = r;
                continue;
            }
            if let Some(inner) = after.strip_prefix("$(")
                && let Some(end) = inner.find(')')
            {
                let var = &inner[..end];
                if let Some(v) = env.get(var).filter(|_| depth < 8) {
                    let resolved = match v {
                        EnvValue::Literal(l) => self.text(l, env, depth + 1),
                        EnvValue::Ref(r) => match &r.secret {
                            Some(sec) => self.secret_ref(sec, &r.key),
                            None => literal(&format!("$({var})")),
                        },
                    };
                    out.push_str(&resolved);
                    rest = &inner[end + 1..];
                    continue;
                }
            }
            out.push_str("$$");
            rest = &after[1..];
        }
        out.push_str(rest);
        out
    }

    fn environment(&mut self, c: &ContainerRef) -> Map<String> {
        let mut m = Map::default();
        for ef in c.env_from {
            self.env_from(ef, &mut m);
        }
        for (k, v) in c.env {
            let value = match v {
                EnvValue::Literal(l) => self.text(l, c.env, 0),
                EnvValue::Ref(r) => match (&r.secret, &r.config) {
                    (Some(s), _) => self.secret_ref(s, &r.key),
                    (None, Some(cfg)) => literal(
                        self.stack.configs.get(cfg).and_then(|c| c.files.get(&r.key)).map_or("", String::as_str),
                    ),
                    (None, None) => String::new(),
                },
            };
            m.insert(k.clone(), value);
        }
        m
    }

    fn env_from(&mut self, ef: &EnvFrom, m: &mut Map<String>) {
        if let Some(s) = &ef.secret {
            let keys: Vec<String> =
                crate::stack::validate::secret_keys(&self.stack.secrets[s]).into_iter().map(str::to_string).collect();
            for k in keys {
                let value = self.secret_ref(s, &k);
                m.insert(k, value);
            }
        }
        if let Some(c) = &ef.config {
            for (k, v) in &self.stack.configs[c].files {
                m.insert(k.clone(), literal(v));
            }
        }
    }

    /// Volumes, tmpfs, configs and secrets of one container.
    fn mounts(&mut self, mounts: &[Mount], shared: &dyn Fn(&str) -> bool, svc: &mut ComposeService) {
        for m in mounts {
            let ro = if m.read_only { ":ro" } else { "" };
            if let Some(v) = &m.volume {
                let vol = &self.stack.volumes[v];
                if let Some(bind) = &vol.bind {
                    // A sub-path of a bind mount is a directory below it
                    // (one of a named volume is refused by validation).
                    let source = match &m.sub_path {
                        Some(sp) => format!("{}/{sp}", bind.trim_end_matches('/')),
                        None => bind.clone(),
                    };
                    svc.volumes.push(format!("{}:{}{ro}", literal(&bind_source(&source)), literal(&m.path)));
                } else if vol.ephemeral && !shared(v) {
                    svc.tmpfs.push(literal(&m.path));
                } else {
                    self.volumes.insert(v.clone());
                    svc.volumes.push(format!("{v}:{}{ro}", literal(&m.path)));
                }
            } else if let Some(c) = &m.config {
                let files: Vec<(String, String)> =
                    self.stack.configs[c].files.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                for (file, content) in files {
                    let name = format!("{c}-{}", slug(&file));
                    if !self.configs.iter().any(|x| x.name == name) {
                        self.configs.push(ConfigFile {
                            name: name.clone(),
                            file: format!("configs/{c}/{file}"),
                            content,
                        });
                    }
                    let target = match &m.sub_path {
                        Some(sp) if *sp == file => m.path.clone(),
                        Some(_) => continue,
                        None => format!("{}/{file}", m.path.trim_end_matches('/')),
                    };
                    svc.configs.push(Attach { source: name, target: literal(&target) });
                }
            } else if let Some(s) = &m.secret {
                let keys: Vec<String> = crate::stack::validate::secret_keys(&self.stack.secrets[s])
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                for k in keys {
                    // As Kubernetes: with `subPath`, that key alone, as the
                    // file at the mount path.
                    let target = match &m.sub_path {
                        Some(sp) if *sp == k => m.path.clone(),
                        Some(_) => continue,
                        None => format!("{}/{k}", m.path.trim_end_matches('/')),
                    };
                    let name = format!("{s}-{}", slug(&k));
                    let variable = variable_name(self.stack, s, &k);
                    self.secret_ref(s, &k);
                    if !self.secrets.iter().any(|x| x.name == name) {
                        self.secrets.push(SecretView { name: name.clone(), variable });
                    }
                    svc.secrets.push(Attach { source: name, target });
                }
            }
        }
    }
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Kubernetes CPU quantity -> Compose `cpus`.
fn cpus(q: &str) -> String {
    match q.strip_suffix('m') {
        Some(milli) => {
            let m: f64 = milli.parse().unwrap_or(0.0);
            let s = format!("{:.3}", m / 1000.0);
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        None => q.to_string(),
    }
}

/// Kubernetes memory quantity -> Compose byte value (binary units).
fn memory(q: &str) -> String {
    for (suffix, unit) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g"), ("K", "k"), ("k", "k"), ("M", "m"), ("G", "g")] {
        if let Some(n) = q.strip_suffix(suffix) {
            return format!("{n}{unit}");
        }
    }
    q.to_string()
}

fn limits(q: &Quantities) -> Option<Limits> {
    if q.cpu.is_none() && q.memory.is_none() {
        return None;
    }
    Some(Limits { cpus: q.cpu.as_deref().map(cpus), memory: q.memory.as_deref().map(memory) })
}

fn seconds(s: Option<u32>, default: u32) -> String {
    format!("{}s", s.unwrap_or(default))
}

fn healthcheck(p: &Probe, c: &ContainerRef) -> Healthcheck {
    let test = if let Some(h) = &p.http {
        let port = c.ports.get(&h.port).map_or(80, |p| p.port);
        vec!["CMD".into(), "curl".into(), "-fsS".into(), literal(&format!("http://localhost:{port}{}", h.path))]
    } else if let Some(t) = &p.tcp {
        let port = c.ports.get(t).map_or(80, |p| p.port);
        vec!["CMD-SHELL".into(), format!("nc -z localhost {port} || exit 1")]
    } else {
        std::iter::once("CMD".to_string()).chain(p.exec.iter().flatten().map(|a| literal(a))).collect()
    };
    Healthcheck {
        test,
        interval: seconds(p.period_seconds, 10),
        timeout: seconds(p.timeout_seconds, 5),
        retries: p.failure_threshold.unwrap_or(5),
        start_period: p.initial_delay_seconds.map(|s| format!("{s}s")),
    }
}

fn restart(r: Option<Restart>) -> &'static str {
    match r {
        Some(Restart::No) => "no",
        Some(Restart::Always) => "always",
        Some(Restart::OnFailure) => "on-failure",
        Some(Restart::UnlessStopped) | None => "unless-stopped",
    }
}

fn empty_service(name: String) -> ComposeService {
    ComposeService {
        name,
        image: None,
        build: None,
        entrypoint: Vec::new(),
        command: Vec::new(),
        working_dir: None,
        user: None,
        environment: Map::default(),
        ports: Vec::new(),
        volumes: Vec::new(),
        tmpfs: Vec::new(),
        configs: Vec::new(),
        secrets: Vec::new(),
        healthcheck: None,
        depends_on: Map::default(),
        network_mode: None,
        networks: Vec::new(),
        restart: "unless-stopped",
        labels: Map::default(),
        replicas: 1,
        limits: None,
        reservations: None,
        read_only: false,
        cap_add: Vec::new(),
    }
}

/// Whether a service or datastore has a healthcheck in Compose.
fn healthy(stack: &Stack, name: &str) -> bool {
    stack.datastores.contains_key(name)
        || stack.services.get(name).is_some_and(|s| s.probes.readiness.is_some() || s.probes.liveness.is_some())
}

/// The networks a service joins when it names none.
fn default_networks(stack: &Stack) -> Vec<String> {
    stack.networks.iter().filter(|(_, n)| !n.external).map(|(k, _)| k.clone()).collect()
}

impl Builder<'_> {
    fn container(&mut self, name: String, c: &ContainerRef, uses: &dyn Fn(&str) -> bool) -> ComposeService {
        let mut s = empty_service(name);
        s.image = (!c.image.is_empty()).then(|| c.image.to_string());
        s.entrypoint = c.command.iter().map(|a| self.text(a, c.env, 0)).collect();
        s.command = c.args.iter().map(|a| self.text(a, c.env, 0)).collect();
        s.working_dir = c.working_dir.map(literal);
        s.environment = self.environment(c);
        for p in c.ports.values() {
            if let Some(host) = p.publish {
                let proto = if p.protocol == crate::stack::model::Protocol::Udp { "/udp" } else { "" };
                s.ports.push(format!("{host}:{}{proto}", p.port));
            }
        }
        self.mounts(c.mounts, uses, &mut s);
        let probe = c.probes.readiness.as_ref().or(c.probes.liveness.as_ref());
        s.healthcheck = probe.map(|p| healthcheck(p, c));
        if let Some(r) = &c.resources {
            s.limits = limits(&r.limits);
            s.reservations = limits(&r.requests);
        }
        let sec = &c.security;
        s.user = sec.run_as_user.map(|u| match sec.run_as_group {
            Some(g) => format!("{u}:{g}"),
            None => u.to_string(),
        });
        s.read_only = !sec.writable_root_filesystem;
        s.cap_add = sec.add_capabilities.clone();
        s
    }

    fn service(&mut self, name: &str, svc: &Service, out: &mut Vec<ComposeService>) {
        let main = svc.main_container();
        let all: Vec<ContainerRef> = std::iter::once(main)
            .chain(svc.sidecars.values().map(Container::borrowed))
            .chain(svc.init.values().map(Container::borrowed))
            .collect();
        let count = |v: &str| all.iter().filter(|c| c.mounts.iter().any(|m| m.volume.as_deref() == Some(v))).count();
        let shared = |v: &str| count(v) > 1;
        let mut s = self.container(name.to_string(), &main, &shared);
        s.build = svc.build.as_ref().map(|b| BuildView {
            context: literal(&b.context),
            dockerfile: b.dockerfile.as_deref().map(literal),
            target: b.target.as_deref().map(literal),
        });
        // A sidecar joins the network namespace of one container of its
        // main service: with more replicas, the others would run without
        // it. Compose has no pods, so such a service runs one replica.
        s.replicas = if svc.sidecars.is_empty() { svc.replicas } else { svc.replicas.min(1) };
        s.restart = restart(svc.restart);
        s.networks = if svc.networks.is_empty() { default_networks(self.stack) } else { svc.networks.clone() };
        // Naming any network takes a service off Compose's `default` one;
        // a service that only gains a proxy network keeps it.
        let keep_default = s.networks.is_empty();
        for dep in &svc.depends_on {
            let cond = if healthy(self.stack, dep) { "service_healthy" } else { "service_started" };
            s.depends_on.insert(dep.clone(), cond.to_string());
        }
        for (k, v) in &svc.labels {
            s.labels.insert(k.clone(), literal(v));
        }
        if let Some(reason) = &svc.security.reason {
            s.labels.insert("io.stackgen.security-exception".into(), literal(reason));
        }
        for (route_name, r) in self.stack.routes.iter().filter(|(_, r)| r.service == name) {
            let port = view::service(self.stack, name, svc)
                .and_then(|v| {
                    let wanted = r.port.or_else(|| v.ports.first().map(|p| p.port));
                    v.ports.into_iter().find(|p| Some(p.port) == wanted).map(|p| p.target_number)
                })
                .unwrap_or(80);
            if let Some(t) = &r.traefik {
                let mut rule = format!("Host(`{}`)", r.host);
                if r.path != "/" {
                    rule.push_str(&format!(" && PathPrefix(`{}`)", r.path));
                }
                let key = format!("traefik.http.routers.{route_name}");
                s.labels.insert("traefik.enable".into(), "true".into());
                s.labels.insert(format!("{key}.rule"), literal(&rule));
                if !t.entrypoints.is_empty() {
                    s.labels.insert(format!("{key}.entrypoints"), t.entrypoints.join(","));
                }
                if let Some(res) = &t.cert_resolver {
                    s.labels.insert(format!("{key}.tls"), "true".into());
                    s.labels.insert(format!("{key}.tls.certresolver"), literal(res));
                }
                s.labels
                    .insert(format!("traefik.http.services.{route_name}.loadbalancer.server.port"), port.to_string());
                if let Some(n) = &t.network {
                    if !s.networks.contains(n) {
                        s.networks.push(n.clone());
                    }
                    s.labels.insert("traefik.docker.network".into(), n.clone());
                }
            }
            if let Some(np) = &r.nginx_proxy {
                s.environment.insert("VIRTUAL_HOST".into(), literal(&r.host));
                s.environment.insert("VIRTUAL_PORT".into(), port.to_string());
                if r.path != "/" {
                    s.environment.insert("VIRTUAL_PATH".into(), literal(&r.path));
                }
                if np.letsencrypt {
                    s.environment.insert("LETSENCRYPT_HOST".into(), literal(&r.host));
                }
                if let Some(n) = &np.network
                    && !s.networks.contains(n)
                {
                    s.networks.push(n.clone());
                }
            }
        }
        if keep_default && !s.networks.is_empty() {
            s.networks.insert(0, "default".into());
        }
        let mut extra = Vec::new();
        // A pod's user applies to all its containers unless one sets its own.
        let pod_user = s.user.clone();
        for (init_name, c) in &svc.init {
            let mut i = self.container(format!("{name}-{init_name}"), &c.borrowed(), &shared);
            if i.user.is_none() {
                i.user = pod_user.clone();
            }
            i.restart = "no";
            i.networks = s.networks.clone();
            s.depends_on.insert(i.name.clone(), "service_completed_successfully".into());
            extra.push(i);
        }
        for (side_name, c) in &svc.sidecars {
            let mut side = self.container(format!("{name}-{side_name}"), &c.borrowed(), &shared);
            if side.user.is_none() {
                side.user = pod_user.clone();
            }
            // Same network namespace as the main container, like a pod.
            side.network_mode = Some(format!("service:{name}"));
            s.ports.append(&mut side.ports);
            side.restart = s.restart;
            side.depends_on.insert(name.to_string(), "service_started".into());
            side.replicas = 1;
            extra.push(side);
        }
        out.push(s);
        out.extend(extra);
    }

    fn datastore(&mut self, name: &str, d: &Datastore, out: &mut Vec<ComposeService>) {
        let mut s = empty_service(name.to_string());
        s.image = Some(d.image.clone().unwrap_or_else(|| format!("postgres:{}", d.version)));
        let (db, owner) = d.databases.first().map(|(a, b)| (a.clone(), b.clone())).unwrap_or_default();
        s.environment.insert("POSTGRES_DB".into(), literal(&db));
        s.environment.insert("POSTGRES_USER".into(), literal(&owner));
        let password = d.password.as_ref().map(|p| self.secret_ref(&p.secret, &p.key));
        if let Some(pw) = &password {
            s.environment.insert("POSTGRES_PASSWORD".into(), pw.clone());
        }
        for (k, v) in &d.parameters {
            if s.command.is_empty() {
                s.command.push("postgres".into());
            }
            s.command.push("-c".into());
            s.command.push(literal(&format!("{k}={v}")));
        }
        let data = format!("{name}-data");
        self.volumes.insert(data.clone());
        s.volumes.push(format!("{data}:/var/lib/postgresql/data"));
        if !d.extensions.is_empty() {
            let cfg = format!("{name}-initdb");
            // Content comes from the `compose/initdb.sql.j2` template.
            self.configs.push(ConfigFile {
                name: cfg.clone(),
                file: format!("initdb/{name}.sql"),
                content: String::new(),
            });
            s.configs.push(Attach { source: cfg, target: "/docker-entrypoint-initdb.d/10-extensions.sql".into() });
        }
        if let Some(p) = d.publish {
            s.ports.push(format!("{p}:5432"));
        }
        s.restart = restart(d.restart);
        s.healthcheck = Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), literal(&format!("pg_isready -U {owner} -d {db}"))],
            interval: "10s".into(),
            timeout: "5s".into(),
            retries: 5,
            start_period: None,
        });
        s.networks = if d.networks.is_empty() { default_networks(self.stack) } else { d.networks.clone() };
        // The postgres entrypoint starts as root to own its data directory,
        // then drops to the postgres user: it needs these capabilities back.
        s.cap_add = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"].map(String::from).to_vec();
        s.read_only = false;
        s.labels.insert(
            "io.stackgen.security-exception".into(),
            "postgres entrypoint chowns its data directory before dropping root".into(),
        );
        if let Some(r) = &d.resources {
            s.limits = limits(&r.limits);
            s.reservations = limits(&r.requests);
        }
        let networks = s.networks.clone();
        out.push(s);
        if let Some(b) = &d.backup {
            let bname = b.job_name(name);
            let mut bs = empty_service(bname.clone());
            let major = d.version.split(['.', '-']).next().unwrap_or(&d.version).to_string();
            bs.image =
                Some(b.image.clone().unwrap_or_else(|| format!("prodrigestivill/postgres-backup-local:{major}")));
            for (k, v) in
                [("POSTGRES_HOST", name.to_string()), ("POSTGRES_DB", db.clone()), ("POSTGRES_USER", owner.clone())]
            {
                bs.environment.insert(k.into(), literal(&v));
            }
            if let Some(pw) = &password {
                bs.environment.insert("POSTGRES_PASSWORD".into(), pw.clone());
            }
            for (k, v) in [
                ("SCHEDULE", b.schedule.clone()),
                ("BACKUP_KEEP_DAYS", b.keep_days.to_string()),
                ("BACKUP_KEEP_WEEKS", b.keep_weeks.to_string()),
                ("BACKUP_KEEP_MONTHS", b.keep_months.to_string()),
                ("POSTGRES_EXTRA_OPTS", b.format.pg_dump_options().to_string()),
                ("BACKUP_SUFFIX", b.format.suffix().to_string()),
                ("HEALTHCHECK_PORT", "8080".to_string()),
            ] {
                bs.environment.insert(k.into(), literal(&v));
            }
            match &b.bind {
                Some(dir) => bs.volumes.push(format!("{}:/backups", literal(&bind_source(dir)))),
                None => {
                    let vol = Backup::dumps_volume(&bname);
                    self.volumes.insert(vol.clone());
                    bs.volumes.push(format!("{vol}:/backups"));
                }
            }
            bs.depends_on.insert(name.to_string(), "service_healthy".into());
            bs.restart = restart(d.restart);
            bs.networks = networks;
            bs.cap_add = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"].map(String::from).to_vec();
            bs.read_only = false;
            bs.labels.insert(
                "io.stackgen.security-exception".into(),
                "backup entrypoint owns /backups before dropping root".into(),
            );
            out.push(bs);
        }
    }
}

/// Builds the Compose view of a stack.
pub fn build(stack: &Stack) -> ComposeView {
    let mut b =
        Builder { stack, variables: Vec::new(), configs: Vec::new(), secrets: Vec::new(), volumes: Default::default() };
    let mut services = Vec::new();
    for (name, d) in &stack.datastores {
        b.datastore(name, d, &mut services);
    }
    for (name, t) in &stack.tasks {
        let svc = crate::render::task::as_service(stack, t);
        b.service(name, &svc, &mut services);
    }
    for (name, svc) in &stack.services {
        b.service(name, svc, &mut services);
        for task in crate::render::task::gating(stack, name) {
            if let Some(s) = services.iter_mut().find(|s| s.name == *name) {
                s.depends_on.insert(task.to_string(), "service_completed_successfully".into());
            }
        }
    }
    let labels = common_labels(stack);
    for s in &mut services {
        for (k, v) in labels.iter().rev() {
            s.labels.shift_insert(0, k.clone(), v.clone());
        }
        s.labels.insert("app.kubernetes.io/name".into(), s.name.clone());
    }
    let mut networks: Vec<NetworkView> = stack
        .networks
        .iter()
        .map(|(k, n)| NetworkView { name: k.clone(), external: n.external, internal: n.internal })
        .collect();
    networks.retain(|n| services.iter().any(|s| s.networks.contains(&n.name)));
    ComposeView {
        name: stack.name.clone(),
        services,
        networks,
        volumes: b.volumes,
        configs: b.configs,
        secrets: b.secrets,
        variables: b.variables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_convert() {
        assert_eq!(cpus("250m"), "0.25");
        assert_eq!(cpus("2"), "2");
        assert_eq!(cpus("1500m"), "1.5");
        assert_eq!(memory("512Mi"), "512m");
        assert_eq!(memory("2Gi"), "2g");
    }

    #[test]
    fn variable_names_split_camel_case() {
        let stack: Stack = serde_yaml::from_str(
            "name: s\nnamespace: { name: s }\nsecrets:\n  o: { keys: [k], variablePrefix: OIDC_ }\n",
        )
        .unwrap();
        for (secret, key, var) in [
            ("o", "clientId", "OIDC_CLIENT_ID"),
            ("o", "issuer", "OIDC_ISSUER"),
            ("x", "tls.crt", "TLS_CRT"),
            ("x", "API_TOKEN", "API_TOKEN"),
            ("x", "s3AccessKey", "S3_ACCESS_KEY"),
            ("x", "password", "PASSWORD"),
        ] {
            assert_eq!(variable_name(&stack, secret, key), var, "{key}");
        }
    }

    /// `subPath` on Compose: the one key of a secret as the file at the
    /// mount path, a directory below a bind mount's host path.
    #[test]
    fn sub_paths_mount_what_kubernetes_mounts() {
        let stack: Stack = serde_yaml::from_str(
            "name: s\nnamespace: { name: s }\ntargets: [compose]\nsecrets:\n  app: { keys: [secretKey, token] }\n\
             volumes:\n  src: { bind: ./src }\nservices:\n  web:\n    image: nginx:1.27\n    mounts:\n      \
             - { secret: app, path: /etc/app/secret_key, subPath: secretKey }\n      \
             - { volume: src, path: /srv/static, subPath: static }\n",
        )
        .unwrap();
        let view = build(&stack);
        let web = view.services.iter().find(|s| s.name == "web").unwrap();
        let secrets: Vec<(&str, &str)> = web.secrets.iter().map(|a| (a.source.as_str(), a.target.as_str())).collect();
        assert_eq!(secrets, [("app-secretkey", "/etc/app/secret_key")]);
        assert_eq!(web.volumes, ["./src/static:/srv/static"]);
    }

    #[test]
    fn bind_paths_never_name_a_volume() {
        assert_eq!(bind_source("data"), "./data");
        assert_eq!(bind_source("backups/db"), "./backups/db");
        for kept in ["./src", "../shared", "/srv/data", "~/dumps"] {
            assert_eq!(bind_source(kept), kept);
        }
    }

    #[test]
    fn literals_escape_dollars() {
        assert_eq!(literal("a$b$$"), "a$$b$$$$");
    }

    /// What Kubernetes' expansion leaves in the container, Compose gets
    /// after its own interpolation: `$$` is one `$`, a reference is its
    /// value, anything else stays.
    #[test]
    fn container_strings_follow_kubernetes_expansion() {
        let stack: Stack = serde_yaml::from_str("name: s\nnamespace: { name: s }\n").unwrap();
        let mut b = Builder {
            stack: &stack,
            variables: Vec::new(),
            configs: Vec::new(),
            secrets: Vec::new(),
            volumes: Default::default(),
        };
        let env: Map<EnvValue> = serde_yaml::from_str("X: x$$y\n").unwrap();
        for (input, compose) in [
            // In the container: `pid=$ cost=$5`, as the kubelet makes it.
            ("pid=$$ cost=$$5", "pid=$$ cost=$$5"),
            ("$$(date) $(X)", "$$(date) x$$y"),
            ("$$$$", "$$$$"),
            ("$(UNSET) $( $x a$", "$$(UNSET) $$( $$x a$$"),
        ] {
            assert_eq!(b.text(input, &env, 0), compose, "{input}");
        }
    }
}
