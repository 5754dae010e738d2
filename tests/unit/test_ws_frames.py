"""app.ws_frames: its frame headers are the websockets library's own, at every length
form; what FrameWriter writes, a websockets client reads back, compressed or not; and it
writes nothing when the connection cannot take a frame at once."""

from __future__ import annotations

import asyncio

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from app.ws_frames import FrameWriter, text_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_the_header_and_payload_serialize_as_the_websockets_library_does(length):
    data = b"x" * length
    reference = Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
    assert text_frame_header(len(data)) + data == reference


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


class UvicornLike:
    """The attributes of uvicorn's sans-io protocol that FrameWriter reads, around a real
    websockets server connection."""

    def __init__(self, conn: Protocol) -> None:
        self.conn = conn
        self.transport = Transport()
        self.disconnected = self.close_sent = False
        self.handshake_complete = True
        self.initial_response = None
        self.writable = asyncio.Event()
        self.writable.set()


def received(client: Protocol, written: list[bytes]) -> list[str]:
    for chunk in written:
        client.receive_data(chunk)
    return [frame.data.decode() for frame in client.events_received()]


def deflate() -> PerMessageDeflate:
    return PerMessageDeflate(False, False, 15, 15)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_client_reads_the_written_frames_back(compressed):
    server, client = Protocol(Side.SERVER), Protocol(Side.CLIENT)
    if compressed:  # as negotiated with a browser: the connection's own framing
        server.extensions, client.extensions = [deflate()], [deflate()]
    protocol = UvicornLike(server)
    writer = FrameWriter(protocol)
    texts = [f'{{"id":"1","type":"next","payload":{{"n":{n}}}}}' for n in range(3)]
    texts.append('{"id":"2","payload":"' + "é" * 40_000 + '"}')  # 80 kB: the 8-byte length
    for text in texts:
        encoded = text.encode()
        assert writer.write_text((encoded[:7], encoded[7:-1], encoded[-1:]))
    assert received(client, protocol.transport.written) == texts
    assert (sum(map(len, protocol.transport.written)) < 1000) is compressed


@pytest.mark.parametrize(
    "unready",
    [
        lambda p: p.writable.clear(),  # the transport paused writing: full buffer
        lambda p: setattr(p, "close_sent", True),
        lambda p: setattr(p, "disconnected", True),
        lambda p: setattr(p, "handshake_complete", False),
        lambda p: setattr(p.transport, "closing", True),
        lambda p: p.conn.send_ping(b""),  # the connection's own bytes wait to be flushed
        lambda p: p.conn.send_text(b"part", fin=False),  # inside a fragmented message
        lambda p: p.conn.send_close(),
    ],
)
def test_nothing_is_written_when_the_connection_cannot_take_a_frame_now(unready):
    protocol = UvicornLike(Protocol(Side.SERVER))
    unready(protocol)
    before = list(protocol.transport.written)
    assert not FrameWriter(protocol).write_text((b"{}",))
    assert protocol.transport.written == before
