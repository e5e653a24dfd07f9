"""`TensorforceAgent`: the generic agent as a class, for code that names it.

Tensorforce code creates its generic agent with `Agent.create(agent=
'tensorforce', ...)`, and sometimes by class (`Agent.create(agent=
TensorforceAgent, ...)` or `TensorforceAgent(states=..., ...)`). The generic
agent is a composition checked and lowered by `kerasrl.agents.generic` onto
the agent class that implements it, so there is no separate class to build:
constructing `TensorforceAgent` returns that composed agent, exactly what
`Agent.create(agent='tensorforce', ...)` returns.
"""

from __future__ import annotations

from typing import Any

from kerasrl.agents.agent import Agent


class TensorforceAgent(Agent):
    """The generic agent composed from its parts (Tensorforce's `TensorforceAgent`).

    Args:
        **kwargs: The generic agent's arguments (`states`, `actions`,
            `update`, `optimizer`, `objective`, `reward_estimation`, ...);
            see `docs/generic-agent.md`.

    Returns:
        The composed agent, as `Agent.create(agent='tensorforce', **kwargs)`
        (an instance of the class implementing the composition, whose
        `agent.spec['agent']` is `'tensorforce'`).

    Example:

    >>> from kerasrl.agents import TensorforceAgent
    >>> agent = TensorforceAgent(
    ...     states=dict(type='float', shape=(4,)), actions=dict(type='int', num_values=2),
    ...     max_episode_timesteps=20, update=dict(unit='episodes', batch_size=1),
    ...     optimizer=dict(type='adam', learning_rate=1e-3),
    ...     objective='policy_gradient', reward_estimation=dict(horizon=1),
    ...     policy=dict(network=dict(type='auto', size=8, depth=1)))
    >>> agent.spec['agent']
    'tensorforce'
    """

    agent_type = "tensorforce"

    def __new__(cls, **kwargs: Any) -> Agent:  # noqa: D102 - documented on the class
        return Agent.create(agent="tensorforce", **kwargs)
