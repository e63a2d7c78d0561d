//! The JSON Schema of a stack file, generated from the Rust types.
//!
//! A stack file is a `Stack` plus `environments` and `components`, which
//! are overlays: the same shape with nothing required at any depth and
//! `null` allowed (it deletes). The overlay definitions are derived from
//! the generated ones, so the schema cannot drift from the types; a test
//! compares it with the committed `schema/stack.schema.json`.

use serde_json::{Map, Value, json};

use crate::stack::model::Stack;

/// Overlay copy of a schema node: no `required`, `$ref`s to overlay
/// definitions, every property also accepting `null`.
fn overlay(node: &Value) -> Value {
    match node {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "required" => {}
                    "$ref" => {
                        let r = v.as_str().unwrap_or_default();
                        out.insert(k.clone(), Value::String(format!("{r}Overlay")));
                    }
                    "additionalProperties" if v.is_object() => {
                        out.insert(k.clone(), json!({ "anyOf": [overlay(v), { "type": "null" }] }));
                    }
                    "properties" => {
                        let props = v
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(pk, pv)| (pk.clone(), json!({ "anyOf": [overlay(pv), { "type": "null" }] })))
                                    .collect::<Map<String, Value>>()
                            })
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), overlay(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(overlay).collect()),
        other => other.clone(),
    }
}

/// The schema of a stack file.
pub fn stack_file_schema() -> Value {
    let mut root = serde_json::to_value(schemars::schema_for!(Stack)).expect("schema serialises");
    let defs = root.as_object_mut().and_then(|r| r.remove("$defs")).unwrap_or_else(|| json!({}));
    let mut all_defs = Map::new();
    for (name, def) in defs.as_object().into_iter().flatten() {
        all_defs.insert(name.clone(), def.clone());
        all_defs.insert(format!("{name}Overlay"), overlay(def));
    }
    let mut stack_overlay = overlay(&json!({
        "type": "object",
        "additionalProperties": false,
        "properties": root.get("properties").cloned().unwrap_or_default(),
    }));
    // Inside overlays `$ref: "#/$defs/X"` became `#/$defs/XOverlay`.
    if let Some(props) = stack_overlay.get_mut("properties").and_then(Value::as_object_mut) {
        props.remove("name");
    }
    let mut env = stack_overlay.clone();
    if let Some(props) = env.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("description".into(), json!({ "type": "string", "description": "What this environment is for." }));
        props.insert(
            "extends".into(),
            json!({ "type": "string", "description": "Another environment this one starts from." }),
        );
        props.insert(
            "components".into(),
            json!({ "type": "array", "items": { "type": "string" }, "description": "Components switched on, in order." }),
        );
    }
    all_defs.insert("Environment".into(), env);
    all_defs.insert("Component".into(), stack_overlay);
    let root_obj = root.as_object_mut().expect("root is an object");
    root_obj.insert("$id".into(), json!("https://stackgen.dev/schema/stack.schema.json"));
    root_obj.insert("title".into(), json!("stackgen stack"));
    if let Some(props) = root_obj.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "environments".into(),
            json!({
                "type": "object",
                "description": "Named environments overlaying the base (maps merge by key, `null` deletes).",
                "additionalProperties": { "anyOf": [{ "$ref": "#/$defs/Environment" }, { "type": "null" }] }
            }),
        );
        props.insert(
            "components".into(),
            json!({
                "type": "object",
                "description": "Optional overlays an environment switches on.",
                "additionalProperties": { "anyOf": [{ "$ref": "#/$defs/Component" }, { "type": "null" }] }
            }),
        );
    }
    root_obj.insert("$defs".into(), Value::Object(all_defs));
    root
}

/// The schema as committed: pretty JSON with a final newline.
pub fn stack_file_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&stack_file_schema()).expect("schema serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::jsonschema::Schema;

    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/stack.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == stack_file_schema_text(),
            "schema/stack.schema.json is stale: run `cargo run -- schema > schema/stack.schema.json`"
        );
    }

    fn as_json(yaml: &str) -> crate::yaml::doc::Doc<'static> {
        let (v, _) = crate::yaml::parse(yaml).expect("yaml");
        crate::yaml::doc::Doc::from_json(serde_json::to_value(v).expect("json"))
    }

    #[test]
    fn accepts_every_built_in_stack_and_rejects_unknown_keys() {
        let checker = Schema::from_json(&stack_file_schema());
        for (file, text) in crate::embedded::STACKS {
            let errors = checker.check(&as_json(text));
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
        let bad = as_json("name: x\nnamespace: {name: x}\nservices:\n  a:\n    image: x:1\n    replcas: 2\n");
        let errors = checker.check(&bad);
        assert!(errors.iter().any(|e| e.path == ".services.a.replcas"), "{errors:?}");
        let bad_env = as_json("name: x\nnamespace: {name: x}\nenvironments:\n  prod:\n    servics: {}\n");
        assert!(!checker.check(&bad_env).is_empty());
    }
}
