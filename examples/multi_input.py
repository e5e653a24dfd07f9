"""Multi-input, non-sequential network from layer lists (the seed's snippet).

Two states, an image-like float observation and int attributes, each go
through their own stack; `register`/`retrieve` join them. The policy is an
ordinary functional `keras.Model` whose inputs are named after the states.
"""

import numpy as np

from kerasrl import Agent


def main() -> None:
    agent = Agent.create(
        agent="ppo",
        states=dict(
            observation=dict(type="float", shape=(16, 16, 3)),
            attributes=dict(type="int", shape=(4, 2), num_values=5),
        ),
        actions=dict(type="int", shape=(), num_values=3),
        max_episode_timesteps=10,
        batch_size=2,
        policy=[
            [
                dict(type="retrieve", tensors=["observation"]),
                dict(type="conv2d", size=16),
                dict(type="flatten"),
                dict(type="register", tensor="obs-embedding"),
            ],
            [
                dict(type="retrieve", tensors=["attributes"]),
                dict(type="embedding", size=16),
                dict(type="flatten"),
                dict(type="register", tensor="attr-embedding"),
            ],
            [
                dict(type="retrieve", tensors=["obs-embedding", "attr-embedding"],
                     aggregation="concat"),
                dict(type="dense", size=32),
            ],
        ],
    )
    agent.policy_model.summary(line_length=110)
    print("inputs:", sorted(tensor.name for tensor in agent.policy_model.inputs))

    rng = np.random.default_rng(0)
    for _episode in range(2):
        for t in range(10):
            states = dict(
                observation=rng.random((16, 16, 3)),
                attributes=rng.integers(0, 5, size=(4, 2)),
            )
            action = agent.act(states=states)
            agent.observe(reward=float(action == 2), terminal=int(t == 9))
    print(f"episodes {agent.episodes}, updates {agent.updates}, last action {action}")


if __name__ == "__main__":
    main()
