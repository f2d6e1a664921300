"""Several jobs at once on one loaded model: continuous batching of token generation.

Decoding a large model one sequence at a time is bound by reading its weights for every token;
decoding several sequences in one forward pass reads them once for all. A worker's stages run
in threads (`AUDIOCHAT_WORKER_CONCURRENCY` of them); each prepares its prompt and hands it to
the worker's one `BatchEngine`, whose thread owns the model:

- a new request is prefilled on its own (its prompt, audio included, in one forward pass) and
  joins the running batch between two decoding steps, so it never waits for the batch to end;
- every step decodes one token for every row, with the rows' key/value caches padded on the
  left to one length and the padding masked out;
- each row chooses its own token (greedy or sampled), streams its own text, and ends on its own:
  a stop token, its `max_new_tokens`, or its consumer closing the stream (cancel, time limit).

The model-specific part is a `ModelRunner` (runner.py): how to prefill a prompt and decode a
batch. The rest is shared by every backend that generates with transformers.
"""
