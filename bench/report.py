#!/usr/bin/env python3
"""Prints bench/run's Markdown report from its case list and hyperfine JSON.

usage: report.py CASES_TSV JSON_DIR ENV_TSV

CASES_TSV lines: id, label, services, files, json file, hyperfine command
name, max RSS (KiB), status (ok | rejected), note. Thresholds are issue 8's:
a 10,000-service render over 2 s, a peak RSS over 500 MB, or a cost per
service that grows from 1,000 to 10,000 services.
"""
import json
import math
import os
import re
import sys

SLOW_S = 2.0  # the 10,000-service render should take at most this
RSS_LIMIT_MB = 500.0  # peak memory of any case
GROWTH_LIMIT = 1.2  # cost per service at the largest size / at 1,000 (20% for noise)


def load_cases(path):
    cases = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            cid, label, n, files, js, name, rss, status, note = (line.split("\t") + [""] * 9)[:9]
            cases.append(
                {
                    "id": cid,
                    "label": label,
                    "n": int(n) if n.isdigit() else None,
                    "files": files,
                    "json": js,
                    "name": name,
                    "rss_kib": int(rss) if rss.isdigit() else None,
                    "status": status,
                    "note": note,
                }
            )
    return cases


def timing(json_dir, case):
    """(mean s, stddev s, median s, runs, mean user+system CPU s) of a case from its hyperfine export."""
    with open(os.path.join(json_dir, case["json"]), encoding="utf-8") as f:
        data = json.load(f)
    for r in data["results"]:
        if r["command"] == case["name"]:
            return r["mean"], r["stddev"] or 0.0, r["median"], len(r["times"]), r["user"] + r["system"]
    raise SystemExit(f"report: no result `{case['name']}` in {case['json']}")


