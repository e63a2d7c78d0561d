//! Stage 3 of loading: checks a typed stack beyond what its types say.
//!
//! Names are valid for every target, references resolve, ports are in
//! range, nothing is declared twice, and the rules a careful operator
//! expects hold (a ReadWriteOnce volume is never shared by replicas). Every
//! problem is reported, located by the `Locator` of its environment.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::stack::model::{
    AccessMode, ContainerRef, DatastoreMapping, EnvFrom, EnvValue, ExposeType, Map, Mount, Port, Probe, Security,
    Service, Stack, Target,
};
use crate::stack::resolve::Locator;

/// A field path from its parts, e.g. `path!(base, ".env.", k)`, in one
/// allocation: built with `format!`, the paths of every service, container,
/// env var and port of every environment were about 3% of the instructions
/// of a render of the built-in stacks. Every part is a string; a path with
/// a list index (`[{i}]`) is written with `format!`.
macro_rules! path {
    ($($part:expr),+ $(,)?) => {
        [$(AsRef::<str>::as_ref(&$part)),+].concat()
    };
}

/// Checks `stack`; returns errors and warnings.
pub fn validate(stack: &Stack, file_stem: &str, loc: &Locator<'_>) -> Vec<Diagnostic> {
    let mut v = Checker { stack, loc, out: Vec::new() };
    v.top(file_stem);
    // Services are checked independently: on all cores when there are many
    // (`par::map`), their findings kept in definition order.
    let services: Vec<_> = stack.services.iter().collect();
    for mut found in crate::par::map(&services, |(name, svc)| {
        let mut c = Checker { stack, loc, out: Vec::new() };
        c.service(name, svc);
        c.out
    }) {
        v.out.append(&mut found);
    }
    v.volumes_shared();
    v.configs();
    v.secrets();
    v.datastores();
    v.routes();
    v.network();
    v.tasks();
    v.verify();
    v.gitops();
    v.targets();
    v.out
}

struct Checker<'a> {
    stack: &'a Stack,
    loc: &'a Locator<'a>,
    out: Vec<Diagnostic>,
}

/// A DNS-1123 label: lowercase alphanumerics and `-`, at most 63, starting
/// and ending alphanumeric. Such a name can never form a path (`/`, `..`).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An environment variable name: a letter or `_`, then letters, digits,
/// `_`, `.` or `-` (Elasticsearch-style `discovery.type` is common).
fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A variable that `$(NAME)` can reference: no dots or dashes.
fn is_ref_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A port name (IANA service name): at most 15, lowercase alphanumerics and
/// `-`, at least one letter.
fn is_port_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 15 && s.bytes().any(|b| b.is_ascii_lowercase()) && !s.contains("--")
}

fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && is_label_value(name) && !name.is_empty()
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && v.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && v.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

