"""Conversion and validation of the values users pass to `act`/`observe`.

`act` accepts the forms Tensorforce accepts (reference §2.1):

- singleton state: a raw array of exactly the state shape (unbatched) or with
  a leading batch axis (batched); a dict `{'state': x, 'action_mask': m}`;
- named states: a (nested or '/'-flattened) dict of arrays, batched as a dict
  of arrays with a leading batch axis or as a list of dicts;
- masks: `'<action-name>_mask'` entries (bool, shape
  `action.shape + (num_values,)`), True = allowed.

Batching is detected by comparing the first state's rank with its spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kerasrl.distributions import check_mask  # noqa: F401  (re-exported)
from kerasrl.errors import InputError, KerasRLError
from kerasrl.specs import Specs, flatten, to_python

# How the states were given, to return actions in the same form.
FORM_ARRAY = "array"  # raw (un)batched array for a singleton state
FORM_DICT = "dict"  # dict (of batched arrays when batched)
FORM_LIST = "list"  # list of per-item dicts / arrays


class ParsedStates:
    """States and masks as flat dicts of batched numpy arrays.

    Attributes:
        states: `{state_name: array (batch, *shape)}` with spec dtypes.
        masks: `{action_name: bool array (batch, *shape, num_values)}`, only
            for masks that were given.
        batched: Whether the input had a batch axis.
        form: One of `FORM_ARRAY`, `FORM_DICT`, `FORM_LIST`.
        size: The batch size (1 when unbatched).
    """

    __slots__ = ("states", "masks", "batched", "form", "size")

    def __init__(self, states, masks, batched, form, size):
        self.states = states
        self.masks = masks
        self.batched = batched
        self.form = form
        self.size = size


class StateParser:
    """Parses `act` inputs against state and action specs.

    Args:
        states: The agent's state `Specs`.
        actions: The agent's action `Specs` (for mask names).
    """

    def __init__(self, states: Specs, actions: Specs):
        self.states = states
        self.actions = actions
        self.mask_names = {
            f"{name}_mask": name
            for name, spec in actions.items()
            if spec.type == "int" and spec.num_values is not None
        }
        self._first = next(iter(states))
        self._first_rank = states[self._first].rank

    def _split(self, values: Mapping, where: str) -> tuple[dict, dict]:
        flat = flatten(values) if any(isinstance(v, Mapping) for v in values.values()) else dict(values)
        states, masks = {}, {}
        for key, value in flat.items():
            if key in self.states:
                states[key] = value
            elif key in self.mask_names:
                masks[self.mask_names[key]] = value
            else:
                raise InputError.invalid(
                    f"{where}['{key}']",
                    f"a state among {list(self.states)} or a mask among {list(self.mask_names)}",
                    key,
                )
        missing = [name for name in self.states if name not in states]
        if missing:
            raise InputError.invalid(where, f"values for the states {missing}", sorted(flat))
        return states, masks

    def parse(self, values: Any, argument: str = "states") -> ParsedStates:
        """Converts `values` to batched, validated arrays.

        Raises:
            InputError: for any malformed value (ragged nested lists included).
        """
        try:
            return self._parse(values, argument)
        except KerasRLError:
            raise
        except ValueError as exc:  # numpy: ragged or inconsistent nested sequences
            shapes = (str(self.states[self._first].shape) if self.states.singleton else
                      ", ".join(f"{name}: {spec.shape}" for name, spec in self.states.items()))
            raise InputError.invalid(
                argument, f"rectangular arrays of the state shape(s) {shapes}, optionally with "
                f"a leading batch axis (numpy: {exc})", values,
            ) from None

    def _parse(self, values: Any, argument: str) -> ParsedStates:
        if isinstance(values, Mapping):
            form = FORM_DICT
            states, masks = self._split(values, argument)
        elif isinstance(values, Sequence) and not isinstance(values, (str, bytes)) and values and (
            isinstance(values[0], Mapping)
            or (self.states.singleton and np.ndim(values[0]) == self._first_rank)
            and not isinstance(values[0], (int, float, bool, np.number))
        ):
            form = FORM_LIST
            if isinstance(values[0], Mapping):
                parts = [self._split(item, f"{argument}[{i}]") for i, item in enumerate(values)]
                states = {k: np.stack([np.asarray(p[0][k]) for p in parts]) for k in parts[0][0]}
                mask_keys = set(parts[0][1])
                if any(set(p[1]) != mask_keys for p in parts):
                    raise InputError.invalid(argument, "the same mask keys in every item", values)
                masks = {k: np.stack([np.asarray(p[1][k]) for p in parts]) for k in mask_keys}
            else:
                states = {self._first: np.stack([np.asarray(v) for v in values])}
                masks = {}
            return self._finish(states, masks, True, form, argument)
        else:
            if not self.states.singleton:
                raise InputError.invalid(
                    argument, f"a dict with the states {list(self.states)}", values
                )
            form = FORM_ARRAY
            states, masks = {self._first: values}, {}
        first = np.asarray(states[self._first]) if self._first in states else None
        if first is None:
            raise InputError.invalid(argument, f"a value for state '{self._first}'", values)
        batched = first.ndim == self._first_rank + 1
        if not batched and first.ndim != self._first_rank:
            raise InputError.invalid(
                f"{argument}['{self._first}']" if form != FORM_ARRAY else argument,
                f"shape {self.states[self._first].shape} or (batch,) + {self.states[self._first].shape}",
                first,
            )
        if not batched:
            states = {k: np.asarray(v)[None] for k, v in states.items()}
            masks = {k: np.asarray(v)[None] for k, v in masks.items()}
        return self._finish(states, masks, batched, form, argument)

    def _finish(self, states, masks, batched, form, argument) -> ParsedStates:
        size = None
        checked = {}
        for name, spec in self.states.items():
            label = argument if (self.states.singleton and form == FORM_ARRAY) else f"{argument}['{name}']"
            value = spec.check_batch(states[name], label, num_batch_dims=1)
            if size is None:
                size = value.shape[0]
            elif value.shape[0] != size:
                raise InputError.invalid(label, f"batch size {size}", value)
            checked[name] = value
        checked_masks = {}
        for name, mask in masks.items():
            label = f"{argument}['{name}_mask']"
            mask = check_mask(mask, self.actions[name], label)
            if mask.shape[0] != size:
                raise InputError.invalid(label, f"batch size {size}", mask)
            checked_masks[name] = mask
        return ParsedStates(checked, checked_masks, batched, form, size)


def format_actions(actions: dict[str, np.ndarray], specs: Specs, parsed: ParsedStates) -> Any:
    """Returns actions in the form matching how the states were given.

    Unbatched: a Python scalar for a scalar singleton action, else an array or
    a dict. Batched: an array/dict of arrays, or a list for list input.
    """
    if not parsed.batched:
        values = {k: to_python(np.asarray(v[0])) for k, v in actions.items()}
        return specs.unflatten(values)
    if parsed.form == FORM_LIST:
        items = []
        for i in range(parsed.size):
            items.append(
                specs.unflatten({k: to_python(np.asarray(v[i])) for k, v in actions.items()})
            )
        return items
    return specs.unflatten(actions)


def parse_actions(actions: Any, specs: Specs, size: int, argument: str = "actions") -> dict:
    """Validates actions given back to the agent (e.g. in `experience`), batched.

    `actions` is a dict of batched values, a batched value of a single action,
    or a list of per-timestep dicts (as collected from `act(independent=True)`).
    """
    if isinstance(actions, (list, tuple)) and actions and all(
            isinstance(step, Mapping) for step in actions):
        steps = [flatten(step) for step in actions]
        names = sorted(steps[0])
        for index, step in enumerate(steps):
            if sorted(step) != names:
                raise InputError.invalid(f"{argument}[{index}]", f"the actions {names}",
                                         sorted(step))
        actions = {name: [step[name] for step in steps] for name in names}
    if isinstance(actions, Mapping):
        flat = flatten(actions)
        if specs.singleton and specs.singleton_name in flat:
            flat = {specs.singleton_name: flat[specs.singleton_name]}
    elif specs.singleton:
        flat = {specs.singleton_name: actions}
    else:
        raise InputError.invalid(argument, f"a dict with the actions {list(specs)}", actions)
    result = {}
    for name, spec in specs.items():
        if name not in flat:
            raise InputError.invalid(argument, f"a value for action '{name}'", sorted(flat))
        result[name] = spec.check_action(flat[name], f"{argument}['{name}']", num_batch_dims=1)
        if result[name].shape[0] != size:
            raise InputError.invalid(f"{argument}['{name}']", f"batch size {size}", result[name])
    return result
