"""The `audiochat` command: run the gateway or a worker, and ask questions from a terminal."""
