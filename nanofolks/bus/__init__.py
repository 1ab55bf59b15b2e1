"""The gateway's message bus: what comes in from platforms, what goes out, and the durable queues between."""
