//! VERIFY.md: the checks an operator runs after a deploy, generated from
//! the stack with the namespace, object names and commands filled in —
//! rollouts and pods, every probe run by hand, logs, one-off jobs, the
//! Compose services' health, and the stack's own `verify` checks.

use serde::Serialize;

use crate::stack::model::{Backup, Datastore, DumpFormat, Stack, Target};

/// One check: what it shows and the command that shows it.
#[derive(Debug, Serialize)]
pub struct Check {
    pub description: String,
    pub command: Option<String>,
    pub expect: Option<String>,
}

/// A section of VERIFY.md.
#[derive(Debug, Serialize)]
pub struct Section {
    pub title: String,
    pub checks: Vec<Check>,
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

fn shell(words: &[String]) -> String {
    words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ")
}

fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|w| (*w).to_string()).collect()
}

/// The check that runs a datastore's backup once, saying what it keeps and
/// how a dump is restored.
fn backup_now(name: &str, d: &Datastore, b: &Backup) -> String {
    let db = d.databases.keys().next().map_or("DB", String::as_str);
    let (what, restore) = match b.format {
        DumpFormat::Custom => ("a custom-format dump", format!("`pg_restore -d {db} FILE`")),
        DumpFormat::Plain => ("a gzipped SQL dump", format!("`gunzip -c FILE | psql -d {db}`")),
    };
    let suffix = b.format.suffix();
    format!(
        "a backup of `{name}` runs now: {what} `{db}-<date>{suffix}` under /backups/last (linked into daily, weekly and monthly), restored with {restore}"
    )
}

/// `a`, `b` and `c`, each in backquotes.
fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The Secrets the pods need before they can start: those the stack
/// fetches (the ExternalSecret synced) and those it only references
/// (created by hand first). Secrets a datastore operator creates are the
/// operator's.
fn secret_checks(stack: &Stack, ns: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    for (key, secret) in &stack.secrets {
        if secret.provided_by.is_some() {
            continue;
        }
        let name = crate::render::view::secret_name(stack, key);
        let what = secret.description.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
        if secret.external.is_some() {
            checks.push(Check {
                description: format!("the ExternalSecret `{name}` has synced the Secret `{name}`{what}"),
                command: Some(shell(&words(&["kubectl", "get", "externalsecret", "-n", ns, &name]))),
                expect: Some("STATUS `SecretSynced`, READY `True`".into()),
            });
            continue;
        }
        // A Secret whose keys are all optional may be absent: the pods
        // reference each key with `optional: true`.
        let (required, optional): (Vec<_>, Vec<_>) = secret.keys.0.iter().partition(|(_, spec)| spec.required);
        let required: Vec<&str> = required.into_iter().map(|(k, _)| k.as_str()).collect();
        let optional: Vec<&str> = optional.into_iter().map(|(k, _)| k.as_str()).collect();
        if required.is_empty() {
            continue;
        }
        let mut description = format!(
            "the Secret `{name}` exists before the first deploy, with the key{} {}",
            if required.len() == 1 { "" } else { "s" },
            listed(&required)
        );
        if !optional.is_empty() {
            description.push_str(&format!(" (optional: {})", listed(&optional)));
        }
        description.push_str(&what);
        checks.push(Check {
            description,
            command: Some(shell(&words(&["kubectl", "get", "secret", "-n", ns, &name, "-o", "jsonpath={.data}"]))),
            expect: Some(format!("{} among the keys", listed(&required))),
        });
    }
    checks
}

