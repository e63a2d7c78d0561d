#!/usr/bin/env python3
"""Schema checks over stackgen's rendered tree; the Python half of .ci/conformance.

Runs inside target/ci-venv (see .ci/requirements.txt). Sub-commands:

  manifests RENDERED --crd-dir DIR --kube-version V --counts FILE
      Every YAML document in RENDERED/*/*/{kubernetes,gitops}/*.yaml, routed by API group:
      core Kubernetes groups go through kubernetes-validate in strict mode (its library
      entry point, the same code path as `kubernetes-validate --strict -k V`), everything
      else is a custom resource checked against DIR/<group>/<kind>_<version>.json with a
      draft-07 validator made strict for unknown fields. A CR without a schema fails.
  kustomize-refs RENDERED --counts FILE
      Every manifest in a directory that has a kustomization.yaml is listed by it (a file
      the kustomization does not reference would never be applied).
  compose RENDERED --schema FILE --counts FILE
      Every RENDERED/*/*/compose/compose.yaml against the Compose Specification (draft-07).
  envfile SRC DST
      Copy a .env.example to DST, giving every empty `NAME=` a dummy value so that
      required `${NAME:?msg}` references resolve.

Each check prints one `PASS ...` or `FAIL ...` line (details indented below a failure);
`--counts` receives "<passed> <failed>" for the caller's summary. Exit status: 0 when
nothing failed, 1 when a check failed, 2 when the tool itself could not run.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import re
import sys
from typing import Any, Iterable

try:
    import yaml
except ImportError as exc:  # an environment problem, not a check result
    sys.exit(f"validate_schemas.py: error: missing module ({exc}); run it with target/ci-venv/bin/python")

# The schema libraries take a while to import; `envfile` runs once per compose file and
# needs none of them, so they are imported on first use (see load_schema_libraries).
jsonschema = kv = importlib_resources = Registry = Resource = None


def load_schema_libraries() -> None:
    global jsonschema, kv, importlib_resources, Registry, Resource
    try:
        import jsonschema
        import importlib_resources
        import kubernetes_validate.utils as kv
        from referencing import Registry, Resource
    except ImportError as exc:
        sys.exit(f"validate_schemas.py: error: missing module ({exc}); run it with target/ci-venv/bin/python")


# API groups served by the Kubernetes API server itself (schemas come with kubernetes-validate).
# Anything else, including *.k8s.io groups installed as CRDs (gateway.networking.k8s.io,
# snapshot.storage.k8s.io, ...), is a custom resource and needs a schema in the CRD directory.
CORE_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "authentication.k8s.io", "authorization.k8s.io", "certificates.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io", "networking.k8s.io",
    "node.k8s.io", "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io",
    "storage.k8s.io", "storagemigration.k8s.io",
})
KUSTOMIZE_GROUP = "kustomize.config.k8s.io"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
OBJECT_META_REF = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
MAX_ERRORS_PER_DOC = 20


class ToolError(Exception):
    """The checker cannot do its job (bad arguments, unusable schema set): exit 2."""


# --------------------------------------------------------------------------- YAML loading

class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, adjusted to read documents the way Kubernetes does.

    - Duplicate mapping keys are an error (the API server's strict decoding rejects them;
      PyYAML would silently keep the last one).
    - Timestamps stay strings: go-yaml (kubectl, Compose) only makes a time when decoding
      into a time field, so `date: 2024-01-01` is a string there, not a date object.
    - A bare `=` is the string "=" (https://github.com/yaml/pyyaml/issues/89).
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # let the base class raise its own error for unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_documents(path: str) -> list[Any]:
    """All non-empty documents of a YAML file; raises yaml.YAMLError on bad YAML."""
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=Loader) if doc is not None]


# --------------------------------------------------------------------------- reporting

class Tally:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, check: str, path: str, detail: str) -> None:
        self.passed += 1
        print(f"PASS {check} {path}: {detail}" if detail else f"PASS {check} {path}")

    def fail(self, check: str, path: str, problems: Iterable[str]) -> None:
        self.failed += 1
        print(f"FAIL {check} {path}")
        for problem in problems:
            for i, line in enumerate(str(problem).splitlines() or [""]):
                print(("    - " if i == 0 else "      ") + line)

    def write(self, counts_file: str | None) -> int:
        if counts_file:
            with open(counts_file, "w", encoding="utf-8") as handle:
                handle.write(f"{self.passed} {self.failed}\n")
        return 1 if self.failed else 0


def check_schema(schema: Any, path: str) -> None:
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolError(f"{path}: not a valid draft-07 schema: {exc.message}") from exc


def error_path(error: jsonschema.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    return ".".join(str(p) for p in (*prefix, *error.absolute_path)) or "(root)"


def describe_errors(validator: jsonschema.protocols.Validator, instance: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    shown = [f"{error_path(e, prefix)}: {e.message}" for e in errors[:MAX_ERRORS_PER_DOC]]
    if len(errors) > MAX_ERRORS_PER_DOC:
        shown.append(f"... and {len(errors) - MAX_ERRORS_PER_DOC} more")
    return shown


# --------------------------------------------------------------------------- Kubernetes manifests

def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def tighten(node: Any) -> int:
    """Make a CRD schema reject unknown fields the way the API server does.

    The server treats an object schema with `properties` and without `additionalProperties`
    as closed (unknown fields are pruned, and rejected under kubectl's default strict field
    validation) unless `x-kubernetes-preserve-unknown-fields: true`. JSON Schema treats it
    as open, so add `additionalProperties: false` there. Only the structural part is walked
    (properties, items, additionalProperties): allOf/anyOf/oneOf/not branches in a
    structural schema only constrain values and must stay open. Returns nodes changed.
    """
    if not isinstance(node, dict):
        return 0
    changed = 0
    if ("properties" in node and "additionalProperties" not in node
            and node.get("x-kubernetes-preserve-unknown-fields") is not True):
        node["additionalProperties"] = False
        changed += 1
    for child in (node.get("properties") or {}).values():
        changed += tighten(child)
    items = node.get("items")
    for child in items if isinstance(items, list) else [items]:
        changed += tighten(child)
    changed += tighten(node.get("additionalProperties"))
    return changed


class ManifestChecker:
    def __init__(self, crd_dir: str, kube_version: str) -> None:
        self.crd_dir = crd_dir
        self.kube_version = kube_version.lstrip("v")
        if self.kube_version not in kv.all_versions():
            raise ToolError(
                f"kubernetes-validate {kv.__version__} has no schemas for Kubernetes {kube_version} "
                f"(it has {', '.join(kv.all_versions())})")
        if not os.path.isdir(crd_dir):
            raise ToolError(f"CRD schema directory not found: {crd_dir}")
        self.tightened: dict[str, int] = {}
        defs_ref = importlib_resources.files("kubernetes_validate").joinpath(
            f"kubernetes-json-schema/v{self.kube_version}-local-strict/_definitions.json")
        with importlib_resources.as_file(defs_ref) as defs_path, open(defs_path, encoding="utf-8") as handle:
            definitions = json.load(handle)
        # Custom resources share ObjectMeta with everything else; the CRD schemas leave
        # `metadata` open (or leave it out), so check it against Kubernetes' strict ObjectMeta.
        registry = Resource.from_contents(definitions) @ Registry()
        self.object_meta = jsonschema.Draft202012Validator({"$ref": OBJECT_META_REF}, registry=registry)

    @functools.lru_cache(maxsize=None)
    def crd_validator(self, schema_path: str) -> jsonschema.Draft7Validator:
        with open(schema_path, encoding="utf-8") as handle:
            schema = json.load(handle)
        if not isinstance(schema.get("properties"), dict):
            raise ToolError(f"{schema_path}: not an object schema with properties")
        schema["properties"]["metadata"] = {"type": "object"}  # checked separately, see above
        self.tightened[schema_path] = tighten(schema)
        check_schema(schema, schema_path)
        return jsonschema.Draft7Validator(schema)

    def check_document(self, doc: Any) -> tuple[str, list[str]]:
        """Returns (summary of the document, problems); no problems means it passed."""
        if not isinstance(doc, dict):
            return "?", [f"document is a {type(doc).__name__}, not a mapping"]
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not api_version or not isinstance(kind, str) or not kind:
            return "?", ["apiVersion and kind must both be non-empty strings"]
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        summary = f"{api_version} {kind} {name or '?'}"
        problems = []
        if not (isinstance(name, str) and name):
            problems.append("metadata.name: missing (every rendered resource needs a name)")
        group, version = split_api_version(api_version)
        if group in CORE_GROUPS:
            try:
                kv.validate(doc, self.kube_version, strict=True)
            except kv.ValidationError as exc:
                problems.append(f"{error_path(exc)}: {exc.message}")
            except kv.SchemaNotFoundError as exc:
                # The CLI only warns here and exits 0; an unknown core kind is a failure.
                problems.append(exc.message)
            return summary + f" (kubernetes-validate {self.kube_version} strict)", problems
        if group == KUSTOMIZE_GROUP:
            problems.append(f"{KUSTOMIZE_GROUP} document outside a kustomization.yaml")
            return summary, problems
        schema_path = os.path.join(self.crd_dir, group, f"{kind.lower()}_{version}.json")
        if not group or not os.path.isfile(schema_path):
            problems.append(f"no schema for custom resource {kind} {api_version} (looked for {schema_path})")
            return summary, problems
        problems += describe_errors(self.crd_validator(schema_path), doc)
        if metadata is not None:
            problems += describe_errors(self.object_meta, metadata, prefix=("metadata",))
        return summary + f" (CRD schema {os.path.relpath(schema_path, self.crd_dir)})", problems


def manifest_files(rendered: str) -> list[str]:
    found = []
    for sub in ("kubernetes", "gitops"):
        for pattern in ("*.yaml", "*.yml"):
            found += glob.glob(os.path.join(glob.escape(rendered), "*", "*", sub, pattern))
    # glob skips dot-files, so the .stackgen* ownership manifests are left out already.
    return sorted(p for p in found if not os.path.basename(p).startswith(".stackgen"))


def is_kustomize_config(path: str, docs: list[Any]) -> bool:
    if os.path.basename(path) not in KUSTOMIZATION_NAMES or len(docs) != 1 or not isinstance(docs[0], dict):
        return False
    api_version = docs[0].get("apiVersion")
    # kustomize accepts a kustomization without apiVersion/kind.
    return api_version is None or split_api_version(str(api_version))[0] == KUSTOMIZE_GROUP


def cmd_manifests(args: argparse.Namespace) -> int:
    checker = ManifestChecker(args.crd_dir, args.kube_version)
    tally = Tally()
    for path in manifest_files(args.rendered):
        try:
            docs = load_documents(path)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            tally.fail("schema", path, [f"not valid YAML: {exc}"])
            continue
        if not docs:
            tally.fail("schema", path, ["no YAML documents in file"])
            continue
        if is_kustomize_config(path, docs):
            print(f"SKIP schema {path}: kustomize configuration (checked by kubectl kustomize)")
            continue
        summaries, problems = [], []
        for index, doc in enumerate(docs):
            summary, doc_problems = checker.check_document(doc)
            summaries.append(summary)
            where = f"document {index + 1} ({summary}): " if len(docs) > 1 else f"{summary}: "
            problems += [where + p for p in doc_problems]
        if problems:
            tally.fail("schema", path, problems)
        else:
            tally.ok("schema", path, "; ".join(summaries))
    if checker.tightened:
        print("note: unknown fields made errors where a CRD schema left additionalProperties unset: "
              + ", ".join(f"{os.path.relpath(p, args.crd_dir)} ({n})" for p, n in sorted(checker.tightened.items())))
    return tally.write(args.counts)


# --------------------------------------------------------------------------- kustomization references

def referenced_paths(value: Any) -> set[str]:
    """Every string in a kustomization that could name a local file or directory."""
    if isinstance(value, str):
        return {os.path.normpath(value)}
    if isinstance(value, dict):
        return set().union(*(referenced_paths(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(referenced_paths(v) for v in value)) if value else set()
    return set()


def cmd_kustomize_refs(args: argparse.Namespace) -> int:
    tally = Tally()
    for path in manifest_files(args.rendered):
        if os.path.basename(path) not in KUSTOMIZATION_NAMES:
            continue
        directory = os.path.dirname(path)
        try:
            docs = load_documents(path)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            tally.fail("kustomize-refs", directory, [f"{path}: not valid YAML: {exc}"])
            continue
        if not is_kustomize_config(path, docs):
            continue  # e.g. a Flux Kustomization named kustomization.yaml: a resource, not a root
        refs = referenced_paths(docs)
        orphans = [
            os.path.basename(p) for p in manifest_files(args.rendered)
            if os.path.dirname(p) == directory and os.path.basename(p) not in KUSTOMIZATION_NAMES
            and os.path.basename(p) not in refs
        ]
        if orphans:
            tally.fail("kustomize-refs", directory,
                       [f"{name}: not referenced by {os.path.basename(path)}, so it is never applied"
                        for name in orphans])
        else:
            tally.ok("kustomize-refs", directory, "every manifest is referenced")
    return tally.write(args.counts)


# --------------------------------------------------------------------------- compose

def cmd_compose(args: argparse.Namespace) -> int:
    with open(args.schema, encoding="utf-8") as handle:
        schema = json.load(handle)
    check_schema(schema, args.schema)
    validator = jsonschema.Draft7Validator(schema)
    tally = Tally()
    for path in sorted(glob.glob(os.path.join(glob.escape(args.rendered), "*", "*", "compose", "compose.yaml"))):
        try:
            docs = load_documents(path)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            tally.fail("compose-schema", path, [f"not valid YAML: {exc}"])
            continue
        if len(docs) != 1:
            tally.fail("compose-schema", path, [f"expected exactly one YAML document, found {len(docs)}"])
            continue
        problems = describe_errors(validator, docs[0])
        if problems:
            tally.fail("compose-schema", path, problems)
        else:
            tally.ok("compose-schema", path, "Compose Specification")
    return tally.write(args.counts)


EMPTY_ASSIGNMENT = re.compile(r"""^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:""|'')?\s*$""")
# One value that is valid wherever Compose may interpolate it: a password, a host port,
# an image tag, a user id, a count. A word like "dummy" breaks `ports: "${PORT}:80"`.
DUMMY_VALUE = "1"


def cmd_envfile(args: argparse.Namespace) -> int:
    lines = []
    if os.path.exists(args.src):
        with open(args.src, encoding="utf-8") as handle:
            for line in handle.read().splitlines():
                match = EMPTY_ASSIGNMENT.match(line)
                lines.append(f"{match.group(1)}={DUMMY_VALUE}" if match else line)
    with open(args.dst, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + ("\n" if lines else ""))
    return 0


# --------------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("manifests")
    p.add_argument("rendered")
    p.add_argument("--crd-dir", required=True)
    p.add_argument("--kube-version", required=True)
    p.add_argument("--counts")
    p.set_defaults(func=cmd_manifests)
    p = sub.add_parser("kustomize-refs")
    p.add_argument("rendered")
    p.add_argument("--counts")
    p.set_defaults(func=cmd_kustomize_refs)
    p = sub.add_parser("compose")
    p.add_argument("rendered")
    p.add_argument("--schema", required=True)
    p.add_argument("--counts")
    p.set_defaults(func=cmd_compose)
    p = sub.add_parser("envfile")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=cmd_envfile)
    args = parser.parse_args(argv)
    if args.func is not cmd_envfile:
        load_schema_libraries()
    try:
        return args.func(args)
    except (ToolError, OSError) as exc:
        print(f"validate_schemas.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
