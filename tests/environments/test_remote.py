"""Remote environments: wire format, subprocesses, socket servers, faults, Runner."""

import importlib.util
import os
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from kerasrl import Runner
from kerasrl.environments import Environment
from kerasrl.environments.remote.protocol import (
    MAGIC,
    ProtocolError,
    decode,
    encode,
    recv_socket,
    send_socket,
)
from kerasrl.errors import ArgumentError, EnvironmentFailure

HERE = os.path.dirname(os.path.abspath(__file__))
PPO = "/work/shared/tensorforce-data/configs/ppo.json"
if importlib.util.find_spec("pytest_timeout") is not None:
    pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(*args, env=None, environment=("gym", "--level", "CartPole-v1")):
    port = _free_port()
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    environ.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "kerasrl", "run", "--environment", *environment,
         "--remote", "socket-server", "--port", str(port), "--max-clients", "0", *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    line = process.stdout.readline()  # "kerasrl: serving environment ... on host:port"
    while line and "serving" not in line:
        line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {process.stdout.read()}")
    return process, port


def _stop(process):
    process.kill()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def big_server():
    process, port = _start_server(environment=("_remote_envs.BigObservation",))
    try:
        yield port
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def auth_server():
    process, port = _start_server(
        env={"KERASRL_AUTH_KEY": "sesame"},
        environment=("_remote_envs.Flaky",),
    )
    try:
        yield port
    finally:
        _stop(process)


# ---------------------------------------------------------------------- wire format
def test_frame_round_trip_keeps_dtypes_shapes_and_structure():
    message = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": [np.float32(1.5), True],
               "c": {"d": np.zeros((0, 4), np.float64), "e": None, "f": "text"},
               "g": np.array([True, False])}
    out = decode(b"".join(bytes(p) for p in encode(message)))
    assert out["a"].dtype == np.int32 and out["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert out["b"][0].shape == () and out["b"][0].dtype == np.float32 and out["b"][1] is True
    assert out["c"]["d"].shape == (0, 4) and out["c"]["e"] is None and out["c"]["f"] == "text"
    assert out["g"].dtype == np.bool_


def test_encode_rejects_what_would_need_pickle():
    with pytest.raises(ProtocolError, match="no pickle"):
        encode({"x": object()})
    with pytest.raises(ProtocolError, match="bool/int/float"):
        encode(np.array(["a"], dtype=object))


@pytest.mark.parametrize("frame, match", [
    (b"GET / HTTP/1.1\r\n\r\n", "magic"),
    (struct.pack(">4sQI", MAGIC, 100, 10) + b"x" * 10, "Truncated"),
    (struct.pack(">4sQI", MAGIC, 2**40, 10), "too large"),
    (b"KR", "Truncated"),
])
def test_decode_rejects_bad_frames(frame, match):
    with pytest.raises(ProtocolError, match=match):
        decode(frame)


def test_encode_bounds_the_frame_size():
    with pytest.raises(ProtocolError, match="too large"):
        encode(np.zeros(2**20, np.float32), max_frame_bytes=2**20)


# ---------------------------------------------------------------------- multiprocessing
def test_multiprocessing_environment_steps_and_reports_environment_errors(tmp_path):
    marker = tmp_path / "fail"
    env = Environment.create("_remote_envs.Flaky", remote="multiprocessing",
                             marker=str(marker), mode="raise", timeout=20)
    try:
        assert env.max_episode_timesteps() is None
        np.testing.assert_array_equal(env.reset(), [0.0, 0.0])
        states, terminal, reward = env.execute(1)
        assert states.tolist() == [1.0, 1.0] and terminal == 0 and reward == 1.0
        env.start_execute(0)
        result = None
        while result is None:  # non-blocking: None until the reply is there
            result = env.receive_execute()
        assert result[0].tolist() == [2.0, 2.0]
        marker.write_text("x")
        with pytest.raises(EnvironmentFailure, match=r"(?s)ValueError.*on purpose.*"
                                                     r"Remote traceback.*in execute"):
            env.execute(0)
        # the connection survives an environment exception
        assert env.reset().tolist() == [0.0, 0.0]
    finally:
        env.close()


def test_multiprocessing_child_does_not_import_keras():
    env = Environment.create("_remote_envs.Flaky", remote="multiprocessing")
    try:
        pid = env.process.pid
        with open(f"/proc/{pid}/maps", encoding="utf-8") as file:
            maps = file.read()
        # Look for the backends' own package folders (the virtualenv's path may
        # contain a backend's name, e.g. nox's `.nox/tests-tensorflow`).
        for package in ("jaxlib", "tensorflow", "torch", "keras"):
            assert f"site-packages/{package}/" not in maps, package
    finally:
        env.close()


def test_multiprocessing_four_megabyte_observation():
    env = Environment.create("_remote_envs.BigObservation", remote="multiprocessing")
    try:
        assert env.reset().shape == (1024, 1024)
        states, _, _ = env.execute(1)
        assert states.dtype == np.float32 and states[1023, 1023] == 1024 * 1024 - 1 + 1
    finally:
        env.close()


def test_killed_worker_raises_environment_failure_quickly():
    env = Environment.create("CartPole-v1", remote="multiprocessing", timeout=10)
    try:
        env.reset()
        env.process.kill()
        env.process.wait()
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure, match="CartPole.*process .*exit"):
            env.execute(1)
        assert time.monotonic() - start < 5
    finally:
        env.close()


