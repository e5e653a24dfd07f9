"""The `Runner`: the loop between an agent and its environments.

`batch_agent_calls=True` (what `agent.fit` uses) steps all environments as one
`VectorEnvironment` and makes one `act` and one `observe` call per step for
all of them. Otherwise the environments are stepped in turn, one `act`/
`observe` per environment, as Tensorforce did.

A progress display (`kerasrl.execution.progress`: a bar on a terminal, plain
lines in logs) shows the mean return, environment steps per second, the
episode length and the share of time spent inside the agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError
from kerasrl.execution.progress import Progress
from kerasrl.specs import flatten

#: The per-episode statistics: `runner.episode_<name>` and `runner.evaluation_<name>` lists.
STATISTICS = ("returns", "timesteps", "seconds", "agent_seconds", "env_seconds")


def _structure(specs) -> dict:
    """Names, types, shapes and num_values of specs (bounds may differ: an agent can
    declare tighter state bounds for normalization, as Tensorforce's configs do)."""
    return {name: (spec.type, spec.shape, spec.num_values) for name, spec in specs.items()}


def _flat_actions(actions: Any, agent) -> dict:
    if agent.actions_spec.singleton:
        return {agent.actions_spec.singleton_name: actions}
    return flatten(actions)


class Runner:
    """Runs an agent on one or several environments.

    Args:
        agent: An `Agent` (not closed by `close()`), an agent spec (str,
            dict, JSON file) created with the environment's specs and
            `parallel_interactions=num_parallel`, or a dict with `directory`
            (and `filename`, `format`, ... of `Agent.load`): a saved agent,
            loaded with that `parallel_interactions` (Tensorforce's
            `Runner(agent=dict(directory=...))`).
        environment: Environment spec or instance.
        max_episode_timesteps: Passed to the created environments (default:
            the agent's `max_episode_timesteps` when it is shorter than the
            environment's own limit).
        num_parallel: Number of environment copies (>= 1). A vectorizable
            custom environment (`is_vectorizable()` True) runs all N
            interactions itself; a multi-actor environment (`num_actors()`
            K > 1) sets it to K (see `kerasrl.environments.indexed`).
        environments: An explicit list of environments (implies num_parallel).
        evaluation: The last of `num_parallel >= 2` environments runs
            evaluation episodes (`act(independent=True, deterministic=True)`,
            no `observe`); the agent gets `parallel_interactions =
            num_parallel - 1`. Evaluation episodes go to `evaluation_returns`
            and do not count towards `num_episodes`. Runs use the in-turn loop.
        remote: None, `'multiprocessing'` (one child process per
            environment) or `'socket-client'` (environments served by
            `kerasrl run --remote socket-server`; `environment` must be None).
        blocking: Remote environments: `receive_execute()` blocks.
        host: Socket servers: a host or a list (default 127.0.0.1).
        port: Socket servers: a port or a list; a single host with a single
            port gives ports `port, port + 1, ...`.
        seed: Seed of the environments (environment i gets `seed + i`).
        recover: Remote environments: a failed environment (process or
            server gone, timeout) is restarted and its episode recorded as
            aborted (observed with terminal 2); otherwise `EnvironmentFailure`.
        timeout: Remote environments: seconds to wait for any reply
            (default 60).
        auth_key: Socket servers: shared secret (default `$KERASRL_AUTH_KEY`).

    Attributes:
        episode_returns, episode_timesteps, episode_seconds,
        episode_agent_seconds, episode_env_seconds: Per finished episode of
            the last `run` (new lists each run, as in Tensorforce; after
            `run(evaluation=True)` they are the evaluation episodes'). The
            agent and environment seconds are the time spent in agent calls
            (`act`/`observe`) and in the environment's `execute` (for remote
            environments, from sending the actions to receiving the result,
            so communication included); a batched step's time is shared
            equally by its environments.
        episode_timestep, episode_return: Per environment, the timesteps and
            return of its current episode (Tensorforce's; read them in
            callbacks).
        aborted_episodes: Episodes aborted by a recovered environment failure.
        evaluation_returns, evaluation_timesteps, evaluation_seconds,
        evaluation_agent_seconds, evaluation_env_seconds: Per evaluation
            episode of the last `run` (in a training run without an
            evaluation environment, the training lists, as in Tensorforce).
        timesteps, episodes, updates: Counters of the last `run`.

    When a run stops while training episodes are still running (a timestep
    or update limit, a callback, or the episode limit reached with other
    environments mid-episode), each ends at its last observed timestep as
    if observed with terminal 2, as Tensorforce's Runner ends them: the
    agent holds no unfinished episode after `run`, so `agent.experience`,
    `agent.update` and `agent.save` work right away. These cut episodes are
    not counted in the runner's statistics.

    Example:

    ```python
    runner = Runner(agent='ppo.json', environment='CartPole-v1', num_parallel=5)
    runner.run(num_episodes=100, batch_agent_calls=True)
    runner.close()
    ```
    """

    def __init__(
        self,
        agent: Any,
        environment: Any = None,
        max_episode_timesteps: int | None = None,
        num_parallel: int | None = None,
        environments: Sequence[Any] | None = None,
        evaluation: bool = False,
        remote: str | None = None,
        blocking: bool = False,
        host: Any = None,
        port: Any = None,
        seed: int | None = None,
        recover: bool = False,
        timeout: float | None = None,
        auth_key: str | None = None,
    ):
        from kerasrl.agents.agent import Agent
        from kerasrl.environments.environment import Environment

        if remote not in (None, "multiprocessing", "socket-client"):
            raise ArgumentError.invalid(
                "remote", "None, 'multiprocessing' or 'socket-client'", remote, where="Runner"
            )
        if blocking and remote is None:
            raise ArgumentError.invalid("blocking", "False unless remote is given", blocking,
                                        where="Runner")
        if remote != "socket-client" and (host is not None or port is not None):
            raise ArgumentError.invalid(
                "host/port", "None unless remote='socket-client'", (host, port), where="Runner"
            )
        if remote is None and (recover or timeout is not None or auth_key is not None):
            raise ArgumentError.invalid(
                "recover/timeout/auth_key", "defaults unless remote is given",
                (recover, timeout, auth_key), where="Runner",
            )
        self._remote = remote
        self._remote_options: dict = dict(blocking=blocking, recover=bool(recover))
        if timeout is not None:
            self._remote_options["timeout"] = timeout
        if remote == "socket-client":
            if environment is not None or environments is not None:
                raise ArgumentError.invalid(
                    "environment", "None with remote='socket-client' (the servers own the "
                    "environments)", environment if environment is not None else environments,
                    where="Runner",
                )
            if port is None:
                raise ArgumentError.invalid("port", "a port or a list of ports", port,
                                            where="Runner")
            if num_parallel is None:
                count = len(port) if isinstance(port, (list, tuple)) else (
                    len(host) if isinstance(host, (list, tuple)) else 1)
                num_parallel = count
            from kerasrl.environments.remote import socket_addresses

            self._addresses = socket_addresses(host, port, int(num_parallel))
            if auth_key is not None:
                self._remote_options["auth_key"] = auth_key
            environment = "socket-client"
        self._remote_envs: list = []
        if environments is not None:
            if environment is not None:
                raise ArgumentError("Give either 'environment' or 'environments', not both.")
            if num_parallel not in (None, len(environments)):
                raise ArgumentError.invalid(
                    "num_parallel", f"None or len(environments)={len(environments)}", num_parallel
                )
            specs = list(environments)
            num_parallel = len(specs)
        else:
            if environment is None:
                raise ArgumentError("Missing argument 'environment' of Runner.")
            if num_parallel is None:
                num_parallel = 1
            if isinstance(num_parallel, bool) or not isinstance(num_parallel, (int, np.integer)) \
                    or num_parallel < 1:
                raise ArgumentError.invalid("num_parallel", "a positive int", num_parallel)
            num_parallel = int(num_parallel)
            is_instance = isinstance(environment, Environment) or hasattr(environment, "step")
            # One instance of a vectorizable or multi-actor environment runs N interactions.
            indexed = remote is None and isinstance(environment, Environment) and (
                environment.is_vectorizable() or environment.num_actors() > 1)
            if is_instance and num_parallel > 1 and not indexed:
                raise ArgumentError.invalid(
                    "environment", "an environment spec (not an instance) with num_parallel > 1",
                    environment,
                )
            specs = [environment] * num_parallel if is_instance else None
            if is_instance and remote is not None:
                raise ArgumentError.invalid(
                    "environment", "an environment spec (not an instance) for remote execution",
                    environment, where="Runner",
                )
        self._first_instance = None
        self._indexed = None
        if remote is None and environments is None:
            self._indexed = self._create_indexed(environment, num_parallel, max_episode_timesteps)
            if self._indexed is not None:
                if evaluation:
                    raise ArgumentError.invalid(
                        "evaluation", "False for a vectorizable or multi-actor environment "
                        "(use run(evaluation=True) for evaluation episodes)", evaluation,
                        where="Runner",
                    )
                num_parallel = self._indexed.num_parallel
        if evaluation and num_parallel < 2:
            raise ArgumentError.invalid(
                "num_parallel", ">= 2 with evaluation=True (the last environment evaluates)",
                num_parallel, where="Runner",
            )
        self._evaluation_environment = bool(evaluation)
        self.num_parallel = num_parallel
        self._environment = environment
        self._specs = specs
        self._max_episode_timesteps = max_episode_timesteps
        self._seed = seed
        self._owned_environments: list = []
        # Specs for the agent come from a probe environment (closed right away
        # unless it is the user's instance).
        probe = self._indexed if self._indexed is not None else self._make_single(0)
        self._probe = probe
        parallel_interactions = num_parallel - int(bool(evaluation))
        self._owns_agent = not isinstance(agent, Agent)
        if isinstance(agent, Agent):
            self.agent = agent
        elif isinstance(agent, Mapping) and "directory" in agent:
            # Tensorforce: a saved agent, loaded with the runner's parallel_interactions.
            self.agent = Agent.load(**{"parallel_interactions": parallel_interactions, **agent})
        else:
            kwargs = dict(states=probe.states_spec.get_config(),
                          actions=probe.actions_spec.get_config())
            if probe.max_episode_timesteps is not None:
                kwargs["max_episode_timesteps"] = probe.max_episode_timesteps
            self.agent = Agent.create(agent, parallel_interactions=parallel_interactions,
                                      **kwargs)
        limit = self.agent.max_episode_timesteps
        if self._indexed is not None and max_episode_timesteps is None and limit is not None \
                and (probe.max_episode_timesteps is None or probe.max_episode_timesteps > limit):
            probe.max_episode_timesteps = limit
        elif max_episode_timesteps is None and self._specs is None and limit is not None and \
                remote != "socket-client" and (
                probe.max_episode_timesteps is None or probe.max_episode_timesteps > limit):
            # The agent's observe rejects longer episodes: cap the environments
            # this runner creates at the agent's max_episode_timesteps.
            probe.close()
            self._max_episode_timesteps = limit
            probe = self._probe = self._make_single(0)
        # The agent's parallel_interactions only bound training runs (checked in
        # `run`): evaluation acts independently, with any number of environments.
        if _structure(self.agent.states_spec) != _structure(probe.states_spec) or \
                _structure(self.agent.actions_spec) != _structure(probe.actions_spec):
            raise ArgumentError(
                "The agent's states/actions specs (names, types, shapes) differ from the "
                "environment's: agent "
                f"{self.agent.states_spec.get_config()} / {self.agent.actions_spec.get_config()}, "
                f"environment {probe.states_spec.get_config()} / "
                f"{probe.actions_spec.get_config()}."
            )
        self._vector = None
        self._singles: list | None = None
        for name in STATISTICS:  # before any run: empty lists
            setattr(self, f"episode_{name}", [])
            setattr(self, f"evaluation_{name}", [])
        self.episode_timestep = np.zeros(self.num_parallel, np.int64)
        #: Per-slot internal states of a recurrent policy while evaluating.
        self._internals: dict | None = None
        self.episode_return = np.zeros(self.num_parallel)
        self.timesteps = self.episodes = self.updates = 0

    # ------------------------------------------------------------------ environments
    @property
    def aborted_episodes(self) -> int:
        """Episodes aborted by recovered remote environment failures (all runs)."""
        views = {id(v): v for v in [self._probe, self._vector] + list(self._singles or [])
                 if v is not None}
        return sum(getattr(view, "aborted", 0) for view in views.values())

    def _create_indexed(self, environment: Any, num_parallel: int, max_episode_timesteps: Any):
        """An `IndexedEnvironment` for a vectorizable (N > 1) or multi-actor environment.

        Returns None for every other environment; a custom environment class
        instantiated to find out is kept for the first environment.
        """
        from kerasrl.environments.environment import _call, resolve_environment
        from kerasrl.environments.indexed import IndexedEnvironment, is_indexed

        resolved = resolve_environment(environment, max_episode_timesteps, None, {})
        if resolved.kind == "wrapper" and is_indexed(resolved.value.environment):
            # Environment.create's wrapper of a vectorizable or multi-actor environment.
            wrapper = resolved.value
            if num_parallel == 1 and wrapper.num_actors() == 1:
                return None
            return IndexedEnvironment(wrapper.environment, num_parallel=num_parallel,
                                      max_episode_timesteps=wrapper.max_episode_timesteps(),
                                      reward_shaping=wrapper._reward_shaping)
        if resolved.kind == "instance":
            instance = resolved.value
        elif resolved.kind == "class":
            instance = _call(resolved.value, f"environment {resolved.value.__name__}",
                             resolved.kwargs)
        else:
            return None
        if not is_indexed(instance) or (instance.num_actors() == 1 and num_parallel == 1):
            # Ordinary (or a vectorizable environment used one episode at a time).
            if resolved.kind == "class":
                self._first_instance = (instance, resolved)
            return None
        return IndexedEnvironment(instance, num_parallel=num_parallel,
                                  max_episode_timesteps=resolved.max_episode_timesteps,
                                  reward_shaping=resolved.reward_shaping)

    def _remote_environment(self, index: int):
        """The index-th remote environment (created once, shared by both loops)."""
        from kerasrl.environments.remote import create_remote

        while len(self._remote_envs) <= index:
            i = len(self._remote_envs)
            options = {k: v for k, v in self._remote_options.items()
                       if k not in ("blocking", "recover")}
            if self._remote == "socket-client":
                host, port = self._addresses[i]
                env = create_remote(None, None, None, "socket-client",
                                    self._remote_options["blocking"], host, port, options)
            else:
                spec = self._specs[i] if self._specs is not None else self._environment
                env = create_remote(spec, self._max_episode_timesteps, None,
                                    "multiprocessing", self._remote_options["blocking"],
                                    None, None, options)
            self._remote_envs.append(env)
        return self._remote_envs[index]

    def _remote_vector(self, indices):
        from kerasrl.environments.remote import RemoteVectorEnvironment

        seed = None if self._seed is None else self._seed + indices[0]
        return RemoteVectorEnvironment([self._remote_environment(i) for i in indices],
                                       recover=self._remote_options["recover"], seed=seed)

    def _make_single(self, index: int):
        from kerasrl.environments.vectorized import VectorEnvironment

        if self._remote is not None:
            if index == 0 and self._remote_envs and self._remote == "multiprocessing":
                # Re-probe with a new max_episode_timesteps: a fresh process.
                for env in self._remote_envs:
                    env.close()
                self._remote_envs = []
            return self._remote_vector([index])

        if self._specs is not None:
            spec = self._specs[index]
        else:
            spec = self._environment
        seed = None if self._seed is None else self._seed + index
        if index == 0 and self._first_instance is not None:
            # The instance built to check for a vectorizable/multi-actor environment.
            instance, resolved = self._first_instance
            self._first_instance = None
            return VectorEnvironment.create(
                [dict(environment=instance, max_episode_timesteps=resolved.max_episode_timesteps,
                      reward_shaping=resolved.reward_shaping)],
                max_episode_timesteps=self._max_episode_timesteps, seed=seed,
            )
        env = VectorEnvironment.create(
            [spec], max_episode_timesteps=self._max_episode_timesteps, seed=seed
        ) if self._specs is not None else VectorEnvironment.create(
            spec, num_parallel=1, max_episode_timesteps=self._max_episode_timesteps, seed=seed
        )
        return env

    def _vector_environment(self):
        from kerasrl.environments.vectorized import VectorEnvironment

        if self._vector is None:
            if self._remote is not None:
                self._vector = self._remote_vector(list(range(self.num_parallel)))
            elif self.num_parallel == 1:
                self._vector = self._probe
            elif self._specs is not None:
                self._vector = VectorEnvironment.create(
                    self._specs, max_episode_timesteps=self._max_episode_timesteps,
                    seed=self._seed,
                )
            else:
                self._vector = VectorEnvironment.create(
                    self._environment, num_parallel=self.num_parallel,
                    max_episode_timesteps=self._max_episode_timesteps, seed=self._seed,
                )
        return self._vector

    def _single_environments(self):
        if self._singles is None and self._remote is not None:
            self._singles = [self._remote_vector([i]) for i in range(self.num_parallel)]
        if self._singles is None:
            self._singles = [self._probe] + [
                self._make_single(i) for i in range(1, self.num_parallel)
            ]
        return self._singles

    # ------------------------------------------------------------------ running
    def run(
        self,
        num_episodes: int | None = None,
        num_timesteps: int | None = None,
        num_updates: int | None = None,
        batch_agent_calls: bool = False,
        sync_timesteps: bool = False,
        sync_episodes: bool = False,
        num_sleep_secs: float = 0.001,
        callback: Callable | Sequence[Callable] | None = None,
        callback_episode_frequency: int | None = None,
        callback_timestep_frequency: int | None = None,
        use_tqdm: bool = True,
        mean_horizon: int = 1,
        evaluation: bool = False,
        save_best_agent: str | None = None,
        evaluation_callback: Callable | None = None,
        deterministic: bool = True,
        keras_callbacks: Any = None,
        recover: bool | None = None,
    ) -> None:
        """Runs episodes until a limit is reached.

        Args:
            num_episodes: Stop after this many finished episodes (all
                environments together).
            num_timesteps: Stop after this many timesteps (all environments).
            num_updates: Stop after this many agent updates.
            batch_agent_calls: One batched act/observe for all environments
                (remote environments step concurrently and reset on their
                side). Ignored with `Runner(evaluation=True)`.
            sync_timesteps: Accepted for compatibility (batched calls step
                all environments together).
            sync_episodes: Unbatched: an environment whose episode ended
                waits until every environment's episode has ended.
            num_sleep_secs: Unused: remote environments are awaited with
                `multiprocessing.connection.wait`, never polled with sleeps.
            callback: `fn(runner, parallel) -> bool` (or a list); returning
                False stops the run.
            callback_episode_frequency: Call `callback` every N episodes of an
                environment (default 1).
            callback_timestep_frequency: Call `callback` every N timesteps.
            use_tqdm: Show a progress bar (the name is Tensorforce's).
            mean_horizon: Episodes averaged for the displayed return.
            evaluation: Act independently (no learning) in every environment.
            save_best_agent: A directory: after each evaluation episode
                (`evaluation=True` here or in `Runner`), the score (the
                `evaluation_callback`'s float, else the mean of the last
                `mean_horizon` evaluation returns) is compared with the best
                so far (the first score initializes it); an improvement saves
                `agent.save(directory, filename='best-model', format='keras')`.
            evaluation_callback: `fn(runner) -> float`, called after each
                evaluation episode.
            deterministic: With `evaluation=True`, act deterministically.
            keras_callbacks: A `kerasrl.callbacks.CallbackList` (used by `fit`).
            recover: Overrides the Runner's `recover` for remote environments.

        Raises:
            ArgumentError: for invalid arguments.
            EnvironmentFailure: a remote environment failed (without recover).
        """
        if (save_best_agent is not None or evaluation_callback is not None) and not (
                evaluation or self._evaluation_environment):
            raise ArgumentError.invalid(
                "save_best_agent/evaluation_callback",
                "None unless evaluation=True (in run or Runner)",
                save_best_agent if save_best_agent is not None else evaluation_callback,
                where="Runner.run",
            )
        if recover is not None:
            if self._remote is None:
                raise ArgumentError.invalid("recover", "None unless remote is given", recover,
                                            where="Runner.run")
            self._remote_options["recover"] = bool(recover)
            for env in [self._probe, self._vector] + list(self._singles or []):
                if env is not None and hasattr(env, "recover"):
                    env.recover = bool(recover)
        if evaluation_callback is not None and not callable(evaluation_callback):
            raise ArgumentError.invalid("evaluation_callback", "a callable", evaluation_callback,
                                        where="Runner.run")
        if num_episodes is None and num_timesteps is None and num_updates is None:
            raise ArgumentError(
                "Runner.run needs a limit: num_episodes, num_timesteps or num_updates."
            )
        for name, value in (("num_episodes", num_episodes), ("num_timesteps", num_timesteps),
                            ("num_updates", num_updates)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, np.integer)) or value < 1):
                raise ArgumentError.invalid(name, "a positive int or None", value)
        training = self.num_parallel - int(self._evaluation_environment)
        if not evaluation and self.agent.parallel_interactions < training:
            raise ArgumentError.invalid(
                "num_parallel", f"<= the agent's parallel_interactions "
                f"({self.agent.parallel_interactions}) for training (evaluation=False)",
                self.num_parallel,
            )
        if callback_episode_frequency is not None and callback_timestep_frequency is not None:
            raise ArgumentError(
                "callback_episode_frequency and callback_timestep_frequency are exclusive."
            )
        if callback is None:
            callbacks = []
        elif callable(callback):
            callbacks = [callback]
        else:
            callbacks = list(callback)
        if callback_timestep_frequency is None and callback_episode_frequency is None:
            callback_episode_frequency = 1
        self._limits = (num_episodes, num_timesteps, num_updates)
        self._callbacks = callbacks
        self._callback_episode_frequency = callback_episode_frequency
        self._callback_timestep_frequency = callback_timestep_frequency
        self._keras = keras_callbacks
        self._mean_horizon = max(1, int(mean_horizon))
        self._evaluation = evaluation
        self._deterministic = deterministic
        self._sync_episodes = bool(sync_episodes)
        self._save_best_agent = save_best_agent
        self._evaluation_callback = evaluation_callback
        self._best_score: float | None = None
        self._fresh_statistics(evaluation)
        self._agent_seconds = 0.0
        self._start = time.perf_counter()
        self._stop = False
        if not evaluation:
            self.agent.reset()
        if num_episodes is not None:
            total, unit = num_episodes, "episodes"
        elif num_timesteps is not None:
            total, unit = num_timesteps, "timesteps"
        else:
            total, unit = num_updates, "updates"
        self._progress_unit = unit
        self._progress = Progress(
            bool(use_tqdm), total, unit, "evaluate" if evaluation else "train"
        )
        if self._keras is not None:
            self._keras.on_train_begin({})
        self.agent.stop_training = False
        try:
            if self._indexed is not None:
                self._run_indexed()
            elif (batch_agent_calls or self.num_parallel == 1) and \
                    not self._evaluation_environment and not (sync_episodes and self._remote):
                self._run_batched()
            else:
                self._run_in_turn()
        finally:
            self._progress.update(self._progress_count, self._stats, force=True)
            self._progress.close()
        if self._keras is not None:
            self._keras.on_train_end({"episodes": self.episodes, "timesteps": self.timesteps})

    def _fresh_statistics(self, evaluation: bool) -> None:
        """Each run starts new statistics lists, shared as Tensorforce's Runner shares them.

        In an evaluation run (`run(evaluation=True)`) `episode_returns` and
        `episode_timesteps` are the evaluation lists; in a training run
        without an evaluation environment, `evaluation_returns` and
        `evaluation_timesteps` are the training lists.
        """
        self.timesteps = self.episodes = self.updates = 0
        separate = evaluation or self._evaluation_environment
        for name in STATISTICS:
            evaluation_list = []
            episode_list = evaluation_list if evaluation or not separate else []
            setattr(self, f"episode_{name}", episode_list)
            setattr(self, f"evaluation_{name}", evaluation_list)

    def _append_statistics(self, prefix: str, *values: float) -> None:
        """Appends one finished episode's `STATISTICS` to the `<prefix>_<name>` lists."""
        for name, value in zip(STATISTICS, values, strict=True):
            getattr(self, f"{prefix}_{name}").append(value)

    def _progress_count(self) -> int:
        return {"episodes": self.episodes, "timesteps": self.timesteps,
                "updates": self.updates}[self._progress_unit]

    def _stats(self) -> str:
        returns = self.evaluation_returns if self._evaluation else self.episode_returns
        lengths = self.evaluation_timesteps if self._evaluation else self.episode_timesteps
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        parts = []
        if returns:
            parts.append(f"return {np.mean(returns[-self._mean_horizon:]):.1f}")
        parts.append(f"{self.timesteps / elapsed:,.0f} steps/s")
        if lengths:
            parts.append(f"len {np.mean(lengths[-self._mean_horizon:]):.0f}")
        parts.append(f"agent {100 * self._agent_seconds / elapsed:.0f}%")
        return "  ".join(parts)

    def _done(self) -> bool:
        num_episodes, num_timesteps, num_updates = self._limits
        return (
            self._stop
            or getattr(self.agent, "stop_training", False)
            or (num_episodes is not None and self.episodes >= num_episodes)
            or (num_timesteps is not None and self.timesteps >= num_timesteps)
            or (num_updates is not None and self.updates >= num_updates)
        )

    def _evaluation_finished(self, episode_return: float, length: int, seconds: float,
                             agent_seconds: float, env_seconds: float) -> None:
        self._append_statistics("evaluation", float(episode_return), int(length),
                                float(seconds), float(agent_seconds), float(env_seconds))
        if self._evaluation_callback is not None:
            score = self._evaluation_callback(self)
        else:
            score = float(np.mean(self.evaluation_returns[-self._mean_horizon:]))
        if self._save_best_agent is not None:
            if self._evaluation_callback is not None and (
                    isinstance(score, bool) or not isinstance(score, (int, float, np.number))):
                raise ArgumentError.invalid("evaluation_callback", "a callable returning a float",
                                            score, where="Runner.run")
            if self._best_score is None:
                self._best_score = float(score)
            elif float(score) > self._best_score:
                self._best_score = float(score)
                self.agent.save(self._save_best_agent, filename="best-model", format="keras")

    def _episode_finished(self, parallel: int, episode_return: float, length: int,
                          seconds: float, agent_seconds: float, env_seconds: float) -> None:
        times = (seconds, agent_seconds, env_seconds)
        if self._evaluation_environment and not self._evaluation and \
                parallel == self.num_parallel - 1:
            self._evaluation_finished(episode_return, length, *times)
            return
        self.episodes += 1
        if self._evaluation:
            self._evaluation_finished(episode_return, length, *times)
        else:
            self._append_statistics("episode", float(episode_return), int(length),
                                    float(seconds), float(agent_seconds), float(env_seconds))
        if self._keras is not None:
            self._keras.on_episode_end(self.episodes - 1, {
                "episode_return": float(episode_return), "episode_length": int(length),
                "parallel": int(parallel), "timesteps": self.timesteps,
            })
        if self._callback_episode_frequency and self.episodes % self._callback_episode_frequency == 0:
            self._call_callbacks(parallel)

    def _call_callbacks(self, parallel: int) -> None:
        for callback in self._callbacks:
            if callback(self, parallel) is False:
                self._stop = True

    def _updated(self, count: int) -> None:
        if count <= 0:
            return
        self.updates += count
        if self._keras is not None:
            self._keras.on_update_end(self.agent.updates - 1, dict(
                getattr(self.agent, "last_metrics", {})))

    def _act_batch(self, states: dict, slots: np.ndarray) -> Any:
        """One batched act: on the given slots, or independent when evaluating."""
        if self._evaluation:
            return self._independent_act(states, slots)
        return self.agent.act(states, parallel=slots)

    def _independent_act(self, states: Any, slots: Any) -> Any:
        """An evaluation act on `slots`; a recurrent policy's state is carried per slot.

        The internal states live in `_internals` (one row per slot) and start
        again from the initial state where a slot's episode is at timestep 0.
        """
        agent = self.agent
        initial = agent.initial_internals()
        if not initial:
            return agent.act(states, independent=True, deterministic=self._deterministic)
        if self._internals is None or len(next(iter(self._internals.values()))) != (
                self.num_parallel):
            self._internals = {name: np.repeat(value[None], self.num_parallel, axis=0)
                               for name, value in initial.items()}
        slots = np.atleast_1d(np.asarray(slots))
        fresh = slots[self.episode_timestep[slots] == 0]
        for name, value in initial.items():
            self._internals[name][fresh] = value
        actions, internals = agent.act(
            states, internals={name: value[slots] for name, value in self._internals.items()},
            independent=True, deterministic=self._deterministic)
        for name, value in internals.items():
            self._internals[name][slots] = value
        return actions

    def _run_batched(self) -> None:
        agent = self.agent
        env = self._vector_environment()
        n = env.num_parallel
        slots = np.arange(n)
        episode_return = np.zeros(n)
        episode_length = np.zeros(n, dtype=np.int64)
        episode_start = np.full(n, time.perf_counter())
        episode_agent = np.zeros(n)
        episode_env = np.zeros(n)
        quota = None
        if self._evaluation and self._limits[0] is not None:
            # Each environment runs a fixed share of the episodes (unbiased mean).
            quota = np.array([(self._limits[0] + i) // n for i in range(n)])
        states = env.reset()
        self.episode_timestep, self.episode_return = episode_length, episode_return
        timestep_frequency = self._callback_timestep_frequency
        while not self._done():
            t0 = time.perf_counter()
            actions = self._act_batch(states, slots)
            t1 = time.perf_counter()
            states, terminal, reward = env.execute(_flat_actions(actions, agent))
            t2 = time.perf_counter()
            if not self._evaluation:
                self._updated(agent.observe(reward, terminal, parallel=slots))
            t3 = time.perf_counter()
            spent = (t1 - t0) + (t3 - t2)
            self._agent_seconds += spent
            episode_agent += spent / n
            episode_env += (t2 - t1) / n
            active = slice(None) if quota is None else quota > 0
            self.timesteps += n if quota is None else int(np.count_nonzero(quota > 0))
            episode_return[active] += reward[active]
            episode_length[active] += 1
            if timestep_frequency and self.timesteps % timestep_frequency < n:
                self._call_callbacks(0)
            finished = np.nonzero(terminal)[0]
            if len(finished):
                now = time.perf_counter()
                for i in finished:
                    if quota is not None:
                        if quota[i] <= 0:
                            continue
                        quota[i] -= 1
                    elif self._limits[0] is not None and self.episodes >= self._limits[0]:
                        break  # episodes ending on the same step beyond the limit
                    self._episode_finished(int(i), episode_return[i], episode_length[i],
                                           now - episode_start[i], episode_agent[i],
                                           episode_env[i])
                    episode_return[i] = 0.0
                    episode_length[i] = 0
                    episode_start[i] = now
                    episode_agent[i] = episode_env[i] = 0.0
                if quota is not None and not quota.any():
                    break
            self._progress.update(self._progress_count, self._stats)
        if not self._evaluation:
            # Episodes still running end here, as if observed with terminal 2.
            self._updated(agent._finish_run(states, slots))
        episode_length[:] = 0

    def _run_indexed(self) -> None:
        """Steps a vectorizable or multi-actor environment: one batched call per step.

        All interactions start together; finished ones drop out of the batch
        and the environment is reset when none is running (as Tensorforce).
        """
        agent = self.agent
        env = self._indexed
        n = env.num_parallel
        episode_return = np.zeros(n)
        episode_length = np.zeros(n, dtype=np.int64)
        episode_agent = np.zeros(n)
        episode_env = np.zeros(n)
        seed = self._seed
        timestep_frequency = self._callback_timestep_frequency
        indices = np.zeros((0,), np.int64)
        states: dict = {}
        self.episode_timestep, self.episode_return = episode_length, episode_return
        while not self._done():
            if len(indices) == 0:
                indices, states = env.reset(seed=seed)
                seed = None
                episode_return[:] = 0.0
                episode_length[:] = 0
                episode_agent[:] = 0.0
                episode_env[:] = 0.0
                episode_start = time.perf_counter()
                if len(indices) == 0:
                    raise ArgumentError.invalid(
                        "environment", "a reset() that starts at least one interaction",
                        f"no parallel indices from {env}", where="Runner",
                    )
            t0 = time.perf_counter()
            actions = self._act_batch(states, indices)
            t1 = time.perf_counter()
            acted = indices
            indices, states, terminal, reward = env.execute(_flat_actions(actions, agent))
            t2 = time.perf_counter()
            if not self._evaluation:
                self._updated(agent.observe(reward, terminal, parallel=acted))
            spent = (t1 - t0) + (time.perf_counter() - t2)
            self._agent_seconds += spent
            episode_agent[acted] += spent / len(acted)
            episode_env[acted] += (t2 - t1) / len(acted)
            self.timesteps += len(acted)
            episode_return[acted] += reward
            episode_length[acted] += 1
            if timestep_frequency and self.timesteps % timestep_frequency < len(acted):
                self._call_callbacks(int(acted[0]))
            finished = acted[terminal != 0]
            if len(finished):
                now = time.perf_counter()
                for i in finished:
                    if self._limits[0] is not None and self.episodes >= self._limits[0]:
                        break
                    self._episode_finished(int(i), episode_return[i], episode_length[i],
                                           now - episode_start, episode_agent[i],
                                           episode_env[i])
            self._progress.update(self._progress_count, self._stats)
        if not self._evaluation and len(indices):
            # Episodes still running end here, as if observed with terminal 2.
            self._updated(agent._finish_run(states, indices))
        episode_length[:] = 0

    def _run_in_turn(self) -> None:
        """Steps single environments: local ones in turn, remote ones whenever ready."""
        from multiprocessing.connection import wait

        agent = self.agent
        envs = self._single_environments()
        n = len(envs)
        remote = self._remote is not None
        evaluation_index = n - 1 if self._evaluation_environment and not self._evaluation \
            else None
        states = [env.reset() for env in envs]
        episode_return = np.zeros(n)
        episode_length = np.zeros(n, dtype=np.int64)
        episode_start = np.full(n, time.perf_counter())
        episode_agent = np.zeros(n)
        episode_env = np.zeros(n)
        sent = np.zeros(n)  # remote: when the actions were sent
        waiting = [False] * n  # sync_episodes: finished, waiting for the others
        pending = [False] * n  # remote: an execute is in flight
        self.episode_timestep, self.episode_return = episode_length, episode_return

        def evaluating(i: int) -> bool:
            return self._evaluation or i == evaluation_index

        def act(i: int) -> Any:
            t0 = time.perf_counter()
            if evaluating(i):
                actions = self._independent_act(states[i], i)
            else:
                actions = agent.act(states[i], parallel=[i])
            spent = time.perf_counter() - t0
            self._agent_seconds += spent
            episode_agent[i] += spent
            return _flat_actions(actions, agent)

        def finish(i: int, result: Any) -> None:
            states[i], terminal, reward = result
            t0 = time.perf_counter()
            if not evaluating(i):
                self._updated(agent.observe(reward, terminal, parallel=[i]))
            spent = time.perf_counter() - t0
            self._agent_seconds += spent
            episode_agent[i] += spent
            if i != evaluation_index:
                self.timesteps += 1
            episode_return[i] += reward[0]
            episode_length[i] += 1
            if self._callback_timestep_frequency and \
                    episode_length[i] % self._callback_timestep_frequency == 0:
                self._call_callbacks(i)
            if terminal[0]:
                now = time.perf_counter()
                self._episode_finished(i, episode_return[i], episode_length[i],
                                       now - episode_start[i], episode_agent[i], episode_env[i])
                episode_return[i] = 0.0
                episode_length[i] = 0
                episode_start[i] = now
                episode_agent[i] = episode_env[i] = 0.0
                if self._sync_episodes:
                    waiting[i] = True
                    if all(waiting):
                        waiting[:] = [False] * n

        def start(i: int) -> None:
            actions = act(i)
            sent[i] = time.perf_counter()
            envs[i].start_execute(actions)
            pending[i] = True

        def execute(i: int) -> Any:
            actions = act(i)
            t0 = time.perf_counter()
            result = envs[i].execute(actions)
            episode_env[i] += time.perf_counter() - t0
            return result

        if remote:
            for i in range(n):
                start(i)
        while not self._done():
            if not remote:
                for i in range(n):
                    if waiting[i]:
                        continue
                    finish(i, execute(i))
                    if self._done():
                        break
            else:
                busy = [i for i in range(n) if pending[i]]
                wait([h for i in busy for h in envs[i].handles()], timeout=0.5)
                for i in busy:
                    result = envs[i].receive_execute()
                    if result is None:
                        continue
                    pending[i] = False
                    episode_env[i] += time.perf_counter() - sent[i]
                    finish(i, result)
                    if self._done():
                        break
                if not self._done():
                    for i in range(n):
                        if not pending[i] and not waiting[i]:
                            start(i)
            self._progress.update(self._progress_count, self._stats)
        # Executes still in flight: their episodes are cut off (terminal 2).
        for i in range(n):
            if pending[i]:
                pending[i] = False
                _, terminal, reward = envs[i].execute_wait()
                if not evaluating(i):
                    terminal = np.where(terminal == 0, 2, terminal)
                    self._updated(agent.observe(reward, terminal, parallel=[i]))
        # Episodes still running end here, as if observed with terminal 2.
        for i in range(n):
            if not evaluating(i):
                self._updated(agent._finish_run(states[i], np.array([i])))
        episode_length[:] = 0

    def close(self) -> None:
        """Closes the environments the runner created (and the agent if it created it)."""
        closed = set()
        for env in [self._probe, self._vector] + list(self._singles or []):
            if env is not None and id(env) not in closed:
                closed.add(id(env))
                if self._specs is None or not self._user_instance():
                    env.close()
        if self._owns_agent:
            self.agent.close()

    def _user_instance(self) -> bool:
        from kerasrl.environments.environment import Environment

        return isinstance(self._environment, Environment)