impl Checker<'_> {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push(self.loc.error(path, msg));
    }

    fn warn(&mut self, path: &str, msg: impl Into<String>) {
        self.out.push(self.loc.warning(path, msg));
    }

    fn label_name(&mut self, path: &str, what: &str, name: &str) {
        if !is_dns_label(name) {
            self.err(
                path,
                format!("{what} name `{name}` is not a valid DNS-1123 label (lowercase letters, digits and `-`, at most 63, starting and ending with a letter or digit)"),
            );
        }
    }

    /// A Service's name is a DNS-1035 label: a DNS-1123 label that starts
    /// with a letter (the API server refuses `9web`).
    fn service_name(&mut self, path: &str, name: &str) {
        if !is_dns_label(name) {
            self.label_name(path, "Service", name);
        } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            self.err(path, format!("Service name `{name}` must start with a letter (a DNS-1035 label)"));
        }
    }

    fn labels(&mut self, path: &str, labels: &Map<String>) {
        for (k, v) in labels {
            if !is_label_key(k) {
                self.err(&path!(path, ".", k), format!("`{k}` is not a valid label key"));
            }
            if !is_label_value(v) {
                self.err(&path!(path, ".", k), format!("label value `{v}` is not valid (at most 63 of letters, digits, `-_.`, starting and ending alphanumeric)"));
            }
        }
    }

    /// Annotation keys have the syntax of label keys; values are free.
    fn annotations(&mut self, path: &str, annotations: &Map<String>) {
        for k in annotations.keys() {
            if !is_label_key(k) {
                self.err(
                    &path!(path, ".", k),
                    format!("`{k}` is not a valid annotation key (an optional DNS prefix and `/`, then at most 63 of letters, digits, `-_.`)"),
                );
            }
        }
    }

    /// Labels stackgen sets to select pods cannot be overridden: the
    /// selectors would stop matching.
    fn reserved_labels(&mut self, path: &str, labels: &Map<String>) {
        for k in labels.keys() {
            if matches!(
                k.as_str(),
                "app.kubernetes.io/name" | "app.kubernetes.io/part-of" | "app.kubernetes.io/managed-by"
            ) || k.starts_with("network.stackgen.io/")
            {
                self.err(
                    &path!(path, ".", k),
                    format!("`{k}` is set by stackgen (selectors rely on it) and cannot be overridden"),
                );
            }
        }
    }

    /// `name` must be a key of `map` (a constant-time check; the
    /// suggestion list is built only on failure).
    fn reference_in<V>(&mut self, path: &str, what: &str, name: &str, map: &Map<V>) {
        if !map.contains_key(name) {
            self.reference(path, what, name, map.keys().map(String::as_str).collect());
        }
    }

    fn reference(&mut self, path: &str, what: &str, name: &str, known: Vec<&str>) {
        if known.contains(&name) {
            return;
        }
        let mut msg = format!("{what} `{name}` is not declared");
        if let Some(s) = did_you_mean(name, known.iter().copied()) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        self.err(path, msg);
    }

    fn top(&mut self, file_stem: &str) {
        let s = self.stack;
        self.label_name("name", "stack", &s.name);
        if s.name != file_stem {
            self.err("name", format!("stack name `{}` does not match its file name `{file_stem}`", s.name));
        }
        self.label_name("namespace.name", "namespace", &s.namespace.name);
        self.labels("namespace.labels", &s.namespace.labels);
        self.annotations("namespace.annotations", &s.namespace.annotations);
        self.labels("labels", &s.labels);
        self.reserved_labels("labels", &s.labels);
        let mut seen = BTreeSet::new();
        for (i, t) in s.targets.iter().enumerate() {
            if !seen.insert(t) {
                self.err(&format!("targets[{i}]"), format!("target `{}` is listed twice", t.as_str()));
            }
        }
        if s.targets.is_empty() {
            self.err("targets", "at least one target is needed");
        }
        for (kind, names) in [
            ("volume", s.volumes.keys().collect::<Vec<_>>()),
            ("config", s.configs.keys().collect()),
            ("route", s.routes.keys().collect()),
            ("service", s.services.keys().collect()),
            ("datastore", s.datastores.keys().collect()),
            ("secret", s.secrets.keys().collect()),
            ("network", s.networks.keys().collect()),
        ] {
            for n in names {
                let path = path!(kind, "s.", n);
                self.label_name(&path, kind, n);
            }
        }
        let mut workload_names: BTreeMap<&str, &str> = BTreeMap::new();
        for n in s.services.keys().chain(s.datastores.keys()) {
            if let Some(prev) = workload_names.insert(n, n) {
                self.err(&path!("datastores.", n), format!("`{prev}` is both a service and a datastore"));
            }
        }
    }

    fn service(&mut self, name: &str, svc: &Service) {
        let base = path!("services.", name);
        if svc.image.is_none() && svc.build.is_none() {
            self.err(&base, format!("service `{name}` has neither `image` nor `build`"));
        }
        for (i, n) in svc.networks.iter().enumerate() {
            self.reference_in(&format!("{base}.networks[{i}]"), "network", n, &self.stack.networks);
        }
        let mut containers: Vec<(String, ContainerRef)> = vec![(base.clone(), svc.main_container())];
        containers.extend(svc.sidecars.iter().map(|(n, c)| (path!(base, ".sidecars.", n), c.borrowed())));
        let inits: Vec<(String, ContainerRef)> =
            svc.init.iter().map(|(n, c)| (path!(base, ".init.", n), c.borrowed())).collect();

        let mut container_names = BTreeSet::new();
        container_names.insert(main_name(name, svc));
        for (n, _) in svc.sidecars.iter().chain(&svc.init) {
            let path = path!(base, ".sidecars.", n);
            self.label_name(&path, "container", n);
            if !container_names.insert(n.clone()) {
                self.err(&path, format!("container name `{n}` is used twice in service `{name}`"));
            }
        }
        if let Some(cn) = &svc.container_name {
            self.label_name(&path!(base, ".containerName"), "container", cn);
        }
        // Ports are shared by the pod's network namespace.
        let mut port_numbers: BTreeMap<(i64, String), String> = BTreeMap::new();
        let mut port_names = Vec::new();
        for (path, c) in &containers {
            for (pn, p) in c.ports {
                let pp = path!(path, ".ports.", pn);
                self.port(&pp, pn, p);
                let key = (p.port, format!("{:?}", p.protocol));
                if let Some(other) = port_numbers.insert(key, pn.clone()) {
                    self.err(&pp, format!("port {} is already used by `{other}` in this pod", p.port));
                }
                if port_names.contains(&pn.as_str()) {
                    self.err(&pp, format!("port name `{pn}` is used twice in this pod"));
                }
                port_names.push(pn.as_str());
            }
        }
        for (path, c) in containers.iter().chain(&inits) {
            self.container(path, c);
        }
        for (path, c) in &inits {
            if c.probes.liveness.is_some() || c.probes.readiness.is_some() || c.probes.startup.is_some() {
                self.err(&path!(path, ".probes"), "init containers cannot have probes");
            }
            for (pn, p) in c.ports {
                self.port(&path!(path, ".ports.", pn), pn, p);
            }
        }
        let labels = path!(base, ".labels");
        self.labels(&labels, &svc.labels);
        self.annotations(&path!(base, ".annotations"), &svc.annotations);
        self.reserved_labels(&labels, &svc.labels);
        if let Some(m) = &svc.metrics {
            match &svc.expose {
                Some(e) if e.ports.iter().any(|p| p.target == m.port) => {}
                _ => self.err(
                    &path!(base, ".metrics.port"),
                    format!(
                        "metrics are scraped through the Service: `expose` must list a port targeting `{}`",
                        m.port
                    ),
                ),
            }
            if !m.path.starts_with('/') {
                self.err(&path!(base, ".metrics.path"), "a metrics path starts with `/`");
            }
        }
        if let Some(expose) = &svc.expose {
            for (i, p) in expose.ports.iter().enumerate() {
                if let Some(n) = &p.name
                    && !is_port_name(n)
                {
                    self.err(
                        &format!("{base}.expose.ports[{i}].name"),
                        format!(
                            "port name `{n}` is not valid (at most 15 lowercase letters, digits and `-`, with a letter)"
                        ),
                    );
                }
            }
            // A Service exists on Kubernetes only (Compose ignores `expose`).
            let kube = self.stack.targets.contains(&Target::Kubernetes);
            match &expose.name {
                Some(n) if kube => self.service_name(&path!(base, ".expose.name"), n),
                None if kube => self.service_name(&base, name),
                _ => {}
            }
            if expose.ports.is_empty() {
                self.err(&path!(base, ".expose.ports"), "`expose` needs at least one port");
            }
            // The Service's ports: each number (with its protocol) and each
            // name once, or the API server refuses the Service.
            let mut numbers: BTreeMap<(i64, String), usize> = BTreeMap::new();
            let mut names: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, p) in expose.ports.iter().enumerate() {
                let pp = format!("{base}.expose.ports[{i}]");
                if !(1..=65535).contains(&p.port) {
                    self.err(&path!(pp, ".port"), format!("port {} is out of range 1-65535", p.port));
                }
                self.reference(&path!(pp, ".target"), "container port", &p.target, port_names.clone());
                if !kube {
                    continue;
                }
                let protocol = containers.iter().find_map(|(_, c)| c.ports.get(&p.target)).map(|t| t.protocol);
                if let Some(j) = numbers.insert((p.port, format!("{protocol:?}")), i) {
                    self.err(&path!(pp, ".port"), format!("port {} is already exposed by ports[{j}]", p.port));
                }
                let port_name = p.name.as_deref().unwrap_or(&p.target);
                if let Some(j) = names.insert(port_name, i) {
                    self.err(
                        &pp,
                        format!("port name `{port_name}` is already used by ports[{j}]; give one of them a `name`"),
                    );
                }
            }
        }
        for (i, dep) in svc.depends_on.iter().enumerate() {
            let stack = self.stack;
            if dep == name {
                self.err(&format!("{base}.dependsOn[{i}]"), "a service cannot depend on itself");
            } else if !stack.services.contains_key(dep) && !stack.datastores.contains_key(dep) {
                let known = stack.services.keys().chain(stack.datastores.keys()).map(String::as_str).collect();
                self.reference(&format!("{base}.dependsOn[{i}]"), "dependency", dep, known);
            }
        }
        // A ReadWriteOnce volume attaches to one node: several replicas
        // (or a rolling update's surge pod) would wait on it forever.
        for (path, c) in containers.iter().chain(&inits) {
            for (i, m) in c.mounts.iter().enumerate() {
                let Some(vol) = m.volume.as_ref().and_then(|v| self.stack.volumes.get(v)) else {
                    continue;
                };
                let single = matches!(vol.access_mode, AccessMode::ReadWriteOnce | AccessMode::ReadWriteOncePod);
                if vol.size.is_some() && !vol.ephemeral && single && svc.replicas > 1 {
                    self.err(
                        &format!("{path}.mounts[{i}].volume"),
                        format!(
                            "service `{name}` has {} replicas but mounts the {:?} volume `{}`",
                            svc.replicas,
                            vol.access_mode,
                            m.volume.as_deref().unwrap_or_default()
                        ),
                    );
                    if let Some(d) = self.out.last_mut() {
                        d.notes.push(
                            "help: use `replicas: 1`, or `accessMode: ReadWriteMany` if the storage class supports it"
                                .into(),
                        );
                    }
                }
            }
        }
    }

    fn port(&mut self, path: &str, name: &str, p: &Port) {
        if let Some(h) = p.publish
            && !(1..=65535).contains(&h)
        {
            self.err(path, format!("published port {h} is out of range 1-65535"));
        }
        if !is_port_name(name) {
            self.err(
                path,
                format!(
                    "port name `{name}` is not valid (at most 15 lowercase letters, digits and `-`, with a letter)"
                ),
            );
        }
        if !(1..=65535).contains(&p.port) {
            self.err(path, format!("port {} is out of range 1-65535", p.port));
        }
    }

    fn container(&mut self, path: &str, c: &ContainerRef) {
        if !c.image.is_empty() {
            self.image(&path!(path, ".image"), c.image);
        }
        // `$(VAR)` expands another variable of this container. The
        // Kubernetes view orders `env` so each is defined before its use;
        // a cycle cannot be ordered.
        let names: Vec<&str> = c.env.keys().map(String::as_str).collect();
        for (k, v) in c.env {
            if let EnvValue::Literal(text) = v {
                for var in var_refs(text) {
                    if !names.contains(&var) || var == k {
                        self.err(
                            &path!(path, ".env.", k),
                            format!("`$({var})` names no other variable of this container's `env`"),
                        );
                    }
                }
            }
        }
        if let Some(k) = env_cycle(c.env) {
            self.err(&path!(path, ".env.", k), format!("`{k}` refers to itself through `$(...)` references"));
        }
        for (field, list) in [("command", &c.command), ("args", &c.args)] {
            for (i, a) in list.iter().enumerate() {
                for var in var_refs(a) {
                    if !names.contains(&var) {
                        self.err(
                            &format!("{path}.{field}[{i}]"),
                            format!("`$({var})` names no variable of this container's `env`"),
                        );
                    }
                }
            }
        }
        for (k, v) in c.env {
            let ep = path!(path, ".env.", k);
            if !is_env_name(k) {
                self.err(&ep, format!("`{k}` is not a valid environment variable name (letters, digits, `_`, `.`, `-`, not starting with a digit)"));
            }
            if let EnvValue::Literal(text) = v
                && let Some(why) = looks_secret(k, text)
            {
                self.warn(
                    &ep,
                    format!("{why}, written into the rendered output as it is; reference it instead: `{{ secret: NAME, key: KEY }}` (and `$(VAR)` for a part of a URL)"),
                );
            }
            if let EnvValue::Ref(r) = v {
                match (&r.secret, &r.config) {
                    (Some(s), None) => self.secret_key(&ep, s, &r.key),
                    (None, Some(cfg)) => {
                        self.reference_in(&path!(ep, ".config"), "config", cfg, &self.stack.configs);
                        if let Some(conf) = self.stack.configs.get(cfg)
                            && !conf.files.contains_key(&r.key)
                        {
                            self.err(&path!(ep, ".key"), format!("config `{cfg}` has no file `{}`", r.key));
                        }
                    }
                    _ => self.err(&ep, "give exactly one of `secret` or `config`"),
                }
            }
        }
        for (i, ef) in c.env_from.iter().enumerate() {
            self.env_from(&format!("{path}.envFrom[{i}]"), ef);
        }
        let mut paths = BTreeSet::new();
        for (i, m) in c.mounts.iter().enumerate() {
            let mp = format!("{path}.mounts[{i}]");
            self.mount(&mp, m);
            if !paths.insert(m.path.as_str()) {
                self.err(&path!(mp, ".path"), format!("`{}` is mounted twice in this container", m.path));
            }
        }
        let ports: Vec<&str> = c.ports.keys().map(String::as_str).collect();
        for (kind, probe) in
            [("liveness", &c.probes.liveness), ("readiness", &c.probes.readiness), ("startup", &c.probes.startup)]
        {
            if let Some(p) = probe {
                self.probe(&path!(path, ".probes.", kind), p, &ports);
                // Kubernetes expands `$(VAR)` in command, args and env, not
                // in a probe's command; Compose would escape it too.
                if let Some(cmd) = &p.exec
                    && let Some(word) = cmd.iter().find(|w| !var_refs(w).is_empty())
                {
                    self.warn(
                        &path!(path, ".probes.", kind, ".exec"),
                        format!("`{word}`: a probe's command is run as it is, `$(...)` is not expanded there; to read a variable, run a shell: `[sh, -c, '... \"$VAR\" ...']`"),
                    );
                }
            }
        }
        self.security(&path!(path, ".security"), c.security);
        for (what, q) in c.resources.iter().flat_map(|r| [("requests", &r.requests), ("limits", &r.limits)]) {
            for (res, val) in [("cpu", &q.cpu), ("memory", &q.memory)] {
                if let Some(val) = val
                    && !is_quantity(val)
                {
                    self.err(
                        &path!(path, ".resources.", what, ".", res),
                        format!("`{val}` is not a Kubernetes quantity (e.g. `250m`, `512Mi`)"),
                    );
                }
            }
        }
    }

    fn image(&mut self, path: &str, image: &str) {
        if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.err(path, format!("image `{image}` contains whitespace"));
            return;
        }
        if image.contains('$') {
            self.err(
                path,
                format!("image `{image}` contains `$`: Compose would substitute a variable there, Kubernetes would not; write the reference out"),
            );
            return;
        }
        if image.contains("@sha256:") {
            return;
        }
        let last = image.rsplit('/').next().unwrap_or(image);
        match last.split_once(':') {
            None => self.warn(
                path,
                format!("image `{image}` has no tag: it resolves to the mutable `latest`; pin a version or a digest"),
            ),
            Some((_, "latest")) => {
                self.warn(path, format!("image `{image}` uses the mutable tag `latest`; pin a version or a digest"))
            }
            Some(_) => {}
        }
    }

    fn secret_key(&mut self, path: &str, secret: &str, key: &str) {
        self.reference_in(&path!(path, ".secret"), "secret", secret, &self.stack.secrets);
        if let Some(s) = self.stack.secrets.get(secret) {
            let keys = secret_keys(s);
            if !keys.contains(&key) {
                let mut msg = format!("secret `{secret}` declares no key `{key}`");
                if let Some(sugg) = did_you_mean(key, keys.iter().copied()) {
                    msg.push_str(&format!("; did you mean `{sugg}`?"));
                }
                self.err(&path!(path, ".key"), msg);
            }
        }
    }

    fn env_from(&mut self, path: &str, ef: &EnvFrom) {
        match (&ef.secret, &ef.config) {
            (Some(s), None) => {
                self.reference_in(&path!(path, ".secret"), "secret", s, &self.stack.secrets);
            }
            (None, Some(c)) => {
                self.reference_in(&path!(path, ".config"), "config", c, &self.stack.configs);
            }
            _ => self.err(path, "give exactly one of `secret` or `config`"),
        }
    }

    fn mount(&mut self, path: &str, m: &Mount) {
        match (&m.volume, &m.config, &m.secret) {
            (Some(v), None, None) => {
                self.reference_in(&path!(path, ".volume"), "volume", v, &self.stack.volumes);
            }
            (None, Some(c), None) => {
                self.reference_in(&path!(path, ".config"), "config", c, &self.stack.configs);
            }
            (None, None, Some(s)) => {
                self.reference_in(&path!(path, ".secret"), "secret", s, &self.stack.secrets);
            }
            _ => self.err(path, "a mount needs exactly one of `volume`, `config` or `secret`"),
        }
        if !m.path.starts_with('/') {
            self.err(&path!(path, ".path"), format!("mount path `{}` must be absolute", m.path));
        }
        if m.path.split('/').any(|seg| seg == "..") || m.path.contains(':') {
            self.err(&path!(path, ".path"), format!("mount path `{}` must not contain `..` or `:`", m.path));
        }
        if let Some(sp) = &m.sub_path {
            let at = path!(path, ".subPath");
            if sp.is_empty()
                || sp.starts_with('/')
                || sp.split('/').any(|seg| seg == "..")
                || sp.chars().any(|c| c.is_control() || c == ':')
            {
                self.err(&at, format!("subPath `{sp}` must be a relative path inside the volume, without `..` or `:`"));
            } else if let Some(s) = m.secret.as_ref().and_then(|s| self.stack.secrets.get(s)) {
                // A secret's files are its keys: another sub-path mounts nothing.
                let keys = secret_keys(s);
                if !keys.contains(&sp.as_str()) {
                    let mut d = self.loc.error(&at, format!("subPath `{sp}` is not a key of this secret"));
                    d = d.note(format!("keys: {}", keys.join(", ")));
                    self.out.push(d);
                }
            } else if let Some(c) = m.config.as_ref().and_then(|c| self.stack.configs.get(c))
                && !c.files.contains_key(sp)
            {
                let files: Vec<&str> = c.files.keys().map(String::as_str).collect();
                let d = self
                    .loc
                    .error(&at, format!("subPath `{sp}` is not a file of this config"))
                    .note(format!("files: {}", files.join(", ")));
                self.out.push(d);
            } else if let Some(v) = m.volume.as_ref().and_then(|v| self.stack.volumes.get(v))
                && v.bind.is_none()
                && self.stack.targets.contains(&Target::Compose)
            {
                self.err(
                    &at,
                    "the compose target cannot mount a sub-path of a named or ephemeral volume (only of a `bind` one); use a volume of its own for this mount",
                );
            }
        }
    }

    fn probe(&mut self, path: &str, p: &Probe, ports: &[&str]) {
        let kinds = usize::from(p.http.is_some()) + usize::from(p.tcp.is_some()) + usize::from(p.exec.is_some());
        if kinds != 1 {
            self.err(path, "a probe needs exactly one of `http`, `tcp` or `exec`");
        }
        if let Some(h) = &p.http {
            self.reference(&path!(path, ".http.port"), "port", &h.port, ports.to_vec());
            if !h.path.starts_with('/') {
                self.err(&path!(path, ".http.path"), "an HTTP probe path starts with `/`");
            }
        }
        if let Some(t) = &p.tcp {
            self.reference(&path!(path, ".tcp"), "port", t, ports.to_vec());
        }
        if let Some(e) = &p.exec
            && e.is_empty()
        {
            self.err(&path!(path, ".exec"), "an exec probe needs a command");
        }
    }

    fn security(&mut self, path: &str, s: &Security) {
        if s.run_as_user == Some(0) && !s.run_as_root {
            self.err(&path!(path, ".runAsUser"), "user 0 is root: set `runAsRoot: true` (and a `reason`) to allow it");
        }
        if (s.run_as_root || s.writable_root_filesystem || !s.add_capabilities.is_empty()) && s.reason.is_none() {
            self.warn(path, "a security default is relaxed without a `reason`");
        }
        for (i, cap) in s.add_capabilities.iter().enumerate() {
            if !cap.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || cap.is_empty() {
                self.err(
                    &format!("{path}.addCapabilities[{i}]"),
                    format!("`{cap}` is not a capability name (e.g. `NET_BIND_SERVICE`)"),
                );
            }
        }
    }

    fn volumes_shared(&mut self) {
        // A single-attach claim used by several workloads pins them all to
        // one node; on another node a pod waits for the volume forever.
        let users = volume_users(self.stack);
        if self.stack.targets.contains(&Target::Kubernetes) {
            for (name, vol) in &self.stack.volumes {
                let single = matches!(vol.access_mode, AccessMode::ReadWriteOnce | AccessMode::ReadWriteOncePod);
                let Some(list) = users.get(name.as_str()).filter(|u| u.len() > 1) else { continue };
                if !single || vol.ephemeral || vol.bind.is_some() {
                    continue;
                }
                let list = list.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ");
                self.warn(
                    &path!("volumes.", name, ".accessMode"),
                    format!("the {:?} volume `{name}` is mounted by {list}: their pods must share one node; use ReadWriteMany if they may not", vol.access_mode),
                );
            }
        }
        for (name, vol) in &self.stack.volumes {
            let path = path!("volumes.", name);
            let kinds = usize::from(vol.ephemeral) + usize::from(vol.bind.is_some());
            if kinds > 1 {
                self.err(&path, "a volume is `ephemeral` or a `bind` mount, not both");
            }
            if kinds > 0 && vol.size.is_some() {
                self.err(&path, "an `ephemeral` or `bind` volume has no `size`");
            }
            if kinds == 0 && vol.size.is_none() {
                self.err(&path, "a persistent volume needs a `size` (or set `ephemeral: true`, or `bind: PATH`)");
            }
            if kinds > 0 && vol.keep {
                self.err(
                    &path!(path, ".keep"),
                    "`keep` protects a persistent volume's claim; an `ephemeral` or `bind` volume has none",
                );
            }
            if let Some(b) = &vol.bind
                && !is_bind_path(b)
            {
                self.err(&path!(path, ".bind"), BIND_RULE);
            }
            if let Some(size) = &vol.size
                && !is_quantity(size)
            {
                self.err(&path!(path, ".size"), format!("`{size}` is not a Kubernetes quantity (e.g. `10Gi`)"));
            }
        }
    }

    fn configs(&mut self) {
        for (name, c) in &self.stack.configs {
            let path = path!("configs.", name);
            if let Some(n) = &c.name
                && !is_dns_subdomain(n)
            {
                self.err(&path!(path, ".name"), format!("`{n}` is not a valid DNS-1123 subdomain"));
            }
            if c.files.is_empty() {
                self.err(&path!(path, ".files"), "a config needs at least one file");
            }
            for f in c.files.keys() {
                let ok = !f.is_empty()
                    && f != "."
                    && f != ".."
                    && f.len() <= 253
                    && f.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !ok {
                    self.err(
                        &path!(path, ".files.", f),
                        format!("file name `{f}` must be letters, digits, `-`, `_` and `.` (no `/`)"),
                    );
                }
            }
        }
    }

    fn secrets(&mut self) {
        for (name, s) in &self.stack.secrets {
            let path = path!("secrets.", name);
            if let Some(n) = &s.name
                && !is_dns_subdomain(n)
            {
                self.err(&path!(path, ".name"), format!("`{n}` is not a valid DNS-1123 subdomain"));
            }
            if s.external.is_some() && s.provided_by.is_some() {
                self.err(&path, "a secret is either `external` or `providedBy`, not both");
            }
            if let Some(ext) = &s.external {
                if ext.data.is_empty() {
                    self.err(&path!(path, ".external.data"), "an external secret needs at least one key in `data`");
                }
                if !s.keys.is_empty() {
                    self.err(
                        &path!(path, ".keys"),
                        "with `external`, the keys are those of `external.data`; remove `keys`",
                    );
                }
            } else if s.keys.is_empty() {
                self.err(&path, "declare the secret's `keys` so references to it can be checked");
            }
            if let Some(p) = &s.provided_by {
                self.reference_in(&path!(path, ".providedBy"), "datastore", p, &self.stack.datastores);
            }
            for k in secret_keys(s) {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
                    self.err(&path, format!("`{k}` is not a valid secret key"));
                }
            }
        }
    }

    fn datastores(&mut self) {
        let kube = self.stack.targets.contains(&Target::Kubernetes);
        for (name, d) in &self.stack.datastores {
            let path = path!("datastores.", name);
            if let Some(b) = d.backup.as_ref().and_then(|b| b.bind.as_ref())
                && !is_bind_path(b)
            {
                self.err(&path!(path, ".backup.bind"), BIND_RULE);
            }
            let team = d.team.clone().unwrap_or_else(|| self.stack.name.clone());
            if d.version.is_empty()
                || !d.version.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                self.err(
                    &path!(path, ".version"),
                    format!("version `{}` becomes an image tag: letters, digits, `.`, `-` and `_` only", d.version),
                );
            }
            if let Some(p) = &d.password {
                self.secret_key(&path!(path, ".password"), &p.secret, &p.key);
            }
            for (i, n) in d.networks.iter().enumerate() {
                self.reference_in(&format!("{path}.networks[{i}]"), "network", n, &self.stack.networks);
            }
            if let Some(b) = &d.backup {
                if let Some(n) = &b.name {
                    self.label_name(&path!(path, ".backup.name"), "backup", n);
                }
                // The CronJob's name: the API server allows 52 characters,
                // leaving room for the suffix of the Jobs it creates.
                let job = b.job_name(name);
                if kube && job.len() > 52 {
                    let at = if b.name.is_some() { path!(path, ".backup.name") } else { path!(path, ".backup") };
                    self.err(
                        &at,
                        format!(
                            "the backup CronJob `{job}` has {} characters; Kubernetes allows 52 (set `backup.name`)",
                            job.len()
                        ),
                    );
                }
                if b.schedule.trim().is_empty() || b.schedule.contains(['\n', '$']) {
                    self.err(
                        &path!(path, ".backup.schedule"),
                        "expected a cron schedule such as `0 2 * * *` or `@daily`",
                    );
                }
                if !is_quantity(&b.size) {
                    self.err(&path!(path, ".backup.size"), format!("`{}` is not a Kubernetes quantity", b.size));
                }
            }
            if d.databases.is_empty() {
                self.err(&path!(path, ".databases"), "declare at least one database and its owner");
            }
            for (i, e) in d.extensions.iter().enumerate() {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    self.err(&format!("{path}.extensions[{i}]"), format!("`{e}` is not an extension name"));
                }
            }
            if kube && d.kubernetes == DatastoreMapping::Statefulset {
                self.service_name(&path, name);
                if d.password.is_none() {
                    self.err(&path, "a `kubernetes: statefulset` database needs its `password` as `{ secret, key }`");
                }
                if d.instances > 1 {
                    self.err(&path!(path, ".instances"), "a `kubernetes: statefulset` database runs one instance; use `kubernetes: zalando` for replicas");
                }
            }
            if kube && d.kubernetes == DatastoreMapping::Zalando && !name.starts_with(&format!("{team}-")) {
                self.err(&path, format!("a PostgreSQL cluster name must start with its team: `{team}-`"));
            }
            if d.instances == 0 {
                self.err(&path!(path, ".instances"), "at least one instance is needed");
            }
            if !is_quantity(&d.size) {
                self.err(&path!(path, ".size"), format!("`{}` is not a Kubernetes quantity", d.size));
            }
            for (db, owner) in &d.databases {
                if !d.users.contains_key(owner) {
                    self.reference_in(&path!(path, ".databases.", db), "user", owner, &d.users);
                }
            }
        }
    }

    fn routes(&mut self) {
        for (name, r) in &self.stack.routes {
            let path = path!("routes.", name);
            if !is_dns_subdomain(&r.host) {
                self.err(&path!(path, ".host"), format!("`{}` is not a valid host name", r.host));
            }
            if !r.path.starts_with('/') {
                self.err(&path!(path, ".path"), "a route path starts with `/`");
            } else if !is_url_path(&r.path) {
                self.err(
                    &path!(path, ".path"),
                    format!(
                        "`{}` is not a URL path: letters, digits, `-._~!$&'()*+,;=:@/` and `%XX` escapes only (no spaces, backticks, quotes or braces)",
                        r.path
                    ),
                );
            }
            if let Some(t) = &r.traefik {
                for (i, e) in t.entrypoints.iter().enumerate() {
                    if e.is_empty() || !e.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) {
                        self.err(
                            &format!("{path}.traefik.entrypoints[{i}]"),
                            format!("`{e}` is not a Traefik entrypoint name (letters, digits, `-` and `_`)"),
                        );
                    }
                }
            }
            if r.gateway.is_some() && r.ingress.is_some() {
                self.err(&path, "a route is either a `gateway` route (HTTPRoute) or an `ingress`, not both");
            }
            if r.traefik.is_some() && r.nginx_proxy.is_some() {
                self.err(&path, "a route uses either `traefik` or `nginxProxy`, not both");
            }
            for n in r
                .traefik
                .as_ref()
                .and_then(|t| t.network.as_ref())
                .into_iter()
                .chain(r.nginx_proxy.as_ref().and_then(|t| t.network.as_ref()))
            {
                self.reference_in(&path, "network", n, &self.stack.networks);
            }
            self.reference_in(&path!(path, ".service"), "service", &r.service, &self.stack.services);
            if let Some(svc) = self.stack.services.get(&r.service) {
                match &svc.expose {
                    None => self.err(
                        &path!(path, ".service"),
                        format!("service `{}` has no `expose`, so nothing can route to it", r.service),
                    ),
                    Some(e) => {
                        if let Some(port) = r.port
                            && !e.ports.iter().any(|p| p.port == port)
                        {
                            self.err(
                                &path!(path, ".port"),
                                format!("service `{}` does not expose port {port}", r.service),
                            );
                        }
                    }
                }
            }
        }
    }

    fn network(&mut self) {
        let Some(net) = &self.stack.network else {
            return;
        };
        if self.stack.targets.contains(&Target::Kubernetes) {
            self.network_lints(net);
        }
        for (dir, rules) in [("ingress", &net.ingress), ("egress", &net.egress)] {
            for (i, r) in rules.iter().enumerate() {
                let path = format!("network.{dir}[{i}]");
                if r.namespaces.is_some() && r.cidr.is_some() {
                    self.err(&path, "a rule names either `namespaces` or `cidr`, not both");
                }
                if let Some(ns) = &r.namespaces {
                    self.labels(&path!(path, ".namespaces"), ns);
                }
                for (j, p) in r.ports.iter().enumerate() {
                    if !(1..=65535).contains(&p.port) {
                        self.err(&format!("{path}.ports[{j}]"), format!("port {} is out of range 1-65535", p.port));
                    }
                }
            }
        }
    }
}

