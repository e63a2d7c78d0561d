#!/usr/bin/env python3
"""Extracts the Kubernetes schemas stackgen embeds.

Input: the `vX.Y.Z-local-strict` directory of the kubernetes-validate wheel
(JSON Schema renderings of the Kubernetes OpenAPI, Apache-2.0). Output:
`schemas/kubernetes/vX.Y.json`: for each kind stackgen can emit, its root
schema, plus every definition those reach, descriptions dropped. Run when
adding a kind or a Kubernetes version:

    python3 schemas/extract.py <site-packages>/kubernetes_validate/kubernetes-json-schema/v1.32.0-local-strict 1.32

and, for the CRD and Compose schemas from ../shared/schemas (descriptions dropped):

    python3 schemas/extract.py --minify ../shared/schemas/crds/<group>/<kind>_<version>.json ... ../shared/schemas/compose-spec.json
"""
import json
import sys
from pathlib import Path

KINDS = {
    "v1/Namespace": "namespace-v1.json",
    "v1/ConfigMap": "configmap-v1.json",
    "v1/Service": "service-v1.json",
    "v1/PersistentVolumeClaim": "persistentvolumeclaim-v1.json",
    "apps/v1/Deployment": "deployment-apps-v1.json",
    "apps/v1/StatefulSet": "statefulset-apps-v1.json",
    "batch/v1/Job": "job-batch-v1.json",
    "batch/v1/CronJob": "cronjob-batch-v1.json",
    "networking.k8s.io/v1/NetworkPolicy": "networkpolicy-networking-v1.json",
    "networking.k8s.io/v1/Ingress": "ingress-networking-v1.json",
}
PREFIX = "/api/_definitions.json#/$defs/"


def strip(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("description", "x-kubernetes-group-version-kind", "format", "x-kubernetes-list-map-keys",
                     "x-kubernetes-list-type", "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy",
                     "x-kubernetes-map-type", "x-kubernetes-unions", "$schema", "$id"):
                continue
            if k == "$ref" and isinstance(v, str) and v.startswith(PREFIX):
                v = "#/$defs/" + v[len(PREFIX):]
            out[k] = strip(v)
        return out
    if isinstance(node, list):
        return [strip(x) for x in node]
    return node


def refs(node, acc):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/$defs/"):
            acc.add(r[len("#/$defs/"):])
        for v in node.values():
            refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            refs(v, acc)


def minify(src):
    """Copies a CRD or Compose schema without descriptions, compactly. A CRD
    loses its root `status` too, as the Kubernetes kinds do: the controller
    writes it, a manifest has none (Argo CD's Application status was two
    thirds of its schema, parsed in every run that renders one)."""
    src = Path(src)
    rel = src.relative_to(src.parents[1]) if src.parent.name != "schemas" else Path(src.name)
    dest = Path(__file__).parent / ("crds" if src.parent.name != "schemas" else "") / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    node = json.loads(src.read_text())

    def drop(n):
        if isinstance(n, dict):
            return {k: drop(v) for k, v in n.items() if k != "description" or not isinstance(v, str)}
        if isinstance(n, list):
            return [drop(x) for x in n]
        return n

    node = drop(node)
    if src.parent.name != "schemas":
        node.get("properties", {}).pop("status", None)
    dest.write_text(json.dumps(node, sort_keys=True, separators=(",", ":")) + "\n")
    print(dest, dest.stat().st_size)


def main():
    if sys.argv[1] == "--minify":
        for f in sys.argv[2:]:
            minify(f)
        return
    src, version = Path(sys.argv[1]), sys.argv[2]
    defs_all = json.loads((src / "_definitions.json").read_text())["$defs"]
    kinds = {}
    wanted = set()
    for kind, file in KINDS.items():
        root = strip(json.loads((src / file).read_text()))
        root["properties"].pop("status", None)
        kinds[kind] = root
        refs(root, wanted)
    defs, todo = {}, sorted(wanted)
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        d = strip(defs_all[name])
        defs[name] = d
        more = set()
        refs(d, more)
        todo.extend(sorted(more - set(defs)))
    out = {
        "source": "kubernetes-validate %s (%s), JSON Schema of the Kubernetes OpenAPI; Apache-2.0" % (src.name, version),
        "kinds": kinds,
        "$defs": dict(sorted(defs.items())),
    }
    dest = Path(__file__).parent / "kubernetes" / f"v{version}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, sort_keys=True, separators=(",", ":")) + "\n")
    print(dest, dest.stat().st_size)


main()
