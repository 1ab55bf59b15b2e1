"""How one bot answers: the think -> act -> observe loop, its tools, and text tool calls."""
