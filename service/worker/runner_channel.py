"""One persistent stream to a runner: the container's attached stdin and stdout.

Docker multiplexes an attached stdout (no TTY) into frames of an 8-byte header (stream type,
three zero bytes, big-endian length) and a payload; inside them flow the runner's own frames.
"""

import asyncio
import contextlib
import socket
import struct
from typing import Any

import orjson

from service import runner_protocol as rp

DOCKER_HEADER = struct.Struct(">BxxxI")


class RunnerGone(Exception):
    """The runner closed its stream or sent something unreadable: replace the container."""


class RunnerChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 multiplexed: bool):
        self._reader = reader
        self._writer = writer
        self._multiplexed = multiplexed
        self._buffer = bytearray()

    @classmethod
    async def open(cls, sock: socket.socket, multiplexed: bool) -> "RunnerChannel":
        """A channel over the runner's own unix socket, or over Docker's attach stream
        (`multiplexed`: the runner's stdout arrives wrapped in Docker's stream frames)."""
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer, multiplexed)

    @property
    def alive(self) -> bool:
        """False once the runner's end of the stream has closed."""
        return not self._reader.at_eof() and not self._writer.is_closing()

    async def send(self, message: dict[str, Any]) -> None:
        try:
            self._writer.write(rp.encode_frame(message))
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise RunnerGone(f"cannot write to runner: {exc}") from exc

    def post(self, message: dict[str, Any]) -> None:
        """Send a small message without waiting for the stream to take it (from code that
        cannot wait); a runner gone is found by whoever receives next."""
        if not self._writer.is_closing():
            self._writer.write(rp.encode_frame(message))

    async def receive(self) -> dict[str, Any]:
        """The runner's next message."""
        header = await self._take(rp.HEADER.size)
        (size,) = rp.HEADER.unpack(header)
        body = await self._take(size)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RunnerGone(f"unreadable frame from runner: {exc}") from exc

    async def ready(self, wait_s: float) -> dict[str, Any]:
        """The runner's next `ready`: its hello, or its word that it has cleaned up after a
        request and waits for the next."""
        return await self.expect(rp.OP_READY, wait_s)

    async def expect(self, op: str, wait_s: float) -> dict[str, Any]:
        """The runner's next message, which must be an `op` and come within wait_s."""
        try:
            message = await asyncio.wait_for(self.receive(), wait_s)
        except TimeoutError as exc:
            raise RunnerGone(f"runner did not say {op} in time") from exc
        if message.get("op") != op:
            raise RunnerGone(f"expected {op}, got {message.get('op')}")
        return message

    async def _take(self, size: int) -> bytes:
        """size bytes of the runner's stdout, unwrapped from Docker's stream frames."""
        if not self._multiplexed and not self._buffer:
            try:
                return await self._reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
                raise RunnerGone("runner closed its stream") from exc
        while len(self._buffer) < size:
            try:
                header = await self._reader.readexactly(DOCKER_HEADER.size)
                _, length = DOCKER_HEADER.unpack(header)
                self._buffer += await self._reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
                raise RunnerGone("runner closed its stream") from exc
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def close(self) -> None:
        """Drop the stream at once: nothing unsent is wanted, and a runner that stopped reading
        must not keep its worker waiting for a flush."""
        self._writer.transport.abort()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
