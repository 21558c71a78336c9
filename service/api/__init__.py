"""The HTTP layer: decodes requests, maps errors to status codes, writes JSON."""
