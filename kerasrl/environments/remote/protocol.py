"""Wire format of remote environments (never pickle) and its two transports.

```
frame := magic b"KRL1" | body_length u64 BE | header_length u32 BE | header | buffers
header := UTF-8 JSON {"message": <tree>, "buffers": [nbytes, ...]}
```

In the message tree, numpy arrays (and numpy scalars) are replaced by
`{"__array__": index, "dtype": "<f4", "shape": [...]}` and their raw bytes
follow the header in order. Only bool, int, uint and float dtypes are
accepted. `body_length` is bounded by `max_frame_bytes` (64 MiB by default)
and `header_length` by `max_header_bytes` (1 MiB); longer frames are rejected
before anything is allocated. Decoding is bounded too: the JSON header may nest
at most `MAX_DEPTH` levels, buffer sizes must be non-negative ints that add up
to the body, and every array reference must name a bool/int/uint/float dtype
and a shape that fits its buffer exactly. Every violation raises
`ProtocolError`, never another exception.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import selectors
import socket
import struct
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from kerasrl.errors import EnvironmentFailure

MAGIC = b"KRL1"
_PREFIX = struct.Struct(">4sQI")
#: Default bound of a frame's body (64 MiB).
DEFAULT_MAX_FRAME_BYTES = 64 * 2**20
#: Default bound of a frame's JSON header (1 MiB).
DEFAULT_MAX_HEADER_BYTES = 2**20
#: Deepest nesting of dicts and lists a header may have.
MAX_DEPTH = 64
#: Most dimensions of an array in a frame.
MAX_RANK = 32
#: Default seconds to wait for any reply.
DEFAULT_TIMEOUT = 60.0
#: Default seconds to keep retrying a connection.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Environment variable holding the shared authentication key.
AUTH_KEY_VARIABLE = "KERASRL_AUTH_KEY"
_DTYPE_KINDS = "biuf"


class ProtocolError(EnvironmentFailure):
    """A frame violated the wire format (truncated, oversized, garbage, bad auth)."""


# ---------------------------------------------------------------------- encoding
def _to_tree(value: Any, buffers: list) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)  # (ascontiguousarray makes 0-d arrays 1-d)
        if array.dtype.kind not in _DTYPE_KINDS:
            raise ProtocolError.invalid("message", "arrays of bool/int/float dtype", array)
        buffers.append(array)
        return {"__array__": len(buffers) - 1, "dtype": array.dtype.str,
                "shape": list(array.shape)}
    if isinstance(value, Mapping):
        if "__array__" in value:
            raise ProtocolError.invalid("message", "dicts without an '__array__' key", value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError.invalid("message", "dicts with str keys", key)
            out[key] = _to_tree(item, buffers)
        return out
    if isinstance(value, (list, tuple)):
        return [_to_tree(item, buffers) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ProtocolError.invalid(
        "message", "None, bool, int, float, str, list, dict or numpy array (no pickle)",
        type(value).__name__,
    )


def encode(message: Any, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> list:
    """Encodes a message as a frame (a list of bytes-like parts to send in order).

    Args:
        message: A tree of dicts, lists, scalars, strings and numpy arrays.
        max_frame_bytes: Bound of the frame's body.

    Returns:
        The frame's parts (prefix, header, raw array buffers).

    Raises:
        ProtocolError: for unsupported values or a frame over the bound.
    """
    buffers: list = []
    tree = _to_tree(message, buffers)
    header = json.dumps({"message": tree, "buffers": [b.nbytes for b in buffers]}).encode()
    body = len(header) + sum(b.nbytes for b in buffers)
    if body > max_frame_bytes:
        raise ProtocolError(
            f"Frame too large: {body} bytes exceed max_frame_bytes={max_frame_bytes}."
        )
    return [_PREFIX.pack(MAGIC, body, len(header)), header] + [
        memoryview(b.reshape(-1).view(np.uint8)) for b in buffers
    ]


def _check_prefix(prefix: bytes, max_frame_bytes: int,
                  max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> tuple[int, int]:
    magic, body, header = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(
            f"Invalid frame: expected magic {MAGIC!r}, received {magic!r} (garbage bytes or "
            "another protocol)."
        )
    if body > max_frame_bytes:
        raise ProtocolError(
            f"Frame too large: {body} bytes announced, max_frame_bytes={max_frame_bytes}."
        )
    if header > body:
        raise ProtocolError(f"Invalid frame: header length {header} > body length {body}.")
    if header > max_header_bytes:
        raise ProtocolError(
            f"Frame header too large: {header} bytes announced, "
            f"max_header_bytes={max_header_bytes}."
        )
    return body, header


def _from_tree(value: Any, arrays: list) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            index = value["__array__"]
            if type(index) is not int or not 0 <= index < len(arrays):
                raise ProtocolError(f"Invalid frame: bad array reference {str(value)[:100]}.")
            return arrays[index]
        return {key: _from_tree(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_tree(item, arrays) for item in value]
    return value


def decode_body(body: memoryview | bytes, header_length: int) -> Any:
    """Decodes a frame body (after the 16-byte prefix) into a message.

    Args:
        body: The body bytes.
        header_length: Length of the JSON header at the start of `body`.

    Returns:
        The message, with numpy arrays.

    Raises:
        ProtocolError: for a malformed body.
    """
    body = memoryview(body)
    try:
        header = json.loads(bytes(body[:header_length]).decode())
    except RecursionError:
        raise ProtocolError(f"Invalid frame header: nested deeper than {MAX_DEPTH}.") from None
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"Invalid frame header: {type(exc).__name__}: {exc}.") from None
    if not isinstance(header, dict) or set(header) != {"message", "buffers"}:
        raise ProtocolError("Invalid frame header: expected {\"message\", \"buffers\"}.")
    tree, sizes = header["message"], header["buffers"]
    if not isinstance(sizes, list) or any(
            type(size) is not int or size < 0 for size in sizes):
        raise ProtocolError(
            f"Invalid frame: buffer sizes must be a list of non-negative ints, received "
            f"{str(sizes)[:100]}.")
    if header_length + sum(sizes) != len(body):
        raise ProtocolError("Invalid frame: buffer sizes do not match the body length.")
    specs: list = []
    _collect_array_specs(tree, specs, 0)
    if len(specs) != len(sizes):
        raise ProtocolError("Invalid frame: array references do not match the buffers.")
    arrays = []
    offset = header_length
    for (dtype, shape), size in zip(specs, sizes):
        dtype, shape = _array_spec(dtype, shape)
        if math.prod(shape) * dtype.itemsize != size:
            raise ProtocolError(f"Invalid frame: array {dtype}{shape} does not fit {size} bytes.")
        arrays.append(np.frombuffer(body[offset:offset + size], dtype=dtype).reshape(shape).copy())
        offset += size
    return _from_tree(tree, arrays)


def _array_spec(dtype: Any, shape: Any) -> tuple[np.dtype, tuple[int, ...]]:
    """Validates an array reference's dtype string and shape (before any allocation)."""
    if not isinstance(dtype, str) or len(dtype) > 8:
        raise ProtocolError(f"Invalid frame: bad array dtype {str(dtype)[:20]!r}.")
    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ProtocolError(f"Invalid frame: bad array dtype {dtype!r}.") from None
    if parsed.kind not in _DTYPE_KINDS:
        raise ProtocolError(f"Invalid frame: array dtype {dtype!r} is not bool/int/uint/float.")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or any(
            type(n) is not int or n < 0 for n in shape):
        raise ProtocolError(
            f"Invalid frame: array shape must be a list of at most {MAX_RANK} non-negative "
            f"ints, received {str(shape)[:100]}.")
    return parsed, tuple(shape)


