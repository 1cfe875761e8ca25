#!/usr/bin/env python3
"""memfit's JS/TS source rules on large real open-source Node code, and ESLint running the
equivalent rules on the same files, side by side.

0. Runs the labelled corpus bench/js_leak_corpus (no network): recall and precision.
1. Installs (or reuses) express, fastify, socket.io, bull, mongoose, @nestjs/core and next
   from the npm registry into WORK (default /tmp/jsbench), copies each package's own sources
   (next: dist/server only) into a project tree the audit reads (it skips node_modules), and
   runs `memfit audit` on it: findings per thousand lines, every finding listed for review
   (the labels are in bench/README.md).
2. Times memfit audit against ESLint 9 with equivalent rules written as `no-restricted-syntax`
   selectors (tests/eslint-equivalent.config.mjs in WORK) on the same files.

    cargo build --release
    python3 bench/js_rules_precision.py [--work /tmp/jsbench]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMFIT = os.path.join(ROOT, "target", "release", "memfit")
PACKAGES = {
    "express": "node_modules/express",
    "fastify": "node_modules/fastify",
    "socket.io": "node_modules/socket.io",
    "bull": "node_modules/bull",
    "mongoose": "node_modules/mongoose",
    "@nestjs/core": "node_modules/@nestjs/core",
    "next (dist/server)": "node_modules/next/dist/server",
    # Applications, not frameworks: where a service's own leaks live.
    "node-red runtime": "node_modules/@node-red/runtime",
    "node-red nodes": "node_modules/@node-red/nodes",
    "node-red editor-api": "node_modules/@node-red/editor-api",
    "node-red registry": "node_modules/@node-red/registry",
    "node-red util": "node_modules/@node-red/util",
    "json-server": "node_modules/json-server",
    "http-server": "node_modules/http-server",
}
INSTALL = ["express", "fastify", "socket.io", "bull", "mongoose", "@nestjs/core", "@nestjs/common", "rxjs",
           "reflect-metadata", "next", "react", "react-dom", "eslint@9", "node-red", "json-server", "http-server"]
SOURCE_EXT = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")

# The same shapes as memfit's rules, as far as selectors can say them (no scopes, no
# data flow: ESLint needs a plugin for that; these give it the syntactic part of the work).
# ESM_FILES is replaced by the list of .js files written as ES modules (ESLint needs to be told;
# oxc finds out itself), so that ESLint parses every file instead of stopping at a parse error.
ESLINT_CONFIG = r"""
const rules = {
      "no-restricted-syntax": ["warn",
        { selector: "ExpressionStatement > CallExpression[callee.name='setInterval']", message: "interval-never-cleared" },
        { selector: "CallExpression[callee.property.name=/^(on|addListener|prependListener|addEventListener)$/] :function CallExpression[callee.property.name=/^(on|addListener)$/][callee.object.name='process']", message: "listener-per-call" },
        { selector: "Program > VariableDeclaration > VariableDeclarator[init.type='NewExpression'][init.callee.name=/^(Map|Set)$/]", message: "unbounded-module-cache" },
        { selector: "CallExpression[callee.property.name='on'][arguments.0.value='data'] > :function CallExpression[callee.property.name='push']", message: "unbounded-buffer" },
        { selector: ":function NewExpression[callee.name=/^(PrismaClient|Pool|MongoClient|Sequelize)$/]", message: "client-per-request" },
        { selector: "Program > ExpressionStatement > CallExpression[callee.name='setInterval']", message: "timer-keeps-process-alive" }
      ]
};
export default [
  { files: ["**/*.js", "**/*.cjs"], languageOptions: { ecmaVersion: "latest", sourceType: "commonjs" }, rules },
  { files: ["**/*.mjs", ...ESM_FILES], languageOptions: { ecmaVersion: "latest", sourceType: "module" }, rules },
];
"""
ESM_LINE = re.compile(rb"^\s*(import\s*[\w{*'\"]|export\s)", re.M)


def copy_sources(src, dst):
    lines = 0
    files = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "node_modules"]
        for name in filenames:
            if name.endswith(".d.ts") or name.endswith(".map"):
                continue
            if not name.endswith(SOURCE_EXT) and name != "package.json":
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            target = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(dirpath, name), target)
            if name.endswith(SOURCE_EXT):
                files += 1
                with open(target, "rb") as f:
                    lines += sum(1 for _ in f)
    return files, lines


SOURCE_RULES = {"interval-never-cleared", "listener-per-call", "unbounded-module-cache", "unbounded-buffer", "client-per-request", "timer-keeps-process-alive"}


def corpus():
    """Recall and precision on bench/js_leak_corpus: leak shapes from real reports (URL in each
    file) and their fixes, each labelled with the rules it must trigger (`// expect:`)."""
    import glob
    import re
    root = os.path.join(ROOT, "bench", "js_leak_corpus")
    out = subprocess.run([MEMFIT, "audit", root, "--format", "json", "--fail-on", "none"], stdout=subprocess.PIPE, check=True)
    got = {}
    for f in json.loads(out.stdout)["findings"]:
        if f["rule"] in SOURCE_RULES:
            got.setdefault(os.path.basename(f["file"]), set()).add(f["rule"])
    tp = fn = fp = 0
    print("## Labelled corpus (bench/js_leak_corpus)\n")
    print("| file | expected | found | |")
    print("|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(root, "*.*s"))):
        name = os.path.basename(path)
        with open(path) as fh:
            label = re.search(r"expect: (.*)", fh.read()).group(1).strip()
        expected = set() if label == "none" else {r.strip() for r in label.split(",")}
        found = got.get(name, set())
        tp += len(expected & found)
        fn += len(expected - found)
        fp += len(found - expected)
        mark = "ok" if expected == found else "MISS" if expected - found else "EXTRA"
        print(f"| {name} | {', '.join(sorted(expected)) or '-'} | {', '.join(sorted(found)) or '-'} | {mark} |")
    print(f"\nrecall {tp}/{tp + fn} = {tp / max(tp + fn, 1):.0%}, precision {tp}/{tp + fp} = {tp / max(tp + fp, 1):.0%}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/jsbench")
    args = ap.parse_args()
    corpus()
    work = args.work
    os.makedirs(work, exist_ok=True)
    if not os.path.exists(os.path.join(work, "package.json")):
        with open(os.path.join(work, "package.json"), "w") as f:
            f.write('{"name":"jsbench","private":true}')
    missing = [p for p in INSTALL if not os.path.exists(os.path.join(work, "node_modules", p.rsplit("@", 1)[0] if p.count("@") > p.startswith("@") else p))]
    if missing:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", *missing], cwd=work, check=True)
    tree = os.path.join(work, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    print("| package | files | lines | findings | per 1000 lines |")
    print("|---|---|---|---|---|")
    all_findings = []
    total_files = total_lines = 0
    for name, rel in PACKAGES.items():
        dst = os.path.join(tree, name.replace("/", "__").replace(" ", "_"))
        files, lines = copy_sources(os.path.join(work, rel), dst)
        if not os.path.exists(os.path.join(dst, "package.json")):
            # next/dist/server has no package.json of its own: it is library code.
            with open(os.path.join(dst, "package.json"), "w") as f:
                f.write('{"name":"next-server","main":"next-server.js"}')
        out = subprocess.run([MEMFIT, "audit", dst, "--format", "json", "--fail-on", "none"], stdout=subprocess.PIPE, check=True)
        report = json.loads(out.stdout)
        found = [f for f in report["findings"] if f["rule"] in SOURCE_RULES]
        for f in found:
            all_findings.append((name, f))
        total_files += files
        total_lines += lines
        print(f"| {name} | {files} | {lines} | {len(found)} | {len(found) * 1000 / max(lines, 1):.2f} |")
    print(f"| **all** | {total_files} | {total_lines} | {len(all_findings)} | {len(all_findings) * 1000 / max(total_lines, 1):.2f} |")
    print("\n## Every finding, for review\n")
    for name, f in all_findings:
        print(f"- {name}: `{f['file']}:{f['line']}` {f['rule']}: {f['message']}")

    # Speed, side by side on the same tree.
    eslint = os.path.join(work, "node_modules", ".bin", "eslint")
    config = os.path.join(work, "eslint-equivalent.config.mjs")
    esm = []
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            if name.endswith(".js"):
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    if ESM_LINE.search(f.read()):
                        esm.append(os.path.relpath(path, work))
    with open(config, "w") as f:
        f.write(ESLINT_CONFIG.replace("...ESM_FILES", ", ".join(json.dumps(p) for p in esm)))
    eslint_cmd = [eslint, "--no-config-lookup", "-c", config, "--no-inline-config", "--no-warn-ignored",
                  "--no-error-on-unmatched-pattern", "--format", "json", "tree/**/*.js", "tree/**/*.mjs", "tree/**/*.cjs"]
    if os.path.exists(eslint):
        # A run that lints nothing is fast: check that ESLint read every file and parsed them all.
        out = subprocess.run(eslint_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=work)
        results = json.loads(out.stdout or b"[]")
        fatal = [r["filePath"] for r in results if any(m.get("fatal") for m in r["messages"])]
        warned = sum(r["warningCount"] for r in results)
        print(f"\nESLint linted {len(results)} files ({len(fatal)} it could not parse), {warned} selector matches")
        if len(results) < 0.9 * total_files:
            sys.exit(f"ESLint linted {len(results)} of {total_files} files: the comparison would be meaningless ({out.stderr.decode()[:300]})")

    def timed(cmd, runs):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    t_memfit = timed([MEMFIT, "audit", tree, "--format", "json", "--fail-on", "none"], 5)
    print(f"\n## Speed on the same {total_files} files ({total_lines} lines)\n")
    print("| tool | median wall time |")
    print("|---|---|")
    print(f"| memfit audit (all rules, {os.cpu_count()} threads) | {t_memfit * 1000:.0f} ms |")
    if os.path.exists(eslint):
        t_eslint = timed(eslint_cmd, 3)
        print(f"| ESLint 9, equivalent no-restricted-syntax rules | {t_eslint * 1000:.0f} ms |")
        print(f"\nESLint / memfit = {t_eslint / t_memfit:.1f}×")
    else:
        print("(eslint not installed in WORK)")


if __name__ == "__main__":
    if not os.path.exists(MEMFIT):
        sys.exit("build first: cargo build --release")
    main()
