#!/usr/bin/env bash
# Wheels for `make gpu-check` on a GPU machine that has no network, made where pip works: the
# packages in scripts/gpu-wheels.txt, at the versions this machine's test environment has (so the GPU
# runs what was tested here), for CPython 3.12 on x86-64 Linux, saved in gpu-wheels/ beside Whisper
# tiny.en's tokenizer.json. Fails when they and the working tree together exceed what can be carried
# to the machine (GPU_CARRY_MIB, 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
wheels=${GPU_WHEELS:-gpu-wheels}
budget_mib=${GPU_CARRY_MIB:-64}

pins=()
while read -r name _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    version=$("$python" -c 'import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))' "$name")
    pins+=("$name==$version")
done <scripts/gpu-wheels.txt

rm -rf "$wheels"
mkdir -p "$wheels"
platforms=()
for glibc in 2_17 2_24 2_27 2_28 2_31 2_34 2_35 2_39; do
    platforms+=(--platform "manylinux_${glibc}_x86_64")
done
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 -d "$wheels" "${pins[@]}"
PYTHONPATH=$PWD "$python" -c 'import shutil, sys; from tests.support.checkpoints import whisper_tokenizer
shutil.copy(whisper_tokenizer(), sys.argv[1])' "$wheels/whisper-tokenizer.json"

# What travels: the working tree (tracked and untracked files that git does not ignore) and these files.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
wheel_bytes=$(du -cb "$wheels" | tail -1 | cut -f1)
total_bytes=$((tree_bytes + wheel_bytes))
mib() { awk -v bytes="$1" 'BEGIN { printf "%.1f MiB", bytes / 1048576 }'; }
echo "$wheels: ${#pins[@]} wheels and the tokenizer, $(mib "$wheel_bytes"); working tree $(mib "$tree_bytes");" \
    "together $(mib "$total_bytes") of ${budget_mib} MiB"
if ((total_bytes > budget_mib * 1048576)); then
    echo "too much to carry: leave out wheels the GPU machine already has (scripts/gpu-wheels.txt)" >&2
    exit 1
fi
