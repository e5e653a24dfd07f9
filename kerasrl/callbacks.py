"""Keras-style callbacks for `agent.fit()`.

Subclass `Callback` and override any of:

- `on_train_begin(logs)` / `on_train_end(logs)`
- `on_episode_end(episode, logs)`: `logs` has `episode_return`,
  `episode_length`, `parallel` (the environment index), `timesteps`.
- `on_update_end(update, logs)`: `logs` has the agent's update metrics
  (e.g. `policy_loss`, `entropy`, `approx_kl`, ...).

Setting `self.model.stop_training = True` (Keras' convention; `self.model` is
the agent) or `self.agent.stop_training = True` ends `fit` after the current
step.

Keras' own callbacks (`keras.callbacks.EarlyStopping`, `CSVLogger`,
`ModelCheckpoint`, `TerminateOnNaN`, `LambdaCallback`, `History`, or any
`keras.callbacks.Callback` subclass) work in `fit` too, driven by
`KerasCallbacks`: a Keras *batch* is one update, a Keras *epoch* ends with
every update once a training episode has finished (see `KerasCallbacks` for
the logs). `self.model` is the agent, which has what these callbacks call:
`stop_training`, `save(path.keras, overwrite=True)`,
`save_weights(path.weights.h5, overwrite=True)`, `get_weights`/`set_weights`.

Example:

```python
class StopAt(kerasrl.callbacks.Callback):
    def on_episode_end(self, episode, logs=None):
        if logs["episode_return"] >= 500:
            self.agent.stop_training = True

agent.fit('CartPole-v1', episodes=300, callbacks=[StopAt()])
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np


class Callback:
    """Base class of callbacks; every hook does nothing by default."""

    def __init__(self):
        self.agent = None

    @property
    def model(self):
        """The agent (Keras' name for the object being trained)."""
        return self.agent

    def set_agent(self, agent: Any) -> None:
        self.agent = agent

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        pass

    def on_update_end(self, update: int, logs: dict | None = None) -> None:
        pass


class History(Callback):
    """Records per-episode and per-update metrics.

    Attributes:
        history: Dict of lists: `episode_return`, `episode_length` (one entry
            per finished episode).
        updates: Dict of lists, one per update metric of `agent.last_metrics`
            (one entry per update), per-action keys such as `entropy/<name>`
            and `approx_kl/<name>` of agents with several actions included.
        episodes: Number of recorded episodes.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {"episode_return": [], "episode_length": []}
        self.updates: dict[str, list] = {}

    @property
    def episodes(self) -> int:
        return len(self.history["episode_return"])

    def on_episode_end(self, episode, logs=None):
        logs = logs or {}
        self.history["episode_return"].append(float(logs.get("episode_return", 0.0)))
        self.history["episode_length"].append(int(logs.get("episode_length", 0)))

    def on_update_end(self, update, logs=None):
        for key, value in (logs or {}).items():
            self.updates.setdefault(key, []).append(float(value))


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. `LambdaCallback(on_episode_end=fn)`."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_episode_end=None,
                 on_update_end=None):
        super().__init__()
        for name, fn in (("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_episode_end", on_episode_end), ("on_update_end", on_update_end)):
            if fn is not None:
                setattr(self, name, fn)


class KerasCallbacks(Callback):
    """Drives `keras.callbacks.Callback` instances from the events of `fit`.

    RL has no fixed epochs, so the mapping is:

    - a Keras batch is one update: `on_train_batch_begin/end(update, logs)`
      with the update's metrics (`policy_loss`, `entropy`, ...), `loss` (the
      agent's total loss, else the sum of the metrics named `*_loss`),
      `learning_rate` (the optimizer's, if
      any) and `timesteps`;
    - a Keras epoch ends after each update once at least one training
      episode has finished (`on_epoch_begin/end(epoch, logs)`, epochs counted
      from 0): the batch logs plus `episode_return` and `episode_length` (the
      mean over the episodes finished since the previous epoch, or the
      previous epoch's value when none finished), `mean_return` and
      `mean_length` (over the last 100 episodes, SB3's `ep_rew_mean`), and
      `episodes`. Every epoch has the same keys, so `CSVLogger` writes them
      all and `EarlyStopping(monitor='mean_return', mode='max')` or
      `ModelCheckpoint('best.keras', monitor='mean_return', mode='max',
      save_best_only=True)` work as in Keras. (`CSVLogger` adds a `val_`
      column per key, Keras' rule when no key starts with `val_`; they stay
      `NA`.)

    Agents that never update (`random`, `constant`) have no batches or
    epochs. Callbacks that change the optimizer (`ReduceLROnPlateau`,
    `LearningRateScheduler`) and Keras' `TensorBoard` are refused: give
    `learning_rate` a schedule, and use `kerasrl.callbacks.TensorBoard`.

    Args:
        callbacks: The Keras callbacks.
    """

    #: Keras callbacks that need a compiled Keras model, with what to use instead.
    REFUSED = {
        "ReduceLROnPlateau": "a learning_rate schedule (docs/parameters.md)",
        "LearningRateScheduler": "a learning_rate schedule (docs/parameters.md)",
        "TensorBoard": "kerasrl.callbacks.TensorBoard",
        "BackupAndRestore": "the agent's saver=dict(directory=...) (docs/saving.md)",
        "ProgbarLogger": "fit's own progress bar (verbose=1)",
    }

    def __init__(self, callbacks: Iterable[Any]):
        super().__init__()
        self.callbacks = list(callbacks)
        self._window: deque = deque(maxlen=100)
        self._since: list[tuple[float, int]] = []
        self._last: tuple[float, float] | None = None
        self._epoch = 0

    def set_agent(self, agent: Any) -> None:
        super().set_agent(agent)
        for callback in self.callbacks:
            callback.set_model(agent)
            callback.set_params({"epochs": None, "steps": None, "verbose": 0})

    def on_train_begin(self, logs=None):
        self._epoch = 0
        for callback in self.callbacks:
            callback.on_train_begin(dict(logs or {}))

    def on_episode_end(self, episode, logs=None):
        episode = (float(logs["episode_return"]), int(logs["episode_length"]))
        self._window.append(episode)
        self._since.append(episode)

    def on_update_end(self, update, logs=None):
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        if "loss" not in metrics:
            metrics["loss"] = float(sum(value for key, value in metrics.items()
                                        if key.endswith("_loss") and "/" not in key))
        rate = self.agent.current_learning_rate()
        if rate is not None:
            metrics["learning_rate"] = rate
        metrics["timesteps"] = float(self.agent.timesteps)
        for callback in self.callbacks:
            callback.on_train_batch_begin(update)
            callback.on_train_batch_end(update, dict(metrics))
        if self._since:
            self._last = (float(np.mean([r for r, _ in self._since])),
                          float(np.mean([n for _, n in self._since])))
            self._since = []
        if self._last is None:
            return
        window = np.asarray(self._window, dtype=np.float64)
        epoch_logs = dict(metrics, episode_return=self._last[0], episode_length=self._last[1],
                          mean_return=float(window[:, 0].mean()),
                          mean_length=float(window[:, 1].mean()),
                          episodes=float(self.agent.episodes))
        for callback in self.callbacks:
            callback.on_epoch_begin(self._epoch)
            callback.on_epoch_end(self._epoch, dict(epoch_logs))
        self._epoch += 1

    def on_train_end(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_end(dict(logs or {}))


def _is_keras_callback(callback: Any) -> bool:
    import keras

    return isinstance(callback, keras.callbacks.Callback)


class CallbackList:
    """Dispatches hooks to a list of callbacks (and to the `History`)."""

    def __init__(self, callbacks: Iterable[Callback] | Callback | None, agent: Any,
                 history: History | None = None):
        if callbacks is None:
            callbacks = []
        elif not isinstance(callbacks, Iterable):  # one callback, of either kind
            callbacks = [callbacks]
        from kerasrl.errors import ArgumentError

        own, keras_callbacks = [], []
        for callback in callbacks:
            if isinstance(callback, Callback):
                own.append(callback)
            elif _is_keras_callback(callback):
                refused = next((instead for name, instead in KerasCallbacks.REFUSED.items()
                                if type(callback).__name__ == name), None)
                if refused is not None:
                    raise ArgumentError.invalid(
                        "callbacks", f"no keras.callbacks.{type(callback).__name__}, which "
                        f"needs a compiled Keras model (use {refused})", callback, "fit")
                keras_callbacks.append(callback)
            else:
                raise ArgumentError.invalid(
                    "callbacks", "kerasrl.callbacks.Callback or keras.callbacks.Callback "
                    "instances", callback, "fit")
        self.callbacks = own + ([KerasCallbacks(keras_callbacks)] if keras_callbacks else [])
        if history is not None:
            self.callbacks.append(history)
        self.agent = agent
        for callback in self.callbacks:
            callback.set_agent(agent)

    def __getattr__(self, name: str):
        if not name.startswith("on_"):
            raise AttributeError(name)

        def dispatch(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, name)(*args, **kwargs)

        return dispatch


class Evaluation(Callback):
    """Evaluates the agent periodically during `fit` and optionally stops early.

    Like SB3's `EvalCallback` + `StopTrainingOnRewardThreshold`: every
    `every_timesteps` training timesteps (checked after each update), runs
    `agent.evaluate(environment, episodes, deterministic=True)`.

    Args:
        environment: Evaluation environment spec (a separate copy is created).
        every_timesteps: Evaluation interval in training timesteps.
        episodes: Episodes per evaluation.
        stop_at: Stop training once the mean return reaches this value.
        seed: Seed of the evaluation environments.
        verbose: Print each evaluation.
        save_best: Where to save the agent whenever an evaluation's mean
            return beats every earlier one (SB3's `best_model_save_path`): a
            path ending in `.keras` (one file) or a directory (`agent.save`).

    Attributes:
        evaluations: List of `(timesteps, mean_return)` pairs.
        reached_at: Training timesteps when `stop_at` was first reached, or None.
        best_mean_return: The best evaluation mean return so far (None before one).
    """

    def __init__(self, environment: Any, every_timesteps: int = 10_000, episodes: int = 10,
                 stop_at: float | None = None, seed: int | None = None, verbose: bool = False,
                 save_best: str | None = None):
        super().__init__()
        from kerasrl.errors import ArgumentError

        if save_best is not None and not isinstance(save_best, str):
            raise ArgumentError.invalid("save_best", "None or a path", save_best, "Evaluation")
        self.save_best = save_best
        self.best_mean_return: float | None = None
        self.environment = environment
        self.every_timesteps = int(every_timesteps)
        self.episodes = int(episodes)
        self.stop_at = stop_at
        self.seed = seed
        self.verbose = verbose
        self.evaluations: list[tuple[int, float]] = []
        self.reached_at: int | None = None
        self._next = self.every_timesteps

    def on_update_end(self, update, logs=None):
        if self.agent.timesteps < self._next:
            return
        self._next = self.agent.timesteps + self.every_timesteps
        result = self.agent.evaluate(self.environment, episodes=self.episodes, seed=self.seed)
        self.evaluations.append((self.agent.timesteps, result["mean_return"]))
        if self.best_mean_return is None or result["mean_return"] > self.best_mean_return:
            self.best_mean_return = result["mean_return"]
            if self.save_best is not None:
                self.agent.save(self.save_best)
        if self.verbose:
            print(f"timesteps {self.agent.timesteps}: evaluation mean return "
                  f"{result['mean_return']:.1f}")
        if self.stop_at is not None and result["mean_return"] >= self.stop_at:
            if self.reached_at is None:
                self.reached_at = self.agent.timesteps
            self.agent.stop_training = True


class TensorBoard(Callback):
    """Writes TensorBoard summaries during `agent.fit`, like the agent's `summarizer`.

    The same writer and the same tags as `summarizer=dict(directory=log_dir,
    ...)` (see `kerasrl.summaries` and `docs/summaries.md`), for the duration
    of each `fit` call. One callback writes one run, `<log_dir>/<filename or
    'summary'>-<YYYYmmdd-HHMMSS>[-N]`, created at the first `fit`; later `fit`
    calls with the same callback append to it. The file is flushed at the end
    of each `fit` and closed by `close()` (or at interpreter exit).

    Args:
        log_dir: Parent directory of the runs (`tensorboard --logdir <log_dir>`).
        filename: Run name prefix (default `'summary'`).
        labels: `'all'` or a list of labels (see `kerasrl.summaries.LABELS`).
        frequency: Update summaries every N updates, or
            `dict(unit='updates'|'episodes', frequency=N)`.
        flush: Maximum seconds between writes to disk.
        max_summaries: Runs with the same name prefix kept in `log_dir`
            (None keeps all).
        step_reward: Also write the mean reward of every step.

    Attributes:
        summarizer: The `kerasrl.summaries.Summarizer` (None before the first `fit`).

    Raises:
        ArgumentError: invalid arguments (checked at construction).

    Example:

    ```python
    tensorboard = kerasrl.callbacks.TensorBoard('data/summaries', labels='all')
    agent.fit('CartPole-v1', episodes=100, callbacks=[tensorboard])
    print(tensorboard.log_dir)
    ```
    """

    def __init__(self, log_dir: str = "logs", filename: str | None = None,
                 labels: Any = "all", frequency: Any = 1, flush: float = 10.0,
                 max_summaries: int | None = 7, step_reward: bool = False):
        super().__init__()
        from kerasrl.summaries import parse_summarizer_spec

        self._spec = parse_summarizer_spec(dict(
            directory=log_dir, filename=filename, labels=labels, frequency=frequency,
            flush=flush, max_summaries=max_summaries, step_reward=step_reward,
        ))
        self.summarizer = None

    def get_config(self) -> dict:
        """The constructor arguments (`TensorBoard(**config)` makes an equivalent callback)."""
        spec = dict(self._spec)
        spec["log_dir"] = spec.pop("directory")
        spec["labels"] = list(spec["labels"])
        spec["frequency"] = dict(spec["frequency"])
        return spec

    @property
    def log_dir(self) -> str | None:
        """The run directory (None before the first `fit`)."""
        return None if self.summarizer is None else self.summarizer.logdir

    def on_train_begin(self, logs=None):
        from kerasrl.summaries import Summarizer

        if self.summarizer is None:
            self.summarizer = Summarizer(self.agent, **self._spec)
        self.summarizer.attach(self.agent)

    def on_train_end(self, logs=None):
        if self.summarizer is not None:
            self.summarizer.detach(self.agent)
            self.summarizer.writer.flush()

    def close(self) -> None:
        """Closes the event file (the callback cannot be used afterwards)."""
        if self.summarizer is not None:
            self.summarizer.close()
