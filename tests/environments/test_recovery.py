"""Recovery really recovers, and the client trusts no reply (issue #14, point 3).

Fault injection during training: 50 SIGKILLs of multiprocessing workers (at random moments:
while a request is in flight and between requests) and 20 restarts of a socket server, with
`recover=True`: every failure is recovered (counted) and training goes on. With
`recover=False` a failure is a clear `EnvironmentFailure` within the timeout. A fake server
sends malformed replies: each is a `ProtocolError` naming the field.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kerasrl import Agent, Runner
from kerasrl.environments import Environment
from kerasrl.environments.remote import RemoteVectorEnvironment
from kerasrl.environments.remote.protocol import ProtocolError, recv_socket, send_socket
from kerasrl.environments.vectorized import VectorEnvironment
from kerasrl.errors import EnvironmentFailure

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(importlib.util.find_spec("kerasrl").origin)
KEY = "recovery-key"
if importlib.util.find_spec("pytest_timeout") is not None:
    pytestmark = pytest.mark.timeout(240)


def _agent():
    return Agent.create(agent="ppo", states=dict(type="float", shape=(2,)),
                        actions=dict(type="int", num_values=2), max_episode_timesteps=10,
                        parallel_interactions=2, batch_size=2,
                        network=[dict(type="dense", size=4)], config=dict(seed=0))


FLAKY = dict(environment="_remote_envs.Flaky", sleep=0.002, length=10)


@pytest.fixture(autouse=True)
def _importable_test_environments(monkeypatch):
    monkeypatch.syspath_prepend(HERE)


def _train_until(runner, done, deadline_s=150.0):
    deadline = time.monotonic() + deadline_s
    runner.run(num_timesteps=10**7, batch_agent_calls=True, use_tqdm=False,
               callback=lambda r, p: not done() and time.monotonic() < deadline,
               callback_timestep_frequency=1)


def test_fifty_worker_kills_during_training_all_recover():
    runner = Runner(_agent(), environment=dict(FLAKY), num_parallel=2, remote="multiprocessing",
                    recover=True, timeout=10)
    kills = 50
    killed = []
    try:
        runner.run(num_timesteps=20, batch_agent_calls=True, use_tqdm=False)
        vector = runner._vector
        assert isinstance(vector, RemoteVectorEnvironment)
        rng = random.Random(0)

        def killer():
            while len(killed) < kills:
                if vector.recoveries < len(killed):  # one failure at a time: count exactly
                    time.sleep(0.005)
                    continue
                time.sleep(rng.uniform(0.0, 0.03))  # in flight (env sleeps) or between calls
                env = vector.environments[rng.randrange(2)]
                process = env.process
                if process is None or process.poll() is not None:
                    continue
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        _train_until(runner, lambda: len(killed) == kills and vector.recoveries == kills)
        thread.join(5)
        assert len(killed) == kills and len(set(killed)) == kills
        assert vector.recoveries == kills
        assert runner.aborted_episodes == kills
        assert runner.agent.updates > 0  # it trained through the failures
    finally:
        runner.close()


def test_kill_between_requests_recovers_on_the_send_path():
    vector = VectorEnvironment.create(dict(FLAKY, sleep=0.0), num_parallel=2,
                                      remote="multiprocessing", recover=True, timeout=10)
    try:
        vector.reset()
        for _ in range(5):
            process = vector.environments[0].process
            process.kill()
            process.wait()
            _, terminal, reward = vector.execute(np.zeros(2, np.int64))  # send fails first
            assert terminal[0] == 2 and reward[0] == 0.0
        assert vector.recoveries == 5 and vector.aborted == 5
    finally:
        vector.close()


SERVER = """
import sys, types
package = types.ModuleType("kerasrl")
package.__path__ = [sys.argv[1]]
sys.modules["kerasrl"] = package
sys.path.insert(0, sys.argv[4])
from kerasrl.environments.remote.server import serve
serve("_remote_envs.Flaky", port=int(sys.argv[2]), auth_key=sys.argv[3], sleep=0.002, length=10)
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port):
    process = subprocess.Popen([sys.executable, "-c", SERVER, PACKAGE, str(port), KEY, HERE],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if "serving" not in process.stdout.readline():
        process.kill()
        raise RuntimeError("server did not start")
    return process


def test_twenty_server_restarts_during_training_all_recover():
    port = _free_port()
    servers = [_start_server(port)]
    runner = Runner(_agent(), num_parallel=1, remote="socket-client", host="127.0.0.1",
                    port=port, recover=True, timeout=10, auth_key=KEY)
    restarts = 20
    done = []
    try:
        runner.run(num_timesteps=10, batch_agent_calls=True, use_tqdm=False)
        vector = runner._vector

        def restarter():
            while len(done) < restarts:
                if vector.recoveries < len(done):
                    time.sleep(0.005)
                    continue
                time.sleep(0.02)
                servers[-1].kill()
                servers[-1].wait()
                servers.append(_start_server(port))
                done.append(1)

        thread = threading.Thread(target=restarter, daemon=True)
        thread.start()
        _train_until(runner, lambda: len(done) == restarts and vector.recoveries == restarts)
        thread.join(5)
        assert vector.recoveries == restarts
        assert runner.aborted_episodes == restarts
    finally:
        runner.close()
        for server in servers:
            server.kill()
            server.wait()


def test_without_recover_a_kill_is_a_clear_error_within_the_timeout():
    runner = Runner(_agent(), environment=dict(FLAKY), num_parallel=2, remote="multiprocessing",
                    timeout=5)
    try:
        runner.run(num_timesteps=10, batch_agent_calls=True, use_tqdm=False)
        runner._vector.environments[1].process.kill()
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure, match=r"Flaky.*process \d+.*(exit|Pipe|closed)"):
            runner.run(num_timesteps=50, batch_agent_calls=True, use_tqdm=False)
        assert time.monotonic() - start < 5
    finally:
        runner.close()
    port = _free_port()
    server = _start_server(port)
    env = Environment.create(remote="socket-client", port=port, auth_key=KEY, timeout=5)
    try:
        env.reset()
        server.kill()
        server.wait()
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure, match=f"127.0.0.1:{port}"):
            for _ in range(3):
                env.execute(0)
        assert time.monotonic() - start < 5
    finally:
        env.close()


