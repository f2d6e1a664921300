"""What only the tests use: the running stack, webhook receivers, audio files, the
qwen-audio-chat probe. The real processes and the toy models are in testbed/ (bench/ uses them
too)."""
