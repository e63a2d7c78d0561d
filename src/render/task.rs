//! One-off tasks as services: a task reuses the image, environment,
//! mounts, security and dependencies of its `from` service, with its own
//! command, so both targets render it with the machinery of services
//! (a Job on Kubernetes, a one-shot service on Compose).

use crate::stack::model::{Restart, Service, Stack, Task};

/// The service a task runs as.
pub fn as_service(stack: &Stack, task: &Task) -> Service {
    let mut svc = match task.from.as_ref().and_then(|f| stack.services.get(f)) {
        Some(base) => base.clone(),
        None => serde_json::from_value(serde_json::json!({})).expect("empty service"),
    };
    if let Some(img) = &task.image {
        svc.image = Some(img.clone());
    }
    if !task.command.is_empty() {
        svc.command = task.command.clone();
    }
    svc.args = task.args.clone();
    for (k, v) in &task.env {
        svc.env.insert(k.clone(), v.clone());
    }
    svc.replicas = 1;
    svc.ports.clear();
    svc.probes = Default::default();
    svc.sidecars.clear();
    svc.init.clear();
    svc.expose = None;
    svc.restart = Some(Restart::No);
    svc
}

/// Tasks that must finish before `service` starts.
pub fn gating<'a>(stack: &'a Stack, service: &str) -> Vec<&'a str> {
    stack.tasks.iter().filter(|(_, t)| t.before.iter().any(|b| b == service)).map(|(n, _)| n.as_str()).collect()
}
