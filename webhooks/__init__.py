"""The webhook worker: delivers job events to receivers, on a queue and process of its own."""
