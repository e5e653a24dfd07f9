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
import secrets
import socket
import sys
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
)
from kerasrl.errors import ArgumentError, KerasRLError


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


