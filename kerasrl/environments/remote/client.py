"""Client side of remote environments: subprocess workers and socket clients."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from kerasrl.environments.environment import Environment
from kerasrl.environments.remote.protocol import (
    AUTH_KEY_VARIABLE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_TIMEOUT,
    ProtocolError,
    _auth_key,
    _digest,
    _PipeTransport,
    _SocketTransport,
    encode,
)
from kerasrl.errors import (
    ArgumentError,
    CallOrderError,
    EnvironmentFailure,
    InputError,
    KerasRLError,
)
from kerasrl.registry import in_safe_mode, trusts_files
from kerasrl.specs import Specs, flatten
from kerasrl.validation import is_number

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
from kerasrl.environments.remote.server import _worker_main
_worker_main(int(sys.argv[1]))
"""


def _spec_for_child(environment: Any, max_episode_timesteps: Any, reward_shaping: Any,
                    kwargs: dict) -> dict:
    """A JSON-able `Environment.create` spec (classes as import paths).

    A class passed in Python travels as `environment_class` (the child imports
    it: the parent trusts its own objects); the caller's safe mode travels as
    `safe_mode`, so that the child refuses what the parent would refuse.
    """
    class_path = None
    if isinstance(environment, type):
        if environment.__module__ == "__main__":
            raise ArgumentError.invalid(
                "environment", "an importable class (not defined in __main__) for "
                "remote='multiprocessing'", environment, where="Environment.create",
            )
        class_path, environment = f"{environment.__module__}.{environment.__qualname__}", None
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
    safe_mode = True if in_safe_mode() else (False if trusts_files() else None)
    spec = dict(environment=environment, max_episode_timesteps=max_episode_timesteps,
                reward_shaping=reward_shaping, safe_mode=safe_mode, **kwargs)
    if class_path is not None:
        spec["environment_class"] = class_path
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
        transport, info = self._open()
        try:
            self._info = self._check_info(info)
        except ProtocolError:
            transport.close()
            raise
        self._transport = transport
        self._pending = None

    def _check_info(self, info: Any) -> dict:
        """Validates the `spec` reply of the handshake (ProtocolError naming the field)."""
        where = f"spec reply of {self.address}"
        if not isinstance(info, dict):
            raise ProtocolError.invalid("spec", "a dict", info, where=where)
        for key in ("states", "actions"):
            if not isinstance(info.get(key), dict):
                raise ProtocolError.invalid(key, "a spec dict", info.get(key), where=where)
        try:
            self._states_specs = Specs(info["states"], "states")
            self._actions_specs = Specs(info["actions"], "actions")
        except KerasRLError as exc:
            raise ProtocolError(f"Invalid {where}: {exc}") from None
        limit = info.get("max_episode_timesteps")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ProtocolError.invalid("max_episode_timesteps", "None or a positive int", limit,
                                        where=where)
        if not isinstance(info.get("name", ""), str):
            raise ProtocolError.invalid("name", "a str", info.get("name"), where=where)
        return info

    def _check_states(self, states: Any) -> Any:
        """Checks states of a reply against the state specs (and `<action>_mask` entries)."""
        where = f"reply of {self}"
        specs = self._states_specs
        try:
            if specs.singleton and not isinstance(states, dict):
                return specs["state"].check_batch(states, "states", num_batch_dims=0)
            if not isinstance(states, dict):
                raise ProtocolError.invalid("states", f"a dict of {list(specs)}", states,
                                            where=where)
            flat = flatten(states) if any(isinstance(v, dict) for v in states.values()) \
                else dict(states)
            for name in flat:
                if name not in specs._specs and not name.endswith("_mask"):
                    raise ProtocolError.invalid("states", f"the states {list(specs)}", name,
                                                where=where)
            checked = {}
            for name, spec in specs.items():
                if name not in flat:
                    raise ProtocolError.invalid(f"states['{name}']", "a value", None,
                                                where=where)
                checked[name] = spec.check_batch(flat[name], f"states['{name}']", 0)
            checked.update({k: v for k, v in flat.items() if k not in checked})
            return checked
        except InputError as exc:
            raise ProtocolError(f"Invalid {where}: {exc}") from None

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
        """Closes the connection; the error to raise (a `ProtocolError` for a bad reply)."""
        self._shutdown(graceful=False)
        error = ProtocolError if isinstance(cause, ProtocolError) else EnvironmentFailure
        return error(f"Remote environment {self} failed: {cause}")

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

    def _reply(self, reply: Any, call: str) -> Any:
        """Validates a reply (structure, types, states against the specs)."""
        where = f"reply of {self}"
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise self._fail(ProtocolError.invalid("ok", "a dict with a bool 'ok'", reply,
                                                   where=where))
        if not reply["ok"]:
            error = reply.get("error")
            error = error if isinstance(error, dict) else {"message": str(error)[:500]}
            raise EnvironmentFailure(
                f"Remote environment {self} raised {error.get('type')}: "
                f"{error.get('message')}\nRemote traceback:\n{error.get('traceback', '')}"
            )
        seconds = reply.get("seconds", 0.0)
        if not (is_number(seconds) and math.isfinite(seconds) and seconds >= 0):
            raise self._fail(ProtocolError.invalid("seconds", "a finite number >= 0", seconds,
                                                   where=where))
        self.env_seconds += float(seconds)
        result = reply.get("result")
        try:
            if call == "reset":
                return self._check_states(result)
            if call == "execute":
                if not isinstance(result, list) or len(result) != 4:
                    raise ProtocolError.invalid(
                        "result", "[states, terminal, reward, episode_return]", result,
                        where=where)
                states, terminal, reward, episode_return = result
                if type(terminal) is not int or terminal not in (0, 1, 2):
                    raise ProtocolError.invalid("terminal", "0, 1 or 2", terminal, where=where)
                if not is_number(reward):
                    raise ProtocolError.invalid("reward", "a number", reward, where=where)
                if episode_return is not None and not is_number(episode_return):
                    raise ProtocolError.invalid("episode_return", "None or a number",
                                                episode_return, where=where)
                return [self._check_states(states), terminal, float(reward), episode_return]
        except ProtocolError as exc:
            raise self._fail(exc) from None
        return result

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
        result = self._reply(reply, call)
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
        return self._reply(reply, call)

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
        package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


