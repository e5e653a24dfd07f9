"""Remote environments stepped as one batch, and the `remote=` factories."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from kerasrl.environments.remote.client import (
    MultiprocessingEnvironment,
    RemoteEnvironment,
    SocketEnvironment,
)
from kerasrl.environments.remote.server import serve
from kerasrl.environments.vectorized import VectorEnvironment
from kerasrl.errors import ArgumentError, EnvironmentFailure
from kerasrl.specs import flatten
from kerasrl.validation import check_float, check_int


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
    # Tensorforce's socket server serves one client and returns when it closes.
    kwargs.setdefault("max_clients", 1)
    serve(environment, max_episode_timesteps, reward_shaping,
          host=host if host is not None else "127.0.0.1",
          port=port if port is not None else 65432, **options, **kwargs)
    return None


def create_remote_vector(environment: Any, num_parallel: int, max_episode_timesteps: Any,
                         reward_shaping: Any, remote: str, seed: int | None,
                         kwargs: dict) -> RemoteVectorEnvironment:
    """Implements `VectorEnvironment.create(remote=...)`: N remote environments."""
    recover = bool(kwargs.pop("recover", False))
    retries = {key: kwargs.pop(key) for key in ("max_retries", "backoff") if key in kwargs}
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
    return RemoteVectorEnvironment(environments, recover=recover, seed=seed, **retries)


class RemoteVectorEnvironment(VectorEnvironment):
    """N remote environments stepped as one batch (requests overlap).

    Finished environments are reset on the remote side in the same round
    trip. With `recover=True` an environment that fails on any call (sending
    or receiving, reset or execute: a dead process, a closed or restarted
    server, a timeout, an invalid reply) is restarted, its interrupted
    episode reports terminal 2 (aborted) with reward 0, and the run goes on.
    A restart (a new process, or a new connection and handshake) is tried up
    to `max_retries` times with exponential back-off; when none succeeds, the
    `EnvironmentFailure` names the environment, what happened and the number
    of attempts.

    Args:
        environments: `RemoteEnvironment`s with equal specs.
        recover: Restart failed environments instead of raising.
        seed: Seeds of the first reset are `seed + i`.
        max_retries: Restart attempts per failure (default 5).
        backoff: Seconds before the second attempt, doubled for each further
            one (at most 2 s).

    Attributes:
        aborted: Episodes aborted by recovered failures.
        recoveries: Failures recovered (restarts that succeeded).
    """

    def __init__(self, environments: Sequence[RemoteEnvironment], recover: bool = False,
                 seed: int | None = None, max_retries: int = 5, backoff: float = 0.1):
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
        self.max_retries = check_int(max_retries, "max_retries", minimum=1,
                                     where="RemoteVectorEnvironment")
        self.backoff = check_float(backoff, "backoff", low=0.0, where="RemoteVectorEnvironment")
        self.aborted = 0
        self.recoveries = 0
        self._send_errors: dict[int, EnvironmentFailure] = {}
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

    def _start(self, i: int, start: Any) -> None:
        """Sends a request to environment i; a failure is kept for `_wait_all` (recover)."""
        try:
            start()
        except EnvironmentFailure as exc:
            if not self.recover:
                self._abandon(exclude=i)
                raise
            self._send_errors[i] = exc

    def _abandon(self, exclude: int | None = None) -> None:
        for j, env in enumerate(self.environments):
            if j != exclude and env.pending:
                env._shutdown(graceful=False)

    def _wait_all(self, indices: list) -> dict:
        results: dict = {}
        errors: dict = {i: self._send_errors.pop(i) for i in list(self._send_errors)
                        if i in indices}
        remaining = [i for i in indices if i not in errors]
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

    def _restart(self, i: int, cause: EnvironmentFailure) -> Any:
        """Restarts environment i after `cause` and returns its first states (bounded retries)."""
        env = self.environments[i]
        delay = self.backoff
        for attempt in range(1, self.max_retries + 1):
            try:
                env.restart()
                states = env.reset()
            except EnvironmentFailure as exc:
                cause = exc
                if attempt < self.max_retries:
                    time.sleep(delay)
                    delay = min(2.0 * delay, 2.0)
                continue
            self.aborted += 1
            self.recoveries += 1
            return states
        self._abandon()
        raise EnvironmentFailure(
            f"Remote environment {i} ({env.address}) could not be recovered: "
            f"{self.max_retries} restart attempts failed; the last one: {cause}"
        )

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
            self._start(i, lambda env=env, i=i: env.start_reset(None if seed is None else seed + i))
        outcome = self._wait_all(list(range(self.num_parallel)))
        per_env = []
        for i in range(self.num_parallel):
            if i in outcome["errors"]:
                per_env.append(self._restart(i, outcome["errors"][i]))
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
            self._start(i, lambda env=env, value=value: env.start_execute(value, auto_reset=True))

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
                per_env.append(self._restart(i, outcome["errors"][i]))
                terminal[i] = 2
            else:
                states, terminal[i], reward[i] = outcome["results"][i]
                per_env.append(states)
        return self._stack(per_env), terminal, reward

    # two-phase, used by the Runner's in-turn loop (one environment per instance)
    def receive_execute(self) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """Returns the batched result once every environment has replied, else None."""
        if self._send_errors or not all(env.pending for env in self.environments):
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
