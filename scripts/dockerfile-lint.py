#!/usr/bin/env python3
"""Lints the project's Dockerfiles where no Docker daemon can build them.

For each Dockerfile given: every FROM names a pinned tag (not `latest`); every COPY from the
build context names a path that exists in the repository (the context is the repository
root); the build stage runs `cargo build --release --locked -p PKG`, PKG is a workspace
package, and the binary copied out of target/release is one of PKG's binaries; the final
stage runs as a user other than root, with ENTRYPOINT and CMD in exec (JSON) form; and the
config files the CMD passes are copied into the image and pass the binary's own
`--check-config` (run with the debug build in target/ and the image's ENV).

    scripts/dockerfile-lint.py DOCKERFILE...
"""
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def instructions(path):
    """(keyword, argument text) pairs, with continuation lines joined."""
    out, current = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            keyword, _, rest = current.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def workspace_bins():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    return {
        p["name"]: {t["name"] for t in p["targets"] if "bin" in t["kind"]}
        for p in meta["packages"]
    }


def lint(path, bins):
    errors = []
    steps = instructions(path)
    stages = [i for i, (k, _) in enumerate(steps) if k == "FROM"]
    if not stages:
        return [f"{path}: no FROM"]
    for k, arg in steps:
        if k == "FROM":
            image = arg.split()[0]
            if ":" not in image or image.endswith(":latest"):
                errors.append(f"{path}: FROM {image} is not pinned to a tag")
    package = None
    for k, arg in steps:
        if k == "RUN" and "cargo build" in arg:
            m = re.search(r"cargo build --release --locked -p ([\w-]+)", arg)
            if not m:
                errors.append(f"{path}: `{arg}` is not `cargo build --release --locked -p PKG`")
            elif m.group(1) not in bins:
                errors.append(f"{path}: package {m.group(1)} is not in the workspace")
            else:
                package = m.group(1)
    final = steps[stages[-1]:]
    copied = {}
    for k, arg in steps:
        if k != "COPY":
            continue
        words = shlex.split(arg)
        from_stage = any(w.startswith("--from=") for w in words)
        words = [w for w in words if not w.startswith("--")]
        *sources, dest = words
        for src in sources:
            if from_stage:
                m = re.fullmatch(r"/src/target/release/([\w-]+)", src)
                if not m or package is None or m.group(1) not in bins.get(package, ()):
                    errors.append(f"{path}: COPY --from {src} is not a binary of {package}")
            elif src != "." and not os.path.exists(os.path.join(ROOT, src)):
                errors.append(f"{path}: COPY {src}: no such path in the repository")
            else:
                copied[dest] = src
    users = [arg for k, arg in final if k == "USER"]
    if not users or users[-1] in ("root", "0"):
        errors.append(f"{path}: the final stage runs as root (add a USER)")
    env = {}
    for k, arg in final:
        if k == "ENV":
            for word in shlex.split(arg):
                key, _, value = word.partition("=")
                env[key] = value
    entry, cmd = None, None
    for k, arg in final:
        if k in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(arg)
            except json.JSONDecodeError:
                errors.append(f"{path}: {k} is not in exec (JSON) form")
                continue
            if k == "ENTRYPOINT":
                entry = value
            else:
                cmd = value
    if entry and cmd and not errors:
        binary = os.path.join(ROOT, "target", "debug", os.path.basename(entry[0]))
        configs = []
        args = list(cmd)
        while args:
            word = args.pop(0)
            if word == "--config" and args:
                image_path = args.pop(0)
                if image_path not in copied:
                    errors.append(f"{path}: CMD reads {image_path}, which no COPY puts there")
                else:
                    configs.append(os.path.join(ROOT, copied[image_path]))
        if configs and not errors:
            if not os.path.exists(binary):
                subprocess.run(
                    ["cargo", "build", "--quiet", "--locked", "-p", package],
                    cwd=ROOT, check=True,
                )
            argv = [binary]
            for c in configs:
                argv += ["--config", c]
            run = subprocess.run(
                argv + ["--check-config"], cwd=ROOT, capture_output=True, text=True,
                env={**os.environ, **env},
            )
            if run.returncode != 0:
                errors.append(f"{path}: --check-config of the image's config: {run.stderr.strip()}")
    return errors


def main():
    bins = workspace_bins()
    errors = []
    for path in sys.argv[1:]:
        errors += lint(path, bins)
    for e in errors:
        print(f"dockerfile-lint: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"dockerfile-lint: {len(sys.argv) - 1} Dockerfiles pass (pinned images, context paths, "
          "package and binary, non-root user, exec form, --check-config of their config)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
