"""Tensorforce's `tracking`: the latest value of each summary quantity, read in Python.

`Agent.create(..., tracking='all')` (or a list of labels) attaches a `Tracker`
plugin; `agent.tracked_tensors()` then returns `{tag: value}` with the most
recent value of every tracked quantity, under the same tags as the
TensorBoard summaries (`kerasrl.summaries.metric_tag`):

| label | tags (updated when) |
|---|---|
| `reward` | `reward/episode_return`, `reward/episode_length` (episode end) |
| `loss` | `loss/policy`, `loss/baseline`, ... (update) |
| `entropy` | `entropy/<action>` (update) |
| `kl-divergence` | `kl-divergence/<action>` (update) |
| `update-norm` | `update-norm/gradient`, ... (update) |
| `parameters` | `parameters/<name>` of each scheduled parameter (update, episode end) |
| `metrics` | `metrics/<key>`: the agent's other update metrics (update) |

The values are the host copies the agent already has after an update (no
extra device work, nothing at `act`). Tensorforce's per-act labels
(`distribution`, `action-value`) would need an output per act call and are
refused, naming them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kerasrl.errors import ArgumentError
from kerasrl.summaries import UNAVAILABLE_LABELS, _scheduled_parameters, tagged_metrics

#: The labels `tracking` accepts.
TRACKED_LABELS = ("entropy", "kl-divergence", "loss", "metrics", "parameters", "reward",
                  "update-norm")


def parse_tracking(spec: Any) -> tuple[str, ...]:
    """The labels of a `tracking` argument: `'all'`, one label, or a list of labels.

    Args:
        spec: The argument.

    Returns:
        The labels, in `TRACKED_LABELS` order.

    Raises:
        ArgumentError: a label that is unknown or not trackable, or a malformed spec.

    Example:

    >>> parse_tracking(['loss', 'reward'])
    ('loss', 'reward')
    """
    if spec == "all":
        return TRACKED_LABELS
    labels = [spec] if isinstance(spec, str) else spec
    if not isinstance(labels, (list, tuple, set, frozenset)) or not labels or not all(
            isinstance(label, str) for label in labels):
        raise ArgumentError.invalid("tracking", f"'all' or a list of labels among "
                                    f"{list(TRACKED_LABELS)}", spec)
    refused = [label for label in labels if label not in TRACKED_LABELS]
    if refused:
        why = ("per-act values are not tracked" if set(refused) & set(UNAVAILABLE_LABELS)
               else "unknown labels")
        raise ArgumentError.invalid("tracking", f"'all' or labels among {list(TRACKED_LABELS)} "
                                    f"({why})", refused)
    return tuple(label for label in TRACKED_LABELS if label in labels)


class Tracker:
    """Keeps the latest tracked values of an agent (the `tracking` plugin).

    Args:
        agent: The agent (built).
        spec: `'all'` or a list of labels (see `parse_tracking`).

    Attributes:
        labels: The tracked labels.
    """

    def __init__(self, agent: Any, spec: Any):
        self.labels = frozenset(parse_tracking(spec))
        self._action_names = tuple(agent.actions_spec)
        self._parameters = _scheduled_parameters(agent) if "parameters" in self.labels else []
        self._tags: dict[str, str | None] = {}
        self._values: dict[str, float] = {}

    def tracked_values(self) -> dict[str, float]:
        """A copy of the latest values, `{tag: value}`."""
        return dict(self._values)

    def _track_parameters(self, agent: Any) -> None:
        if self._parameters:
            counters = {"timesteps": agent.timesteps, "episodes": agent.episodes,
                        "updates": agent.updates}
            for tag, parameter in self._parameters:
                self._values[tag] = float(parameter.value(counters))

    def on_episode_end(self, agent: Any, slot: int, episode_return: float,
                       episode_length: int) -> None:
        if "reward" in self.labels:
            self._values["reward/episode_return"] = float(episode_return)
            self._values["reward/episode_length"] = float(episode_length)
        self._track_parameters(agent)

    def on_update(self, agent: Any, metrics: Mapping[str, float]) -> None:
        values = tagged_metrics(metrics, self._tags, self._action_names, self.labels)
        self._values.update({tag: float(value) for tag, value in values.items()})
        self._track_parameters(agent)


def create_tracking(agent: Any, spec: Any) -> Tracker:
    """Plugin factory for the `tracking` agent argument."""
    return Tracker(agent, spec)
