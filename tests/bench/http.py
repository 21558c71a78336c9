"""A minimal keep-alive HTTP/1.1 client for load generation.

General clients spend a few hundred microseconds of CPU per request; on a 2-core machine that
CPU is taken from the service being measured. This one only writes a POST and reads a
Content-Length body, which is all the benchmark needs.
"""

import asyncio

import orjson


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, path: str, body: object) -> tuple[int, dict]:
        data = orjson.dumps(body)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
        return status, orjson.loads(await self.reader.readexactly(length))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class ConnectionPool:
    """One connection per concurrent caller, reused."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._free: list[Connection] = []

    async def post(self, path: str, body: object) -> tuple[int, dict]:
        conn = self._free.pop() if self._free else await Connection.open(self.host, self.port)
        try:
            result = await conn.post(path, body)
        except ConnectionResetError:  # an idle connection the server closed: once more, afresh
            await conn.close()
            conn = await Connection.open(self.host, self.port)
            result = await conn.post(path, body)
        except BaseException:
            await conn.close()
            raise
        if conn.reusable:
            self._free.append(conn)
        else:
            await conn.close()
        return result

    async def close(self) -> None:
        for conn in self._free:
            await conn.close()
        self._free.clear()
