"""Property tests of int action masking: a masked value is never returned, by
any agent, in any mode (training, independent stochastic, deterministic,
exploration), batched or not."""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent

SEED_STATES = dict(type="float", shape=(10,))
SEED_ACTIONS = dict(type="int", shape=(), num_actions=3)
BATCH = 256
TINY = dict(max_episode_timesteps=10, batch_size=1, network=[dict(type="dense", size=8)],
            multi_step=2)


@pytest.fixture(scope="module")
def ppo():
    """The seed snippet's agent, with one slot per batch row for training acts."""
    agent = Agent.create(agent="ppo", states=SEED_STATES, actions=SEED_ACTIONS,
                         parallel_interactions=BATCH, **TINY)
    yield agent
    agent.close()


@pytest.fixture(scope="module")
def ppo_exploring():
    agent = Agent.create(agent="ppo", states=SEED_STATES, actions=SEED_ACTIONS,
                         parallel_interactions=BATCH, exploration=1.0, **TINY)
    yield agent
    agent.close()


@pytest.fixture(scope="module")
def ppo_shaped():
    agent = Agent.create(agent="ppo", states=dict(type="float", shape=(3,)),
                         actions=dict(type="int", shape=(2,), num_values=4),
                         parallel_interactions=BATCH, **TINY)
    yield agent
    agent.close()


def _simple(kind, **kwargs):
    return Agent.create(agent=kind, states=SEED_STATES, actions=SEED_ACTIONS,
                        parallel_interactions=BATCH, max_episode_timesteps=10, **kwargs)


SIMPLE = {
    "random": lambda: _simple("random"),
    "constant": lambda: _simple("constant", action_values=1),
}


def _seed_states(rng):
    return dict(state=rng.random_sample(size=(10,)), action_mask=[True, False, True])


def _batched_seed_states(rng):
    return dict(state=rng.random_sample(size=(BATCH, 10)),
                action_mask=np.tile([True, False, True], (BATCH, 1)))


def _random_masks(rng, shape):
    """Random bool masks with at least one True along the last axis."""
    masks = rng.random_sample(shape) < 0.5
    forced = rng.randint(0, shape[-1], size=shape[:-1])
    np.put_along_axis(masks, forced[..., None], True, axis=-1)
    return masks


def _training_loop(agent, rng, steps):
    """Batched act/observe loop over every slot; returns all actions and masks."""
    slots = np.arange(BATCH)
    actions, masks = [], []
    for step in range(steps):
        mask = _random_masks(rng, (BATCH, 3))
        action = agent.act(dict(state=rng.random_sample((BATCH, 10)), action_mask=mask),
                           parallel=slots)
        agent.observe(np.ones(BATCH), np.full(BATCH, int(step % 5 == 4)), parallel=slots)
        actions.append(action)
        masks.append(mask)
    return np.concatenate(actions), np.concatenate(masks)


def _allowed(actions, masks):
    return np.take_along_axis(masks, np.asarray(actions)[..., None], axis=-1)[..., 0]


# ====================================================================== the seed snippet
@pytest.mark.parametrize("mode", ["training", "stochastic", "deterministic"])
def test_seed_snippet_unbatched(ppo, mode):
    np.random.seed(0)
    ppo.reset()
    for step in range(300):
        states = dict(
            state=np.random.random_sample(size=(10,)),  # regular state
            action_mask=[True, False, True],  # mask as '[ACTION-NAME]_mask'
        )
        if mode == "training":
            action = ppo.act(states=states)
            ppo.observe(reward=1.0, terminal=step % 10 == 9)
        else:
            action = ppo.act(states=states, independent=True,
                             deterministic=mode == "deterministic")
        assert action != 1
        assert action in (0, 2)


@pytest.mark.parametrize("mode", ["training", "stochastic", "deterministic"])
def test_seed_snippet_batched(ppo, mode):
    rng = np.random.RandomState(1)
    ppo.reset()
    seen = []
    for step in range(10):
        states = _batched_seed_states(rng)
        if mode == "training":
            actions = ppo.act(states, parallel=np.arange(BATCH))
            ppo.observe(np.ones(BATCH), np.full(BATCH, int(step % 5 == 4)),
                        parallel=np.arange(BATCH))
        else:
            actions = ppo.act(states, independent=True, deterministic=mode == "deterministic")
        assert actions.shape == (BATCH,)
        seen.append(actions)
    seen = np.concatenate(seen)
    assert not np.any(seen == 1)
    if mode != "deterministic":
        # Sampling over the allowed values: both are used.
        assert set(np.unique(seen)) == {0, 2}


@pytest.mark.parametrize("kind", sorted(SIMPLE))
def test_seed_snippet_simple_agents(kind):
    agent = SIMPLE[kind]()
    np.random.seed(2)
    for step in range(200):
        states = dict(state=np.random.random_sample(size=(10,)),
                      action_mask=[True, False, True])
        assert agent.act(states=states) != 1
        agent.observe(reward=0.0, terminal=step % 10 == 9)
        assert agent.act(states=states, independent=True) != 1
    rng = np.random.RandomState(3)
    actions = agent.act(_batched_seed_states(rng), independent=True)
    assert not np.any(actions == 1)


# ====================================================================== masked argmax
def test_deterministic_never_picks_masked_argmax(ppo):
    """Mask out exactly the unmasked argmax: the mode must move to another value."""
    rng = np.random.RandomState(4)
    states = rng.normal(size=(BATCH, 10)) * 3.0
    best = ppo.act(states, independent=True, deterministic=True)
    mask = np.ones((BATCH, 3), bool)
    mask[np.arange(BATCH), best] = False
    masked = ppo.act(dict(state=states, action_mask=mask), independent=True,
                     deterministic=True)
    assert np.all(masked != best)
    assert np.all(_allowed(masked, mask))


