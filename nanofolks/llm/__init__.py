"""Model access: litellm for any provider, the bundled local model, token counting, usage."""
