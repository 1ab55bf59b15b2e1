"""Secrets: detection (detect.py), the vault (vault.py), the keeper that captures and resolves `{{name}}`
references (keeper.py), and the sanitizer every way out goes through (sanitize.py). See docs/security.md."""