impl Checker<'_> {
    /// The stack's NetworkPolicy must let its own dependencies through.
    fn network_lints(&mut self, net: &crate::stack::model::Network) {
        let s = self.stack;
        // Any rule opening the port counts: its peers (a namespace, a
        // CIDR) may well include the target, and stackgen cannot see
        // namespace labels.
        let allows =
            |port: i64| net.egress.iter().any(|r| r.ports.is_empty() || r.ports.iter().any(|p| p.port == port));
        if !allows(53) {
            self.warn("network.egress", "the NetworkPolicy allows no DNS (port 53) egress: name resolution will fail");
        }
        // Egress to a datastore: a rule for 5432, unless its pods are the
        // stack's own and the stack talks to itself. Operator pods carry
        // the operator's labels, not the stack's: only a rule reaches them.
        let reaches = |d: &crate::stack::model::Datastore| {
            (d.kubernetes == DatastoreMapping::Statefulset && net.allow_within_stack) || allows(5432)
        };
        self.network_ingress_lints(net);
        for (name, d) in &s.datastores {
            let Some(b) = &d.backup else { continue };
            if !reaches(d) {
                self.err(
                    &path!("datastores.", name, ".backup"),
                    format!(
                        "the backup job `{}` connects to `{name}`, but the NetworkPolicy blocks egress to port 5432; add an egress rule for it",
                        b.job_name(name)
                    ),
                );
            }
        }
        for (name, svc) in &s.services {
            for (i, dep) in svc.depends_on.iter().enumerate() {
                let path = format!("services.{name}.dependsOn[{i}]");
                if let Some(d) = s.datastores.get(dep) {
                    if !reaches(d) {
                        self.err(&path, format!("`{name}` depends on `{dep}`, but the NetworkPolicy blocks egress to port 5432; add an egress rule for it"));
                    }
                } else if let Some(target) = s.services.get(dep)
                    && !net.allow_within_stack
                {
                    for p in target.ports.values() {
                        if !allows(p.port) {
                            self.err(&path, format!("`{name}` depends on `{dep}`, but the NetworkPolicy blocks egress to port {} (allowWithinStack is false)", p.port));
                        }
                    }
                }
            }
        }
    }

    /// What the stack's NetworkPolicy admits into its pods: a dependency
    /// from another pod of the stack, a backup to its datastore, the
    /// traffic of a route or of a load balancer. The policy selects every
    /// pod of the stack (operator-run datastores aside), so what no rule,
    /// shared network or `-public` policy admits never arrives.
    fn network_ingress_lints(&mut self, net: &crate::stack::model::Network) {
        use crate::render::view;
        let s = self.stack;
        // The namespace's labels this stack sets; a rule selecting other
        // values there cannot admit the stack's own pods.
        let mut own_labels = s.namespace.labels.clone();
        own_labels.insert("kubernetes.io/metadata.name".into(), s.namespace.name.clone());
        // A rule admits `port` when it lists it (or lists none) and its
        // peers may hold the sender: any peer, every namespace, a namespace
        // selector the stack's namespace may match, an address range (it
        // may hold pod addresses: stackgen cannot tell).
        let admits = |port: i64, from_stack: bool| {
            net.ingress.iter().any(|r| {
                let peers = !from_stack
                    || r.cidr.is_some()
                    || r.namespaces
                        .as_ref()
                        .is_none_or(|sel| sel.iter().all(|(k, v)| own_labels.get(k).is_none_or(|own| own == v)));
                peers && (r.ports.is_empty() || r.ports.iter().any(|p| p.port == port))
            })
        };
        let own_networks = s.networks.values().any(|n| !n.external);
        let shared = |a: &[String], b: &[String]| {
            let b = view::member_networks(s, b);
            view::member_networks(s, a).iter().any(|n| b.contains(n))
        };
        // The container ports a service's `-public` policy opens: only
        // with own networks, for a routed or load-balanced service.
        let public = |key: &str| -> Vec<i64> {
            let Some(svc) = s.services.get(key) else { return Vec::new() };
            let Some(sv) = view::service(s, key, svc) else { return Vec::new() };
            let routed = s.routes.values().any(|r| r.service == key);
            if !own_networks || (!routed && sv.r#type == ExposeType::ClusterIP) {
                return Vec::new();
            }
            sv.ports.iter().map(|p| p.target_number).collect()
        };
        let why = "allowWithinStack is false, they share no network and no ingress rule admits it";
        if !net.allow_within_stack {
            for (name, svc) in &s.services {
                for (i, dep) in svc.depends_on.iter().enumerate() {
                    let path = format!("services.{name}.dependsOn[{i}]");
                    let (ports, networks): (Vec<i64>, &[String]) = if let Some(t) = s.services.get(dep) {
                        (t.ports.values().map(|p| p.port).collect(), &t.networks)
                    } else if let Some(d) = s.datastores.get(dep)
                        && d.kubernetes == DatastoreMapping::Statefulset
                    {
                        (vec![5432], &d.networks)
                    } else {
                        continue;
                    };
                    if ports.is_empty() || shared(&svc.networks, networks) {
                        continue;
                    }
                    let open = public(dep);
                    if !ports.iter().any(|&p| open.contains(&p) || admits(p, true)) {
                        self.err(
                            &path,
                            format!(
                                "`{name}` depends on `{dep}`, but the NetworkPolicy admits nothing into `{dep}` from `{name}` on port{} {} ({why}); set `network.allowWithinStack`, put both on a network, or add an ingress rule",
                                if ports.len() == 1 { "" } else { "s" },
                                ports.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
                            ),
                        );
                    }
                }
            }
            for (name, d) in &s.datastores {
                let Some(b) = &d.backup else { continue };
                // The job joins its datastore's networks.
                if d.kubernetes != DatastoreMapping::Statefulset
                    || !view::member_networks(s, &d.networks).is_empty()
                    || admits(5432, true)
                {
                    continue;
                }
                self.err(
                    &path!("datastores.", name, ".backup"),
                    format!(
                        "the NetworkPolicy admits nothing into `{name}` on port 5432 from its backup job `{}` ({why}); set `network.allowWithinStack`, give `{name}` a network, or add an ingress rule",
                        b.job_name(name)
                    ),
                );
            }
        }
        // Traffic from outside: a route's, through the ingress controller
        // or gateway, and a load balancer's.
        for (rname, r) in &s.routes {
            if r.ingress.is_none() && r.gateway.is_none() {
                continue;
            }
            let Some(svc) = s.services.get(&r.service) else { continue };
            let Some(sv) = view::service(s, &r.service, svc) else { continue };
            let Some(p) = r.port.map_or(sv.ports.first(), |want| sv.ports.iter().find(|p| p.port == want)) else {
                continue;
            };
            let port = p.target_number;
            if public(&r.service).contains(&port) || admits(port, false) {
                continue;
            }
            let mut msg = format!(
                "route `{rname}` sends traffic to port {port} of `{}`, but the NetworkPolicy admits nothing there; add an ingress rule for port {port} (from the ingress controller's or the gateway's namespace)",
                r.service
            );
            if p.port != port && admits(p.port, false) {
                msg.push_str(&format!("; port {} is the Service's, while NetworkPolicy ports are the pod's", p.port));
            }
            self.err(&path!("routes.", rname), msg);
        }
        for (key, svc) in &s.services {
            let Some(sv) = view::service(s, key, svc) else { continue };
            if sv.r#type == ExposeType::ClusterIP {
                continue;
            }
            let open = public(key);
            let closed: Vec<String> = sv
                .ports
                .iter()
                .filter(|p| !open.contains(&p.target_number) && !admits(p.target_number, false))
                .map(|p| p.target_number.to_string())
                .collect();
            if !closed.is_empty() {
                self.err(
                    &path!("services.", key, ".expose"),
                    format!(
                        "`{key}` is exposed as a {:?}, but the NetworkPolicy admits nothing on port{} {}; add an ingress rule for {}",
                        sv.r#type,
                        if closed.len() == 1 { "" } else { "s" },
                        closed.join(", "),
                        if closed.len() == 1 { "it" } else { "them" },
                    ),
                );
            }
        }
    }

    fn tasks(&mut self) {
        let s = self.stack;
        for (name, t) in &s.tasks {
            let path = path!("tasks.", name);
            self.label_name(&path, "task", name);
            if s.services.contains_key(name) || s.datastores.contains_key(name) {
                self.err(&path, format!("`{name}` is already a service or datastore name"));
            }
            match &t.from {
                Some(f) => {
                    self.reference_in(&path!(path, ".from"), "service", f, &s.services);
                }
                None if t.image.is_none() => self.err(&path, "a task needs `image` or `from` (a service to reuse)"),
                None => {}
            }
            if let Some(img) = &t.image {
                self.image(&path!(path, ".image"), img);
            }
            if t.command.is_empty() && t.args.is_empty() {
                self.err(&path, "a task needs `command` or `args`");
            }
            for (i, b) in t.before.iter().enumerate() {
                self.reference_in(&format!("{path}.before[{i}]"), "service", b, &s.services);
            }
            for (k, v) in &t.env {
                if let EnvValue::Ref(r) = v
                    && let Some(sec) = &r.secret
                {
                    self.secret_key(&path!(path, ".env.", k), sec, &r.key);
                }
            }
        }
    }

    fn gitops(&mut self) {
        let Some(g) = &self.stack.gitops else { return };
        if !self.stack.targets.contains(&Target::Kubernetes) {
            self.warn("gitops", "`gitops` delivers the kubernetes tree, which this environment does not render; nothing is rendered for it");
        }
        if let Some(n) = &g.name {
            self.label_name("gitops.name", "delivery object", n);
        }
        if g.repo.trim().is_empty() || g.repo.chars().any(char::is_whitespace) {
            self.err("gitops.repo", "expected a repository URL without spaces");
        }
        if g.path.split('/').any(|seg| seg == "..") || g.path.starts_with('/') {
            self.err("gitops.path", "the rendered tree's path is relative to the repository root and has no `..`");
        }
        if let Some(a) = &g.argocd {
            self.label_name("gitops.argocd.project", "Argo CD project", &a.project);
            self.label_name("gitops.argocd.namespace", "namespace", &a.namespace);
            for (i, d) in a.destinations.iter().enumerate() {
                self.label_name(&format!("gitops.argocd.destinations[{i}]"), "namespace", d);
            }
        }
        if let Some(f) = &g.flux {
            self.label_name("gitops.flux.namespace", "namespace", &f.namespace);
        }
    }

    fn verify(&mut self) {
        for (i, c) in self.stack.verify.iter().enumerate() {
            let path = format!("verify[{i}]");
            match (&c.exec, &c.service) {
                (Some(_), Some(svc)) => {
                    self.reference_in(&path!(path, ".service"), "service", svc, &self.stack.services);
                }
                (Some(_), None) => self.err(&path, "a check with `exec` names the `service` it runs in"),
                _ => {}
            }
            if let Some(e) = &c.exec
                && e.is_empty()
            {
                self.err(&path!(path, ".exec"), "an exec check needs a command");
            }
        }
    }

    /// What each enabled target cannot express is an error, never a silent drop.
    fn targets(&mut self) {
        let s = self.stack;
        let kube = s.targets.contains(&Target::Kubernetes);
        let compose = s.targets.contains(&Target::Compose);
        if kube {
            for (name, svc) in &s.services {
                if svc.image.is_none() {
                    self.err(&path!("services.", name), format!("service `{name}` has only `build`: the kubernetes target needs an `image` (build and push it, then name it)"));
                }
            }
            // Compose resolves every service by name; Kubernetes only those
            // with a Service, which `expose` makes.
            for (name, svc) in &s.services {
                for (i, dep) in svc.depends_on.iter().enumerate() {
                    let Some(d) = s.services.get(dep) else { continue };
                    let path = format!("services.{name}.dependsOn[{i}]");
                    let service = crate::render::view::service_name(dep, d);
                    match &d.expose {
                        None => self.warn(
                            &path,
                            format!("`{name}` depends on `{dep}`, which has no `expose`: on Kubernetes no Service named `{dep}` exists, so `{name}` cannot reach it by name; add `expose` to `{dep}`"),
                        ),
                        Some(_) if service != *dep => self.warn(
                            &path,
                            format!("`{name}` depends on `{dep}`, whose Service is named `{service}`: on Kubernetes `{name}` reaches it as `{service}`, not `{dep}` (Compose: `{dep}`)"),
                        ),
                        Some(_) => {}
                    }
                }
            }
            let users = volume_users(s);
            for (name, v) in &s.volumes {
                if v.bind.is_some() && users.contains_key(name.as_str()) {
                    self.err(&path!("volumes.", name, ".bind"), format!("volume `{name}` is a host bind mount, which the kubernetes target cannot express; drop `kubernetes` from `targets` or use a persistent volume"));
                }
            }
            for (name, r) in &s.routes {
                if r.gateway.is_none() && r.ingress.is_none() {
                    self.err(
                        &path!("routes.", name),
                        "the kubernetes target needs `gateway` (HTTPRoute) or `ingress` on this route",
                    );
                }
            }
        }
        if compose {
            for (name, r) in &s.routes {
                if r.traefik.is_none() && r.nginx_proxy.is_none() {
                    self.err(
                        &path!("routes.", name),
                        "the compose target needs `traefik` or `nginxProxy` on this route",
                    );
                }
            }
            for (name, d) in &s.datastores {
                if d.password.is_none() {
                    self.err(
                        &path!("datastores.", name),
                        "the compose target needs the database `password` as `{ secret, key }`",
                    );
                }
            }
            for (name, svc) in &s.services {
                // With sidecars, Compose runs one replica (see
                // `render::compose`), so nothing is published twice.
                if svc.replicas > 1 && svc.sidecars.is_empty() {
                    let published = svc.main_container().ports.iter().find(|(_, p)| p.publish.is_some());
                    if let Some((pn, p)) = published {
                        self.err(&path!("services.", name, ".ports.", pn, ".publish"), format!("on Compose every one of the {} replicas of `{name}` would bind host port {}; publish from a single replica (`replicas: 1`) or drop `publish` (a route reaches every replica)", svc.replicas, p.publish.unwrap_or_default()));
                    }
                }
            }
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (sname, secret) in &s.secrets {
                for key in secret_keys(secret) {
                    let var = crate::render::compose::variable_name(s, sname, key);
                    if var.starts_with(|c: char| c.is_ascii_digit()) {
                        self.err(&path!("secrets.", sname), format!("key `{key}` becomes the Compose variable `{var}`, which starts with a digit (Compose refuses it); set `variablePrefix`"));
                    }
                    if let Some(prev) = seen.insert(var.clone(), path!(sname, ".", key)) {
                        self.err(&path!("secrets.", sname), format!("key `{key}` becomes the Compose variable `{var}`, already used by `{prev}`; set `variablePrefix`"));
                    }
                }
            }
        }
    }
}