fn kubernetes(stack: &Stack) -> Section {
    let ns = &stack.namespace.name;
    let mut checks = secret_checks(stack, ns);
    checks.push(Check {
        description: "every pod of the stack is Running and Ready".into(),
        command: Some(shell(&words(&[
            "kubectl",
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app.kubernetes.io/part-of={}", stack.name),
        ]))),
        expect: None,
    });
    for name in stack.tasks.keys() {
        checks.push(Check {
            description: format!("task `{name}` completed"),
            command: Some(shell(&words(&[
                "kubectl",
                "wait",
                "-n",
                ns,
                "--for=condition=complete",
                &format!("job/{name}"),
                "--timeout=300s",
            ]))),
            expect: None,
        });
    }
    for (name, svc) in &stack.services {
        checks.push(Check {
            description: format!("`{name}` has {} of {} replicas Ready", svc.replicas, svc.replicas),
            command: Some(shell(&words(&["kubectl", "rollout", "status", "-n", ns, &format!("deployment/{name}")]))),
            expect: Some(format!("deployment \"{name}\" successfully rolled out")),
        });
        let main_name = crate::stack::validate::main_name(name, svc);
        let containers = std::iter::once((&main_name, svc.main_container()))
            .chain(svc.sidecars.iter().map(|(n, c)| (n, c.borrowed())));
        for (cname, c) in containers {
            let target = format!("deployment/{name}");
            let exec = |cmd: Vec<String>| {
                let mut w = words(&["kubectl", "exec", "-n", ns, &target, "-c", cname, "--"]);
                w.extend(cmd);
                shell(&w)
            };
            let probe = c.probes.readiness.as_ref().or(c.probes.liveness.as_ref());
            let Some(p) = probe else { continue };
            if let Some(h) = &p.http {
                let port = c.ports.get(&h.port).map_or(80, |p| p.port);
                checks.push(Check {
                    description: format!("`{cname}` in `{name}` answers HTTP"),
                    command: Some(exec(words(&["curl", "-I", &format!("http://127.0.0.1:{port}{}", h.path)]))),
                    expect: Some("an HTTP status line (2xx or 3xx)".into()),
                });
            } else if let Some(cmd) = &p.exec {
                checks.push(Check {
                    description: format!("`{cname}` in `{name}` passes its health command"),
                    command: Some(exec(cmd.clone())),
                    expect: Some("exit status 0".into()),
                });
            } else if let Some(t) = &p.tcp {
                let port = c.ports.get(t).map_or(0, |p| p.port);
                checks.push(Check {
                    description: format!("`{cname}` in `{name}` listens on port {port} (`{t}`)"),
                    command: Some(shell(&words(&["kubectl", "get", "endpoints", "-n", ns]))),
                    expect: Some(format!("the pods of `{name}` listed as ready endpoints")),
                });
            }
        }
        checks.push(Check {
            description: format!("`{name}` logs show no errors"),
            command: Some(shell(&words(&[
                "kubectl",
                "logs",
                "-n",
                ns,
                "-l",
                &format!("app.kubernetes.io/name={name}"),
                "--all-containers",
                "--tail=50",
            ]))),
            expect: None,
        });
    }
    for (name, d) in &stack.datastores {
        if let Some(b) = &d.backup {
            let job = b.job_name(name);
            checks.push(Check {
                description: format!("backups of `{name}` run on schedule `{}`", b.schedule),
                command: Some(shell(&words(&["kubectl", "get", "cronjob", "-n", ns, &job]))),
                expect: None,
            });
            let run = format!("{job}-verify");
            checks.push(Check {
                description: backup_now(name, d, b),
                command: Some(shell(&words(&[
                    "kubectl",
                    "create",
                    "job",
                    "-n",
                    ns,
                    &format!("--from=cronjob/{job}"),
                    &run,
                ]))),
                expect: Some(format!(
                    "`kubectl logs -n {} job/{run}` ends with `SQL backup created successfully`",
                    shell_word(ns)
                )),
            });
        }
    }
    for c in &stack.verify {
        let command = match (&c.exec, &c.service) {
            (Some(cmd), Some(svc)) => {
                let cname =
                    stack.services.get(svc).map(|s| crate::stack::validate::main_name(svc, s)).unwrap_or_default();
                let mut w = words(&["kubectl", "exec", "-n", ns, &format!("deployment/{svc}"), "-c", &cname, "--"]);
                w.extend(cmd.clone());
                Some(shell(&w))
            }
            _ => None,
        };
        checks.push(Check { description: c.description.clone(), command, expect: c.expect.clone() });
    }
    Section { title: "Kubernetes".into(), checks }
}

