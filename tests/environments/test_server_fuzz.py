"""The socket server survives hostile clients with bounded memory (issue #14, point 2).

A server subprocess (imports no Keras: the same light bootstrap as environment workers) is hit
by more than 200 malformed or hostile connections; after each one a legitimate authenticated
client completes a CartPole episode. The server's peak RSS is read from /proc at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from kerasrl.environments import Environment
from kerasrl.environments.remote.protocol import (
    MAGIC,
    ProtocolError,
    decode,
    encode,
    recv_socket,
    send_socket,
)

KEY = "fuzz-key"
PREFIX = struct.Struct(">4sQI")
PACKAGE = os.path.dirname(importlib.util.find_spec("kerasrl").origin)
if importlib.util.find_spec("pytest_timeout") is not None:
    pytestmark = pytest.mark.timeout(180)

#: Starts `serve()` without importing keras (the package __init__ is never run).
SERVER = """
import sys, types
package = types.ModuleType("kerasrl")
package.__path__ = [sys.argv[1]]
sys.modules["kerasrl"] = package
from kerasrl.environments.remote.server import serve
serve("CartPole-v1", port=0, auth_key=sys.argv[2], handshake_timeout=1.0, timeout=5.0)
"""


@pytest.fixture(scope="module")
def server():
    process = subprocess.Popen([sys.executable, "-c", SERVER, PACKAGE, KEY],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line}{process.stderr.read()}")
    port = int(line.rsplit(":", 1)[1].split()[0])
    yield process, port
    process.kill()
    process.wait(timeout=10)


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _frame(header: bytes, buffers: bytes = b"", body: int | None = None) -> bytes:
    body = len(header) + len(buffers) if body is None else body
    return PREFIX.pack(MAGIC, body, len(header)) + header + buffers


def _json_frame(message, buffers=None, payload=b"") -> bytes:
    header = json.dumps({"message": message, "buffers": buffers or []}).encode()
    return _frame(header, payload)


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _challenge(sock):
    return recv_socket(sock, 5.0)["challenge"]


def _digest(challenge):
    return hmac.new(KEY.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def _authenticated(port):
    sock = _connect(port)
    send_socket(sock, {"digest": _digest(_challenge(sock))}, 5.0)
    assert recv_socket(sock, 5.0)["ok"]
    return sock


# Each attack opens its own connection and does something hostile with it. An attack may return
# a socket to keep open (a staller); it is closed a few attacks later.
def _send_raw(data):
    def attack(port, rng):
        sock = _connect(port)
        try:
            sock.sendall(data(rng) if callable(data) else data)
        except OSError:
            pass
        return sock
    return attack


def _after_challenge(data):
    def attack(port, rng):
        sock = _connect(port)
        _challenge(sock)
        try:
            sock.sendall(data(rng) if callable(data) else data)
        except OSError:
            pass
        return sock
    return attack


def _authenticated_then(data):
    def attack(port, rng):
        sock = _authenticated(port)
        try:
            sock.sendall(data(rng) if callable(data) else data)
        except OSError:
            pass
        return sock
    return attack


def _digest_frame(digest):
    return _json_frame({"digest": digest})


ATTACKS = {
    "random-bytes": _send_raw(lambda rng: rng.bytes(int(rng.integers(1, 5000)))),
    "random-bytes-after-challenge": _after_challenge(
        lambda rng: rng.bytes(int(rng.integers(1, 5000)))),
    "bad-magic": _after_challenge(PREFIX.pack(b"HTTP", 10, 2) + b"x" * 10),
    "truncated-prefix": _after_challenge(PREFIX.pack(MAGIC, 100, 10)[:7]),
    "huge-announced-body": _after_challenge(PREFIX.pack(MAGIC, 2**60, 10)),
    "63-MiB-header": _after_challenge(PREFIX.pack(MAGIC, 63 * 2**20, 63 * 2**20 - 1)),
    "body-announced-not-sent": _after_challenge(PREFIX.pack(MAGIC, 4000, 100) + b"{"),
    "header-longer-than-body": _after_challenge(PREFIX.pack(MAGIC, 10, 20) + b"x" * 10),
    "deep-json": _after_challenge(_frame(b"[" * 4000)),
    "63-MiB-header-authenticated": _authenticated_then(
        PREFIX.pack(MAGIC, 63 * 2**20, 63 * 2**20 - 1) + b"[" * 1000),
    "63-MiB-body-announced-authenticated": _authenticated_then(
        PREFIX.pack(MAGIC, 63 * 2**20, 10) + b"x" * 1000),
    "deep-json-authenticated": _authenticated_then(_frame(b"[" * 50_000)),
    "deep-dicts-authenticated": _authenticated_then(
        _frame(b'{"message": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b', "buffers": []}')),
    "non-ascii-header": _after_challenge(_frame("é".encode("latin-1") * 20)),
    "sizes-strings": _after_challenge(_json_frame({"digest": "0" * 64}, ["a"], b"x")),
    "sizes-floats": _after_challenge(_json_frame({"digest": "0" * 64}, [1.5], b"x")),
    "sizes-bools": _after_challenge(_json_frame({"digest": "0" * 64}, [True], b"x")),
    "sizes-negative": _after_challenge(_json_frame({"digest": "0" * 64}, [-1], b"")),
    "sizes-not-a-list": _after_challenge(_frame(b'{"message": 1, "buffers": 5}')),
    "sizes-do-not-add-up": _after_challenge(_json_frame({"digest": "0" * 64}, [3], b"xx")),
    "array-bad-dtype": _authenticated_then(_json_frame(
        {"call": "execute", "kwargs": {"actions": {"__array__": 0, "dtype": "|O",
                                                    "shape": [1]}}}, [8], b"x" * 8)),
    "array-huge-shape": _authenticated_then(_json_frame(
        {"call": "execute", "kwargs": {"actions": {"__array__": 0, "dtype": "<f4",
                                                    "shape": [2**40, 2**40]}}}, [4], b"x" * 4)),
    "array-bad-reference": _authenticated_then(_json_frame(
        {"call": "execute", "kwargs": {"actions": {"__array__": 7}}})),
    "digest-wrong": _after_challenge(_digest_frame("0" * 64)),
    "digest-non-ascii": _after_challenge(_digest_frame("é" * 64)),
    "digest-too-long": _after_challenge(_digest_frame("a" * 10_000)),
    "digest-int": _after_challenge(_digest_frame(12345)),
    "digest-list": _after_challenge(_digest_frame(["a", "b"])),
    "digest-null": _after_challenge(_digest_frame(None)),
    "answer-not-a-dict": _after_challenge(_json_frame([1, 2, 3])),
    "answer-string": _after_challenge(_json_frame("digest")),
    "stalled-half-prefix": _after_challenge(PREFIX.pack(MAGIC, 50, 10)[:8]),
    "stalled-half-frame": _after_challenge(_digest_frame("0" * 64)[:30]),
    "idle": lambda port, rng: _connect(port),
    "close-before-challenge": lambda port, rng: _connect(port).close(),
    "close-after-challenge": lambda port, rng: (lambda s: (_challenge(s), s.close()))(
        _connect(port)),
    "request-bad-call": _authenticated_then(_json_frame({"call": 5})),
    "request-kwargs-list": _authenticated_then(_json_frame({"call": "reset", "kwargs": [1]})),
    "request-bad-action": _authenticated_then(_json_frame(
        {"call": "execute", "kwargs": {"actions": "left"}})),
    "request-not-a-dict": _authenticated_then(_json_frame([{"call": "spec"}])),
    "authenticated-random-bytes": _authenticated_then(
        lambda rng: rng.bytes(int(rng.integers(1, 3000)))),
}


def _legitimate_episode(port):
    env = Environment.create(remote="socket-client", port=port, auth_key=KEY, timeout=10)
    try:
        env.reset()
        rng = random.Random(0)
        for _ in range(500):
            _, terminal, _ = env.execute(rng.randrange(2))
            if terminal:
                return True
        return False
    finally:
        env.close()


def test_server_survives_hostile_connections_with_bounded_memory(server):
    process, port = server
    rng = np.random.default_rng(0)
    names = sorted(ATTACKS) * 6  # 6 rounds of every attack: > 200 hostile connections
    assert len(names) >= 200
    open_sockets: list = []
    completed = 0
    for index, name in enumerate(names):
        kept = ATTACKS[name](port, rng)
        if isinstance(kept, socket.socket):
            open_sockets.append(kept)
        while len(open_sockets) > 6:  # stallers stay open for a few rounds
            open_sockets.pop(0).close()
        assert process.poll() is None, f"server died after attack {index} ({name})"
        completed += _legitimate_episode(port)
    for sock in open_sockets:
        sock.close()
    assert completed == len(names)
    peak = _peak_rss_mib(process.pid)
    print(f"server peak RSS: {peak:.0f} MiB after {len(names)} hostile connections")
    assert peak < 200, f"server peak RSS {peak:.0f} MiB"


def test_stalled_connections_do_not_block_a_legitimate_client(server):
    process, port = server
    stallers = []
    for _ in range(4):  # mid-handshake, and authenticated-but-silent
        sock = _connect(port)
        _challenge(sock)
        sock.sendall(_digest_frame("0" * 64)[:20])
        stallers.append(sock)
    start = time.monotonic()
    assert _legitimate_episode(port)
    assert time.monotonic() - start < 1.0  # well within the 1 s handshake timeout
    for sock in stallers:  # still connected: the server did not wait for them to finish
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)
        sock.close()
    assert process.poll() is None


# ---------------------------------------------------------------------- decoder units
def _decode(frame):
    return decode(frame)


@pytest.mark.parametrize(("frame", "match"), [
    (_frame(b"[" * 50_000), "nested deeper"),
    (_frame(b'{"message": ' + b"[" * 70 + b"]" * 70 + b', "buffers": []}'), "nested deeper"),
    (_frame(b"\xff\xfe"), "UnicodeDecodeError"),
    (_frame(b'{"message": 1}'), "expected"),
    (_json_frame(1, ["a"], b"a"), "non-negative ints"),
    (_json_frame(1, [1.0], b"a"), "non-negative ints"),
    (_json_frame(1, [True], b"a"), "non-negative ints"),
    (_json_frame(1, [-1], b""), "non-negative ints"),
    (_json_frame(1, [2], b"a"), "do not match the body"),
    (_json_frame({"__array__": 0, "dtype": "|O", "shape": [1]}, [8], b"x" * 8), "not bool"),
    (_json_frame({"__array__": 0, "dtype": 5, "shape": [1]}, [8], b"x" * 8), "dtype"),
    (_json_frame({"__array__": 0, "dtype": "<f4", "shape": [1.5]}, [4], b"x" * 4), "shape"),
    (_json_frame({"__array__": 0, "dtype": "<f4", "shape": [-1]}, [4], b"x" * 4), "shape"),
    (_json_frame({"__array__": 0, "dtype": "<f4", "shape": [1] * 40}, [4], b"x" * 4), "shape"),
    (_json_frame({"__array__": 0, "dtype": "<f4", "shape": [3]}, [4], b"x" * 4), "does not fit"),
    (_json_frame({"__array__": True, "dtype": "<f4", "shape": [1]}, [4], b"x" * 4), "reference"),
    (PREFIX.pack(MAGIC, 2 * 2**20, 2 * 2**20), "header too large"),
])
def test_decoder_rejects_each_bad_frame_class(frame, match):
    if len(frame) == PREFIX.size:  # announced sizes only: must fail before reading the body
        from kerasrl.environments.remote.protocol import _check_prefix
        with pytest.raises(ProtocolError, match=match):
            _check_prefix(frame, 64 * 2**20)
        return
    with pytest.raises(ProtocolError, match=match):
        _decode(frame)


def test_small_frames_still_round_trip():
    message = {"call": "execute", "kwargs": {"actions": np.arange(3, dtype=np.int64)}}
    decoded = decode(b"".join(bytes(part) for part in encode(message)))
    np.testing.assert_array_equal(decoded["kwargs"]["actions"], np.arange(3))
