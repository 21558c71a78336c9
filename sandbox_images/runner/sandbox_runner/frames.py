"""The wire format between the worker and the runner: frames of a 4-byte big-endian length
followed by a JSON object (service/runner_protocol.py is the worker's copy; a contract test
keeps the two in step)."""

import json
import marshal
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


def read_body(fd):
    """A frame's body; None at the end of the stream."""
    header = read_exact(fd, 4)
    if header is None:
        return None
    (size,) = FRAME.unpack(header)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    return read_exact(fd, size)


def read_frame(fd):
    body = read_body(fd)
    return None if body is None else json.loads(body)


def encode_frame(message):
    body = json.dumps(message, separators=(",", ":")).encode()
    return FRAME.pack(len(body)) + body


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def write_frame(fd, message):
    write_all(fd, encode_frame(message))


# The runner hands a child its request in marshal's format, not JSON: one call into C to decode,
# where JSON's decoder runs four Python functions, each a page or more the child writes to (see
# template.py). Both ends are the same interpreter; the request holds only JSON's types.


def write_request(fd, req):
    body = marshal.dumps(req)
    write_all(fd, FRAME.pack(len(body)) + body)


def read_request(fd):
    body = read_body(fd)
    return None if body is None else marshal.loads(body)
