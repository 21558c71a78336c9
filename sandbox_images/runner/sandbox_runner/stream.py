"""Output sent on as it is produced, for requests that ask for it (`stream`): each new piece of
a captured stream goes to the worker as an `output` frame while the runner supervises, before
the result. Only what is kept under the cap is sent, so the caps bound it as they bound the
result."""

import base64

from sandbox_runner.frames import write_frame

STREAM_NAMES = ("stdout", "stderr")


class Forwarder:
    def __init__(self, proto_out, request_id, captures):
        self.proto_out = proto_out
        self.request_id = request_id
        self.names = {c.fd: name for c, name in zip(captures, STREAM_NAMES, strict=True)}
        self.sent = {c.fd: 0 for c in captures}  # chunks of each capture sent so far

    def forward(self, capture):
        """Send what the capture kept since the last call."""
        start = self.sent[capture.fd]
        if len(capture.chunks) == start:
            return
        self.sent[capture.fd] = len(capture.chunks)
        data = b"".join(capture.chunks[start:])
        write_frame(self.proto_out, {"op": "output", "id": self.request_id,
                                     "stream": self.names[capture.fd],
                                     "data": base64.b64encode(data).decode()})
