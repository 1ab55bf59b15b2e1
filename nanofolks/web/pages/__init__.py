"""One module per dashboard page; each has `setup(app)` adding its routes."""
