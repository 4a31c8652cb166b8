"""The direct stream between an edge process and an interview actor process: length-prefixed
binary frames over one TCP connection, so audio never costs a Ray call per frame.

One connection carries every interview the edge serves on that actor process, each on a
channel of its own. A frame is `type (1 byte) | channel (4 bytes) | length (4 bytes) | payload`,
big-endian. The edge sends candidate audio as raw PCM (`AUDIO`) and other client events as JSON
(`EVENT`); the actor sends server events already encoded as JSON text (`EVENT`), which the edge
forwards without parsing, and `CLOSE` to end the candidate's connection with a WebSocket close
code. The edge sends `DETACH` when the candidate has gone.

A channel opens with `HELLO`: a flags byte and the one-time key the edge minted for the session
(interview_core/stream_keys.py); frames for a channel that is not open are ignored. The flag
`ANNOUNCED` says the edge has already sent the candidate `session.created`.

Writes are coalesced: frames queued within `flush_delay_s` (or one event-loop iteration) go out
in one write, so the actor wakes once for several interviews' audio, and a sender whose peer
falls behind sees `paused` (back-pressure) rather than growing a buffer.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

HEADER = struct.Struct(">BII")
HELLO, AUDIO, EVENT, CLOSE, DETACH = 1, 2, 3, 4, 5
MAX_FRAME_BYTES = 1 << 20
ANNOUNCED = 1  # HELLO flag


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(kind: int, channel: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, channel, len(payload)) + payload


def encode_hello(channel: int, key: str, *, announced: bool) -> bytes:
    return encode_frame(HELLO, channel, bytes([ANNOUNCED if announced else 0]) + key.encode())


def decode_hello(payload: bytes) -> tuple[str, bool]:
    """(key, announced); a payload that is not a HELLO gives an empty key, which opens nothing."""
    if not payload:
        return "", False
    return payload[1:].decode(errors="replace"), bool(payload[0] & ANNOUNCED)


def encode_close(channel: int, code: int, reason: str) -> bytes:
    return encode_frame(CLOSE, channel, struct.pack(">H", code) + reason.encode()[:120])


def decode_close(payload: bytes) -> tuple[int, str]:
    (code,) = struct.unpack_from(">H", payload)
    return code, payload[2:].decode(errors="replace")


class FrameProtocol(asyncio.Protocol):
    """Parses frames from a byte stream and hands each to `on_frame`; writes coalesced frames.

    `on_frame(kind, channel, payload)` runs in the event loop's data callback: it must not block.
    """

    def __init__(self, on_frame: Callable[[int, int, bytes], None], on_lost: Callable[[Exception | None], None],
                 *, high_water: int = 256 * 1024, flush_delay_s: float = 0.0) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self._flush_delay_s = flush_delay_s
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
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        offset = 0
        end = len(buf)
        size = HEADER.size
        try:
            while end - offset >= size:
                kind, channel, length = HEADER.unpack_from(buf, offset)
                if length > MAX_FRAME_BYTES or not HELLO <= kind <= DETACH:
                    raise FrameError(f"bad frame header ({kind}, {length})")
                if end - offset - size < length:
                    break
                start = offset + size
                payload = bytes(buf[start:start + length])
                offset = start + length
                self._on_frame(kind, channel, payload)
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
        """Queues a frame; what is queued until the flush leaves in one write."""
        if self.transport is None or self.transport.is_closing():
            return
        self._pending.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = asyncio.get_running_loop()
            if self._flush_delay_s > 0:
                loop.call_later(self._flush_delay_s, self._flush)
            else:
                loop.call_soon(self._flush)

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


class Channel:
    """One interview's channel on a connection, as the actor sees it."""

    __slots__ = ("id", "proto")

    def __init__(self, proto: FrameProtocol, channel_id: int) -> None:
        self.proto = proto
        self.id = channel_id

    def send(self, kind: int, payload: bytes) -> None:
        self.proto.send(encode_frame(kind, self.id, payload))

    def close(self, code: int, reason: str) -> None:
        """Ends the candidate's connection with this WebSocket close code."""
        self.proto.send(encode_close(self.id, code, reason))
