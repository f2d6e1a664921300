"""Fakes at the model boundary only: backends honouring `worker.backends.base.ModelBackend`."""
