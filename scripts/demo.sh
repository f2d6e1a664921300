#!/usr/bin/env bash
# The demo: start the local stack, ask the spoken question in assets/question.flac (made with
# espeak-ng), watch the transcript and the answer stream in, then stop what was started.
set -euo pipefail
cd "$(dirname "$0")/.."
API_PORT=${API_PORT:-8000}
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
echo
echo "asking: assets/question.flac"
"${VENV:-.venv}/bin/audiochat" ask assets/question.flac --url "http://127.0.0.1:$API_PORT"
