//! The commands: select stacks, build the plan in memory, then report or
//! apply it. Exit codes: 0 success, 1 differences (`--check`), 2 anything
//! invalid or failing.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{
    Cli, Command, DiffArgs, Format, ListArgs, NewArgs, RenderArgs, Selection, Sources, TemplatesCommand, ValidateArgs,
};
use crate::diagnostic::{Diagnostic, Severity, did_you_mean, has_errors, normalize};
use crate::output::{self, Changes, Disk, Plan};
use crate::render;
use crate::stack::resolve::Document;
use crate::stack::source::StackDir;
use crate::stack::validate::validate;

/// Why a command stopped.
enum Failure {
    /// Problems in what the user wrote.
    Invalid(Vec<Diagnostic>),
    /// Anything else (I/O, templates).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    // `--format json` asks for JSON on stdout, failures included.
    let json = match &cli.command {
        Command::Render(a) => a.format == Format::Json,
        Command::Diff(a) => a.format == Format::Json,
        Command::List(a) => a.format == Format::Json,
        _ => false,
    };
    let result = match cli.command {
        Command::Render(a) => render_cmd(&a),
        Command::List(a) => list_cmd(&a).map(|()| 0),
        Command::Validate(a) => validate_cmd(&a).map(|()| 0),
        Command::Diff(a) => diff_cmd(&a),
        Command::Schema => {
            print!("{}", crate::schema::stack_file_schema_text());
            Ok(0)
        }
        Command::New(a) => new_cmd(&a).map(|()| 0),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "stackgen", &mut std::io::stdout());
            Ok(0)
        }
        Command::Templates(TemplatesCommand::List) => {
            for (name, _) in crate::embedded::TEMPLATES {
                println!("{name}");
            }
            Ok(0)
        }
        Command::Templates(TemplatesCommand::Export { dir, force }) => export_templates(&dir, force).map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Invalid(diags)) => {
            print_diagnostics(&diags);
            let n = diags.iter().filter(|d| d.severity == Severity::Error).count();
            let summary = format!("{n} problem{} found; nothing was written", if n == 1 { "" } else { "s" });
            eprintln!("{} {summary}", error_label());
            if json {
                let problems: Vec<serde_json::Value> = diags.iter().map(diagnostic_json).collect();
                println!("{}", serde_json::json!({ "ok": false, "error": summary, "problems": problems }));
            }
            2
        }
        Err(Failure::Other(e)) => {
            eprintln!("{} {e:#}", error_label());
            if json {
                println!("{}", serde_json::json!({ "ok": false, "error": format!("{e:#}"), "problems": [] }));
            }
            2
        }
    }
}

