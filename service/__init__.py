"""Sandboxed code execution: HTTP API → Redis Streams → warm Docker pool → result."""
