#!/usr/bin/env bash
# What bench/gpu_check.py needs on the lent GPU machine, which has torch and transformers 5 but
# not this project's other packages, and no network: wheels for its Python (3.12, x86-64), the
# Qwen-Audio-Chat checkpoint's code from ../shared, and 30 s of real speech. Into .gpu/ (git-
# ignored; the device tool carries it), about 20 MiB. Versions are the ones this checkout's
# environments run, so the check runs what the tests ran.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PINNED=${QWEN_AUDIO_CHAT_VENV:-.cache/venv-qwen-audio-chat}
out=.gpu
rm -rf "$out" && mkdir -p "$out/wheels/main" "$out/wheels/pinned"

version() { "$1/bin/python" -c "import importlib.metadata as m; print(m.version('$2'))"; }
download() {  # folder, then name==version: wheels for CPython 3.12 on x86-64 Linux, no deps
  local folder=$1; shift
  "$VENV/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$folder" "$@"
}

# The main environment's part: settings and schemas (pydantic); torch and transformers are there.
main=()
for name in pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv; do
  main+=("$name==$(version "$VENV" "$name")")
done
download "$out/wheels/main" "${main[@]}"

# The pinned environment's part: transformers < 4.54 and what it needs in other versions than the
# machine's; transformers-stream-generator has only an sdist, built here (pure Python).
pinned=()
for name in transformers tokenizers huggingface-hub; do
  pinned+=("$name==$(version "$PINNED" "$name")")
done
download "$out/wheels/pinned" "${pinned[@]}"
"$PINNED/bin/python" -m pip wheel --quiet --no-deps -w "$out/wheels/pinned" \
  "transformers-stream-generator==$(version "$PINNED" transformers-stream-generator)"

cp -r ../shared/models/qwen-audio-chat "$out/qwen-audio-chat"
"$VENV/bin/python" - <<'PY'
import numpy as np
from bench.gpu_check import speech
np.save(".gpu/speech.npy", speech(30.0, __import__("pathlib").Path("/nonexistent")))
PY
du -sh "$out"
cat <<TXT
On the GPU machine (device tool: carry ".gpu"):
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/main/*.whl && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/pinned .gpu/wheels/pinned/*.whl && PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 timeout 480 python3 -m bench.gpu_check --pinned-path /tmp/pinned --out \$OUT
TXT