def test_hanging_worker_times_out(tmp_path):
    marker = tmp_path / "hang"
    marker.write_text("x")
    env = Environment.create("_remote_envs.Flaky", remote="multiprocessing",
                             marker=str(marker), mode="hang", timeout=1.0)
    try:
        env.reset()
        env.execute(0)
        env.execute(0)
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure, match="timeout"):
            env.execute(0)
        assert time.monotonic() - start < 4
    finally:
        env.close()


def test_remote_argument_errors():
    with pytest.raises(ArgumentError, match="instance"):
        Environment.create(Environment.create("CartPole-v1"), remote="multiprocessing")
    with pytest.raises(ArgumentError, match="socket-client"):
        Environment.create("CartPole-v1", remote="socket-client", port=1)
    with pytest.raises(ArgumentError, match="blocking"):
        Environment.create("CartPole-v1", blocking=True)
    with pytest.raises(ArgumentError, match="port"):
        Runner("random", "CartPole-v1", port=1)
    with pytest.raises(EnvironmentFailure, match="Cannot connect"):
        Environment.create(remote="socket-client", port=_free_port(), connect_timeout=0.3)


def _random_runner(tmp_path, recover, num_parallel=2, **kwargs):
    return Runner("random", environment=dict(environment="_remote_envs.Flaky",
                                             marker=str(tmp_path / "crash")),
                  num_parallel=num_parallel, remote="multiprocessing", recover=recover,
                  timeout=10, **kwargs)


@pytest.mark.parametrize("batch", [False, True])
def test_runner_worker_crash_raises_or_recovers(tmp_path, batch):
    runner = _random_runner(tmp_path, recover=False)
    try:
        runner.run(num_episodes=2, batch_agent_calls=batch, use_tqdm=False)
        # the time from sending the actions to receiving the result, per episode
        assert len(runner.episode_env_seconds) == 2
        assert all(0.0 < env <= total * 1.01
                   for env, total in zip(runner.episode_env_seconds, runner.episode_seconds))
        (tmp_path / "crash").write_text("x")
        with pytest.raises(EnvironmentFailure, match="Flaky.*exited with code 3"):
            runner.run(num_episodes=4, batch_agent_calls=batch, use_tqdm=False)
    finally:
        runner.close()
    runner = _random_runner(tmp_path, recover=True)
    try:
        (tmp_path / "crash").write_text("x")
        runner.run(num_episodes=6, batch_agent_calls=batch, use_tqdm=False)
        assert runner.aborted_episodes == 1
        # the aborted episode (2 steps + the failed one, observed as terminal 2) is recorded
        assert runner.episodes >= 6 and sorted(set(runner.episode_timesteps)) == [3, 10]
    finally:
        runner.close()