def fmt_ms(s):
    ms = s * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def mib(kib):
    return kib / 1024


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cases = load_cases(sys.argv[1])
    json_dir = sys.argv[2]
    env = []
    with open(sys.argv[3], encoding="utf-8") as f:
        env = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]

    for c in cases:
        if c["status"] == "ok":
            c["mean"], c["sd"], c["median"], c["runs"], c["cpu"] = timing(json_dir, c)

    out = []
    w = out.append
    w("## stackgen benchmark (bench/run)")
    w("")
    for k, v in env:
        w(f"- {k}: {v}")
    w("")
    w("| case | services | files | runs | mean ± stddev (ms) | median (ms) | CPU user+sys (ms) | ms / service | max RSS (MB) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        n = f"{c['n']:,}" if c["n"] else "–"
        if c["status"] != "ok":
            w(f"| {c['label']} | {n} | – | – | **REJECTED**: {c['note'].replace('|', '/')} | – | – | – | – |")
            continue
        per = f"{c['median'] * 1000 / c['n']:.3f}" if c["n"] else "–"
        rss = f"{mib(c['rss_kib']):.1f}" if c["rss_kib"] is not None else "–"
        w(
            f"| {c['label']} | {n} | {c['files']} | {c['runs']} | {fmt_ms(c['mean'])} ± {fmt_ms(c['sd'])} "
            f"| {fmt_ms(c['median'])} | {fmt_ms(c['cpu'])} | {per} | {rss} |"
        )
    w("")
    w("max RSS: MiB (2^20 bytes) of peak resident set size; built-in cases: one extra `/usr/bin/time -v` run,")
    w("generated stacks: `/usr/bin/time -f %M` around every timed run, the largest shown. CPU: hyperfine's mean")
    w("user + system time, which a loaded machine disturbs less than the wall time. ms / service and the")
    w("cost-per-service verdicts use the median, which one slow run does not move.")
    w("")

    by_id = {c["id"]: c for c in cases}
    flags = []

    # Ratio, from the one hyperfine run that timed both.
    r, k = by_id.get("builtin"), by_id.get("kustomize")
    if r and k and r["status"] == k["status"] == "ok":
        ratio = r["mean"] / k["mean"]
        err = ratio * math.sqrt((r["sd"] / r["mean"]) ** 2 + (k["sd"] / k["mean"]) ** 2)
        w(
            f"**Ratio** (same hyperfine run): render of all built-in stacks / `kubectl kustomize "
            f"rendered/loops/prod/kubernetes` = {fmt_ms(r['mean'])} ms / {fmt_ms(k['mean'])} ms = "
            f"**{ratio:.2f} ± {err:.2f}**"
        )
        w("")
        # The same denominator for the rows that bound the ratio from below.
        parts = []
        for cid, what in (
            ("builtin-check", "render --check (everything but writing)"),
            ("untar", "writing the same tree alone (`tar -xf`)"),
            ("version", "starting stackgen (`--version`)"),
        ):
            c = by_id.get(cid)
            if c and c["status"] == "ok":
                parts.append(f"{what} {fmt_ms(c['mean'])} ms = {c['mean'] / k['mean']:.3f}")
        if parts:
            w("Against the same kustomize run: " + "; ".join(parts) + ".")
            w("")

    # Cost per service and its growth.
    w("**Cost per service** (median time / services):")
    w("")
    for suffix, what in (
        ("", "render, fresh output"),
        ("-check", "render --check, no writes"),
        ("-tmpfs", "render into tmpfs"),
    ):
        pattern = re.compile(r"^k[0-9]+" + re.escape(suffix) + "$")
        series = [(c["n"], c["median"] / c["n"]) for c in cases if pattern.match(c["id"]) and c["status"] == "ok"]
        series.sort()
        if not series:
            continue
        w(f"- {what}: " + ", ".join(f"{n:,}: {per * 1000:.3f} ms" for n, per in series))
        base = dict(series).get(1000)
        if base is None:
            continue
        largest_n, largest = series[-1]
        if largest_n <= 1000:
            continue
        growth = largest / base
        rejected_10k = by_id.get("k10000", {}).get("status") == "rejected"
        note = " (10,000 was rejected; the largest size that rendered is used)" if rejected_10k and largest_n < 10000 else ""
        verdict = "GROWS (superlinear)" if growth > GROWTH_LIMIT else "flat (linear)"
        w(f"  - 1,000 → {largest_n:,}: ×{growth:.2f} per service → **{verdict}**{note}")
        if growth > GROWTH_LIMIT:
            flags.append(f"cost per service ({what}) grows ×{growth:.2f} from 1,000 to {largest_n:,} services")
    w("")

    # The monorepo case against the one-file stack of as many services.
    for c in cases:
        if not re.match(r"^m[0-9]+$", c["id"]) or c["status"] != "ok":
            continue
        one = by_id.get(f"k{c['n']}")
        what = c["label"].split(": ", 1)[-1].rsplit(": render", 1)[0]
        line = f"**Monorepo**, {what}: render median {fmt_ms(c['median'])} ms"
        if one and one["status"] == "ok":
            line += (
                f", ×{c['median'] / one['median']:.2f} the median of the same {c['n']:,} services in one stack file"
                f" ({fmt_ms(one['median'])} ms)"
            )
        w(line + ".")
        w("")

    big = by_id.get("k10000")
    if big is None:
        flags.append("the 10,000-service case was not run (BENCH_SIZES)")
    elif big["status"] != "ok":
        flags.append(f"the 10,000-service stack is rejected: {big['note']}")
    elif big["mean"] > SLOW_S:
        flags.append(f"the 10,000-service render takes {big['mean']:.2f} s (> {SLOW_S:.0f} s)")
    for c in cases:
        if c["rss_kib"] is not None and mib(c["rss_kib"]) > RSS_LIMIT_MB:
            flags.append(f"{c['label']}: max RSS {mib(c['rss_kib']):.0f} MB (> {RSS_LIMIT_MB:.0f} MB)")
    w("**Flags** (issue 8 thresholds: 10,000 services > 2 s, max RSS > 500 MB, cost per service growing):")
    w("")
    if flags:
        for f in flags:
            w(f"- ⚠ {f}")
    else:
        w("- none")
    w("")
    w("Commands timed (`$BIN` = a copy of target/release/stackgen, run from an empty directory; `$OUT` is")
    w("moved aside before every render run by hyperfine `--prepare` (bench/aside; tmpfs: removed)):")
    w("")
    w("```")
    w("$BIN render --all --quiet --out $OUT                          # built-in stacks")
    w("$BIN render --all --check --quiet --out $TREE                 # up-to-date tree")
    w("kubectl kustomize $TREE/loops/prod/kubernetes")
    w("tar -xf $WORK/tree.tar -C $UNTAR -m --no-same-owner --no-same-permissions   # the tree above, archived; $UNTAR/rendered moved aside before each run")
    w("$BIN --version")
    w("$BIN render --all --quiet --stacks $STACKS/kN --out $OUT      # generated: bench/gen_stack.py N $STACKS/kN")
    w("$BIN render --all --check --quiet --stacks $STACKS/kN --out $OUT")
    w("$BIN render --all --quiet --stacks $STACKS/kN --out $SHM/kN   # $SHM: a directory on /dev/shm (tmpfs)")
    w("$BIN render --all --quiet --stacks $STACKS/kcN --out $OUT     # bench/gen_stack.py N $STACKS/kcN --compose")
    w("$BIN render --all --quiet --stacks $STACKS/mN --out $OUT      # bench/gen_stack.py N $STACKS/mN --apps=M (M stack files)")
    w("/usr/bin/time -v <built-in cases>; /usr/bin/time -f %M <generated cases>   # max RSS")
    w("```")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
