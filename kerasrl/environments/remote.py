"""Remote environments: subprocesses (`remote='multiprocessing'`) and sockets.

Both transports share one wire format (never pickle):

```
frame := magic b"KRL1" | body_length u64 BE | header_length u32 BE | header | buffers
header := UTF-8 JSON {"message": <tree>, "buffers": [nbytes, ...]}
```

In the message tree, numpy arrays (and numpy scalars) are replaced by
`{"__array__": index, "dtype": "<f4", "shape": [...]}` and their raw bytes
follow the header in order. Only bool, int, uint and float dtypes are
accepted. `body_length` is bounded by `max_frame_bytes` (64 MiB by default);
longer frames are rejected before anything is allocated.

Requests are `{"call": name, "kwargs": {...}}` with calls `spec`, `reset`,
`execute`, `episode_return` and `close`; replies are `{"ok": true, "result":
..., "seconds": env_seconds}` or `{"ok": false, "error": {"type", "message",
"traceback"}}`. A socket server first sends `{"challenge": hex, "auth": bool}`;
with a shared key the client answers `{"digest": HMAC-SHA256(key, challenge)}`
and the server replies `{"ok": true}` or an error (then closes).
"""

from __future__ import annotations

import hmac
import json
import math
import os
import secrets
import selectors
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from kerasrl.environments.environment import Environment
from kerasrl.environments.vectorized import VectorEnvironment
from kerasrl.errors import ArgumentError, CallOrderError, EnvironmentFailure, KerasRLError
from kerasrl.specs import Specs, flatten

MAGIC = b"KRL1"
_PREFIX = struct.Struct(">4sQI")
#: Default bound of a frame's body (64 MiB).
DEFAULT_MAX_FRAME_BYTES = 64 * 2**20
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


def _check_prefix(prefix: bytes, max_frame_bytes: int) -> tuple[int, int]:
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
    return body, header


def _from_tree(value: Any, arrays: list) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            index = value["__array__"]
            if not isinstance(index, int) or not 0 <= index < len(arrays):
                raise ProtocolError(f"Invalid frame: bad array reference {value!r}.")
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
        tree, sizes = header["message"], header["buffers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"Invalid frame header: {exc}.") from None
    if not isinstance(sizes, list) or header_length + sum(sizes) != len(body):
        raise ProtocolError("Invalid frame: buffer sizes do not match the body length.")
    specs: list = []
    _collect_array_specs(tree, specs)
    if len(specs) != len(sizes):
        raise ProtocolError("Invalid frame: array references do not match the buffers.")
    arrays = []
    offset = header_length
    for (dtype, shape), size in zip(specs, sizes):
        try:
            dtype = np.dtype(dtype)
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"Invalid frame: bad array dtype/shape: {exc}.") from None
        if dtype.kind not in _DTYPE_KINDS or any(n < 0 for n in shape) or \
                math.prod(shape) * dtype.itemsize != size:
            raise ProtocolError(f"Invalid frame: array {dtype}{shape} does not fit {size} bytes.")
        arrays.append(np.frombuffer(body[offset:offset + size], dtype=dtype).reshape(shape).copy())
        offset += size
    return _from_tree(tree, arrays)