/// Why a literal env value looks like a secret written out, if it does: a
/// name that says password, secret, token or key with a value that is not
/// a reference, a path, a number or a switch; or a URL with a password.
fn looks_secret(name: &str, value: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let words = ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY"];
    let plain = !value.is_empty()
        && var_refs(value).is_empty()
        && !value.starts_with('/')
        && !value.bytes().all(|b| b.is_ascii_digit())
        && !matches!(value, "true" | "false" | "on" | "off" | "yes" | "no");
    if plain && words.iter().any(|w| upper.contains(w)) && !upper.ends_with("_FILE") && !upper.ends_with("_PATH") {
        return Some(format!("`{name}` looks like a secret"));
    }
    // scheme://user:password@host, with the password written out.
    let rest = value.split_once("://")?.1;
    let userinfo = rest.split(['/', '?', '#']).next()?.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty() && var_refs(password).is_empty()).then(|| format!("the URL in `{name}` holds a password"))
}

const BIND_RULE: &str = "a bind path must be non-empty, without control characters or `:`";

/// A host path Compose's short volume syntax takes as it is.
fn is_bind_path(b: &str) -> bool {
    !b.is_empty() && !b.chars().any(|c| c.is_control() || c == ':')
}

/// A URL path as RFC 3986 (and the Gateway API's HTTPRoute) allow it:
/// unreserved and sub-delimiter characters, `:`, `@`, `/` and `%XX`.
fn is_url_path(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The first variable on a `$(...)` reference cycle, if any.
fn env_cycle(env: &Map<EnvValue>) -> Option<String> {
    fn visit<'a>(k: &'a str, env: &'a Map<EnvValue>, stack: &mut Vec<&'a str>, done: &mut Vec<&'a str>) -> bool {
        if done.contains(&k) {
            return false;
        }
        if stack.contains(&k) {
            return true;
        }
        stack.push(k);
        if let Some(EnvValue::Literal(t)) = env.get(k) {
            for r in var_refs(t) {
                if r != k && env.contains_key(r) && visit(r, env, stack, done) {
                    return true;
                }
            }
        }
        stack.pop();
        done.push(k);
        false
    }
    let mut done = Vec::new();
    env.keys().find(|k| visit(k, env, &mut Vec::new(), &mut done)).cloned()
}

