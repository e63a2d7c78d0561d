//! Workloads a PostgreSQL datastore needs on Kubernetes besides the
//! operator's own objects: a StatefulSet running the official image (the
//! `kubernetes: statefulset` mapping) and the CronJob of its backups.
//!
//! Both are expressed as ordinary stack services (built through serde, so
//! the defaults and the security baseline are exactly those of a service
//! the user writes) and go through the same workload view and pod template.

use serde_json::json;

use crate::stack::model::{Backup, Datastore, DatastoreMapping, Service, Stack, Volume};

/// The secret reference holding the owner's password: the declared one, or
/// the secret the Zalando operator creates for the owner.
pub fn password_ref(stack: &Stack, name: &str, d: &Datastore) -> (String, String) {
    match &d.password {
        Some(p) => (crate::render::view::secret_name(stack, &p.secret), p.key.clone()),
        None => {
            let owner = d.databases.first().map(|(_, o)| o.clone()).unwrap_or_default();
            (format!("{owner}.{name}.credentials.postgresql.acid.zalan.do"), "password".to_string())
        }
    }
}

/// Name of the ConfigMap with the init SQL.
pub fn initdb_config(name: &str) -> String {
    format!("{name}-initdb")
}

fn ephemeral() -> Volume {
    serde_json::from_value(json!({ "ephemeral": true })).expect("static volume")
}

/// A copy of the stack in which `svc` can be viewed: the synthetic
/// service's scratch volumes and secrets resolve like user-declared ones.
fn scope(stack: &Stack, scratch: &[&str]) -> Stack {
    let mut s = stack.clone();
    for v in scratch {
        s.volumes.insert((*v).to_string(), ephemeral());
    }
    s
}

fn service(spec: serde_json::Value) -> Service {
    serde_json::from_value(spec).expect("synthetic service matches the stack model")
}