def _collect_array_specs(value: Any, out: list) -> None:
    if isinstance(value, dict):
        if "__array__" in value:
            out.append((value.get("dtype"), value.get("shape") or []))
            return
        for item in value.values():
            _collect_array_specs(item, out)
    elif isinstance(value, list):
        for item in value:
            _collect_array_specs(item, out)


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
def _read_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {received} of {size} bytes")
            sock.settimeout(remaining)
        count = sock.recv_into(view[received:])
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
                max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Receives one frame from a socket (exact reads, bounded size, timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    prefix = _read_exact(sock, _PREFIX.size, deadline)
    body, header = _check_prefix(bytes(prefix), max_frame_bytes)
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


# ---------------------------------------------------------------------- server side
def _error_reply(exc: BaseException) -> dict:
    return {"ok": False, "error": {
        "type": type(exc).__name__, "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }}


def _spec_info(env: Any) -> dict:
    return {
        "states": env.states_spec.get_config(), "actions": env.actions_spec.get_config(),
        "max_episode_timesteps": env.max_episode_timesteps(), "name": str(env),
    }


def _handle(env: Any, request: Any) -> tuple[dict, bool]:
    """Runs one request on `env`; returns the reply and whether to end the session."""
    if not isinstance(request, dict) or not isinstance(request.get("call"), str):
        raise ProtocolError(f"Invalid request: {request!r:.200}.")
    call, kwargs = request["call"], request.get("kwargs") or {}
    start = time.perf_counter()
    try:
        if call == "spec":
            result: Any = _spec_info(env)
        elif call == "reset":
            seed = kwargs.get("seed")
            result = env.reset() if seed is None else env.reset(seed=int(seed))
        elif call == "execute":
            states, terminal, reward = env.execute(kwargs["actions"])
            episode_return = None
            if terminal and kwargs.get("auto_reset"):
                episode_return = env.episode_return()
                states = env.reset()
            result = [states, int(terminal), float(reward), episode_return]
        elif call == "episode_return":
            result = env.episode_return()
        elif call == "close":
            return {"ok": True, "result": None, "seconds": 0.0}, True
        else:
            raise ArgumentError.invalid(
                "call", "one of spec, reset, execute, episode_return, close", call
            )
    except Exception as exc:  # noqa: BLE001 - every environment error goes back to the client
        return _error_reply(exc), False
    return {"ok": True, "result": result, "seconds": time.perf_counter() - start}, False


def _serve_session(transport: Any, env: Any) -> None:
    while True:
        try:
            request = transport.recv(None)
        except ProtocolError as exc:
            if "connection closed" in str(exc) or "after 0 of 16" in str(exc):
                return
            try:
                transport.send(_error_reply(exc), 5.0)
            except (OSError, KerasRLError):
                pass
            raise
        reply, end = _handle(env, request)
        try:
            transport.send(reply, None)
        except ProtocolError as exc:  # e.g. states over the frame bound
            transport.send(_error_reply(exc), None)
        if end:
            return


def _worker_main(fd: int) -> None:
    """Entry point of a `remote='multiprocessing'` child process."""
    connection = Connection(fd)
    transport = _PipeTransport(connection, DEFAULT_MAX_FRAME_BYTES)
    env = None
    try:
        try:
            setup = transport.recv(None)
            transport.max_frame_bytes = int(setup.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES))
            env = Environment.create(**setup["create"])
        except Exception as exc:  # noqa: BLE001
            transport.send(_error_reply(exc), None)
            return
        transport.send({"ok": True, "result": _spec_info(env), "seconds": 0.0}, None)
        _serve_session(transport, env)
    except (ProtocolError, OSError):
        pass
    finally:
        if env is not None:
            env.close()
        connection.close()


_BOOTSTRAP = """
import sys, types
package = types.ModuleType("kerasrl")
package.__path__ = [sys.argv[2]]
package.__file__ = sys.argv[2] + "/__init__.py"
def _full(name):
    # Anything else than Environment runs the real package __init__ (imports keras).
    if name == "Environment":
        from kerasrl.environments import Environment
        return Environment
    del package.__getattr__
    with open(package.__file__) as f:
        exec(compile(f.read(), package.__file__, "exec"), package.__dict__)
    return getattr(package, name)
package.__getattr__ = _full
sys.modules["kerasrl"] = package
from kerasrl.environments.remote import _worker_main
_worker_main(int(sys.argv[1]))
"""


def _spec_for_child(environment: Any, max_episode_timesteps: Any, reward_shaping: Any,
                    kwargs: dict) -> dict:
    """A JSON-able `Environment.create` spec (classes as import paths)."""
    if isinstance(environment, type):
        if environment.__module__ == "__main__":
            raise ArgumentError.invalid(
                "environment", "an importable class (not defined in __main__) for "
                "remote='multiprocessing'", environment, where="Environment.create",
            )
        environment = f"{environment.__module__}.{environment.__qualname__}"
    elif environment is not None and not isinstance(environment, (str, dict)):
        raise ArgumentError.invalid(
            "environment", "a spec (str, dict, JSON file or importable class) for remote "
            "execution, not an instance", environment, where="Environment.create",
        )
    if reward_shaping is not None and not isinstance(reward_shaping, str):
        raise ArgumentError.invalid(
            "reward_shaping", "None or a string expression for remote execution",
            reward_shaping, where="Environment.create",
        )
    spec = dict(environment=environment, max_episode_timesteps=max_episode_timesteps,
                reward_shaping=reward_shaping, **kwargs)
    try:
        encode(spec)
    except ProtocolError as exc:
        raise ArgumentError(f"Invalid environment spec for remote execution: {exc}") from None
    return spec


# ---------------------------------------------------------------------- client side
class RemoteEnvironment(Environment):
    """Client of an environment in another process (base of both transports).

    Requests are sent at once by `start_reset`/`start_execute`; in non-blocking
    mode `receive_execute()` returns None until the reply has arrived, in
    blocking mode it waits for it. Every wait is bounded by `timeout`; any
    failure (process or server gone, protocol violation, environment
    exception) raises `EnvironmentFailure` naming the environment.

    Attributes:
        states_spec, actions_spec: The environment's `Specs`.
        env_seconds: Seconds spent inside the remote environment.
    """

    def __init__(self, blocking: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        super().__init__()
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ArgumentError.invalid("timeout", "a positive number of seconds", timeout)
        if isinstance(max_frame_bytes, bool) or not isinstance(max_frame_bytes, int) or \
                max_frame_bytes < 1024:
            raise ArgumentError.invalid("max_frame_bytes", "an int >= 1024", max_frame_bytes)
        self.blocking = bool(blocking)
        self.timeout = float(timeout)
        self.max_frame_bytes = max_frame_bytes
        self.env_seconds = 0.0
        self._transport: Any = None
        self._pending: str | None = None
        self._deadline = 0.0
        self._info: dict = {}
        self._connect()

    # subclasses ---------------------------------------------------------------
    def _open(self) -> tuple[Any, dict]:
        raise NotImplementedError

    @property
    def address(self) -> str:
        """Where the environment runs (for messages)."""
        raise NotImplementedError

    def _connect(self) -> None:
        self._transport, self._info = self._open()
        self._states_specs = Specs(self._info["states"], "states")
        self._actions_specs = Specs(self._info["actions"], "actions")
        self._pending = None

    def restart(self) -> None:
        """Closes the connection (and process) and starts a fresh one."""
        self._shutdown(graceful=False)
        self._connect()

    # interface ----------------------------------------------------------------
    @property
    def states_spec(self) -> Specs:
        return self._states_specs

    @property
    def actions_spec(self) -> Specs:
        return self._actions_specs

    def states(self) -> dict:
        return self._info["states"]

    def actions(self) -> dict:
        return self._info["actions"]

    def max_episode_timesteps(self) -> int | None:
        return self._info["max_episode_timesteps"]

    def __str__(self) -> str:
        return f"{self._info.get('name', '?')} ({self.address})"

    def reset(self, seed: int | None = None) -> Any:
        self.start_reset(seed)
        return self._receive(blocking=True)[0]

    def execute(self, actions: Any) -> tuple[Any, int, float]:
        self.start_execute(actions)
        states, terminal, reward = self._receive(blocking=True)
        return states, terminal, reward

    def episode_return(self) -> float | None:
        return self._request("episode_return", {})

    def start_reset(self, seed: int | None = None) -> None:
        self._start("reset", {"seed": None if seed is None else int(seed)})

    def start_execute(self, actions: Any, auto_reset: bool = False) -> None:
        self._start("execute", {"actions": actions, "auto_reset": bool(auto_reset)})

    def receive_execute(self) -> tuple[Any, int, float | None] | None:
        return self._receive(blocking=self.blocking)

    def handle(self) -> Any:
        """The object to pass to `multiprocessing.connection.wait` (readable = reply)."""
        return self._transport.handle() if self._transport is not None else None

    @property
    def pending(self) -> bool:
        """Whether a request awaits its reply."""
        return self._pending is not None

    def close(self) -> None:
        self._shutdown(graceful=True)

    # machinery ----------------------------------------------------------------
    def _fail(self, cause: Any) -> EnvironmentFailure:
        self._shutdown(graceful=False)
        return EnvironmentFailure(f"Remote environment {self} failed: {cause}")

    def _start(self, call: str, kwargs: dict) -> None:
        if self._transport is None:
            raise CallOrderError(f"Remote environment {self}: {call} after close().")
        if self._pending is not None:
            raise CallOrderError(
                f"Remote environment {self}: start_{call}() while a previous call is pending."
            )
        try:
            self._transport.send({"call": call, "kwargs": kwargs}, self.timeout)
        except ProtocolError as exc:
            if "too large" in str(exc) or "no pickle" in str(exc):
                raise
            raise self._fail(exc) from None
        except (OSError, ValueError) as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}") from None
        self._pending = call
        self._deadline = time.monotonic() + self.timeout

    def _reply(self, reply: Any) -> Any:
        if not isinstance(reply, dict) or "ok" not in reply:
            raise self._fail(f"invalid reply {reply!r:.200}")
        if not reply["ok"]:
            error = reply.get("error") or {}
            raise EnvironmentFailure(
                f"Remote environment {self} raised {error.get('type')}: "
                f"{error.get('message')}\nRemote traceback:\n{error.get('traceback', '')}"
            )
        self.env_seconds += float(reply.get("seconds") or 0.0)
        return reply["result"]

    def _receive(self, blocking: bool, ready: bool = False) -> Any:
        """The reply of the pending call (None if not blocking and none is there yet).

        `ready=True`: the caller's `wait` saw the handle readable (no poll needed).
        """
        if self._pending is None:
            raise CallOrderError(
                f"receive_execute() of {self} called without start_reset/start_execute."
            )
        remaining = self._deadline - time.monotonic()
        try:
            if not blocking and not ready and not self._transport.poll(0):
                if remaining <= 0:
                    raise TimeoutError(f"no reply within timeout={self.timeout:g} s")
                return None
            reply = self._transport.recv(max(remaining, 0.0), ready=ready)
        except (ProtocolError, OSError, ValueError, EOFError) as exc:
            name = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise self._fail(f"{name}: {exc}") from None
        call, self._pending = self._pending, None
        result = self._reply(reply)
        if call == "reset":
            return result, -1, None
        states, terminal, reward, _ = result
        return states, terminal, reward

    def _request(self, call: str, kwargs: dict) -> Any:
        self._start(call, kwargs)
        try:
            reply = self._transport.recv(self.timeout)
        except (ProtocolError, OSError, ValueError) as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}") from None
        self._pending = None
        return self._reply(reply)

    def _shutdown(self, graceful: bool) -> None:
        transport, self._transport = self._transport, None
        self._pending = None
        if transport is None:
            return
        if graceful:
            try:
                transport.send({"call": "close", "kwargs": {}}, 1.0)
                transport.recv(1.0)
            except (KerasRLError, OSError, ValueError, EOFError):
                pass
        transport.close()


class MultiprocessingEnvironment(RemoteEnvironment):
    """An environment in a child Python process (`remote='multiprocessing'`).

    The child is a fresh interpreter (spawn semantics, no fork): it receives
    the environment spec as JSON through a socket pair and calls
    `Environment.create`; it imports `kerasrl.environments` only, not keras.
    Classes must be importable (not defined in `__main__`).

    Args:
        environment, max_episode_timesteps, reward_shaping, **kwargs: The
            spec, as for `Environment.create`.
        blocking: `receive_execute()` waits for the reply.
        timeout: Seconds to wait for any reply (start included).
        max_frame_bytes: Bound of a frame.
    """

    def __init__(self, environment: Any = None, max_episode_timesteps: int | None = None,
                 reward_shaping: str | None = None, blocking: bool = False,
                 timeout: float = DEFAULT_TIMEOUT,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, **kwargs: Any):
        self._spec = _spec_for_child(environment, max_episode_timesteps, reward_shaping, kwargs)
        self.process: subprocess.Popen | None = None
        super().__init__(blocking=blocking, timeout=timeout, max_frame_bytes=max_frame_bytes)

    @property
    def address(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"process {pid}"

    def _open(self) -> tuple[Any, dict]:
        parent, child = socket.socketpair()
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [p or os.getcwd() for p in sys.path]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child.fileno()), package],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, env=env,
            )
        finally:
            child.close()
        transport = _PipeTransport(Connection(parent.detach()), self.max_frame_bytes)
        try:
            transport.send({"create": self._spec, "max_frame_bytes": self.max_frame_bytes},
                           self.timeout)
            reply = transport.recv(self.timeout)
        except (ProtocolError, OSError, EOFError) as exc:
            transport.close()
            self._kill()
            raise EnvironmentFailure(
                f"Environment process {self.process.pid} failed to start: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not reply.get("ok"):
            transport.close()
            self._kill()
            error = reply.get("error") or {}
            raise EnvironmentFailure(
                f"Creating the environment in process {self.process.pid} failed: "
                f"{error.get('type')}: {error.get('message')}\nRemote traceback:\n"
                f"{error.get('traceback', '')}"
            )
        return transport, reply["result"]

    def _fail(self, cause: Any) -> EnvironmentFailure:
        code = None
        if self.process is not None:
            try:  # the pipe closes just before the process can be reaped
                code = self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:
            cause = f"{cause} (the process exited with code {code})"
        return super()._fail(cause)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def _shutdown(self, graceful: bool) -> None:
        super()._shutdown(graceful)
        if self.process is not None:
            try:
                self.process.wait(timeout=2.0 if graceful else 0.0)
            except subprocess.TimeoutExpired:
                pass
            self._kill()


def _auth_key(auth_key: str | bytes | None) -> bytes | None:
    if auth_key is None:
        auth_key = os.environ.get(AUTH_KEY_VARIABLE) or None
    if auth_key is None:
        return None
    return auth_key.encode() if isinstance(auth_key, str) else bytes(auth_key)


def _digest(key: bytes, challenge: str) -> str:
    return hmac.new(key, challenge.encode(), "sha256").hexdigest()


class SocketEnvironment(RemoteEnvironment):
    """Client of an environment served by `serve()` (`remote='socket-client'`).

    Args:
        host: Server host name or address.
        port: Server port.
        blocking: `receive_execute()` waits for the reply.
        timeout: Seconds to wait for any reply.
        connect_timeout: Seconds to keep retrying the connection (exponential
            back-off from 50 ms to 1 s).
        auth_key: Shared secret (default: `$KERASRL_AUTH_KEY`).
        max_frame_bytes: Bound of a frame.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 blocking: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 auth_key: str | bytes | None = None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        if not isinstance(host, str) or not host:
            raise ArgumentError.invalid("host", "a host name or address", host)
        if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or \
                not 0 < port < 65536:
            raise ArgumentError.invalid("port", "an int in 1..65535", port)
        self.host, self.port = host, int(port)
        self.connect_timeout = float(connect_timeout)
        self._key = _auth_key(auth_key)
        super().__init__(blocking=blocking, timeout=timeout, max_frame_bytes=max_frame_bytes)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _open(self) -> tuple[Any, dict]:
        deadline = time.monotonic() + self.connect_timeout
        delay = 0.05
        while True:
            try:
                sock = socket.create_connection(
                    (self.host, self.port), timeout=max(0.1, deadline - time.monotonic()))
                break
            except OSError as exc:
                if time.monotonic() + delay > deadline:
                    raise EnvironmentFailure(
                        f"Cannot connect to the environment server {self.address} within "
                        f"connect_timeout={self.connect_timeout:g} s: {exc}."
                    ) from None
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = _SocketTransport(sock, self.max_frame_bytes)
        try:
            hello = transport.recv(self.timeout)
            if hello.get("auth"):
                if self._key is None:
                    raise EnvironmentFailure(
                        f"The environment server {self.address} requires an auth key "
                        f"(auth_key= or ${AUTH_KEY_VARIABLE})."
                    )
                transport.send({"digest": _digest(self._key, hello["challenge"])}, self.timeout)
                verdict = transport.recv(self.timeout)
                if not verdict.get("ok"):
                    raise EnvironmentFailure(
                        f"The environment server {self.address} refused the connection: "
                        f"{(verdict.get('error') or {}).get('message')}"
                    )
            transport.send({"call": "spec", "kwargs": {}}, self.timeout)
            reply = transport.recv(self.timeout)
        except (OSError, ProtocolError, AttributeError, KeyError, TypeError) as exc:
            transport.close()
            raise EnvironmentFailure(
                f"Handshake with the environment server {self.address} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        except EnvironmentFailure:
            transport.close()
            raise
        if not reply.get("ok"):
            transport.close()
            error = reply.get("error") or {}
            raise EnvironmentFailure(
                f"The environment server {self.address} refused: {error.get('message')}"
            )
        return transport, reply["result"]


def serve(environment: Any = None, max_episode_timesteps: int | None = None,
          reward_shaping: Any = None, host: str = "127.0.0.1", port: int = 65432,
          auth_key: str | bytes | None = None,
          max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
          timeout: float | None = None, max_clients: int | None = None,
          ready: Any = None, **kwargs: Any) -> None:
    """Serves one environment over TCP, one client after another, until stopped.

    Args:
        environment, max_episode_timesteps, reward_shaping, **kwargs: The
            spec, as for `Environment.create`.
        host: Bind address (default loopback only; `'0.0.0.0'` exposes it).
        port: Port (0 picks a free one).
        auth_key: Shared secret (default `$KERASRL_AUTH_KEY`); clients must
            answer an HMAC-SHA256 challenge.
        max_frame_bytes: Bound of a frame.
        timeout: Seconds a client may stay silent (None: no limit).
        max_clients: Stop after this many clients (None: serve forever).
        ready: Called with the bound `(host, port)` once listening.

    Raises:
        ArgumentError: for invalid arguments.
    """
    key = _auth_key(auth_key)
    env = Environment.create(environment, max_episode_timesteps=max_episode_timesteps,
                             reward_shaping=reward_shaping, **kwargs)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, int(port)))
        listener.listen(1)
        address = listener.getsockname()[:2]
        print(f"kerasrl: serving environment {env} on {address[0]}:{address[1]}"
              f"{' (auth)' if key else ''}", flush=True)
        if ready is not None:
            ready(address)
        clients = 0
        while max_clients is None or clients < max_clients:
            connection, peer = listener.accept()
            clients += 1
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = _SocketTransport(connection, max_frame_bytes)
            try:
                challenge = secrets.token_hex(32)
                transport.send({"challenge": challenge, "auth": key is not None}, 10.0)
                if key is not None:
                    answer = transport.recv(10.0)
                    digest = answer.get("digest") if isinstance(answer, dict) else None
                    if not isinstance(digest, str) or not hmac.compare_digest(
                            digest, _digest(key, challenge)):
                        transport.send(_error_reply(ProtocolError(
                            "authentication failed: wrong auth key")), 5.0)
                        raise ProtocolError("authentication failed: wrong auth key")
                    transport.send({"ok": True, "result": "authenticated", "seconds": 0.0}, 10.0)
                transport.sock.settimeout(timeout)
                _serve_session_socket(transport, env, timeout)
            except (KerasRLError, OSError) as exc:
                print(f"kerasrl: client {peer[0]}:{peer[1]} dropped: {exc}", file=sys.stderr,
                      flush=True)
            finally:
                transport.close()
    finally:
        listener.close()
        env.close()


def _serve_session_socket(transport: _SocketTransport, env: Any, timeout: float | None) -> None:
    original = transport.recv
    transport.recv = lambda _timeout: original(timeout)  # type: ignore[method-assign]
    _serve_session(transport, env)


# ---------------------------------------------------------------------- vectorized
def _expand(value: Any, n: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise ArgumentError.invalid(name, f"one value or {n} values", value)
    return values


def socket_addresses(host: Any, port: Any, num_parallel: int) -> list[tuple[str, int]]:
    """Expands `host`/`port` (str/int or lists) to one address per environment.

    A single host with a single port gives ports `port, port + 1, ...`.
    """
    hosts = _expand(host if host is not None else "127.0.0.1", num_parallel, "host")
    if port is None:
        raise ArgumentError.invalid("port", "a port or a list of ports", port)
    if isinstance(port, str):
        port = [int(p) for p in port.split(",")]
    if not isinstance(port, (list, tuple)) and len(set(hosts)) == 1:
        ports = [int(port) + i for i in range(num_parallel)]
    else:
        ports = [int(p) for p in _expand(port, num_parallel, "port")]
    return list(zip(hosts, ports))


def create_remote(environment: Any, max_episode_timesteps: Any, reward_shaping: Any,
                  remote: str, blocking: bool, host: Any, port: Any,
                  kwargs: dict) -> RemoteEnvironment | None:
    """Implements `Environment.create(remote=...)`."""
    options = {key: kwargs.pop(key) for key in
               ("timeout", "max_frame_bytes", "connect_timeout", "auth_key") if key in kwargs}
    if remote == "multiprocessing":
        options.pop("connect_timeout", None)
        options.pop("auth_key", None)
        return MultiprocessingEnvironment(environment, max_episode_timesteps, reward_shaping,
                                          blocking=blocking, **options, **kwargs)
    if remote == "socket-client":
        if environment is not None or max_episode_timesteps is not None or \
                reward_shaping is not None or kwargs:
            raise ArgumentError.invalid(
                "environment", "None (and no environment arguments) with remote='socket-client'",
                environment if environment is not None else sorted(kwargs),
                where="Environment.create",
            )
        return SocketEnvironment(host if host is not None else "127.0.0.1", port,
                                 blocking=blocking, **options)
    options.pop("connect_timeout", None)
    serve(environment, max_episode_timesteps, reward_shaping,
          host=host if host is not None else "127.0.0.1",
          port=port if port is not None else 65432, **options, **kwargs)
    return None


def create_remote_vector(environment: Any, num_parallel: int, max_episode_timesteps: Any,
                         reward_shaping: Any, remote: str, seed: int | None,
                         kwargs: dict) -> RemoteVectorEnvironment:
    """Implements `VectorEnvironment.create(remote=...)`: N remote environments."""
    recover = bool(kwargs.pop("recover", False))
    blocking = bool(kwargs.pop("blocking", False))
    host, port = kwargs.pop("host", None), kwargs.pop("port", None)
    if isinstance(environment, (list, tuple)):
        specs = list(environment)
    else:
        if isinstance(num_parallel, bool) or not isinstance(num_parallel, (int, np.integer)) \
                or num_parallel < 1:
            raise ArgumentError.invalid("num_parallel", "a positive int", num_parallel)
        specs = [environment] * int(num_parallel)
    environments: list = []
    try:
        if remote == "socket-client":
            for address in socket_addresses(host, port, len(specs)):
                environments.append(create_remote(
                    None, max_episode_timesteps, reward_shaping, remote, blocking,
                    address[0], address[1], dict(kwargs)))
        else:
            for spec in specs:
                environments.append(create_remote(
                    spec, max_episode_timesteps, reward_shaping, remote, blocking, None, None,
                    dict(kwargs)))
    except BaseException:
        for env in environments:
            env.close()
        raise
    return RemoteVectorEnvironment(environments, recover=recover, seed=seed)


class RemoteVectorEnvironment(VectorEnvironment):
    """N remote environments stepped as one batch (requests overlap).

    Finished environments are reset on the remote side in the same round
    trip. With `recover=True` a failed environment is restarted and reports
    terminal 2 (aborted) with reward 0.

    Args:
        environments: `RemoteEnvironment`s with equal specs.
        recover: Restart failed environments instead of raising.
        seed: Seeds of the first reset are `seed + i`.
    """

    def __init__(self, environments: Sequence[RemoteEnvironment], recover: bool = False,
                 seed: int | None = None):
        self.environments = list(environments)
        self.num_parallel = len(self.environments)
        first = self.environments[0]
        for env in self.environments[1:]:
            if env.states_spec != first.states_spec or env.actions_spec != first.actions_spec:
                raise ArgumentError.invalid(
                    "environments", f"equal specs ({first})", str(env),
                    where="RemoteVectorEnvironment",
                )
        self.states_spec = first.states_spec
        self.actions_spec = first.actions_spec
        self.max_episode_timesteps = first.max_episode_timesteps()
        self.recover = recover
        self.aborted = 0
        self._seed = seed
        self._closed = False

    def __str__(self) -> str:
        return f"RemoteVectorEnvironment({', '.join(str(e) for e in self.environments)})"

    def _flat(self, states: Any) -> dict:
        if isinstance(states, Mapping):
            return flatten(states) if any(isinstance(v, Mapping) for v in states.values()) \
                else dict(states)
        return {"state": states}

    def _stack(self, per_env: list) -> dict:
        flats = [self._flat(s) for s in per_env]
        names = sorted(set().union(*flats))
        batch = {}
        for name in names:
            if name in self.states_spec._specs:
                spec = self.states_spec[name]
                batch[name] = np.stack([np.asarray(f[name], dtype=spec.dtype) for f in flats])
            else:
                present = [f[name] for f in flats if name in f]
                batch[name] = np.stack([np.asarray(f.get(name, np.ones_like(present[0])),
                                                   dtype=bool) for f in flats])
        return batch

    def _wait_all(self, indices: list) -> dict:
        results: dict = {}
        errors: dict = {}
        remaining = list(indices)
        while remaining:
            handles = [self.environments[i].handle() for i in remaining]
            ready = {id(h) for h in wait([h for h in handles if h is not None], timeout=0.5)}
            now = time.monotonic()
            for i, handle in zip(list(remaining), handles):
                env = self.environments[i]
                readable = id(handle) in ready
                if not readable and handle is not None and now < env._deadline:
                    continue  # still running, within its timeout
                try:
                    # A readable handle has a reply (or EOF: the failure is raised).
                    result = env._receive(blocking=False, ready=readable)
                except EnvironmentFailure as exc:
                    errors[i] = exc
                    remaining.remove(i)
                    continue
                if result is not None:
                    results[i] = result
                    remaining.remove(i)
        if errors and not self.recover:
            for j in remaining:
                self.environments[j]._shutdown(graceful=False)
            raise next(iter(errors.values()))
        return {"results": results, "errors": errors}

    def _restart(self, i: int) -> Any:
        self.aborted += 1
        env = self.environments[i]
        env.restart()
        return env.reset()

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None:
            seed, self._seed = self._seed, None
        for env in self.environments:
            # Calls left in flight by an interrupted run are drained; environments
            # that failed before are restarted.
            if env.pending:
                try:
                    env._receive(blocking=True)
                except EnvironmentFailure:
                    pass
            if env._transport is None and not self._closed:
                env.restart()
        for i, env in enumerate(self.environments):
            env.start_reset(None if seed is None else seed + i)
        outcome = self._wait_all(list(range(self.num_parallel)))
        per_env = []
        for i in range(self.num_parallel):
            if i in outcome["errors"]:
                per_env.append(self._restart(i))
            else:
                per_env.append(outcome["results"][i][0])
        return self._stack(per_env)

    def start_execute(self, actions: Any) -> None:
        checked = self._check_actions(actions)
        singleton = self.actions_spec.singleton
        for i, env in enumerate(self.environments):
            if singleton:
                value = checked["action"][i]
            else:
                value = {name: array[i] for name, array in checked.items()}
                value = self.actions_spec.unflatten(value)
            env.start_execute(value, auto_reset=True)

    def execute(self, actions: Any) -> tuple[dict, np.ndarray, np.ndarray]:
        self.start_execute(actions)
        return self._collect()

    def _collect(self) -> tuple[dict, np.ndarray, np.ndarray]:
        n = self.num_parallel
        outcome = self._wait_all(list(range(n)))
        terminal = np.zeros(n, dtype=np.int64)
        reward = np.zeros(n, dtype=np.float32)
        per_env = []
        for i in range(n):
            if i in outcome["errors"]:
                per_env.append(self._restart(i))
                terminal[i] = 2
            else:
                states, terminal[i], reward[i] = outcome["results"][i]
                per_env.append(states)
        return self._stack(per_env), terminal, reward

    # two-phase, used by the Runner's in-turn loop (one environment per instance)
    def receive_execute(self) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """Returns the batched result once every environment has replied, else None."""
        if not all(env.pending for env in self.environments):
            return self._collect()
        if not all(env._transport.poll(0) for env in self.environments):
            for env in self.environments:  # enforce the deadline
                if time.monotonic() > env._deadline:
                    return self._collect()
            return None
        return self._collect()

    def execute_wait(self) -> tuple[dict, np.ndarray, np.ndarray]:
        """Waits for the results of `start_execute` (bounded by the timeout)."""
        return self._collect()

    def handles(self) -> list:
        """Objects for `multiprocessing.connection.wait`."""
        return [env.handle() for env in self.environments if env.handle() is not None]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for env in self.environments:
                env.close()

    def get_config(self) -> dict:
        return {"environments": [str(env) for env in self.environments],
                "recover": self.recover}


__all__ = [
    "RemoteEnvironment",
    "MultiprocessingEnvironment",
    "SocketEnvironment",
    "RemoteVectorEnvironment",
    "ProtocolError",
    "serve",
    "encode",
    "decode",
    "socket_addresses",
    "create_remote",
    "create_remote_vector",
    "DEFAULT_MAX_FRAME_BYTES",
]
