"""Action masking (the seed's snippet): masked actions are never chosen.

An int action `action` accepts a boolean `action_mask` entry in the states
dict (True = allowed); the singleton state then goes under `state`.
"""

import numpy as np

from kerasrl import Agent


def main() -> None:
    agent = Agent.create(
        agent="ppo",
        states=dict(type="float", shape=(10,)),
        actions=dict(type="int", shape=(), num_actions=3),
        max_episode_timesteps=10,
        batch_size=4,
    )
    rng = np.random.default_rng(0)
    chosen = []
    for t in range(1000):
        states = dict(
            state=rng.random(size=(10,)),  # regular state
            action_mask=[True, False, True],  # mask as '[ACTION-NAME]_mask'
        )
        action = agent.act(states=states)
        assert action != 1
        agent.observe(reward=1.0, terminal=int(t % 10 == 9))
        chosen.append(action)
    print("actions chosen:", np.bincount(chosen, minlength=3).tolist(), "(action 1 is masked)")


if __name__ == "__main__":
    main()
