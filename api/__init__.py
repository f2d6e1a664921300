"""The gateway: accepts jobs, stores audio, enqueues work and relays events. No model code."""
