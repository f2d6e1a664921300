"""Questions put to the pinned environment and the real checkpoint code, from the test process.

The tests run under the main environment (transformers 5.x), where Qwen-Audio-Chat's code does
not load; `run(command, spec)` runs `python -m tests.support.qwen_audio_chat_probe COMMAND` with
the pinned environment's Python, the spec as JSON on stdin, and returns the JSON it prints:

  reference  the checkpoint's own `model.chat()` (greedy) for each request: what the backend
             must answer for the same input
  imports    the modules the checkpoint's code imports at load time (read from its files by
             transformers' own `get_imports`), which of them this environment lacks, and which
             are installed but not required by deploy/requirements-qwen-audio-chat.txt
  bf16       the backend loaded with the GPU's precision flags on the CPU, answering about audio
  decode     the backend's decoder on ids the checkpoint's tokenizer cannot decode itself
  batch      the backend's answers to requests of different shapes, one at a time and all at
             once from threads (one batch), with the largest batch the engine decoded
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from testbed.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "deploy" / "requirements-qwen-audio-chat.txt"
# Installed beside the requirements by `make qwen-audio-chat-env` and the Dockerfile.
ALSO_INSTALLED = ("torch", "audiochat")


def run(python: Path, command: str, spec: dict[str, Any], env: dict[str, str]) -> Any:
    """Run `command` in the pinned environment; its JSON answer, or a failure with its output."""
    done = subprocess.run(
        [str(python), "-m", "tests.support.qwen_audio_chat_probe", command],
        input=json.dumps(spec),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {command} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load(checkpoint: str) -> tuple[Any, Any, Any]:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        checkpoint, trust_remote_code=True, local_files_only=True
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        checkpoint, trust_remote_code=True, local_files_only=True, fp32=True
    ).eval()
    return model, tokenizer, sys.modules[type(model).__module__]


def reference(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """`chat()`'s answer and context length for each request: `query` and each history turn's
    question are lists of `{"audio": path}` / `{"text": ...}` items."""
    model, tokenizer, remote = _load(spec["checkpoint"])
    config = model.generation_config
    answers = []
    for request in spec["requests"]:
        query = tokenizer.from_list_format(request["query"])
        history = [(tokenizer.from_list_format(q), a) for q, a in request.get("history", [])]
        _, context, _ = remote.make_context(
            tokenizer,
            query,
            history=history,
            system=spec["system"],
            max_window_size=config.max_window_size,
            chat_format=config.chat_format,
        )
        # `chat()` drops the last token of an answer cut at max_new_tokens (its decoder ends at
        # the last index it looked at for an end token, exclusive), so it is asked for one more:
        # it then returns exactly the first max_new_tokens, however the answer ended.
        response, _ = model.chat(
            tokenizer,
            query,
            history=history,
            system=spec["system"],
            do_sample=False,
            max_new_tokens=request["max_new_tokens"] + 1,
        )
        answers.append({"response": response, "prompt_tokens": len(context)})
    return answers


def _distribution_closure(roots: list[str]) -> set[str]:
    """`roots` and every distribution they require, transitively, as installed here."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [canonicalize_name(name) for name in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def imports(spec: dict[str, Any]) -> dict[str, Any]:
    """What the checkpoint's code needs at load time, against this environment and the
    requirements file that makes it."""
    import importlib.util
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from transformers.dynamic_module_utils import get_imports

    needed: dict[str, list[str]] = {}
    for path in sorted(Path(spec["code"]).glob("*.py")):
        for module in get_imports(str(path)):
            if module not in sys.stdlib_module_names:
                needed.setdefault(module, []).append(path.name)
    roots = [
        Requirement(line).name
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    required = _distribution_closure([*roots, *ALSO_INSTALLED])
    providers = metadata.packages_distributions()
    missing = sorted(m for m in needed if importlib.util.find_spec(m) is None)
    unrequired = sorted(
        m
        for m in needed
        if m not in missing and not {canonicalize_name(d) for d in providers.get(m, [])} & required
    )
    return {"needed": needed, "missing": missing, "not_required": unrequired}


def bf16(spec: dict[str, Any]) -> dict[str, Any]:
    """Load through the backend with the GPU's precision on the CPU and answer about audio."""
    import torch

    from shared.config import Settings
    from worker.audio import decode_audio
    from worker.backends import qwen_audio_chat
    from worker.backends.base import AnswerRequest, GenerationStats

    qwen_audio_chat.precision_flags = lambda device: {"bf16": True}  # type: ignore[assignment]
    qwen_audio_chat.torch_dtype = lambda device: torch.bfloat16
    backend = qwen_audio_chat.QwenAudioChatBackend.load(
        Settings(model="qwen-audio-chat", model_path=spec["checkpoint"], device="cpu")
    )
    request = AnswerRequest(
        question="What is said?", audios=[decode_audio(Path(spec["audio"]))], max_new_tokens=8
    )
    try:
        items = list(backend.answer(request))
    finally:
        backend.engine.stop()
    stats = [item for item in items if isinstance(item, GenerationStats)]
    return {
        "dtypes": sorted({str(p.dtype) for p in backend.model.parameters()}),
        "config_bf16": bool(backend.model.config.bf16),
        "completion_tokens": stats[-1].completion_tokens,
    }


def decode(spec: dict[str, Any]) -> dict[str, Any]:
    """The backend's decoder on text, a timestamp, an audio tag, control tokens and an id past
    the tokenizer's last; and whether the checkpoint's own decoder could take the same ids."""
    import transformers

    from worker.backends.qwen_audio_chat import AnswerText

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        spec["checkpoint"], trust_remote_code=True, local_files_only=True
    )
    timestamp = tokenizer.convert_tokens_to_ids("<|1.00|>")
    ids = [
        *tokenizer.encode("The answer"),
        timestamp,
        tokenizer.audio_start_id,
        len(tokenizer) + 100,
        *tokenizer.encode(" is four."),
        tokenizer.im_end_id,
        tokenizer.eod_id,
    ]
    try:
        tokenizer.decode(ids)
        own = "decoded"
    except Exception as exc:
        own = f"{type(exc).__name__}: {exc}"
    return {"text": AnswerText(tokenizer).decode(ids), "checkpoint_decoder": own}


