"""Configuration: the pydantic schema (schema.py), where files live (paths.py), and how they are loaded
(loader.py). Import those modules directly: this package imports nothing, so that `config.paths` stays a
leaf the vault can use while the loader resolves the vault's references."""