def _collect_array_specs(value: Any, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"Invalid frame header: nested deeper than {MAX_DEPTH}.")
    if isinstance(value, dict):
        if "__array__" in value:
            out.append((value.get("dtype"), value.get("shape", [])))
            return
        for item in value.values():
            _collect_array_specs(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _collect_array_specs(item, out, depth + 1)


def decode(frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Decodes a complete frame (prefix included)."""
    if len(frame) < _PREFIX.size:
        raise ProtocolError(f"Truncated frame: {len(frame)} bytes.")
    body, header = _check_prefix(bytes(frame[:_PREFIX.size]), max_frame_bytes)
    if len(frame) - _PREFIX.size != body:
        raise ProtocolError(
            f"Truncated frame: {len(frame) - _PREFIX.size} of {body} body bytes."
        )
    return decode_body(memoryview(frame)[_PREFIX.size:], header)


# ---------------------------------------------------------------------- transports
#: A frame's buffer starts at this size and doubles as its bytes arrive, so a
#: peer that announces a large frame and sends little costs little memory.
_INITIAL_READ_BYTES = 1 << 20


def _read_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    buffer = bytearray(min(size, _INITIAL_READ_BYTES))
    received = 0
    if deadline is None:
        sock.settimeout(None)
    while received < size:
        if received == len(buffer):  # grow only once the data is really there
            buffer.extend(bytes(min(len(buffer), size - len(buffer))))
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {received} of {size} bytes")
            sock.settimeout(remaining)
        with memoryview(buffer) as view, view[received:] as free:
            count = sock.recv_into(free)
        if count == 0:
            raise ProtocolError(
                f"Truncated frame: connection closed after {received} of {size} bytes."
            )
        received += count
    return buffer


#: Frames up to this size are joined into one buffer before sending.
_JOIN_BYTES = 1 << 16


def send_socket(sock: socket.socket, message: Any, timeout: float | None,
                max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """Sends one frame over a socket."""
    sock.settimeout(timeout)
    parts = encode(message, max_frame_bytes)
    if sum(len(part) for part in parts) <= _JOIN_BYTES:
        sock.sendall(b"".join(parts))  # one system call for a small frame
    else:
        for part in parts:  # large arrays are sent from their own buffers, not copied
            sock.sendall(part)


def recv_socket(sock: socket.socket, timeout: float | None,
                max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> Any:
    """Receives one frame from a socket (exact reads, bounded sizes, timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    prefix = _read_exact(sock, _PREFIX.size, deadline)
    body, header = _check_prefix(bytes(prefix), max_frame_bytes, max_header_bytes)
    return decode_body(_read_exact(sock, body, deadline), header)


class _PipeTransport:
    def __init__(self, connection: Connection, max_frame_bytes: int):
        self.connection = connection
        self.max_frame_bytes = max_frame_bytes

    def handle(self) -> Any:
        return self.connection

    def send(self, message: Any, timeout: float | None) -> None:
        self.connection.send_bytes(b"".join(encode(message, self.max_frame_bytes)))

    def poll(self, timeout: float) -> bool:
        return self.connection.poll(timeout)

    def recv(self, timeout: float | None, ready: bool = False) -> Any:
        if not ready and timeout is not None and not self.connection.poll(timeout):
            raise TimeoutError(f"no reply within {timeout:g} s")
        try:
            data = self.connection.recv_bytes(self.max_frame_bytes + _PREFIX.size)
        except EOFError:
            raise ProtocolError("connection closed (the process exited)") from None
        return decode(data, self.max_frame_bytes)

    def close(self) -> None:
        self.connection.close()


class _SocketTransport:
    def __init__(self, sock: socket.socket, max_frame_bytes: int):
        self.sock = sock
        self.max_frame_bytes = max_frame_bytes

    def handle(self) -> Any:
        return self.sock

    def send(self, message: Any, timeout: float | None) -> None:
        send_socket(self.sock, message, timeout, self.max_frame_bytes)

    def poll(self, timeout: float) -> bool:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            return bool(selector.select(timeout))

    def recv(self, timeout: float | None, ready: bool = False) -> Any:
        return recv_socket(self.sock, timeout, self.max_frame_bytes)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _auth_key(auth_key: str | bytes | None) -> bytes | None:
    if auth_key is None:
        auth_key = os.environ.get(AUTH_KEY_VARIABLE) or None
    if auth_key is None:
        return None
    return auth_key.encode() if isinstance(auth_key, str) else bytes(auth_key)


def _digest(key: bytes, challenge: str) -> str:
    return hmac.new(key, challenge.encode(), "sha256").hexdigest()

