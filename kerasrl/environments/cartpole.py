"""A vectorizable NumPy cart-pole with randomized physics (`'custom_cartpole'`).

`CartPole` reimplements the semantics of Tensorforce 0.6's `custom_cartpole`
environment: the classic cart-pole balancing task (equations of Florian,
"Correct equations for the dynamics of the cart-pole system", 2007, as in
gymnasium's `CartPole`), but with the pole mass, pole length, cart mass and
push force drawn anew at every reset, optional velocity / location
observations, a discrete or continuous push and a "no push" action. It is
vectorizable: `reset(num_parallel=N)` steps N episodes side by side (see
`kerasrl.environments.indexed`), so `Runner(environment='custom_cartpole',
num_parallel=N)` drives them with one batched call per step.

Only NumPy is used here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasrl.environments.environment import Environment
from kerasrl.errors import ArgumentError, CallOrderError, InputError

# Columns of the internal state array.
_LOCATION, _VELOCITY, _ANGLE, _ANGLE_VELOCITY = range(4)
#: The pole angle (radians, either side of upright) beyond which an episode ends.
ANGLE_BOUND = math.pi / 4.0
#: Push direction of each discrete action: 0 left, 1 right, 2 no push.
_DIRECTIONS = np.array([-1.0, 1.0, 0.0])
_WHERE = "CartPole"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _range(name: str, value: Any) -> tuple[float, float]:
    """A physics argument as a `(low, high)` pair of positive floats."""
    if _is_number(value):
        low = high = float(value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_number(bound) for bound in value)
    ):
        low, high = float(value[0]), float(value[1])
    else:
        raise ArgumentError.invalid(
            name, "a positive number or a (low, high) pair of positive numbers", value,
            where=_WHERE,
        )
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 < low <= high):
        raise ArgumentError.invalid(
            name, "positive finite values with low <= high", value, where=_WHERE
        )
    return low, high


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0.0 or (
            not allow_zero and float(value) == 0.0):
        expected = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise ArgumentError.invalid(name, expected, value, where=_WHERE)
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError.invalid(name, "a bool", value, where=_WHERE)
    return bool(value)


def _seed(name: str, value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ArgumentError.invalid(name, "None or an int >= 0", value, where=where)
    return int(value)


class CartPole(Environment):
    """Cart-pole balancing with physics randomized per reset; vectorizable.

    A pole is hinged on a cart that moves along a frictionless track. Each
    step pushes the cart with a force of `relative_force * gravity` newtons
    (left, right, or not at all), integrates the dynamics for
    `action_timedelta` seconds with an explicit Euler step and rewards 1. The
    episode ends (terminal 1) once any component of the state leaves its
    bound: the pole angle beyond ±45°, the velocities beyond bounds derived
    from the physics ranges (ten timesteps of the largest acceleration at
    rest) and, only when `state_location` is True, the cart location beyond
    the velocity bound. The environment sets no episode limit of its own:
    give `max_episode_timesteps` to `Environment.create` / `Runner`.

    States: a float vector of the pole angle, then (with `state_velocities`)
    the pole's angular velocity and the cart velocity, then (with
    `state_location`) the cart location, bounded by the termination bounds.
    Episodes start upright at location 0 with the angle and velocities drawn
    uniformly within `state_initial_max_*`.

    Actions: with `action_continuous`, a float scalar scaling the push force
    (negative pushes left); else an int: 0 pushes left, 1 pushes right and,
    with `action_noop`, 2 does not push.

    Each physics argument is either a float (fixed) or a `(low, high)` pair:
    the value is then drawn uniformly at every reset. In a vectorized reset
    all N episodes share one draw (as in Tensorforce).

    Args:
        pole_mass: Mass of the pole (kg).
        pole_length: Half the length of the pole (m).
        cart_mass: Mass of the cart (kg).
        relative_force: Push force relative to `gravity` (the force is
            `relative_force * gravity` newtons).
        gravity: Gravitational acceleration (m/s²), a positive float.
        state_velocities: Whether the states include the angular velocity and
            the cart velocity.
        state_location: Whether the states include the cart location (and
            the location bound terminates episodes).
        state_initial_max_angle: Initial angle drawn in ± this (radians).
        state_initial_max_angle_velocity: Initial angular velocity drawn in
            ± this.
        state_initial_max_velocity: Initial cart velocity drawn in ± this.
        action_timedelta: Seconds simulated per step.
        action_continuous: A float action instead of discrete pushes; it
            requires `action_noop=True` (as in Tensorforce).
        action_noop: Discrete actions: a third action (2) that does not push.
        seed: kerasrl addition: seed of the environment's
            `numpy.random.default_rng` (None: unpredictable). `reset(seed=s)`
            re-seeds it.

    Raises:
        ArgumentError: for invalid arguments (a range that is not a
            `(low, high)` pair of positive numbers with low <= high, a
            non-positive gravity, ...).

    Example:

    >>> env = CartPole(pole_mass=0.1, pole_length=0.5, cart_mass=1.0, seed=0)
    >>> env.states()['shape'], env.actions()
    ((3,), {'type': 'int', 'shape': (), 'num_values': 3})
    >>> state = env.reset()
    >>> state, terminal, reward = env.execute(1)
    >>> state.shape, terminal, reward
    ((3,), False, 1.0)
    >>> indices, states = env.reset(num_parallel=4)
    >>> indices.tolist(), states.shape
    ([0, 1, 2, 3], (4, 3))
    >>> indices, states, terminal, reward = env.execute(np.array([0, 1, 2, 1]))
    >>> indices.tolist(), terminal.tolist(), reward.tolist()
    ([0, 1, 2, 3], [False, False, False, False], [1.0, 1.0, 1.0, 1.0])

    Through the registry key:

    >>> env = Environment.create('custom_cartpole', max_episode_timesteps=500)
    >>> env.max_episode_timesteps()
    500
    """

    def __init__(
        self,
        pole_mass: float | tuple[float, float] = (0.05, 0.5),
        pole_length: float | tuple[float, float] = (0.1, 1.0),
        cart_mass: float | tuple[float, float] = (0.5, 1.5),
        relative_force: float | tuple[float, float] = (0.75, 1.5),
        gravity: float = 9.8,
        state_velocities: bool = True,
        state_location: bool = False,
        state_initial_max_angle: float = 0.05,
        state_initial_max_angle_velocity: float = 0.05,
        state_initial_max_velocity: float = 0.05,
        action_timedelta: float = 0.02,
        action_continuous: bool = False,
        action_noop: bool = True,
        seed: int | None = None,
    ):
        super().__init__()
        self._pole_mass_range = _range("pole_mass", pole_mass)
        self._pole_length_range = _range("pole_length", pole_length)
        self._cart_mass_range = _range("cart_mass", cart_mass)
        self._relative_force_range = _range("relative_force", relative_force)
        self._gravity = _positive("gravity", gravity)
        self._state_velocities = _flag("state_velocities", state_velocities)
        self._state_location = _flag("state_location", state_location)
        self._initial_max = np.array([
            0.0,
            _positive("state_initial_max_velocity", state_initial_max_velocity, True),
            _positive("state_initial_max_angle", state_initial_max_angle, True),
            _positive("state_initial_max_angle_velocity", state_initial_max_angle_velocity,
                      True),
        ])
        self._timedelta = _positive("action_timedelta", action_timedelta)
        self._continuous = _flag("action_continuous", action_continuous)
        self._noop = _flag("action_noop", action_noop)
        if self._continuous and not self._noop:
            raise ArgumentError.invalid(
                "action_noop", "True with action_continuous=True (a continuous push of 0 "
                "is the no-op)", action_noop, where=_WHERE,
            )
        self._seed = _seed("seed", seed, _WHERE)
        self._rng = np.random.default_rng(self._seed)

        observed = [_ANGLE]
        if self._state_velocities:
            observed += [_ANGLE_VELOCITY, _VELOCITY]
        if self._state_location:
            observed.append(_LOCATION)
        self._observed = np.array(observed)
        self._bounds = self._termination_bounds()

        self._physics: dict[str, float] | None = None
        self._states: np.ndarray | None = None
        self._indices = np.zeros((0,), np.int64)
        self._vectorized = False

    def _termination_bounds(self) -> np.ndarray:
        """Bounds of |location|, |velocity|, |angle|, |angle velocity|.

        The velocity bounds are ten timesteps of the largest acceleration
        from rest that the physics ranges allow (largest force, lightest and
        shortest parts), as in Tensorforce.
        """
        force_low, force_high = (f * self._gravity for f in self._relative_force_range)
        pole_low, pole_high = self._pole_mass_range
        cart_low, cart_high = self._cart_mass_range
        length_low, length_high = self._pole_length_range
        light = cart_low + pole_low
        heavy = cart_high + pole_high
        max_angle_acceleration = force_high / light / length_low / (4.0 / 3.0 - pole_high / light)
        min_angle_acceleration = force_low / heavy / length_high / (4.0 / 3.0 - pole_low / heavy)
        max_acceleration = (
            force_high - pole_low * length_low * min_angle_acceleration
        ) / light
        angle_velocity_bound = max_angle_acceleration * self._timedelta * 10.0
        velocity_bound = max_acceleration * self._timedelta * 10.0
        location_bound = velocity_bound if self._state_location else np.inf
        bounds = np.array([location_bound, velocity_bound, ANGLE_BOUND, angle_velocity_bound])
        if not (np.all(bounds > 0.0) and np.all(np.isfinite(bounds[1:]))):
            raise ArgumentError.invalid(
                "pole_mass", "masses for which the pole accelerates away from a push "
                "(pole_mass high below 4/3 of the lightest cart_mass + pole_mass, and the "
                f"resulting velocity bounds positive; got bounds {bounds[1:].tolist()})",
                (self._pole_mass_range, self._cart_mass_range), where=_WHERE,
            )
        return bounds

    # ------------------------------------------------------------------ specs
    def states(self) -> dict:
        """The state spec: a float vector bounded by the termination bounds.

        Returns:
            `dict(type='float', shape=(n,), min_value=..., max_value=...)`
            with n = 1 (angle), + 2 with `state_velocities`, + 1 with
            `state_location`.
        """
        bound = self._bounds[self._observed].astype(np.float32)
        return dict(type="float", shape=(len(self._observed),), min_value=-bound,
                    max_value=bound)

    def actions(self) -> dict:
        """The action spec.

        Returns:
            `dict(type='float', shape=())` when continuous, else
            `dict(type='int', shape=(), num_values=3)` (2 without `action_noop`).
        """
        if self._continuous:
            return dict(type="float", shape=())
        return dict(type="int", shape=(), num_values=3 if self._noop else 2)

    def is_vectorizable(self) -> bool:
        """True: `reset(num_parallel=N)` steps N episodes at once."""
        return True

    @property
    def physics(self) -> dict[str, float] | None:
        """The physics of the current episode(s), None before the first reset.

        A dict with `pole_mass`, `pole_length`, `cart_mass`, `relative_force`
        and `gravity`.
        """
        return None if self._physics is None else dict(self._physics)

    def get_config(self) -> dict:
        """A spec that recreates the environment (JSON-serializable)."""
        def plain(value: tuple[float, float]) -> float | list[float]:
            return value[0] if value[0] == value[1] else list(value)

        return dict(
            environment="custom_cartpole",
            pole_mass=plain(self._pole_mass_range),
            pole_length=plain(self._pole_length_range),
            cart_mass=plain(self._cart_mass_range),
            relative_force=plain(self._relative_force_range),
            gravity=self._gravity,
            state_velocities=self._state_velocities,
            state_location=self._state_location,
            state_initial_max_angle=float(self._initial_max[_ANGLE]),
            state_initial_max_angle_velocity=float(self._initial_max[_ANGLE_VELOCITY]),
            state_initial_max_velocity=float(self._initial_max[_VELOCITY]),
            action_timedelta=self._timedelta,
            action_continuous=self._continuous,
            action_noop=self._noop,
            seed=self._seed,
        )

    # ------------------------------------------------------------------ episodes
    def _observe(self) -> np.ndarray:
        return self._states[:, self._observed].astype(np.float32)

    def reset(
        self, num_parallel: int | None = None, seed: int | None = None
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Draws the physics and starts one episode, or N side by side.

        Args:
            num_parallel: None: one ordinary episode. N >= 1: N episodes
                (vectorized), all with the same physics draw.
            seed: Re-seeds the environment's random generator first (kerasrl
                addition).

        Returns:
            The initial state (shape `(n,)`) or, with `num_parallel=N`,
            `(indices, states)`: the indices `0..N-1` and a `(N, n)` batch.

        Raises:
            ArgumentError: an invalid `num_parallel` or `seed`.
        """
        if num_parallel is not None and (
                isinstance(num_parallel, (bool, np.bool_))
                or not isinstance(num_parallel, (int, np.integer)) or num_parallel < 1):
            raise ArgumentError.invalid("num_parallel", "None or an int >= 1", num_parallel,
                                        where="CartPole.reset")
        seed = _seed("seed", seed, "CartPole.reset")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        self._vectorized = num_parallel is not None
        count = int(num_parallel) if self._vectorized else 1
        self._physics = dict(
            pole_mass=float(rng.uniform(*self._pole_mass_range)),
            pole_length=float(rng.uniform(*self._pole_length_range)),
            cart_mass=float(rng.uniform(*self._cart_mass_range)),
            relative_force=float(rng.uniform(*self._relative_force_range)),
            gravity=self._gravity,
        )
        self._states = rng.uniform(-self._initial_max, self._initial_max, size=(count, 4))
        self._indices = np.arange(count, dtype=np.int64)
        if self._vectorized:
            return self._indices.copy(), self._observe()
        return self._observe()[0]

    def _forces(self, actions: Any, count: int) -> np.ndarray:
        array = np.asarray(actions)
        expected_shape = (count,) if self._vectorized else ()
        if array.shape != expected_shape:
            raise InputError.invalid(
                "actions", f"an array of shape {expected_shape} (one action per running "
                "episode)" if self._vectorized else "a scalar action", actions,
                where="CartPole.execute",
            )
        if self._continuous:
            if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)):
                raise InputError.invalid("actions", "finite float actions", actions,
                                         where="CartPole.execute")
            directions = array.astype(np.float64)
        else:
            num_values = 3 if self._noop else 2
            if array.dtype.kind not in "iu" or (
                    array.size and (array.min() < 0 or array.max() >= num_values)):
                raise InputError.invalid("actions", f"int actions in [0, {num_values})",
                                         actions, where="CartPole.execute")
            directions = _DIRECTIONS[array.astype(np.int64)]
        return directions.reshape(count) * self._physics["relative_force"] * self._gravity

    def execute(
        self, actions: Any
    ) -> (tuple[np.ndarray, bool, float]
          | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
        """Pushes the cart(s) and advances the physics by `action_timedelta`.

        Args:
            actions: After `reset()`, one action; after
                `reset(num_parallel=N)`, an array with one action per running
                episode, in the order of the last returned indices.

        Returns:
            `(state, terminal, reward)` with a bool terminal and reward 1.0;
            or, vectorized, `(indices, states, terminal, reward)`: the
            indices still running and their next states, then a bool terminal
            and a float32 reward (1) for every episode that acted. Episodes
            that ended drop out of later batches until the next reset.

        Raises:
            CallOrderError: execute before reset.
            InputError: actions of the wrong shape or outside the action spec.
        """
        if self._states is None:
            raise CallOrderError("CartPole.execute() called before reset().")
        count = len(self._states)
        force = self._forces(actions, count)
        physics = self._physics
        pole_mass, length = physics["pole_mass"], physics["pole_length"]
        total_mass = physics["cart_mass"] + pole_mass
        gravity = self._gravity
        velocity = self._states[:, _VELOCITY]
        angle = self._states[:, _ANGLE]
        angle_velocity = self._states[:, _ANGLE_VELOCITY]
        sin, cos = np.sin(angle), np.cos(angle)
        # Florian (2007), frictionless: first the force per total mass, then
        # the angular and the cart acceleration.
        push = (force + pole_mass * length * angle_velocity ** 2 * sin) / total_mass
        angle_acceleration = (gravity * sin - cos * push) / (
            length * (4.0 / 3.0 - pole_mass * cos ** 2 / total_mass)
        )
        acceleration = push - pole_mass * length * angle_acceleration * cos / total_mass
        derivative = np.stack([velocity, acceleration, angle_velocity, angle_acceleration], axis=1)
        self._states = self._states + self._timedelta * derivative

        terminal = np.any(np.abs(self._states) > self._bounds, axis=1)
        reward = np.ones(count, np.float32)
        if not self._vectorized:
            return self._observe()[0], bool(terminal[0]), 1.0
        running = ~terminal
        self._states = self._states[running]
        self._indices = self._indices[running]
        return self._indices.copy(), self._observe(), terminal, reward


__all__ = ["ANGLE_BOUND", "CartPole"]
