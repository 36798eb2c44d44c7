"""Read TensorFlow tensor-bundle checkpoints (``prefix.index`` + ``prefix.data-*``) without TensorFlow.

The musicnn package ships its pretrained taggers as TF1 ``Saver`` checkpoints (docs/paper-details.md,
"Released taggers (musicnn)").  A bundle
is two files: the ``.index`` is a LevelDB-style sorted table (SSTable) mapping each variable name
to a ``BundleEntryProto`` (dtype, shape, shard, byte offset and size, CRC32-C of the bytes); the
``.data-NNNNN-of-MMMMM`` shards hold the raw little-endian tensor bytes.  Everything here is
written from the formats' published descriptions: varints, the table's blocks with
prefix-compressed keys and restart points, its 48-byte footer, and the protobuf wire format.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57  # last 8 bytes of every LevelDB/TF table
FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic
BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + masked CRC32-C (4 bytes)

# TensorFlow's DataType enum (types.proto) -> numpy dtype, for the numeric types.
TF_DTYPES = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
    8: np.complex64, 18: np.complex128,
}
DT_STRING = 7


class BundleError(Exception):
    """A checkpoint that cannot be read; the message names the file and what was wrong."""


# ---- CRC32-C (Castagnoli), as LevelDB and TF use it --------------------------------------------
def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC32-C of ``data``; chunks are processed side by side in numpy so megabytes take milliseconds.

    The register update is linear over GF(2): the state after a chunk equals "old state advanced
    through L zero bytes" XOR "the chunk's CRC from a zero state".  All chunks run from zero in one
    vectorised loop (with the 32 basis states riding along to learn the advance map), then are
    folded together in order.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    n_chunks = max(1, min(4096, buffer.size // 256))
    chunk = buffer.size // n_chunks
    head = buffer.size - n_chunks * chunk
    state = 0xFFFFFFFF
    for byte in buffer[:head].tolist():  # fewer than n_chunks bytes, done one by one
        state = int(_CRC_TABLE[(state ^ byte) & 0xFF]) ^ (state >> 8)
    if chunk == 0:
        return state ^ 0xFFFFFFFF
    body = buffer[head:].reshape(n_chunks, chunk)
    basis = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
    states = np.concatenate([np.zeros(n_chunks, np.uint32), basis])  # (n_chunks + 32,)
    column = np.zeros(n_chunks + 32, dtype=np.uint32)
    for step in range(chunk):
        column[:n_chunks] = body[:, step]
        states = _CRC_TABLE[(states ^ column) & 0xFF] ^ (states >> 8)
    chunk_crcs, advance = states[:n_chunks].tolist(), states[n_chunks:]
    # advance[j] = basis bit j pushed through `chunk` zero bytes; tabulate it one byte at a time
    bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1  # (256, 8)
    byte_tables = [
        np.bitwise_xor.reduce(np.where(bits == 1, advance[8 * k: 8 * k + 8][None, :], 0), axis=1).tolist()
        for k in range(4)
    ]
    for value in chunk_crcs:
        state = (byte_tables[0][state & 0xFF] ^ byte_tables[1][(state >> 8) & 0xFF]
                 ^ byte_tables[2][(state >> 16) & 0xFF] ^ byte_tables[3][state >> 24] ^ value)
    return state ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """LevelDB stores CRCs 'masked' (rotated and offset) so CRCs of CRCs stay well-behaved."""
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ---- varints and protobuf wire format -----------------------------------------------------------
def read_varint(buffer: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buffer):
            raise BundleError("truncated varint")
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def parse_message(buffer: bytes) -> dict[int, list]:
    """Protobuf wire format -> {field number: [values]}: ints for varint/fixed, bytes for length-delimited."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buffer):
        key, pos = read_varint(buffer, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(buffer, pos)
        elif wire_type == 1:
            value, pos = struct.unpack_from("<Q", buffer, pos)[0], pos + 8
        elif wire_type == 2:
            length, pos = read_varint(buffer, pos)
            value, pos = bytes(buffer[pos: pos + length]), pos + length
        elif wire_type == 5:
            value, pos = struct.unpack_from("<I", buffer, pos)[0], pos + 4
        else:
            raise BundleError(f"unsupported protobuf wire type {wire_type} in field {number}")
        fields.setdefault(number, []).append(value)
    return fields


def _last(fields: dict[int, list], number: int, default=0):
    return fields[number][-1] if number in fields else default  # proto3: the last occurrence wins


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class BundleEntry:
    """One tensor's BundleEntryProto: where its bytes are and what they mean."""

    dtype: int  # TF DataType enum
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked

    @classmethod
    def parse(cls, value: bytes, name: str) -> "BundleEntry":
        fields = parse_message(value)
        if 7 in fields:
            raise BundleError(f"variable {name!r} is partitioned into slices; only whole tensors are supported")
        shape_fields = parse_message(_last(fields, 2, b""))
        if _last(shape_fields, 3):
            raise BundleError(f"variable {name!r} has an unknown rank")
        dims = tuple(_signed64(_last(parse_message(dim), 1)) for dim in shape_fields.get(2, []))
        return cls(dtype=_last(fields, 1), shape=dims, shard_id=_last(fields, 3), offset=_last(fields, 4),
                   size=_last(fields, 5), crc32c=_last(fields, 6))


# ---- the SSTable ----------------------------------------------------------------------------------
def _read_handle(buffer: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buffer, pos)
    size, pos = read_varint(buffer, pos)
    return (offset, size), pos


def _block(table: bytes, handle: tuple[int, int], where: str) -> bytes:
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_BYTES
    if end > len(table):
        raise BundleError(f"{where}: block at {offset} (+{size}) runs past the end of the file")
    contents, compression = table[offset: offset + size], table[offset + size]
    if compression != 0:
        raise BundleError(f"{where}: block compression type {compression} is not supported (expected 0, none)")
    stored = struct.unpack_from("<I", table, offset + size + 1)[0]
    if crc32c(table[offset: offset + size + 1]) != unmask_crc(stored):
        raise BundleError(f"{where}: checksum mismatch in the block at byte {offset}")
    return contents


def block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block; each key shares a prefix with the key before it."""
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts  # entries stop where the restart array begins
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_length, pos = read_varint(block, pos)
        key = key[:shared] + bytes(block[pos: pos + unshared])
        pos += unshared
        entries.append((key, bytes(block[pos: pos + value_length])))
        pos += value_length
    return entries


def read_table(path: str | Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable file, in key order."""
    table = Path(path).read_bytes()
    if len(table) < FOOTER_BYTES:
        raise BundleError(f"{path}: {len(table)} bytes is too short for a table footer ({FOOTER_BYTES} bytes)")
    footer = table[-FOOTER_BYTES:]
    magic = struct.unpack_from("<Q", footer, FOOTER_BYTES - 8)[0]
    if magic != TABLE_MAGIC:
        raise BundleError(f"{path}: not a TensorFlow checkpoint index (table magic {magic:#x}, expected {TABLE_MAGIC:#x})")
    _metaindex, pos = _read_handle(footer, 0)
    index_handle, _ = _read_handle(footer, pos)
    pairs = []
    for _last_key, handle_bytes in block_entries(_block(table, index_handle, str(path))):
        handle, _ = _read_handle(handle_bytes, 0)
        pairs.extend(block_entries(_block(table, handle, str(path))))
    return pairs


# ---- the bundle -------------------------------------------------------------------------------------
def _index_path(prefix: str | Path) -> str:
    """musicnn's checkpoints use an empty file stem, so a folder means ``folder/.index``."""
    prefix = str(prefix)
    if os.path.isdir(prefix):
        prefix = os.path.join(prefix, "")
    return prefix


class TensorBundle:
    """A checkpoint opened for reading: ``names``, ``entry(name)``, ``read(name)``, ``read_all()``."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = _index_path(prefix)
        index = self.prefix + ".index"
        if not os.path.isfile(index):
            raise BundleError(f"{index}: no checkpoint index file")
        self.entries: dict[str, BundleEntry] = {}
        self.num_shards, self.big_endian = 1, False
        for key, value in read_table(index):
            if key == b"":  # the header: BundleHeaderProto (num_shards, endianness, version)
                header = parse_message(value)
                self.num_shards, self.big_endian = _last(header, 1, 1), _last(header, 2) == 1
                continue
            name = key.decode("utf-8")
            self.entries[name] = BundleEntry.parse(value, name)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str) -> BundleEntry:
        if name not in self.entries:
            raise KeyError(f"{self.prefix}.index: no variable {name!r}; it holds {len(self.entries)} variables")
        return self.entries[name]

    def shard_path(self, shard_id: int) -> str:
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"

    def read(self, name: str, *, verify: bool = True) -> np.ndarray:
        """The tensor ``name`` as a numpy array (bytes objects for strings), checksum verified."""
        entry = self.entry(name)
        shard = self.shard_path(entry.shard_id)
        with open(shard, "rb") as handle:
            handle.seek(entry.offset)
            data = handle.read(entry.size)
        if len(data) != entry.size:
            raise BundleError(f"{shard}: {name!r} needs bytes {entry.offset}..{entry.offset + entry.size}, the file is shorter")
        if entry.dtype == DT_STRING:
            return self._strings(data, entry, name)
        if verify and crc32c(data) != unmask_crc(entry.crc32c):
            raise BundleError(f"{shard}: checksum mismatch for {name!r}")
        if entry.dtype not in TF_DTYPES:
            raise BundleError(f"{self.prefix}.index: {name!r} has TF dtype {entry.dtype}, which this reader does not support")
        dtype = np.dtype(TF_DTYPES[entry.dtype]).newbyteorder(">" if self.big_endian else "<")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise BundleError(f"{shard}: {name!r} is {entry.size} bytes, expected {count * dtype.itemsize} for shape {entry.shape}")
        return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)

    @staticmethod
    def _strings(data: bytes, entry: BundleEntry, name: str) -> np.ndarray:
        """String tensors: all element lengths as varints, a 4-byte checksum, then the bytes."""
        count = int(np.prod(entry.shape, dtype=np.int64))
        lengths, pos = [], 0
        for _ in range(count):
            length, pos = read_varint(data, pos)
            lengths.append(length)
        pos += 4
        values = []
        for length in lengths:
            values.append(data[pos: pos + length])
            pos += length
        return np.array(values, dtype=object).reshape(entry.shape)

    def read_all(self, *, verify: bool = True) -> dict[str, np.ndarray]:
        return {name: self.read(name, verify=verify) for name in self.entries}


def read_bundle(prefix: str | Path, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint at ``prefix`` (or its folder), by name."""
    return TensorBundle(prefix).read_all(verify=verify)