fn error_label() -> &'static str {
    if stderr_color() { "\x1b[1;31merror:\x1b[0m" } else { "error:" }
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset or empty.
fn stderr_color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Prints `diags` to stderr in one write: stderr is unbuffered, and each
/// `writeln!` was two system calls (the built-in stacks' six warnings,
/// twelve calls, about 0.1 ms into a pipe).
fn print_diagnostics(diags: &[Diagnostic]) {
    if diags.is_empty() {
        return;
    }
    let color = stderr_color();
    let mut all = String::new();
    for d in diags {
        all.push_str(&d.render(color));
        all.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(all.as_bytes());
}

fn new_cmd(a: &NewArgs) -> Result<(), Failure> {
    if !crate::stack::validate::is_dns_label(&a.name) {
        return Err(Failure::Other(anyhow::anyhow!(
            "`{}` is not a valid stack name: use lowercase letters, digits and `-` (a DNS-1123 label)",
            a.name
        )));
    }
    let path = a.stacks.join(format!("{}.yaml", a.name));
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(Failure::Other(anyhow::anyhow!("`{}` already exists; not overwriting it", path.display())));
    }
    let tpl_env = render::engine::environment(None)?;
    let text = tpl_env
        .get_template("starter/stack.yaml.j2")
        .and_then(|t| t.render(minijinja::context! { name => &a.name }))
        .map_err(|e| anyhow::anyhow!("starter template: {e:#}"))?;
    std::fs::create_dir_all(&a.stacks).with_context(|| format!("cannot create `{}`", a.stacks.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write `{}`", path.display()))?;
    // The starter's `$schema` line points here, for editor completion.
    let schema = a.stacks.join("stack.schema.json");
    if std::fs::symlink_metadata(&schema).is_err() {
        std::fs::write(&schema, crate::schema::stack_file_schema_text())
            .with_context(|| format!("cannot write `{}`", schema.display()))?;
    }
    println!("wrote {}; render it with `stackgen render {} --stacks {}`", path.display(), a.name, a.stacks.display());
    Ok(())
}

/// Writes the embedded templates into `dir` with the render's writer
/// ([`output::apply`]): all or nothing, and nothing through a symbolic link
/// (a symlink at a template's path or among its directories is refused,
/// `--force` or not). Without `--force` nothing at all is written when an
/// existing file differs; files that already hold the built-in text are
/// left as they are.
fn export_templates(dir: &Path, force: bool) -> Result<(), Failure> {
    let mut plan = Plan::default();
    for (name, text) in crate::embedded::TEMPLATES {
        plan.files.insert((*name).to_string(), text.as_bytes().to_vec());
    }
    let changes = output::compare(dir, &plan)?;
    if !force && !changes.changed.is_empty() {
        let differ: Vec<String> = changes.changed.iter().map(|f| dir.join(f).display().to_string()).collect();
        return Err(Failure::Other(anyhow::anyhow!(
            "not overwriting existing files that differ from the built-in templates (pass --force): {}",
            differ.join(", ")
        )));
    }
    output::apply_to(dir, &plan, &changes, &mut Disk { fsync: false })?;
    let written = changes.added.len() + changes.changed.len();
    let kept = changes.unchanged.len();
    let kept = if kept == 0 { String::new() } else { format!(" ({kept} already up to date)") };
    println!("wrote {written} templates to {}{kept}", dir.display());
    Ok(())
}

/// What renders: the template environment and the schema validator.
struct Engine {
    templates: minijinja::Environment<'static>,
    validator: &'static crate::validate::Validator,
    /// Warnings about the template directory (files that override nothing).
    warnings: Vec<Diagnostic>,
}

impl Engine {
    fn new(sources: &Sources) -> Result<Engine> {
        let templates = render::engine::environment(sources.templates.as_deref())?;
        // Never freed: the process ends soon after, and freeing the parsed
        // schema trees took about 6% of the CPU time of rendering the built-in stacks.
        let validator = Box::leak(Box::new(crate::validate::Validator::new(&sources.kube_version)?));
        let warnings = sources.templates.as_deref().map(unused_override_warnings).unwrap_or_default();
        Ok(Engine { templates, validator, warnings })
    }
}

/// A warning for each file of the template directory that overrides no
/// template, so that a misspelt override is not silently ignored.
fn unused_override_warnings(dir: &Path) -> Vec<Diagnostic> {
    use render::engine::Unused;
    render::engine::unused_overrides(dir)
        .into_iter()
        .map(|u| {
            let d = match u {
                Unused::Link(file) => Diagnostic::warning(
                    &dir.join(file).display().to_string(),
                    "a symbolic link in the template directory is never read",
                ),
                Unused::Unknown(file, near) => {
                    let d = Diagnostic::warning(
                        &dir.join(file).display().to_string(),
                        "this file overrides no template stackgen renders; it is ignored",
                    );
                    match near {
                        Some(n) => d.note(format!("help: did you mean `{n}`?")),
                        None => d,
                    }
                }
            };
            d.note("`stackgen templates list` shows the template names")
        })
        .collect()
}

/// One piece of `load`'s parallel work.
enum Job<'a> {
    Parse(&'a crate::stack::source::SourceFile),
    Engine,
}

enum Done {
    Parsed(Box<Result<Document, Vec<Diagnostic>>>),
    Engine(Box<Result<Engine>>),
}

/// Loads the selected stack files (all when none are named).
fn load(sources: &Sources, sel: &Selection, require_selection: bool) -> Result<Vec<Document>, Failure> {
    load_with(sources, sel, require_selection, false).map(|(docs, _)| docs)
}

/// `load` and the [`Engine`], for the commands that render.
fn load_for_build(
    sources: &Sources,
    sel: &Selection,
    require_selection: bool,
) -> Result<(Vec<Document>, Engine), Failure> {
    let (docs, engine) = load_with(sources, sel, require_selection, true)?;
    let engine = match engine {
        Some(e) => e,
        None => Engine::new(sources)?,
    };
    Ok((docs, engine))
}

/// `load`, and with `engine` also builds the [`Engine`] beside the parsing:
/// on its own it was a step of its own in which one core idled (about 0.5 ms
/// of a 20 ms render of the built-in stacks). It is built after the files,
/// on whichever thread is free first. Problems in the stack files are
/// reported before a failure to build the engine.
fn load_with(
    sources: &Sources,
    sel: &Selection,
    require_selection: bool,
    engine: bool,
) -> Result<(Vec<Document>, Option<Engine>), Failure> {
    let dir = StackDir::choose(sources.stacks.as_deref());
    let files = dir.list()?;
    if require_selection && sel.stacks.is_empty() && !sel.all {
        return Err(Failure::Other(anyhow::anyhow!("name at least one stack, or pass --all")));
    }
    let mut chosen = Vec::new();
    let mut diags = Vec::new();
    if sel.stacks.is_empty() {
        chosen.extend(files.iter());
    } else {
        for name in &sel.stacks {
            match files.iter().find(|f| &f.name == name) {
                Some(f) => {
                    if !chosen.iter().any(|c: &&crate::stack::source::SourceFile| c.name == f.name) {
                        chosen.push(f);
                    }
                }
                None => {
                    let mut d =
                        Diagnostic::error("<command line>", format!("unknown stack `{name}` in {}", dir.describe()));
                    if let Some(s) = did_you_mean(name, files.iter().map(|f| f.name.as_str())) {
                        d = d.note(format!("help: did you mean `{s}`?"));
                    }
                    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                    d = d.note(format!(
                        "available: {}",
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    ));
                    diags.push(d);
                }
            }
        }
    }
    if chosen.is_empty() && diags.is_empty() {
        return Err(Failure::Other(anyhow::anyhow!("no stack files found in {}", dir.describe())));
    }
    let mut jobs: Vec<Job> = chosen.iter().map(|f| Job::Parse(f)).collect();
    if engine && diags.is_empty() {
        jobs.push(Job::Engine);
    }
    let mut docs = Vec::new();
    let mut built = None;
    // The engine first (about 0.4 ms, as long as a mid-sized stack file),
    // then the files, longest first, so that the step does not end on one
    // long job while the other thread idles: for the built-in stacks the
    // step took 1.1 ms with the engine last, one thread idle for 0.3 ms of
    // it. Results keep the order of `jobs`.
    let weight = |job: &Job| match job {
        Job::Engine => usize::MAX,
        Job::Parse(f) => f.text.as_ref().map_or(0, |t| t.len()),
    };
    let done = crate::par::map_heaviest_first(&jobs, 2, weight, |job| match job {
        Job::Parse(f) => Done::Parsed(Box::new(Document::parse(f))),
        Job::Engine => Done::Engine(Box::new(Engine::new(sources))),
    });
    for d in done {
        match d {
            Done::Parsed(parsed) => match *parsed {
                Ok(d) => docs.push(d),
                Err(mut e) => diags.append(&mut e),
            },
            Done::Engine(e) => built = Some(*e),
        }
    }
    if has_errors(&diags) {
        normalize(&mut diags);
        return Err(Failure::Invalid(diags));
    }
    Ok((docs, built.transpose()?))
}

/// Resolves, validates and renders; returns the plan, warnings and the
/// per-stack file lists. Nothing touches the disk.
fn build(docs: &mut [Document], sel: &Selection, engine: Engine) -> Result<(Plan, Vec<Diagnostic>), Failure> {
    let Engine { templates: tpl_env, validator, warnings } = engine;
    let mut problems = Vec::new();
    let mut plan = Plan::default();
    let mut diags = warnings;
    // Each environment to build: its stack file (and that file's index in
    // `docs`, to find it again once `units` is gone) and its name.
    let mut units: Vec<(usize, &Document, String)> = Vec::new();
    plan.whole_root = sel.all && sel.envs.is_empty();
    // For every stack, `--env E` means E of each stack that has it: a stack
    // without it is skipped, unless no stack has it (a typo, most likely).
    // (`validate` with no stack named takes every stack, like `--all`.)
    let every_stack = sel.all || sel.stacks.is_empty();
    let anywhere: std::collections::BTreeSet<String> = if every_stack && !sel.envs.is_empty() {
        docs.iter().flat_map(Document::env_names).collect()
    } else {
        Default::default()
    };
    for (index, doc) in docs.iter().enumerate() {
        let all_envs = doc.env_names();
        let envs: Vec<String> = if sel.envs.is_empty() {
            plan.stack_dirs.insert(doc.name.clone());
            all_envs.clone()
        } else {
            let mut chosen = Vec::new();
            for e in &sel.envs {
                if all_envs.contains(e) {
                    chosen.push(e.clone());
                } else if !anywhere.contains(e) {
                    let mut d = Diagnostic::error(&doc.file, format!("stack `{}` has no environment `{e}`", doc.name))
                        .note(format!("environments: {}", all_envs.join(", ")));
                    if let Some(s) = did_you_mean(e, all_envs.iter().map(String::as_str)) {
                        d = d.note(format!("help: did you mean `{s}`?"));
                    }
                    diags.push(d);
                }
            }
            chosen
        };
        units.extend(envs.into_iter().map(|env| (index, doc, env)));
    }
    // Environments are independent: they resolve and validate, then render,
    // in parallel; results are gathered in definition order. Between the two
    // phases the parsed stack files are released (only the typed stacks are
    // needed to render), which lowers the peak memory of a large stack.
    let resolved = resolve_all(&units);
    let mut ready = Vec::new();
    // The diagnostics of each stack file's environments, gathered to say
    // which environments one that only some of them have comes from.
    let mut of_doc: Vec<(&str, Vec<Diagnostic>)> = Vec::new();
    let mut last_doc: Option<(usize, &Document)> = None;
    for ((index, doc, env), (found, stack)) in units.iter().zip(resolved) {
        let index = *index;
        if last_doc.map(|(i, _)| i) != Some(index) {
            if let Some((_, d)) = last_doc {
                diags.extend(name_environments(d, std::mem::take(&mut of_doc)));
            }
            last_doc = Some((index, *doc));
        }
        of_doc.push((env.as_str(), found));
        if let Some(stack) = stack {
            ready.push((format!("{}/{env}", doc.name), env.clone(), std::sync::Arc::new(stack), index));
        }
    }
    if let Some((_, d)) = last_doc {
        diags.extend(name_environments(d, of_doc));
    }
    drop(units);
    // Freeing large trees takes a while (0.1 s for the parsed file of
    // 10,000 services, 40 ms for their rendered views): one helper thread
    // does it while rendering goes on. Without that thread, whatever is
    // sent is freed here instead. A small render has little to free and
    // does not start the thread: its parsed files are freed here, and the
    // render reuses their memory (fresh pages are dear, see `build`'s end).
    let (free, garbage) = std::sync::mpsc::channel::<Box<dyn Send>>();
    let weight: usize = ready.iter().map(|(_, _, stack, _)| render_weight(stack)).sum();
    let small = weight < FREE_ON_A_THREAD;
    let freeing = !small && std::thread::Builder::new().spawn(move || garbage.into_iter().for_each(drop)).is_ok();
    let free = |g: Box<dyn Send>| {
        if freeing {
            // Send fails only once the receiver is gone, and then `g` is
            // dropped right here.
            let _ = free.send(g);
        }
    };
    free(Box::new(docs.iter_mut().map(Document::release).collect::<Vec<_>>()));
    // The largest environments first, so none runs alone at the end.
    let rendered = crate::par::map_heaviest_first(
        &ready,
        2,
        |(_, _, stack, _)| render_weight(stack),
        |(_, env, stack, _)| -> Result<_> {
            let render::Rendered { files, views } = render::render(&tpl_env, validator, stack, env)?;
            free(Box::new(views));
            let problems = validator.check(&files);
            Ok((files, problems))
        },
    );
    for ((dir, env, _, index), result) in ready.iter().zip(rendered) {
        let (files, mut bad) = match result {
            Ok(r) => r,
            Err(e) => match e.downcast_ref::<render::kubernetes::Clashes>() {
                Some(clashes) => {
                    diags.extend(clash_diagnostics(&docs[*index], env, clashes));
                    continue;
                }
                None => return Err(e.into()),
            },
        };
        problems.append(&mut bad);
        plan.env_dirs.insert(dir.clone());
        for f in files {
            // A second file at one path would silently replace the first.
            match plan.files.entry(f.path) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(f.bytes);
                }
                std::collections::btree_map::Entry::Occupied(o) => {
                    return Err(Failure::Other(anyhow::anyhow!(
                        "two rendered files have the path `{}`, and one would replace the other; rename what they are made from",
                        o.key()
                    )));
                }
            }
        }
    }
    // A small render's typed stacks are never freed: nothing large is
    // allocated after them, every caller of `build` ends the process soon
    // after (as `render_cmd` does with the plan), and freeing them took
    // about 0.2 ms of the built-in stacks' render on the main thread with a
    // core idle. Not freeing the parsed files and the views either was
    // tried: the render then touched about 90 more fresh pages (each about
    // 4 µs on the reference machine) and took longer (wall x1.015).
    if small {
        std::mem::forget(ready);
    } else {
        free(Box::new(ready));
    }
    normalize(&mut diags);
    if has_errors(&diags) {
        return Err(Failure::Invalid(diags));
    }
    if !problems.is_empty() {
        print_diagnostics(&diags);
        let n = problems.len();
        return Err(Failure::Other(anyhow::anyhow!(
            "the rendered output is invalid ({n} problem{}); nothing was written. A template override or a stackgen bug produced it:\n  {}",
            if n == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }
    plan.seal();
    Ok((plan, diags))
}

/// The diagnostics of one stack file's environments, each once, with a note
/// naming the environments it comes from when that is not all of them (a
/// problem an environment's overlay brings in points at the base field it
/// changes, which alone would not say where the change is). An error all of
/// them have is named too when the base alone, without overlays, does not
/// have it: every environment brings it in.
fn name_environments(doc: &Document, per_env: Vec<(&str, Vec<Diagnostic>)>) -> Vec<Diagnostic> {
    let total = per_env.len();
    let declared = doc.environments.contains_key(per_env.first().map_or("", |(e, _)| *e));
    if total < 2 && !(declared && per_env.iter().any(|(_, d)| has_errors(d))) {
        return per_env.into_iter().flat_map(|(_, d)| d).collect();
    }
    let mut seen: indexmap::IndexMap<Diagnostic, Vec<&str>> = indexmap::IndexMap::new();
    for (env, found) in per_env {
        for d in found {
            let envs = seen.entry(d).or_default();
            if envs.last() != Some(&env) {
                envs.push(env);
            }
        }
    }
    // The base's own problems, when an error is in every environment (the
    // render fails anyway, so this costs nothing on a good run).
    let everywhere_error = seen.iter().any(|(d, envs)| envs.len() == total && d.severity == Severity::Error);
    let base: Option<std::collections::HashSet<Diagnostic>> = (declared && everywhere_error)
        .then(|| match doc.resolve_base() {
            (Ok(stack), loc) => Some(validate(&stack, &doc.name, &loc).into_iter().collect()),
            // The base does not even deserialise: nothing to compare with.
            (Err(_), _) => None,
        })
        .flatten();
    let from_base = |d: &Diagnostic| base.as_ref().is_none_or(|b| b.contains(d));
    seen.into_iter()
        .map(|(d, envs)| match envs.len() {
            n if n == total && from_base(&d) => d,
            // Its field path says so already.
            1 if d.field.as_deref().is_some_and(|f| f.starts_with(&format!("environments.{}.", envs[0]))) => d,
            1 => d.note(format!("in environment `{}`", envs[0])),
            _ => d.note(format!(
                "in environments {}",
                envs.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            )),
        })
        .collect()
}

/// An error for each clash of object names, at the first field the name
/// comes from, naming the others.
fn clash_diagnostics(doc: &Document, env: &str, clashes: &render::kubernetes::Clashes) -> Vec<Diagnostic> {
    let loc = doc.locator(env);
    clashes
        .0
        .iter()
        .map(|c| {
            let msg =
                format!("two objects would be {} `{}`, and one would replace the other; rename one", c.kind, c.name);
            let Some((first, others)) = c.from.split_first() else {
                return Diagnostic::error(&doc.file, msg).note(format!("environment: {env}"));
            };
            let mut d = loc.error(first, msg);
            for o in others {
                d = d.note(format!("also named `{}` by: {o}", c.name));
            }
            d
        })
        .collect()
}

/// `resolve_env` of every unit, in parallel, the results in the order of
/// `units`. The threads take the units in turn from each stack file
/// (`a/1 a/2 b/1 c/1 c/2` as `a/1 b/1 c/1 a/2 c/2`), so that they do not
/// start on the same file: what a file builds on first use, such as the
/// key index that places its warnings, one thread built while the other
/// waited for it (about 0.2 ms, loomio's first two environments side by side).
fn resolve_all(units: &[(usize, &Document, String)]) -> Vec<(Vec<Diagnostic>, Option<crate::stack::model::Stack>)> {
    let order = in_turns(units, |a, b| a.0 == b.0);
    let done = crate::par::map_min(&order, 2, |&i| resolve_env(units[i].1, &units[i].2));
    let mut done: Vec<(usize, _)> = order.into_iter().zip(done).collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The indices of `items`, runs of items that are `same` taken in turn:
/// the first of each run, then the second of each, and so on. Linear: a
/// run leaves the turns once it is exhausted (one file with 10,000
/// environments beside 10,000 files with one each is 20,000 steps).
fn in_turns<T>(items: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<usize> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match runs.last_mut() {
            Some(r) if same(&items[r.start], item) => r.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    let mut order = Vec::with_capacity(items.len());
    while !runs.is_empty() {
        runs.retain_mut(|r| {
            order.push(r.start);
            r.start += 1;
            r.start < r.end
        });
    }
    order
}

/// The render weight from which freeing goes to a thread of its own;
/// below it, `build` does not free the typed stacks.
const FREE_ON_A_THREAD: usize = 1_000;

/// A rough measure of the rendering work of an environment: what becomes
/// objects, counted once per target.
fn render_weight(stack: &crate::stack::model::Stack) -> usize {
    let parts = stack.services.len()
        + 3 * stack.datastores.len()
        + stack.tasks.len()
        + stack.routes.len()
        + stack.volumes.len()
        + stack.configs.len()
        + stack.secrets.len()
        + 1;
    parts * stack.targets.len()
}

/// One environment resolved and validated: its diagnostics, and the typed
/// stack unless they hold an error.
fn resolve_env(doc: &Document, env: &str) -> (Vec<Diagnostic>, Option<crate::stack::model::Stack>) {
    let resolved = match doc.resolve(env) {
        Ok(r) => r,
        Err(e) => return (e, None),
    };
    let found = validate(&resolved, &doc.name, &doc.locator(env));
    if has_errors(&found) {
        return (found, None);
    }
    (found, Some(resolved))
}

fn render_cmd(a: &RenderArgs) -> Result<u8, Failure> {
    let (mut docs, engine) = load_for_build(&a.sources, &a.selection, true)?;
    let (plan, warnings) = build(&mut docs, &a.selection, engine)?;
    print_diagnostics(&warnings);
    let root = &a.out;
    if root.exists() && !root.is_dir() {
        return Err(Failure::Other(anyhow::anyhow!("output `{}` exists and is not a directory", root.display())));
    }
    let changes = output::compare(root, &plan)?;
    if a.check {
        report_check(root, &changes, a.format, a.quiet);
        return Ok(u8::from(!changes.is_empty()));
    }
    if !changes.is_empty() {
        output::apply_to(root, &plan, &changes, &mut Disk { fsync: a.fsync })?;
    }
    if a.format == Format::Json {
        println!("{}", changes_json(&changes));
    } else if !a.quiet {
        report_summary(root, &docs, &changes, &plan.env_dirs);
    }
    // The process ends now: the operating system takes the memory back at
    // once, where freeing the plan file by file took 20 ms for 10,000
    // services.
    std::mem::forget((plan, changes, docs));
    Ok(0)
}

fn diff_cmd(a: &DiffArgs) -> Result<u8, Failure> {
    use std::io::IsTerminal;
    let (mut docs, engine) = load_for_build(&a.sources, &a.selection, true)?;
    let (plan, warnings) = build(&mut docs, &a.selection, engine)?;
    print_diagnostics(&warnings);
    if a.out.exists() && !a.out.is_dir() {
        return Err(Failure::Other(anyhow::anyhow!("output `{}` exists and is not a directory", a.out.display())));
    }
    let changes = output::compare(&a.out, &plan)?;
    if a.stat {
        let stats = crate::diff::stat(&a.out, &plan, &changes);
        if a.format == Format::Json {
            let rows: Vec<serde_json::Value> = stats
                .iter()
                .map(|s| serde_json::json!({ "path": s.path, "status": s.status, "added": s.added, "removed": s.removed }))
                .collect();
            println!("{}", serde_json::json!({ "upToDate": changes.is_empty(), "files": rows }));
        } else {
            for s in &stats {
                println!("{:>7} +{:<5} -{:<5} {}", s.status, s.added, s.removed, a.out.join(&s.path).display());
            }
            let (add, rem) = stats.iter().fold((0, 0), |(x, y), s| (x + s.added, y + s.removed));
            let n = stats.len();
            let s = |k: usize| if k == 1 { "" } else { "s" };
            println!("{n} file{} changed, {add} insertion{}(+), {rem} deletion{}(-)", s(n), s(add), s(rem));
        }
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        print!("{}", crate::diff::unified(&a.out, &plan, &changes, color));
    }
    Ok(u8::from(!changes.is_empty()))
}

fn stack_of(path: &str) -> &str {
    path.split('/').next().unwrap_or("")
}

fn report_summary(root: &Path, docs: &[Document], ch: &Changes, env_dirs: &std::collections::BTreeSet<String>) {
    for doc in docs {
        if !env_dirs.iter().any(|d| stack_of(d) == doc.name) {
            println!("{}: skipped, none of the environments asked for", doc.name);
            continue;
        }
        let count = |v: &[String]| v.iter().filter(|p| stack_of(p) == doc.name).count();
        println!(
            "{}: {} written, {} unchanged, {} removed ({})",
            doc.name,
            count(&ch.added) + count(&ch.changed),
            count(&ch.unchanged),
            count(&ch.removed),
            root.join(&doc.name).display()
        );
    }
    // Stack directories no stack defines any more (`render --all`).
    let mut gone: Vec<&str> =
        ch.removed.iter().map(|p| stack_of(p)).filter(|s| docs.iter().all(|d| d.name != *s)).collect();
    gone.dedup();
    for stack in gone {
        let n = ch.removed.iter().filter(|p| stack_of(p) == stack).count();
        println!("{stack}: {n} removed, no stack defines it any more ({})", root.join(stack).display());
    }
    for f in &ch.foreign {
        eprintln!("note: left alone `{}`: not written by stackgen", root.join(f).display());
    }
}

fn report_check(root: &Path, ch: &Changes, format: Format, quiet: bool) {
    if format == Format::Json {
        println!("{}", changes_json(ch));
        return;
    }
    for (label, list) in [("added", &ch.added), ("changed", &ch.changed), ("removed", &ch.removed)] {
        for f in list {
            println!("{label}: {}", root.join(f).display());
        }
    }
    if !quiet {
        if ch.is_empty() {
            println!("up to date: {} files", ch.unchanged.len());
        } else {
            println!(
                "out of date: {} added, {} changed, {} removed (run `stackgen render` to update)",
                ch.added.len(),
                ch.changed.len(),
                ch.removed.len()
            );
        }
    }
}

/// A diagnostic for `--format json`: what the text form says, in fields
/// (`line` and `column` 1-based, absent when unknown).
fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    let mut v = serde_json::json!({
        "severity": if d.severity == Severity::Error { "error" } else { "warning" },
        "file": d.file,
        "message": d.message,
        "notes": d.notes,
    });
    if let Some(p) = d.pos {
        v["line"] = p.line.into();
        v["column"] = p.col.into();
    }
    if let Some(f) = &d.field {
        v["field"] = f.as_str().into();
    }
    v
}

fn changes_json(ch: &Changes) -> String {
    serde_json::json!({
        "upToDate": ch.is_empty(),
        "added": ch.added,
        "changed": ch.changed,
        "removed": ch.removed,
        "unchanged": ch.unchanged.len(),
        "foreign": ch.foreign,
    })
    .to_string()
}

fn list_cmd(a: &ListArgs) -> Result<(), Failure> {
    let sel = Selection { stacks: Vec::new(), all: true, envs: Vec::new() };
    let docs = load(&a.sources, &sel, false)?;
    let mut rows = Vec::new();
    let mut diags = Vec::new();
    for doc in &docs {
        let mut envs = Vec::new();
        for env in doc.env_names() {
            match doc.resolve(&env) {
                Ok(r) => {
                    let targets: Vec<&str> = r.targets.iter().map(|t| t.as_str()).collect();
                    let components = doc.components_of(&env);
                    envs.push(serde_json::json!({ "name": env, "targets": targets, "components": components }));
                }
                Err(mut e) => diags.append(&mut e),
            }
        }
        rows.push(serde_json::json!({ "stack": doc.name, "file": doc.file, "environments": envs }));
    }
    if !diags.is_empty() {
        normalize(&mut diags);
        return Err(Failure::Invalid(diags));
    }
    if a.format == Format::Json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for row in rows {
        println!("{}", row["stack"].as_str().unwrap_or_default());
        for env in row["environments"].as_array().into_iter().flatten() {
            let join = |k: &str| {
                env[k].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            };
            let comps = join("components");
            let comps = if comps.is_empty() { String::new() } else { format!(" (components: {comps})") };
            println!("  {}: {}{comps}", env["name"].as_str().unwrap_or_default(), join("targets"));
        }
    }
    Ok(())
}

fn validate_cmd(a: &ValidateArgs) -> Result<(), Failure> {
    let (mut docs, engine) = load_for_build(&a.sources, &a.selection, false)?;
    let (plan, warnings) = build(&mut docs, &a.selection, engine)?;
    print_diagnostics(&warnings);
    if plan.files.is_empty() {
        return Err(Failure::Other(anyhow::anyhow!("nothing to validate")));
    }
    println!(
        "ok: {} stack{}, {} files rendered in memory",
        docs.len(),
        if docs.len() == 1 { "" } else { "s" },
        plan.files.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::in_turns;

    #[test]
    fn in_turns_takes_one_item_of_each_run_at_a_time() {
        let same = |a: &&str, b: &&str| a == b;
        assert_eq!(in_turns(&["a", "a", "b", "c", "c", "c"], same), [0, 2, 3, 1, 4, 5]);
        assert_eq!(in_turns(&["a", "a", "a"], same), [0, 1, 2]);
        assert_eq!(in_turns(&["a", "a", "a", "b", "c"], same), [0, 3, 4, 1, 2]);
        assert_eq!(in_turns(&["a", "b", "c"], same), [0, 1, 2]);
        // Runs, not groups: a file never comes back after another.
        assert_eq!(in_turns(&["a", "b", "a"], same), [0, 1, 2]);
        assert!(in_turns(&[] as &[&str], same).is_empty());
    }
}
