"""Returns and advantages (host side, NumPy).

One function covers Monte-Carlo returns, n-step-free bootstrapped returns and
GAE: generalized advantage estimation with `lam=1` gives the discounted return
minus the value baseline, and with all values zero it gives the plain
discounted return.
"""

from __future__ import annotations

import numpy as np


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    bootstrap: float,
    discount: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of one trajectory segment.

    Args:
        rewards: `(T,)` rewards r_0..r_{T-1}.
        values: `(T,)` value estimates V(s_0)..V(s_{T-1}) (zeros without a
            baseline).
        bootstrap: Value of the state after the segment (0 for a true
            terminal).
        discount: γ.
        lam: GAE λ (1.0 = Monte-Carlo return minus baseline).

    Returns:
        `(advantages, returns)`, each `(T,)` float32, with
        `returns = advantages + values`.

    Example:

    >>> adv, ret = gae(np.ones(3), np.zeros(3), 0.0, 0.5, 1.0)
    >>> ret.tolist()
    [1.75, 1.5, 1.0]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    length = len(rewards)
    next_values = np.empty(length)
    next_values[:-1] = values[1:]
    if length:
        next_values[-1] = bootstrap
    deltas = rewards + discount * next_values - values
    advantages = np.empty(length)
    running = 0.0
    factor = discount * lam
    for t in range(length - 1, -1, -1):
        running = deltas[t] + factor * running
        advantages[t] = running
    returns = advantages + values
    return advantages.astype(np.float32), returns.astype(np.float32)


def discounted_returns(rewards: np.ndarray, discount: float, bootstrap: float = 0.0) -> np.ndarray:
    """Discounted returns of a segment: `R_t = r_t + γ R_{t+1}`, `R_T = bootstrap`."""
    zeros = np.zeros(len(rewards))
    return gae(rewards, zeros, bootstrap, discount, 1.0)[1]


def n_step_returns(
    rewards: np.ndarray, values: np.ndarray, bootstrap: float, discount: float, horizon: int
) -> np.ndarray:
    """n-step bootstrapped returns of one segment.

    `R_t = Σ_{k<m} γ^k r_{t+k} + γ^m V(s_{t+m})` with `m = min(horizon, T - t)`
    and `V(s_T) = bootstrap` (0 after a true terminal).

    Args:
        rewards: `(T,)` rewards.
        values: `(T,)` value estimates V(s_t).
        bootstrap: Value after the segment.
        discount: γ.
        horizon: n >= 1.

    Returns:
        `(T,)` float32 returns.

    Example:

    >>> n_step_returns(np.ones(3), np.full(3, 10.0), 0.0, 0.5, 1).tolist()
    [6.0, 6.0, 1.0]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    length = len(rewards)
    extended = np.append(np.asarray(values, dtype=np.float64), bootstrap)
    returns = np.zeros(length)
    index = np.arange(length)
    for k in range(horizon):
        inside = index + k < length
        returns[inside] += discount**k * rewards[index[inside] + k]
    end = np.minimum(index + horizon, length)
    returns += discount ** (end - index) * extended[end]
    return returns.astype(np.float32)
