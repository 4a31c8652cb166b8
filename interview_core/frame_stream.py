"""The direct stream between the edge and an interview actor: length-prefixed binary frames
over one TCP connection, so audio never costs a Ray call per frame.

A frame is `type (1 byte) | length (4 bytes, big-endian) | payload`. The edge sends candidate
audio as raw PCM (`AUDIO`) and other client events as JSON (`EVENT`); the actor sends server
events already encoded as JSON text (`EVENT`), which the edge forwards without parsing, and
`CLOSE` to end the candidate's connection with a WebSocket close code.

The first frame on a connection must be `HELLO` carrying the one-time key the actor handed
out through Ray; anything else closes the connection.

Writes are coalesced: frames queued during one event-loop iteration go out in one write, and a
sender whose peer falls behind sees `paused` (back-pressure) rather than growing a buffer.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

HEADER = struct.Struct(">BI")
HELLO, AUDIO, EVENT, CLOSE = 1, 2, 3, 4
MAX_FRAME_BYTES = 1 << 20


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_close(code: int, reason: str) -> bytes:
    return encode_frame(CLOSE, struct.pack(">H", code) + reason.encode()[:120])


def decode_close(payload: bytes) -> tuple[int, str]:
    (code,) = struct.unpack_from(">H", payload)
    return code, payload[2:].decode(errors="replace")


class FrameProtocol(asyncio.Protocol):
    """Parses frames from a byte stream and hands each to `on_frame`; writes coalesced frames.

    `on_frame(kind, payload)` runs in the event loop's data callback: it must not block.
    """

    def __init__(self, on_frame: Callable[[int, bytes], None], on_lost: Callable[[Exception | None], None],
                 *, high_water: int = 256 * 1024) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self._high_water = high_water
        self.transport: asyncio.Transport | None = None
        self.paused = False  # the peer is not keeping up
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.closed = asyncio.Event()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self._high_water)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        offset = 0
        end = len(buf)
        try:
            while end - offset >= 5:
                kind, length = HEADER.unpack_from(buf, offset)
                if length > MAX_FRAME_BYTES or not HELLO <= kind <= CLOSE:
                    raise FrameError(f"bad frame header ({kind}, {length})")
                if end - offset - 5 < length:
                    break
                start = offset + 5
                payload = bytes(buf[start:start + length])
                offset = start + length
                self._on_frame(kind, payload)
        except FrameError as exc:
            self._buffer.clear()
            if self.transport:
                self.transport.close()
            self._on_lost(exc)
            return
        if offset:
            del buf[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self._resumed.set()
        self._on_lost(exc)

    def pause_writing(self) -> None:
        self.paused = True
        self._resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self._resumed.set()

    # sending
    def send(self, frame: bytes) -> None:
        """Queues a frame; everything queued in this loop iteration leaves in one write."""
        if self.transport is None or self.transport.is_closing():
            return
        self._pending.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self.transport is None or self.transport.is_closing():
            self._pending.clear()
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self.transport.write(data)

    async def wait_writable(self) -> None:
        """Returns once the peer has caught up (immediately if it has)."""
        if self.paused:
            await self._resumed.wait()

    def close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()