def test_runner_multiprocessing_sync_episodes_and_evaluation(tmp_path):
    runner = _random_runner(tmp_path, recover=False, num_parallel=3, evaluation=True)
    try:
        assert runner.agent.parallel_interactions == 2
        runner.run(num_episodes=4, sync_episodes=True, use_tqdm=False)
        assert runner.episodes >= 4 and len(runner.evaluation_returns) >= 1
        assert all(length == 10 for length in runner.episode_timesteps)
    finally:
        runner.close()


def test_runner_evaluation_environment_saves_best_agent(tmp_path):
    runner = Runner("random", "CartPole-v1", num_parallel=2)
    scores = [1.0, 0.5, 2.0, 3.0]

    def score(r):
        count = len(r.evaluation_returns)
        return scores[count - 1] if count <= len(scores) else 0.0

    try:
        with pytest.raises(ArgumentError, match="evaluation"):
            runner.run(num_episodes=1, evaluation=False, save_best_agent=str(tmp_path))
        runner.close()
        runner = Runner("random", "CartPole-v1", num_parallel=2, evaluation=True)
        runner.run(num_episodes=30, use_tqdm=False, save_best_agent=str(tmp_path / "best"),
                   evaluation_callback=score)
        assert len(runner.evaluation_returns) >= 4
        assert runner._best_score == 3.0  # 1.0 initializes, 0.5 is skipped, 2.0 and 3.0 save
        assert any(name.startswith("best-model") for name in os.listdir(tmp_path / "best"))
    finally:
        runner.close()


# ---------------------------------------------------------------------- seed snippets
def test_seed_snippet_local_batched():
    runner = Runner(agent=PPO, environment="CartPole-v1", num_parallel=5)
    try:
        runner.run(num_episodes=5, batch_agent_calls=True, use_tqdm=False)
        assert runner.episodes >= 5
    finally:
        runner.close()


def test_seed_snippet_multiprocessing_unbatched():
    runner = Runner(agent=PPO, environment="CartPole-v1", num_parallel=5,
                    remote="multiprocessing")
    try:
        runner.run(num_episodes=5, use_tqdm=False)
        assert runner.episodes >= 5 and len(runner.episode_returns) == runner.episodes
    finally:
        runner.close()


def test_seed_snippet_socket_servers_and_cli_client(tmp_path, capsys):
    from kerasrl.cli import main

    servers = [_start_server(), _start_server()]
    try:
        ports = ",".join(str(port) for _, port in servers)
        main(["run", "--agent", PPO, "--episodes", "4", "--num-parallel", "2",
              "--remote", "socket-client", "--host", "127.0.0.1,127.0.0.1", "--port", ports,
              "--batch-agent-calls", "--no-progress", "--evaluate", "1",
              "--path", str(tmp_path / "returns")])
        assert "evaluation over 1" in capsys.readouterr().out
        import json

        results = json.loads((tmp_path / "returns.json").read_text())
        assert len(results["rewards"]) == 4 and len(results["rewards"][0]) == 1
    finally:
        for process, _ in servers:
            _stop(process)


# ---------------------------------------------------------------------- sockets
def test_socket_four_megabyte_observation_and_small_client_bound(big_server):
    env = Environment.create(remote="socket-client", port=big_server, timeout=20)
    try:
        assert env.reset().shape == (1024, 1024)
        states, terminal, _ = env.execute(1)
        assert states[0, 5] == 6.0 and terminal == 0
    finally:
        env.close()
    env = Environment.create(remote="socket-client", port=big_server, timeout=20,
                             max_frame_bytes=2**20)
    try:
        with pytest.raises(EnvironmentFailure, match="too large"):
            env.reset()
    finally:
        env.close()