/// `env` names in an order where every `$(VAR)` is defined before its use;
/// otherwise definition order.
pub fn env_order(env: &Map<EnvValue>) -> Vec<&str> {
    fn place<'a>(k: &'a str, env: &'a Map<EnvValue>, out: &mut Vec<&'a str>, seen: &mut Vec<&'a str>) {
        if seen.contains(&k) {
            return;
        }
        seen.push(k);
        if let Some(EnvValue::Literal(t)) = env.get(k) {
            for r in var_refs(t) {
                if let Some((name, _)) = env.get_key_value(r) {
                    place(name, env, out, seen);
                }
            }
        }
        out.push(k);
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for k in env.keys() {
        place(k, env, &mut out, &mut seen);
    }
    out
}

/// Volume name -> the services whose containers mount it, in one pass.
pub fn volume_users(stack: &Stack) -> std::collections::HashMap<&str, Vec<&str>> {
    let mut users: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for (name, svc) in &stack.services {
        let mounts = svc
            .mounts
            .iter()
            .chain(svc.sidecars.values().flat_map(|c| &c.mounts))
            .chain(svc.init.values().flat_map(|c| &c.mounts));
        for m in mounts {
            if let Some(v) = &m.volume {
                let list = users.entry(v.as_str()).or_default();
                if !list.contains(&name.as_str()) {
                    list.push(name);
                }
            }
        }
    }
    users
}

