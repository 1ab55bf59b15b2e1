"""The dashboard: server-rendered pages (jinja2) with htmx and its SSE extension, shipped in this package and
served by `nanofolks gateway` as the `web` channel (channel.py). Nothing is loaded from the internet."""
