"""Server side of remote environments: the request loop, the subprocess worker, `serve()`.

Requests are `{"call": name, "kwargs": {...}}` with calls `spec`, `reset`,
`execute`, `episode_return` and `close`; replies are `{"ok": true, "result":
..., "seconds": env_seconds}` or `{"ok": false, "error": {"type", "message",
"traceback"}}`. A socket server first sends `{"challenge": hex, "auth": bool}`;
with a shared key the client answers `{"digest": HMAC-SHA256(key, challenge)}`
and the server replies `{"ok": true}` or an error (then closes).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from kerasrl.environments.environment import Environment
from kerasrl.environments.remote.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ProtocolError,
    _auth_key,
    _digest,
    _PipeTransport,
    _SocketTransport,
    recv_socket,
)
from kerasrl.errors import ArgumentError, KerasRLError
from kerasrl.registry import import_internal
from kerasrl.validation import check_float, check_int


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


def _serve_session(transport: Any, env: Any, timeout: float | None = None) -> None:
    """Answers requests until the client closes (or sends `close`); `timeout` bounds silence."""
    while True:
        try:
            request = transport.recv(timeout)
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
            create = dict(setup["create"])
            class_path = create.pop("environment_class", None)
            if class_path is not None:  # a class the parent passed in Python: trusted
                create["environment"] = import_internal(class_path)
            env = Environment.create(**create)
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



#: Default seconds a client has to complete the handshake (challenge and answer).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Default seconds an authenticated client may stay silent.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Default number of connections handled at once (more are refused).
DEFAULT_MAX_CONNECTIONS = 16
#: Bound of the only frame a client sends before it is authenticated.
HANDSHAKE_FRAME_BYTES = 4096
_LISTEN_BACKLOG = 64
_DIGEST_LENGTH = 64  # hex digits of an HMAC-SHA256
_UNSET: Any = object()
logger = logging.getLogger("kerasrl.remote")


def _log(message: str) -> None:
    """One line per event, on the `kerasrl.remote` logger (stderr unless configured)."""
    logger.warning("kerasrl: %s", message)


def _authenticate(transport: _SocketTransport, key: bytes | None,
                  handshake_timeout: float | None) -> None:
    """Challenge/answer handshake; raises ProtocolError on any failure.

    Before authentication the client may send one frame of at most
    `HANDSHAKE_FRAME_BYTES`, so nothing proportional to claimed sizes is
    allocated for an unauthenticated peer.
    """
    challenge = secrets.token_hex(32)
    transport.send({"challenge": challenge, "auth": key is not None}, handshake_timeout)
    if key is None:
        return
    answer = recv_socket(transport.sock, handshake_timeout, HANDSHAKE_FRAME_BYTES,
                         max_header_bytes=HANDSHAKE_FRAME_BYTES)
    digest = answer.get("digest") if isinstance(answer, dict) else None
    if not (isinstance(digest, str) and len(digest) == _DIGEST_LENGTH and digest.isascii()
            and hmac.compare_digest(digest.encode("ascii"),
                                    _digest(key, challenge).encode("ascii"))):
        transport.send(_error_reply(ProtocolError("authentication failed: wrong auth key")),
                       1.0)
        raise ProtocolError("authentication failed: wrong auth key")
    transport.send({"ok": True, "result": "authenticated", "seconds": 0.0}, handshake_timeout)


class _Server:
    """The state shared by the connection threads of `serve()`."""

    def __init__(self, create: Any, key: bytes | None, max_frame_bytes: int,
                 handshake_timeout: float | None, timeout: float | None,
                 max_clients: int | None, max_connections: int):
        self.create = create
        self.environments = [create()]  # the pool: idle environments, reused by sessions
        self.all_environments = list(self.environments)
        self.key = key
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout = handshake_timeout
        self.timeout = timeout
        self.max_clients = max_clients
        self.slots = threading.BoundedSemaphore(max_connections)
        self.pool_lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.sessions = 0
        self.done = threading.Event()

    def claim_session(self) -> bool:
        """Counts one more authenticated session; False once `max_clients` were served."""
        with self.count_lock:
            if self.max_clients is not None and self.sessions >= self.max_clients:
                return False
            self.sessions += 1
            return True

    def take_environment(self) -> Any:
        """An idle environment of the pool, or a new one from the spec."""
        with self.pool_lock:
            if self.environments:
                return self.environments.pop()
        env = self.create()
        with self.pool_lock:
            self.all_environments.append(env)
        return env

    def give_back(self, env: Any) -> None:
        with self.pool_lock:
            self.environments.append(env)

    def close(self) -> None:
        for env in self.all_environments:
            try:
                env.close()
            except Exception as exc:  # noqa: BLE001 - closing must reach every environment
                _log(f"closing environment {env} failed: {exc}")

    def connection(self, sock: socket.socket, peer: Any) -> None:
        """Serves one connection; any failure ends this connection only."""
        name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        transport = _SocketTransport(sock, self.max_frame_bytes)
        session = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _authenticate(transport, self.key, self.handshake_timeout)
            if not self.claim_session():
                raise ProtocolError("the server has served max_clients clients")
            session = True
            env = self.take_environment()
            try:
                _serve_session(transport, env, self.timeout)
            finally:
                self.give_back(env)
        except Exception as exc:  # noqa: BLE001 - a connection never ends the server
            reason = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            _log(f"client {name} dropped ({reason}): {str(exc)[:200]}")
        finally:
            transport.close()
            self.slots.release()
            if session and self.max_clients is not None:
                with self.count_lock:
                    finished = self.sessions >= self.max_clients
                if finished:
                    self.done.set()


def serve(environment: Any = None, max_episode_timesteps: int | None = None,
          reward_shaping: Any = None, host: str = "127.0.0.1", port: int = 65432,
          auth_key: str | bytes | None = None,
          max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
          timeout: float | None = _UNSET, max_clients: int | None = None,
          ready: Any = None, handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
          max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> None:
    """Serves an environment over TCP until stopped (or until `max_clients` were served).

    Connections are handled concurrently, one thread each (at most
    `max_connections`; more are refused), so a slow or hostile peer never
    blocks the others: each must complete the handshake within
    `handshake_timeout`, sending at most one 4 KiB frame before it is
    authenticated. Each authenticated session steps an environment of its
    own: environments are kept in a pool and reused by later sessions (one
    is created at start; another is created from the same spec only while
    several sessions are open at once), so one client's episode is never
    interleaved with another's. Any failure of a connection (malformed
    frames, wrong auth, timeouts) closes that connection only and logs one
    line (logger `kerasrl.remote`) with the peer and the reason; the server
    goes on.

    Args:
        environment, max_episode_timesteps, reward_shaping, **kwargs: The
            spec, as for `Environment.create`.
        host: Bind address (default loopback only; `'0.0.0.0'` exposes it).
        port: Port (0 picks a free one).
        auth_key: Shared secret (default `$KERASRL_AUTH_KEY`); clients must
            answer an HMAC-SHA256 challenge.
        max_frame_bytes: Bound of a frame of an authenticated client.
        timeout: Seconds an authenticated client may stay silent (default
            300; None: no limit).
        max_clients: Stop after this many authenticated sessions (None:
            serve forever).
        ready: Called with the bound `(host, port)` once listening.
        handshake_timeout: Seconds to complete the handshake (default 10;
            None: no limit).
        max_connections: Connections handled at once (default 16).

    Raises:
        ArgumentError: for invalid arguments.
    """
    if timeout is _UNSET:
        timeout = DEFAULT_IDLE_TIMEOUT
    for name, value in (("timeout", timeout), ("handshake_timeout", handshake_timeout)):
        if value is not None:
            check_float(value, name, low=0.0, low_open=True, where="serve")
    check_int(max_connections, "max_connections", minimum=1, where="serve")
    if max_clients is not None:
        check_int(max_clients, "max_clients", minimum=1, where="serve")
    key = _auth_key(auth_key)
    def create() -> Any:
        return Environment.create(environment, max_episode_timesteps=max_episode_timesteps,
                                  reward_shaping=reward_shaping, **kwargs)

    server = _Server(create, key, max_frame_bytes, handshake_timeout, timeout, max_clients,
                     max_connections)
    env = server.environments[0]
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    threads: list[threading.Thread] = []
    try:
        listener.bind((host, int(port)))
        listener.listen(_LISTEN_BACKLOG)
        listener.settimeout(0.2)  # to notice `done`
        address = listener.getsockname()[:2]
        print(f"kerasrl: serving environment {env} on {address[0]}:{address[1]}"
              f"{' (auth)' if key else ''}", flush=True)
        if ready is not None:
            ready(address)
        while not server.done.is_set():
            try:
                connection, peer = listener.accept()
            except TimeoutError:
                threads = [thread for thread in threads if thread.is_alive()]
                continue
            if not server.slots.acquire(blocking=False):
                _log(f"client {peer[0]}:{peer[1]} refused: {max_connections} connections "
                     "already open (max_connections)")
                connection.close()
                continue
            thread = threading.Thread(target=server.connection, args=(connection, peer),
                                      daemon=True, name=f"kerasrl-serve-{peer[1]}")
            thread.start()
            threads.append(thread)
    finally:
        listener.close()
        for thread in threads:
            thread.join(timeout=1.0)
        server.close()