/// The StatefulSet mapping: the official image with its data on a claim
/// template, init SQL from a ConfigMap, `pg_isready` probes.
pub fn statefulset(stack: &Stack, name: &str, d: &Datastore) -> Option<(Stack, Service)> {
    if d.kubernetes != DatastoreMapping::Statefulset {
        return None;
    }
    let (db, owner) = d.databases.first().map(|(a, b)| (a.clone(), b.clone())).unwrap_or_default();
    let password = d.password.as_ref()?;
    let mut args = Vec::new();
    for (k, v) in &d.parameters {
        args.push("-c".to_string());
        args.push(format!("{k}={v}"));
    }
    let mut mounts = vec![
        json!({ "volume": "data", "path": "/var/lib/postgresql/data" }),
        json!({ "volume": "pg-run", "path": "/var/run/postgresql" }),
        json!({ "volume": "pg-tmp", "path": "/tmp" }),
    ];
    if !d.extensions.is_empty() {
        mounts.push(json!({ "config": initdb_config(name), "path": "/docker-entrypoint-initdb.d", "readOnly": true }));
    }
    let ready = json!({ "exec": ["pg_isready", "-U", owner, "-d", db], "periodSeconds": 10, "timeoutSeconds": 5 });
    let mut scoped = scope(stack, &["pg-run", "pg-tmp"]);
    if !d.extensions.is_empty() {
        scoped.configs.insert(
            initdb_config(name),
            serde_json::from_value(json!({ "files": { "10-extensions.sql": "" } })).expect("static config"),
        );
    }
    let svc = service(json!({
        "image": d.image.clone().unwrap_or_else(|| format!("postgres:{}", d.version)),
        "args": if args.is_empty() { json!([]) } else { json!(std::iter::once("postgres".to_string()).chain(args).collect::<Vec<_>>()) },
        "ports": { "postgres": 5432 },
        "env": {
            "POSTGRES_DB": db,
            "POSTGRES_USER": owner,
            "POSTGRES_PASSWORD": { "secret": password.secret, "key": password.key },
            "PGDATA": "/var/lib/postgresql/data/pgdata",
        },
        "mounts": mounts,
        "probes": { "readiness": ready, "liveness": ready },
        "resources": d.resources.clone().map(|r| serde_json::to_value(r).expect("resources")).unwrap_or(json!({
            "requests": { "cpu": "250m", "memory": "256Mi" },
            "limits": { "cpu": "2", "memory": "1Gi" },
        })),
        "security": { "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999 },
        "expose": { "ports": [{ "port": 5432, "target": "postgres" }] },
        "networks": d.networks,
    }));
    Some((scoped, svc))
}

/// The CronJob of a datastore's backups: `postgres-backup-local`'s
/// `/backup.sh` run once per schedule, dumps kept on a claim.
pub fn backup_job(stack: &Stack, name: &str, d: &Datastore) -> Option<(Stack, Service, String)> {
    let b = d.backup.as_ref()?;
    let (db, owner) = d.databases.first().map(|(a, b)| (a.clone(), b.clone())).unwrap_or_default();
    let (secret_real, key) = password_ref(stack, name, d);
    let job_name = b.job_name(name);
    let claim = Backup::dumps_volume(&job_name);
    let major = d.version.split(['.', '-']).next().unwrap_or(&d.version).to_string();
    let mut scoped = scope(stack, &["backup-tmp"]);
    scoped.volumes.insert(
        claim.clone(),
        serde_json::from_value(json!({ "size": b.size, "storageClass": d.storage_class })).expect("claim"),
    );
    // Reference the password secret by its real name through a scoped declaration.
    let secret_key = "backup-password".to_string();
    scoped.secrets.insert(
        secret_key.clone(),
        serde_json::from_value(json!({ "name": secret_real, "keys": [key.clone()] })).expect("secret"),
    );
    let svc = service(json!({
        "image": b.image.clone().unwrap_or_else(|| format!("prodrigestivill/postgres-backup-local:{major}")),
        "command": ["/backup.sh"],
        // The datastore's networks, as on Compose: it talks to nothing else.
        "networks": d.networks,
        "env": {
            // The datastore's Service (StatefulSet) or cluster (Zalando) name.
            "POSTGRES_HOST": name,
            "POSTGRES_DB": db,
            "POSTGRES_USER": owner,
            "POSTGRES_PASSWORD": { "secret": secret_key, "key": key },
            "BACKUP_KEEP_DAYS": b.keep_days.to_string(),
            "BACKUP_KEEP_WEEKS": b.keep_weeks.to_string(),
            "BACKUP_KEEP_MONTHS": b.keep_months.to_string(),
            "POSTGRES_EXTRA_OPTS": b.format.pg_dump_options(),
            "BACKUP_SUFFIX": b.format.suffix(),
        },
        "mounts": [
            { "volume": claim, "path": "/backups" },
            { "volume": "backup-tmp", "path": "/tmp" },
        ],
        "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "cpu": "1", "memory": "512Mi" } },
        "security": { "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999 },
    }));
    Some((scoped, svc, job_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::model::EnvValue;

    fn stack(format: &str) -> Stack {
        serde_yaml::from_str(&format!(
            "name: s\nnamespace: {{ name: s }}\ndatastores:\n  db:\n    engine: postgres\n    version: \"17\"\n    \
             kubernetes: statefulset\n    size: 1Gi\n    databases: {{ app: app }}\n    backup: {{ schedule: \"@daily\"{format} }}\n"
        ))
        .unwrap()
    }

    fn env(stack: &Stack, key: &str) -> String {
        let (_, svc, _) = backup_job(stack, "db", &stack.datastores["db"]).unwrap();
        match &svc.env[key] {
            EnvValue::Literal(s) => s.clone(),
            other => panic!("{key}: {other:?}"),
        }
    }

    /// The dump format reaches postgres-backup-local as its pg_dump options
    /// and file suffix; plain (gzipped SQL) is the default.
    #[test]
    fn backup_format_sets_dump_options_and_suffix() {
        let plain = stack("");
        assert_eq!(env(&plain, "POSTGRES_EXTRA_OPTS"), "-Z6 --schema=public --blobs");
        assert_eq!(env(&plain, "BACKUP_SUFFIX"), ".sql.gz");
        let custom = stack(", format: custom");
        assert_eq!(env(&custom, "POSTGRES_EXTRA_OPTS"), "-Fc -Z6 --schema=public --blobs");
        assert_eq!(env(&custom, "BACKUP_SUFFIX"), ".dump");
        let tar = "name: s\nnamespace: { name: s }\ndatastores:\n  db: { engine: postgres, version: \"17\", size: 1Gi, \
                   backup: { schedule: \"@daily\", format: tar } }\n";
        let err = serde_yaml::from_str::<Stack>(tar).unwrap_err().to_string();
        assert!(err.contains("plain") && err.contains("custom"), "{err}");
    }
}
