"""The wire format between the worker and the runner: frames of a 4-byte big-endian length
followed by a JSON object (service/runner_protocol.py is the worker's copy; a contract test
keeps the two in step)."""

import json
import os
import struct

PROTOCOL_VERSION = 4
MAX_FRAME = 512 * 1024 * 1024
FRAME = struct.Struct(">I")


def read_exact(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    header = read_exact(fd, 4)
    if header is None:
        return None
    (size,) = FRAME.unpack(header)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = read_exact(fd, size)
    return None if body is None else json.loads(body)


def encode_frame(message):
    body = json.dumps(message, separators=(",", ":")).encode()
    return FRAME.pack(len(body)) + body


def write_frame(fd, message):
    data = encode_frame(message)
    while data:
        data = data[os.write(fd, data):]