def test_unrecoverable_failure_names_worker_and_attempts():
    port = _free_port()
    server = _start_server(port)
    vector = VectorEnvironment.create(None, num_parallel=1, remote="socket-client", port=port,
                                      recover=True, auth_key=KEY, timeout=5, connect_timeout=0.2,
                                      max_retries=3, backoff=0.01)
    try:
        vector.reset()
        server.kill()
        server.wait()
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure,
                           match=rf"environment 0 \(127.0.0.1:{port}\).*3 restart attempts"):
            vector.execute(np.zeros(1, np.int64))
        assert time.monotonic() - start < 10
    finally:
        vector.close()


# ---------------------------------------------------------------------- reply validation
SPEC = {"states": {"type": "float", "shape": [2]}, "actions": {"type": "int", "num_values": 2},
        "max_episode_timesteps": 10, "name": "Fake"}
GOOD_STATES = np.zeros(2, np.float32)


def _fake_server(spec_reply, reset_reply, execute_reply):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        connection, _ = listener.accept()
        with connection:
            send_socket(connection, {"challenge": "0" * 64, "auth": False}, 5)
            for reply in (spec_reply, reset_reply, execute_reply):
                try:
                    recv_socket(connection, 5)
                    send_socket(connection, reply, 5)
                except Exception:  # noqa: BLE001 - the client hung up: done
                    return
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def _ok(result, seconds=0.001):
    return {"ok": True, "result": result, "seconds": seconds}


BAD_REPLIES = {
    "seconds-string": ("reset", _ok(GOOD_STATES, seconds="abc"), "seconds"),
    "seconds-negative": ("reset", _ok(GOOD_STATES, seconds=-1.0), "seconds"),
    "ok-missing": ("reset", {"result": GOOD_STATES}, "ok"),
    "not-a-dict": ("reset", [1, 2, 3], "ok"),
    "states-wrong-shape": ("reset", _ok(np.zeros(3, np.float32)), "states"),
    "states-wrong-dtype": ("reset", _ok(["a", "b"]), "states"),
    "states-nan": ("reset", _ok(np.array([np.nan, 0.0], np.float32)), "states"),
    "states-wrong-names": ("reset", _ok({"other": GOOD_STATES}), "states"),
    "execute-not-a-list": ("execute", _ok({"states": GOOD_STATES}), "result"),
    "terminal-seven": ("execute", _ok([GOOD_STATES, 7, 1.0, None]), "terminal"),
    "terminal-string": ("execute", _ok([GOOD_STATES, "1", 1.0, None]), "terminal"),
    "reward-string": ("execute", _ok([GOOD_STATES, 0, "1.0", None]), "reward"),
    "execute-states-shape": ("execute", _ok([np.zeros((2, 2), np.float32), 0, 1.0, None]),
                             "states"),
}


@pytest.mark.parametrize("name", sorted(BAD_REPLIES))
def test_malformed_reply_is_a_protocol_error_naming_the_field(name):
    call, reply, field = BAD_REPLIES[name]
    good_reset = _ok(GOOD_STATES)
    port = _fake_server(_ok(SPEC), reply if call == "reset" else good_reset, reply)
    env = Environment.create(remote="socket-client", port=port, timeout=5)
    try:
        with pytest.raises(ProtocolError) as info:
            env.reset()
            env.execute(0)
        assert f"'{field}" in str(info.value) or f"{field}" in str(info.value), str(info.value)
    finally:
        env.close()


@pytest.mark.parametrize(("spec", "field"), [
    ([1, 2], "spec"),
    ({**SPEC, "states": "float"}, "states"),
    ({**SPEC, "actions": None}, "actions"),
    ({**SPEC, "states": {"type": "complex"}}, "type"),
    ({**SPEC, "max_episode_timesteps": -1}, "max_episode_timesteps"),
    ({**SPEC, "max_episode_timesteps": "10"}, "max_episode_timesteps"),
])
def test_malformed_spec_handshake_is_a_protocol_error(spec, field):
    port = _fake_server(_ok(spec), _ok(GOOD_STATES), _ok(GOOD_STATES))
    with pytest.raises(ProtocolError, match=field):
        Environment.create(remote="socket-client", port=port, timeout=5)
