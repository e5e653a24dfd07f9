"""Twin Delayed DDPG (Fujimoto et al., 2018).

TD3 is DDPG (`kerasrl.agents.ddpg`, where the implementation lives) with
three changes, all on by default here:

1. Twin critics: two independent critics (and targets); the TD target uses
   the minimum of the two target critics, both critics regress on it, and
   the actor follows the first critic.
2. Delayed policy updates: the actor and all target networks are updated
   every `policy_delay` (default 2) gradient steps.
3. Target policy smoothing: the target action is
   `clip(μ'(s') + clip(N(0, σ²), -c, c), -1, 1)` in normalized action units,
   `σ = target_policy_noise` (0.2), `c = target_noise_clip` (0.5). The
   noise is drawn on the host with the agent's NumPy generator and shipped
   with the minibatch (so updates are identical on every backend).

Not in Tensorforce. Defaults follow the paper and SB3: learning rate 1e-3,
τ = 0.005, exploration noise 0.1, one update per timestep.

Logged metrics: as DDPG (`critic_loss` sums the two critics' losses).
"""

from __future__ import annotations

from typing import Any

from kerasrl.agents.ddpg import DDPG


class TD3(DDPG):
    """Twin Delayed DDPG agent (float actions).

    Takes the arguments of `DDPG` (see there), with these defaults changed:
    `update_frequency=1` (every timestep), `policy_delay=2`,
    `target_policy_noise=0.2`, `target_noise_clip=0.5`,
    `critic_optimizer=1.0`.

    Example:

    ```python
    agent = Agent.create(agent='td3', environment='Pendulum-v1', memory=100_000,
                         batch_size=256)
    ```
    """

    agent_type = "td3"
    twin = True

    def __init__(
        self,
        states: Any,
        actions: Any,
        memory: Any = None,
        batch_size: int | None = None,
        max_episode_timesteps: int | None = None,
        update_frequency: Any = 1,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(
            states, actions, memory=memory, batch_size=batch_size,
            max_episode_timesteps=max_episode_timesteps, update_frequency=update_frequency,
            policy_delay=policy_delay, target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip, **kwargs,
        )
