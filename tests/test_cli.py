"""The `kerasrl run` command line (Tensorforce's run.py flags)."""

import json
import os
import subprocess
import sys

import pytest

from kerasrl.cli import PRESETS, build_parser, main


def test_help_lists_every_run_py_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--agent", "--checkpoints", "--summaries", "--recordings", "--environment",
                 "--level", "--max-episode-timesteps", "--visualize", "--visualize-directory",
                 "--import-modules", "--num-parallel", "--batch-agent-calls",
                 "--sync-timesteps", "--sync-episodes", "--remote", "--blocking", "--host",
                 "--port", "--auth-key", "--recover", "--evaluation", "--episodes",
                 "--timesteps", "--updates", "--mean-horizon", "--save-best-agent", "--repeat",
                 "--path", "--seaborn"):
        assert flag in text, flag
    assert "ppo-cartpole" in PRESETS


def test_parser_short_flags_and_lists():
    args = build_parser().parse_args(
        ["run", "-a", "ppo", "-e", "gym", "-l", "CartPole-v1", "-n", "3", "-v", "-r", "2",
         "--host", "a,b", "--port", "1,2", "--remote", "socket-client"])
    assert args.host == ["a", "b"] and args.port == ["1", "2"] and args.evaluation
    assert args.repeat == 2 and args.episodes == 3 and args.level == "CartPole-v1"


@pytest.mark.parametrize("argv, message", [
    (["run", "-e", "CartPole-v1", "-n", "1"], "--agent is required"),
    (["run", "-a", "random", "-n", "1"], "--environment is required"),
    (["run", "-a", "random", "-e", "CartPole-v1", "--path", "x"], "--path needs --episodes"),
    (["run", "-e", "CartPole-v1", "--remote", "socket-server"], "exactly one --port"),
    (["run", "-a", "random", "-e", "CartPole-v1", "--remote", "socket-client", "--port", "1"],
     "must not be given"),
    (["run", "-a", "random", "-e", "CartPole-v1", "-n", "1", "--save-best-agent", "d"],
     "needs --evaluation"),
    (["run", "-a", "random", "-e", "CartPole-v1", "--port", "x,1"], "comma-separated ints"),
])
def test_flag_errors_are_clear(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_repeat_and_path_write_returns_json(tmp_path, capsys):
    path = tmp_path / "out" / "run"
    assert main(["run", "-a", "random", "-e", "CartPole-v1", "-n", "3", "-r", "2", "--seed", "1",
                 "--path", str(path), "--no-progress", "--evaluate", "0"]) == 0
    results = json.loads((tmp_path / "out" / "run.json").read_text())
    assert sorted(results) == ["agent_seconds", "rewards", "seconds", "timesteps"]
    assert len(results["rewards"]) == 3 and all(len(r) == 2 for r in results["rewards"])
    assert results["rewards"] == results["timesteps"]  # CartPole: reward 1 per step
    # matplotlib is in the dev extra: the plot is written (a PNG file).
    assert (tmp_path / "out" / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.json", "run.png"]


def test_path_without_matplotlib_writes_the_json_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    path = tmp_path / "run"
    assert main(["run", "-a", "random", "-e", "CartPole-v1", "-n", "2", "--path", str(path),
                 "--no-progress", "--evaluate", "0"]) == 0
    assert "skipped the plot" in capsys.readouterr().out
    assert (tmp_path / "run.json").is_file() and not (tmp_path / "run.png").exists()


def test_evaluation_environment_and_save_best_agent(tmp_path, capsys):
    best = tmp_path / "best"
    assert main(["run", "-a", "random", "-e", "CartPole-v1", "-n", "6", "--num-parallel", "3",
                 "-v", "--save-best-agent", str(best), "--no-progress", "--evaluate", "1",
                 "--sync-episodes", "--mean-horizon", "1"]) == 0
    assert "evaluation over" in capsys.readouterr().out


def test_multiprocessing_flags():
    assert main(["run", "-a", "random", "-e", "CartPole-v1", "-t", "50", "--num-parallel", "2",
                 "--remote", "multiprocessing", "--no-progress", "--evaluate", "0",
                 "--timeout", "20"]) == 0


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "kerasrl", "run", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--remote" in result.stdout


def test_errors_are_one_line_without_traceback(capsys):
    assert main(["run", "-a", "ppo", "-e", "NoSuchEnv-v0", "-n", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kerasrl: error: Invalid argument 'environment'")
    assert "Traceback" not in err and err.count("\n") == 1 and "--debug" in err
    from kerasrl.errors import KerasRLError

    with pytest.raises(KerasRLError):
        main(["run", "-a", "ppo", "-e", "NoSuchEnv-v0", "-n", "1", "--no-progress", "--debug"])


def test_play_loads_a_saved_agent_file(tmp_path, capsys):
    from kerasrl import Agent

    path = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2).save(
        str(tmp_path / "agent.keras"))
    assert main(["play", "--agent", path, "--environment", "CartPole-v1", "-n", "2",
                 "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "episode 2: return" in out and "mean return" in out
    assert main(["play", "--agent", str(tmp_path / "missing"), "-e", "CartPole-v1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_path_plot_has_title_axes_and_legend(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from unittest import mock

    import matplotlib.axes

    titles, legends = [], []
    with mock.patch.object(matplotlib.axes.Axes, "set_title",
                           lambda self, text, *a, **k: titles.append(text)), \
            mock.patch.object(matplotlib.axes.Axes, "legend",
                              lambda self, *a, **k: legends.append(k.get("handles"))):
        assert main(["run", "-a", "random", "-e", "CartPole-v1", "-n", "2", "--evaluate", "0",
                     "--no-progress", "--path", str(tmp_path / "run")]) == 0
    assert titles == ["random on CartPole-v1"]
    assert [h.get_label() for h in legends[0]] == ["episode return",
                                                   "episode length (timesteps)"]
    assert os.path.getsize(tmp_path / "run.png") > 0
