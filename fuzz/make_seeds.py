#!/usr/bin/env python3
"""Rebuilds the seed corpora in fuzz/corpus/TARGET/ from the project's own test inputs:
fixture projects and examples, Dockerfiles/JSON/YAML/TOML/JS written inline in the tests,
the explain log corpus, and the command lines of the README. Run from anywhere:
    python3 fuzz/make_seeds.py
The seeds are tracked with `git add -f fuzz/corpus` (libFuzzer's own additions are ignored).
"""
import hashlib
import pathlib
import re
import shlex
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
MAX_FILE = 8 * 1024  # larger fixture files (lockfiles) are left out

TEST_SOURCES = sorted(
    list((ROOT / "crates").glob("*/tests/*.rs")) + list((ROOT / "crates" / "memfit-audit" / "src").rglob("*.rs"))
)


# Seeds of the measured_run target (fuzz_targets/measured_run.rs): process trees of gunicorn,
# uvicorn and celery as real `memfit run` reports recorded them.
MEASURED_RUNS = [
    'gunicorn -w 2 app:app\n10 1 30 0 gunicorn: master [app:app]\n11 10 80 5 gunicorn: worker [app:app]\n12 10 90 6 gunicorn\n',
    '/usr/bin/python3 -m uvicorn main:app --workers 2\n30 1 20 0 /usr/bin/python3 -m uvicorn main:app --workers 2\n31 30 9 3 /usr/bin/python3 -c from multiprocessing.resource_tracker import main;main(5)\n32 30 70 4 /usr/bin/python3 -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=6, pipe_handle=8) --multiprocessing-fork\n',
    'celery -A tasks worker -c 2\n50 1 43 0 [celeryd: celery@vm:MainProcess] -active- (-A tasks worker -c 2)\n51 50 115 2 [celeryd: celery@vm:ForkPoolWorker-1]\n52 51 115 1 /venv/bin/python3 /venv/bin/gunicorn -w 1 x:y\n53 52 10 3 gunicorn\n',
]


def rust_strings(text):
    """Rust string literals: "…" with escapes, and r#"…"# raw strings."""
    for m in re.finditer(r'r#"(.*?)"#', text, re.S):
        yield m.group(1)
    for m in re.finditer(r'(?<![r#\w])"((?:[^"\\\n]|\\.)*)"', text):
        s = m.group(1)
        if "\\u{" in s:
            continue
        out, i = [], 0
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s):
                out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0", "'": "'"}.get(s[i + 1], s[i + 1]))
                i += 2
            else:
                out.append(c)
                i += 1
        yield "".join(out)


def all_test_strings():
    for path in TEST_SOURCES:
        yield from rust_strings(path.read_text(errors="replace"))


def save(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def fixture_projects():
    dirs = sorted((ROOT / "crates" / "memfit-cli" / "tests" / "fixtures" / "audit").iterdir())
    dirs += sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
    return dirs


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    strings = list(dict.fromkeys(all_test_strings()))

    # dockerfile: the Dockerfiles of the fixtures and those written in the tests.
    dockerfiles = [p.read_text() for d in fixture_projects() for p in d.rglob("Dockerfile")]
    dockerfiles += [s for s in strings if re.match(r"(#[^\n]*\n)*\s*(FROM|ARG)\s", s) and "\n" in s]
    for s in dockerfiles:
        save("dockerfile", s)

    # structured: first byte 0 JSON, 1 JSONC, 2 YAML, 3 TOML.
    for d in fixture_projects():
        for p in d.rglob("*"):
            if not p.is_file() or p.stat().st_size > MAX_FILE:
                continue
            name = p.name.lower()
            if name.endswith(".json"):
                save("structured", bytes([1 if name.startswith("tsconfig") else 0]) + p.read_bytes())
            elif name.endswith((".yaml", ".yml")):
                save("structured", b"\x02" + p.read_bytes())
            elif name.endswith(".toml"):
                save("structured", b"\x03" + p.read_bytes())
    for s in strings:
        if re.search(r"^\s*\w[\w-]*:\s", s, re.M) and ("services" in s or "kind:" in s or "containers" in s):
            save("structured", "\x02" + s)
        elif re.search(r"^\s*\[[\w.-]+\]\s*$", s, re.M) or re.match(r'^\s*(limit|platform|ignore)\s*=', s):
            save("structured", "\x03" + s)
        elif s.lstrip().startswith("{") and '"' in s and len(s) > 20:
            save("structured", "\x00" + s)

    # project: each fixture project and example, files joined as the target reads them.
    for d in fixture_projects():
        files = []
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.stat().st_size <= MAX_FILE and not p.name.endswith(".svg"):
                files.append(f"{p.relative_to(d)}\n".encode() + p.read_bytes())
        save("project", b"\0".join(files))
    package = (ROOT / "examples" / "render-api" / "package.json").read_bytes()
    for i, s in enumerate(dockerfiles[:40]):
        extra = [b'memfit.toml\nlimit = "512M"\n'] if i % 2 else [b"fly.toml\n[[vm]]\nmemory = '256mb'\n"]
        save("project", b"\0".join([b"Dockerfile\n" + s.encode(), b"package.json\n" + package] + extra))

    # js: first byte picks the extension (fuzz_targets/js.rs NAMES).
    ext = {".js": 0, ".ts": 1, ".tsx": 2, ".jsx": 3, ".mjs": 4, ".cjs": 5, ".mts": 6, ".cts": 7}
    sources = [p for p in (ROOT / "bench" / "js_leak_corpus").iterdir()]
    sources += [p for d in fixture_projects() for p in d.rglob("*") if p.suffix in ext and p.is_file()]
    for p in sources:
        if p.suffix in ext and p.stat().st_size <= MAX_FILE:
            save("js", bytes([ext[p.suffix]]) + p.read_bytes())
    for s in strings:
        if re.search(r"\b(setInterval|require\(|import |function |=>|\.on\()", s) and "\n" in s:
            save("js", "\x00" + s)

    # explain: the log corpus; first byte 0 = no exit status, 6 = 137.
    for i, p in enumerate(sorted((ROOT / "crates" / "memfit-explain" / "tests" / "corpus").glob("*.log"))):
        save("explain", bytes([6 if i % 3 == 0 else 0]) + p.read_bytes())

    # Inputs that crashed a target once (each also a test in crates/memfit-cli/tests/fuzz_regressions.rs).
    save("dockerfile", b"FROM node:20\nRUN --link\xc2\x85npm ci\n")
    save("dockerfile", b"FROM node:20\nONBUILD RUN\xc2\x85npm ci\n")
    save("cli_args", b"guard\0--grace\x0099999999999999999999s\0--\0true")

    # cli_args: every `memfit …` command line of the README and the --help examples.
    texts = [(ROOT / "README.md").read_text(), (ROOT / "crates" / "memfit-cli" / "src" / "args.rs").read_text()]
    for text in texts:
        for m in re.finditer(r"^\s*\$?\s*memfit ([^\n`|>#]*)", text, re.M):
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                continue
            if words:
                save("cli_args", "\0".join(words))

    # measured_run: the first line the run's command, then `pid ppid peak_mib started_ms command`
    # of the servers audit --from recognises (as real runs of gunicorn, uvicorn and celery
    # recorded them).
    for seed in MEASURED_RUNS:
        save("measured_run", seed)


main()
