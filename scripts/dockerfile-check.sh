#!/usr/bin/env bash
# The container images: built when a Docker daemon answers (`docker info`), else linted
# (scripts/dockerfile-lint.py), and the script says which it did.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
files=(kontiki-registry/Dockerfile examples/compute-api/Dockerfile)
python3 scripts/dockerfile-lint.py "${files[@]}"
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  for f in "${files[@]}"; do
    tag="kontiki-rs-check/$(basename "$(dirname "$f")"):ci"
    docker build --quiet -f "$f" -t "$tag" . >/dev/null
    docker run --rm --entrypoint "$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("ENTRYPOINT"): print(json.loads(l.split(None,1)[1])[0])' "$f")" "$tag" --version
    docker image rm "$tag" >/dev/null
  done
  echo "dockerfile-check: ${#files[@]} images built and run"
else
  echo "dockerfile-check: no Docker daemon answers here: the Dockerfiles were linted, not built"
fi