/// `$(NAME)` references in a string (`$$(` escapes).
pub fn var_refs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    // Most values hold no `$` at all: one byte search instead of setting
    // up a substring search for `$(`.
    if !s.contains('$') {
        return out;
    }
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            rest = &rest[i + 2..];
            continue;
        }
        let inner = &rest[i + 2..];
        match inner.find(')') {
            Some(end) if is_ref_name(&inner[..end]) => {
                out.push(&inner[..end]);
                rest = &inner[end + 1..];
            }
            _ => rest = inner,
        }
    }
    out
}

/// The keys a secret is declared to hold.
pub fn secret_keys(s: &crate::stack::model::Secret) -> Vec<&str> {
    match &s.external {
        Some(ext) => ext.data.keys().map(String::as_str).collect(),
        None => s.keys.names().collect(),
    }
}

/// The main container's name.
pub fn main_name(service: &str, svc: &Service) -> String {
    svc.container_name.clone().unwrap_or_else(|| service.to_string())
}

/// A Kubernetes resource quantity such as `100m`, `1.5`, `512Mi`, `1e3`.
pub fn is_quantity(s: &str) -> bool {
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return false;
    }
    matches!(suffix, "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei")
        || (suffix.len() > 1 && suffix.starts_with(['e', 'E']) && suffix[1..].parse::<i32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_refs_finds_references_and_skips_escapes() {
        assert_eq!(var_refs("a $(X) $$(Y) $(bad name) $(Z)"), ["X", "Z"]);
        assert_eq!(var_refs("postgresql://u:$(DB_PASSWORD)@db"), ["DB_PASSWORD"]);
        assert!(var_refs("no references").is_empty());
        assert!(var_refs("$ $$ $( $()").is_empty());
    }

    #[test]
    fn names() {
        assert!(is_dns_label("loops-app"));
        for bad in ["", "-a", "a-", "A", "a/b", "..", "a.b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_dns_subdomain("loops.loops-postgresql.credentials.postgresql.acid.zalan.do"));
        assert!(is_port_name("fastcgi") && !is_port_name("80") && !is_port_name("a-very-long-port-name"));
        assert!(is_env_name("APP_URL") && is_env_name("discovery.type") && !is_env_name("1X") && !is_env_name("A B"));
        assert!(is_ref_name("APP_URL") && !is_ref_name("A-B"));
        assert!(is_label_key("app.kubernetes.io/name") && !is_label_key("bad key"));
    }

    /// Many services are checked on all cores; findings stay in service
    /// order, as on one thread.
    #[test]
    fn findings_of_many_services_keep_their_order() {
        let mut text = String::from("name: t\nnamespace: {name: t}\nservices:\n");
        for i in 0..100 {
            let port = if i % 30 == 7 { "Bad_Port" } else { "http" };
            text.push_str(&format!("  s{i:03}:\n    image: r/s:1\n    ports: {{{port}: 80}}\n"));
        }
        let file =
            crate::stack::source::SourceFile { name: "t".into(), display: "t.yaml".into(), text: Ok(text.into()) };
        let doc = crate::stack::resolve::Document::parse(&file).unwrap();
        let stack = doc.resolve("default").unwrap();
        let found = validate(&stack, "t", &doc.locator("default"));
        let bad: Vec<String> = found
            .iter()
            .map(|d| format!("{d:?}"))
            .filter(|d| d.contains("Bad_Port"))
            .map(|d| d.split("services.").nth(1).unwrap_or_default().chars().take(4).collect())
            .collect();
        assert_eq!(bad, ["s007", "s037", "s067", "s097"], "{found:?}");
    }

    #[test]
    fn quantities() {
        for ok in ["100m", "1", "0.5", "512Mi", "20Gi", "1e3"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "1.2.3", "10 Gi", "10GB"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