fn compose(stack: &Stack) -> Section {
    let base = words(&["docker", "compose", "-f", "compose.yaml"]);
    let with = |extra: &[&str]| {
        let mut w = base.clone();
        w.extend(words(extra));
        shell(&w)
    };
    let mut checks = Vec::new();
    if !stack.secrets.is_empty() {
        checks.push(Check {
            description: "`.env` beside compose.yaml sets every required variable (`.env.example` lists them)".into(),
            command: Some(with(&["config", "--quiet"])),
            expect: Some("no output (a required variable that is missing is named, with what it holds)".into()),
        });
    }
    checks.push(Check {
        description: "every service is running (and healthy where it has a healthcheck)".into(),
        command: Some(with(&["ps"])),
        expect: None,
    });
    for name in stack.datastores.keys() {
        checks.push(Check {
            description: format!("`{name}` is healthy"),
            command: Some(with(&["ps", name, "--format", "{{.Name}} {{.Health}}"])),
            expect: Some("healthy".into()),
        });
    }
    for (name, svc) in &stack.services {
        if svc.probes.readiness.is_some() || svc.probes.liveness.is_some() {
            checks.push(Check {
                description: format!("`{name}` is healthy"),
                command: Some(with(&["ps", name, "--format", "{{.Name}} {{.Health}}"])),
                expect: Some("healthy".into()),
            });
        }
    }
    for (name, d) in &stack.datastores {
        if let Some(b) = &d.backup {
            checks.push(Check {
                description: backup_now(name, d, b),
                command: Some(with(&["exec", &b.job_name(name), "/backup.sh"])),
                expect: Some("`SQL backup created successfully`".into()),
            });
        }
    }
    for name in stack.tasks.keys() {
        checks.push(Check {
            description: format!("task `{name}` exited successfully"),
            command: Some(with(&["ps", "-a", name, "--format", "{{.Name}} {{.State}} {{.Status}}"])),
            expect: Some("exited (0)".into()),
        });
    }
    checks.push(Check {
        description: "logs show no errors".into(),
        command: Some(with(&["logs", "--tail=50"])),
        expect: None,
    });
    for c in &stack.verify {
        let command = match (&c.exec, &c.service) {
            (Some(cmd), Some(svc)) => {
                let mut w = base.clone();
                w.extend(words(&["exec", svc]));
                w.extend(cmd.clone());
                Some(shell(&w))
            }
            _ => None,
        };
        checks.push(Check { description: c.description.clone(), command, expect: c.expect.clone() });
    }
    Section { title: "Compose (run in the compose/ directory)".into(), checks }
}

/// The sections of VERIFY.md for the targets the stack renders.
pub fn sections(stack: &Stack) -> Vec<Section> {
    let mut out = Vec::new();
    if stack.targets.contains(&Target::Kubernetes) {
        out.push(kubernetes(stack));
    }
    if stack.targets.contains(&Target::Compose) {
        out.push(compose(stack));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Secret is checked before the deploy when a pod needs it: one with
    /// a required key (created by hand) or an ExternalSecret (synced); not
    /// one whose keys are all optional, nor one an operator creates.
    #[test]
    fn secrets_the_pods_need_are_checked_first() {
        let stack: Stack = serde_yaml::from_str(
            "name: s\nnamespace: { name: ns }\nsecrets:\n  \
             db: { name: s-db, keys: { password: {}, hint: { required: false } } }\n  \
             tokens: { keys: { a: { required: false } } }\n  \
             op: { keys: [password], providedBy: pg }\n  \
             ext: { external: { store: vault, data: { k: { key: app, property: k } } } }\n",
        )
        .unwrap();
        let checks = secret_checks(&stack, "ns");
        let described: Vec<&str> = checks.iter().map(|c| c.description.as_str()).collect();
        assert_eq!(
            described,
            [
                "the Secret `s-db` exists before the first deploy, with the key `password` (optional: `hint`)",
                "the ExternalSecret `ext` has synced the Secret `ext`",
            ]
        );
        assert_eq!(checks[0].command.as_deref(), Some("kubectl get secret -n ns s-db -o 'jsonpath={.data}'"));
        assert_eq!(checks[1].command.as_deref(), Some("kubectl get externalsecret -n ns ext"));
        assert_eq!(listed(&["a", "b", "c"]), "`a`, `b` and `c`");
    }

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_word("horizon:status"), "horizon:status");
        assert_eq!(shell_word("{{.Name}}"), "'{{.Name}}'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
