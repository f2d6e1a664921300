"""Code shared by the gateway and the workers: settings, wire schemas, names, events, storage."""