def _raw_client(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    hello = recv_socket(sock, 10)
    assert hello["auth"] is False and len(hello["challenge"]) == 64
    return sock


@pytest.mark.parametrize("payload, match", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "magic"),
    (struct.pack(">4sQI", MAGIC, 2**40, 10), "too large"),
    (struct.pack(">4sQI", MAGIC, 100, 10) + b"{", None),  # truncated, then closed
])
def test_server_rejects_bad_frames_and_keeps_serving(big_server, payload, match):
    sock = _raw_client(big_server)
    try:
        sock.sendall(payload)
        if match is not None:
            reply = recv_socket(sock, 10)
            assert reply["ok"] is False and match in reply["error"]["message"]
    finally:
        sock.close()
    env = Environment.create(remote="socket-client", port=big_server, timeout=20)
    try:
        assert env.reset().shape == (1024, 1024)
    finally:
        env.close()


def test_server_rejects_invalid_requests(big_server):
    sock = _raw_client(big_server)
    try:
        send_socket(sock, {"call": "launch_missiles"}, 10)
        reply = recv_socket(sock, 10)
        assert reply["ok"] is False and "launch_missiles" in reply["error"]["message"]
    finally:
        sock.close()


def test_auth_key(auth_server, monkeypatch):
    monkeypatch.delenv("KERASRL_AUTH_KEY", raising=False)
    with pytest.raises(EnvironmentFailure, match="requires an auth key"):
        Environment.create(remote="socket-client", port=auth_server, timeout=10)
    with pytest.raises(EnvironmentFailure, match="authentication failed"):
        Environment.create(remote="socket-client", port=auth_server, timeout=10,
                           auth_key="wrong")
    env = Environment.create(remote="socket-client", port=auth_server, timeout=10,
                             auth_key="sesame")
    try:
        assert env.reset().tolist() == [0.0, 0.0]
    finally:
        env.close()
    monkeypatch.setenv("KERASRL_AUTH_KEY", "sesame")
    env = Environment.create(remote="socket-client", port=auth_server, timeout=10)
    try:
        assert env.execute is not None and env.reset().shape == (2,)
    finally:
        env.close()


def test_killed_server_raises_environment_failure():
    process, port = _start_server()
    try:
        env = Environment.create(remote="socket-client", port=port, timeout=10)
        env.reset()
        _stop(process)
        start = time.monotonic()
        with pytest.raises(EnvironmentFailure, match=f"127.0.0.1:{port}"):
            env.execute(0)
            env.execute(0)
        assert time.monotonic() - start < 5
        env.close()
    finally:
        if process.poll() is None:
            _stop(process)


# ------------------------------------------------------- one-client servers (Tensorforce)
def test_socket_servers_in_threads_return_after_their_client_closes():
    # Tensorforce's examples/parallelization.py: two servers started in
    # threads with Environment.create(remote='socket-server'); the run ends
    # and so do the threads once the Runner closes its clients.
    import threading

    ports = [_free_port(), _free_port()]
    threads = [threading.Thread(target=Environment.create, kwargs=dict(
        environment="CartPole-v1", remote="socket-server", port=port), daemon=True)
        for port in ports]
    for thread in threads:
        thread.start()
    runner = Runner(agent="random", num_parallel=2, remote="socket-client", host="127.0.0.1",
                    port=ports)
    runner.run(num_episodes=3, use_tqdm=False)
    runner.close()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert runner.episodes >= 3


def test_cli_socket_server_exits_after_one_client_unless_told_otherwise():
    process, port = _start_server("--max-clients", "1")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)  # still serving: no client yet
        client = Environment.create(remote="socket-client", host="127.0.0.1", port=port)
        client.reset()
        client.close()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            _stop(process)
