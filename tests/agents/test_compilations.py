"""Shape-stable updates: the padded batch sizes and how often functions compile (#18)."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
from keras import ops

from kerasrl import Agent, Runner
from kerasrl import backend as kbackend
from kerasrl.backend.common import RECOMPILATION_WARNING
from kerasrl.errors import ArgumentError
from kerasrl.memories import PaddedSizes


def test_growing_batches_share_the_largest_size():
    sizes = PaddedSizes(maximum=6000, compile_rows=2**18)
    assert [sizes(n) for n in (20, 240, 1000, 3000, 6000, 4000)] == [6000] * 6
    assert sizes.sizes == [6000]


def test_small_batches_rent_the_large_size_until_its_waste_pays_a_compilation():
    sizes = PaddedSizes(maximum=6000, compile_rows=48_000)
    # 20 rows padded to 6000 waste 6000 - 32 rows (against their power of two):
    # 8 calls waste 47,744 rows, within one compilation; the 10th compiles 32 rows.
    assert [sizes(20) for _ in range(11)] == [6000] * 9 + [32, 32]
    assert sizes.sizes == [6000, 32]
    assert sizes(500) == 6000  # 32 does not hold it; 6000 does


def test_without_compilation_cost_every_batch_gets_its_power_of_two():
    sizes = PaddedSizes(maximum=6000, compile_rows=0)
    assert [sizes(n) for n in (5, 20, 33, 6000)] == [16, 32, 64, 8192]


def test_unknown_or_exceeded_maximum_falls_back_to_powers_of_two():
    assert PaddedSizes(maximum=None, compile_rows=2**18)(100) == 128
    huge = PaddedSizes(maximum=10**6, compile_rows=2**18)  # a memory capacity, say
    assert huge(100) == 128  # padding 100 rows to a million would waste more than it saves
    sizes = PaddedSizes(maximum=100, compile_rows=2**18)
    assert sizes(50) == 112  # the maximum, rounded up to 16 rows
    assert sizes(300) == 512


def test_state_round_trip_and_hostile_state():
    sizes = PaddedSizes(maximum=6000, compile_rows=48_000)
    for n in (20,) * 10:
        sizes(n)
    restored = PaddedSizes(maximum=6000, compile_rows=48_000)
    restored.set_state(sizes.state(), "state")
    assert [restored(n) for n in (20, 700)] == [sizes(n) for n in (20, 700)]
    with pytest.raises(ArgumentError, match=r"state\['sizes'\].*\[0\]"):
        restored.set_state({"sizes": [0], "waste": 0}, "state")
    with pytest.raises(ArgumentError, match=r"state\['sizes'\]"):
        restored.set_state({"sizes": list(range(1, 100)), "waste": 0}, "state")
    with pytest.raises(ArgumentError, match=r"state\['waste'\].*True"):
        restored.set_state({"sizes": [16], "waste": True}, "state")


def test_a_function_warns_once_when_it_keeps_recompiling(caplog):
    engine = kbackend.Engine([])
    function = engine.function(lambda x: sum(ops.sum(v) for v in x.values()), sync=False,
                               name="probe")

    def inputs(n):  # a new structure each time (TensorFlow relaxes mere shape changes)
        return {f"x{i}": np.ones(2, "float32") for i in range(n)}

    with caplog.at_level(logging.WARNING, logger="kerasrl"):
        for n in range(1, RECOMPILATION_WARNING + 4):
            function(inputs(n))
        function(inputs(3))  # a layout seen before: no new version
    assert function.compilations.count >= RECOMPILATION_WARNING + 1
    warnings = [r for r in caplog.records if "probe has been compiled" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


def test_an_episode_batch_agent_compiles_its_update_a_bounded_number_of_times():
    """Tensorforce-style config: updates on the 4 latest episodes after every episode,
    whose lengths vary from update to update."""
    runner = Runner(
        agent=dict(agent="ppo", batch_size=4, update_frequency=1, multi_step=2,
                   network=dict(type="auto", size=16, depth=1), config=dict(seed=0)),
        environment="CartPole-v1", max_episode_timesteps=200, seed=0)
    runner.run(num_episodes=50, use_tqdm=False)
    agent = runner.agent
    runner.close()
    lengths = {int(n) for n in runner.episode_timesteps}
    assert agent.updates >= 49 and len(lengths) > 10  # many different batch lengths
    count = agent._update_program_compiled.compilations.count
    sizes = agent._padded_sizes.sizes
    if kbackend.COMPILE_ROWS:  # JAX: one size, the largest batch (4 episodes of 200)
        assert sizes == [800] and count == 1, (count, sizes)
    elif keras.backend.backend() == "tensorflow":  # a shape-generic trace after the second
        assert count <= 2, (count, sizes)
    else:  # torch compiles nothing: one layout per power of two, and nothing else varies
        assert count == len(sizes) <= 6, (count, sizes)
    assert agent._act_train.compilations.count == 1


def test_saved_agent_keeps_its_padded_sizes(tmp_path):
    agent = Agent.create(agent="ppo", environment="CartPole-v1", max_episode_timesteps=50,
                         batch_size=2, network=dict(type="auto", size=8, depth=1),
                         config=dict(seed=0))
    rng = np.random.default_rng(0)
    for _ in range(3):
        states = rng.normal(size=4).astype("float32")
        for t in range(10):
            agent.act(states)
            agent.observe(terminal=t == 9, reward=1.0)
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    assert loaded._padded_sizes.state() == agent._padded_sizes.state()
    assert agent._padded_sizes.sizes
