"""What an Arrow IPC stream will take once decoded, read from its message metadata before anything is decoded.

A compressed body (zstd, lz4) is small on the wire and large in memory: 9 KB once decoded to ~300 MB. Each
message's flatbuffer metadata lists its buffers, and each compressed buffer starts with its decoded length, so
the total is known without decompressing a byte.
"""

import struct
from dataclasses import dataclass

import pyarrow as pa

_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # MessageHeader union tags (format/Message.fbs)
_NOT_COMPRESSED = -1


@dataclass(frozen=True)
class StreamSize:
    rows: int
    decoded_bytes: int


class _Table:
    """One flatbuffer table: fields by index, as the Arrow format's .fbs files number them."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data, self.position = data, position
        vtable = position - struct.unpack_from("<i", data, position)[0]
        self.vtable, self.vtable_length = vtable, struct.unpack_from("<H", data, vtable)[0]

    def _field(self, index: int) -> int | None:
        entry = 4 + 2 * index
        if entry >= self.vtable_length:
            return None
        offset = struct.unpack_from("<H", self.data, self.vtable + entry)[0]
        return self.position + offset if offset else None

    def scalar(self, index: int, fmt: str, default=0):
        field = self._field(index)
        return default if field is None else struct.unpack_from(fmt, self.data, field)[0]

    def table(self, index: int) -> "_Table | None":
        field = self._field(index)
        return None if field is None else _Table(self.data, field + struct.unpack_from("<I", self.data, field)[0])

    def structs(self, index: int, fmt: str) -> list[tuple]:
        field = self._field(index)
        if field is None:
            return []
        vector = field + struct.unpack_from("<I", self.data, field)[0]
        count = struct.unpack_from("<I", self.data, vector)[0]
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.data, vector + 4 + i * size) for i in range(count)]


def _batch_size(batch: _Table, message_body: pa.Buffer | None) -> tuple[int, int]:
    """Rows and decoded bytes of one RecordBatch table (format/Message.fbs: length, nodes, buffers, compression)."""
    if batch.table(3) is None:  # not compressed: its buffers lie within the message body
        return batch.scalar(0, "<q"), message_body.size if message_body else 0
    body = message_body.to_pybytes() if message_body else b""
    decoded = 0
    for offset, length in batch.structs(2, "<qq"):
        if offset < 0 or length < 0 or offset + length > len(body):
            raise ValueError("buffer outside the message body")
        if length >= 8:
            declared = struct.unpack_from("<q", body, offset)[0]
            decoded += length - 8 if declared == _NOT_COMPRESSED else declared
        else:
            decoded += length
    return batch.scalar(0, "<q"), decoded


def stream_size(body: bytes) -> StreamSize:
    """Rows and decoded bytes of every batch in the stream; ValueError or pa.ArrowInvalid when it is malformed."""
    rows = decoded = 0
    try:
        for message in pa.ipc.MessageReader.open_stream(pa.py_buffer(body)):
            metadata = message.metadata.to_pybytes()
            header = _Table(metadata, struct.unpack_from("<I", metadata, 0)[0])
            kind, content = header.scalar(1, "<B"), header.table(2)
            if kind == _DICTIONARY_BATCH and content is not None:
                kind, content = _RECORD_BATCH, content.table(1)
            if kind != _RECORD_BATCH or content is None:
                continue
            batch_rows, batch_bytes = _batch_size(content, message.body)
            rows, decoded = rows + max(batch_rows, 0), decoded + batch_bytes
    except struct.error as exc:
        raise ValueError(f"malformed message metadata: {exc}") from None
    return StreamSize(rows, decoded)