def batch(spec: dict[str, Any]) -> dict[str, Any]:
    """Each request alone, then all at once: the answers and stats of both."""
    import threading

    from shared.config import Settings
    from worker.audio import decode_audio
    from worker.backends.base import AnswerRequest, GenerationStats, Turn
    from worker.backends.qwen_audio_chat import QwenAudioChatBackend

    clip = decode_audio(Path(spec["audio"]))
    half = len(clip) // 2
    requests = [
        AnswerRequest(question="What is said?", audios=[clip], max_new_tokens=24),
        AnswerRequest(question="What is the capital of France?", max_new_tokens=24),
        AnswerRequest(question="Short.", audios=[clip[:8000]], max_new_tokens=24),
        AnswerRequest(
            question="Compare them.",
            audios=[clip, clip[:half]],
            history=[Turn("Who speaks?", "A man.", audio=clip[half:])],
            max_new_tokens=24,
        ),
        AnswerRequest(question="A longer typed question " * 12, max_new_tokens=9),
    ]
    backend = QwenAudioChatBackend.load(
        Settings(model="qwen-audio-chat", model_path=spec["checkpoint"], device="cpu")
    )
    sizes: list[int] = []
    real_decode = backend.engine.runner.decode

    def counted(tokens: Any, *args: Any) -> Any:
        sizes.append(int(tokens.shape[0]))
        return real_decode(tokens, *args)

    backend.engine.runner.decode = counted  # type: ignore[method-assign]

    def answer(request: AnswerRequest) -> list[Any]:
        text, stats = "", None
        for item in backend.answer(request):
            if isinstance(item, GenerationStats):
                stats = item
            else:
                text += item
        assert stats is not None
        return [text, stats.completion_tokens, stats.finish_reason]

    try:
        alone = [answer(request) for request in requests]
        sizes.clear()
        together: list[Any] = [None] * len(requests)
        threads = [
            threading.Thread(target=lambda i=i: together.__setitem__(i, answer(requests[i])))
            for i in range(len(requests))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        backend.engine.stop()
    return {"alone": alone, "together": together, "largest_batch": max(sizes)}


COMMANDS = {
    "reference": reference,
    "imports": imports,
    "bf16": bf16,
    "decode": decode,
    "batch": batch,
}

if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](json.loads(sys.stdin.read()))
    print(json.dumps(result))