# ====================================================================== random masks
@pytest.mark.parametrize("mode", ["training", "stochastic", "deterministic"])
def test_random_masks_scalar_action(ppo, mode):
    rng = np.random.RandomState(5)
    ppo.reset()
    if mode == "training":
        actions, masks = _training_loop(ppo, rng, steps=10)
    else:
        masks = _random_masks(rng, (10 * BATCH, 3))
        actions = ppo.act(dict(state=rng.random_sample((10 * BATCH, 10)), action_mask=masks),
                          independent=True, deterministic=mode == "deterministic")
    assert np.all(_allowed(actions, masks))


@pytest.mark.parametrize("mode", ["training", "stochastic", "deterministic"])
def test_shaped_int_action(ppo_shaped, mode):
    agent = ppo_shaped
    agent.reset()
    rng = np.random.RandomState(6)
    slots = np.arange(BATCH)
    total = 0
    counts = np.zeros((2, 4), np.int64)
    for step in range(8):
        mask = _random_masks(rng, (BATCH, 2, 4))
        states = dict(state=rng.normal(size=(BATCH, 3)), action_mask=mask)
        if mode == "training":
            actions = agent.act(states, parallel=slots)
            agent.observe(np.zeros(BATCH), np.full(BATCH, int(step % 4 == 3)), parallel=slots)
        else:
            actions = agent.act(states, independent=True, deterministic=mode == "deterministic")
        assert actions.shape == (BATCH, 2) and actions.dtype == np.int64
        assert np.all(_allowed(actions, mask))
        for position in range(2):
            counts[position] += np.bincount(actions[:, position], minlength=4)
        total += actions.size
    assert total == 8 * BATCH * 2
    if mode != "deterministic":
        assert np.all(counts > 0)  # every value is used where it is allowed


def test_shaped_int_action_unbatched(ppo_shaped):
    rng = np.random.RandomState(7)
    for _ in range(100):
        mask = _random_masks(rng, (2, 4))
        action = ppo_shaped.act(dict(state=rng.normal(size=3), action_mask=mask),
                                independent=True, deterministic=False)
        assert isinstance(action, np.ndarray) and action.shape == (2,)
        assert np.all(_allowed(action, mask))


def test_shaped_per_position_masks(ppo_shaped):
    """Position 0 may only take 3, position 1 only 0 or 1."""
    mask = np.zeros((BATCH, 2, 4), bool)
    mask[:, 0, 3] = True
    mask[:, 1, :2] = True
    rng = np.random.RandomState(8)
    actions = ppo_shaped.act(dict(state=rng.normal(size=(BATCH, 3)), action_mask=mask),
                             independent=True, deterministic=False)
    assert np.all(actions[:, 0] == 3)
    assert set(np.unique(actions[:, 1])) == {0, 1}


# ====================================================================== exploration
@pytest.mark.parametrize("mode", ["training", "stochastic"])
def test_exploration_respects_masks(ppo_exploring, mode):
    agent = ppo_exploring
    agent.reset()
    rng = np.random.RandomState(9)
    if mode == "training":
        actions, masks = _training_loop(agent, rng, steps=10)
    else:
        masks = _random_masks(rng, (10 * BATCH, 3))
        actions = agent.act(dict(state=rng.random_sample((10 * BATCH, 10)), action_mask=masks),
                            independent=True, deterministic=False)
    assert np.all(_allowed(actions, masks))
    # The seed snippet's fixed mask under full exploration.
    seed_mask = agent.act(_batched_seed_states(rng), independent=True, deterministic=False)
    assert not np.any(seed_mask == 1)
    assert set(np.unique(seed_mask)) == {0, 2}


# ====================================================================== single allowed value
@pytest.mark.parametrize("agent_name", ["ppo", "ppo_exploring", "random", "constant"])
def test_single_allowed_value(request, agent_name):
    if agent_name in SIMPLE:
        agent = SIMPLE[agent_name]()
    else:
        agent = request.getfixturevalue(agent_name)
    agent.reset()
    rng = np.random.RandomState(11)
    allowed = rng.randint(0, 3, size=BATCH)
    mask = np.zeros((BATCH, 3), bool)
    mask[np.arange(BATCH), allowed] = True
    states = dict(state=rng.random_sample((BATCH, 10)), action_mask=mask)
    for deterministic in (True, False):
        np.testing.assert_array_equal(
            agent.act(states, independent=True, deterministic=deterministic), allowed)
    np.testing.assert_array_equal(agent.act(states, parallel=np.arange(BATCH)), allowed)
    agent.observe(np.zeros(BATCH), np.ones(BATCH, int), parallel=np.arange(BATCH))
    for value in range(3):
        single = [value == i for i in range(3)]
        for deterministic in (True, False):
            assert agent.act(dict(state=rng.random_sample(10), action_mask=single),
                             independent=True, deterministic=deterministic) == value


def test_int_masks_accepted(ppo):
    """Masks given as 0/1 ints are accepted like bools."""
    rng = np.random.RandomState(12)
    mask = np.tile([0, 1, 0], (BATCH, 1))
    actions = ppo.act(dict(state=rng.random_sample((BATCH, 10)), action_mask=mask),
                      independent=True, deterministic=False)
    assert np.all(actions == 1)
