//! Fuzzes the whole pipeline on one stack file: load (YAML with positions,
//! limits), resolve every environment, validate, render both targets and
//! check the output against the embedded schemas. Any panic is a bug; errors
//! are expected. Memory stays bounded by the loader's node and depth limits.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stackgen::render;
use stackgen::stack::resolve::Document;
use stackgen::stack::source::SourceFile;
use stackgen::stack::validate::validate;

fn engine() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| render::engine::environment(None).expect("embedded templates"))
}

fn validator() -> &'static stackgen::validate::Validator {
    static V: OnceLock<stackgen::validate::Validator> = OnceLock::new();
    V.get_or_init(|| stackgen::validate::Validator::new(stackgen::validate::DEFAULT_KUBE_VERSION).expect("schemas"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8(data.to_vec()).map(Into::into).map_err(|e| e.to_string());
    let src = SourceFile { name: "fuzz".into(), display: "fuzz.yaml".into(), text };
    let Ok(doc) = Document::parse(&src) else { return };
    for env in doc.env_names() {
        let Ok(resolved) = doc.resolve(&env) else { continue };
        let diags = validate(&resolved, &doc.name, &doc.locator(&env));
        if stackgen::diagnostic::has_errors(&diags) {
            continue;
        }
        if let Ok(rendered) = render::render(engine(), validator(), &std::sync::Arc::new(resolved), &env) {
            let _ = validator().check(&rendered.files);
        }
    }
});
