"""TensorBoard summaries of training, on every backend, without TensorFlow.

Attach a summarizer to an agent with its `summarizer` argument (Tensorforce's
`summaries` is a synonym):

```python
agent = Agent.create(
    agent='ppo', environment='CartPole-v1', batch_size=10,
    summarizer=dict(directory='data/summaries', labels='all'),
)
```

and watch it with `tensorboard --logdir data/summaries`. Each summarizer writes
to a new run sub-directory `<directory>/<filename>-<YYYYmmdd-HHMMSS>[-N]`.
The same summaries are available as a Keras-style callback of `agent.fit`,
`kerasrl.callbacks.TensorBoard(log_dir, ...)`.

Event files hold `tensorboard.compat.proto` `Event`/`Summary` protos (scalars,
text, a `GraphDef`, hparams plugin data from
`tensorboard.plugins.hparams.summary_v2.hparams_pb`) in TFRecord framing, as
`tensorboard.summary.writer.event_file_writer.EventFileWriter` (the writer of
PyTorch's `SummaryWriter`) writes them, by the small `EventWriter` of this
module. `EventFileWriter` itself is not used: it opens its file through
`tensorboard.compat.tf`, which imports TensorFlow whenever it is installed
(seconds and hundreds of MB on the JAX and PyTorch backends).

Every value is computed on the host from numbers the agent already has
(`agent.last_metrics`, which the compiled update returns, the episode returns,
the parameter schedules), and update summaries are written at most once per
update. See `docs/summaries.md` for the tags and their meaning.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError

logger = logging.getLogger("kerasrl")

#: Labels a summarizer accepts (`labels='all'` selects all of them).
LABELS = (
    "entropy", "graph", "kl-divergence", "loss", "metrics", "parameters", "reward",
    "throughput", "update-norm",
)
#: Tensorforce labels that kerasrl does not record (yet).
UNAVAILABLE_LABELS = ("action-value", "distribution", "updates", "variables")
#: Keys of a summarizer spec.
SPEC_KEYS = (
    "directory", "filename", "labels", "summaries", "frequency", "flush", "max_summaries",
    "step_reward",
)
#: Default number of run sub-directories kept per name (Tensorforce's default).
DEFAULT_MAX_SUMMARIES = 7
_PLUGIN_KEYS = ("saver", "summarizer", "summaries", "recorder", "tracking")
_RUN_TIME_FORMAT = "%Y%m%d-%H%M%S"
_EVENT_FILE_PREFIX = "events.out.tfevents."


# ---------------------------------------------------------------------- writer
def _crc_tables() -> tuple[list[int], ...]:
    """Slice-by-4 lookup tables of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(3):
        tables.append([first[crc & 0xFF] ^ (crc >> 8) for crc in tables[-1]])
    return tuple(tables)


_CRC_TABLES = _crc_tables()
_LITTLE_ENDIAN = sys.byteorder == "little"


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C of TFRecord framing (as TensorFlow's, about 2x faster than
    the pure-Python one of `tensorboard`: four bytes per step)."""
    t0, t1, t2, t3 = _CRC_TABLES
    crc = 0xFFFFFFFF
    aligned = len(data) & ~3 if _LITTLE_ENDIAN else 0
    if aligned:
        for word in memoryview(data)[:aligned].cast("I"):
            crc ^= word
            crc = t3[crc & 0xFF] ^ t2[(crc >> 8) & 0xFF] ^ t1[(crc >> 16) & 0xFF] ^ t0[crc >> 24]
    for byte in data[aligned:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, its masked CRC (little endian)."""
    header = len(data).to_bytes(8, "little")
    return b"".join((header, masked_crc32c(header).to_bytes(4, "little"), data,
                     masked_crc32c(data).to_bytes(4, "little")))


class _FileState:
    """The open event file of an `EventWriter` and its pending events.

    Pending events are kept as they were given (scalar values are encoded
    only when written), so that encoding and checksums run in the flushing
    thread rather than in the training loop. `io_lock` orders writes;
    `pending_lock` only guards the list, so adding never waits for a write.
    """

    def __init__(self, path: str, event_pb2: Any, summary_pb2: Any):
        self.file = open(path, "wb")  # noqa: SIM115 - closed by `close`
        self.event_pb2 = event_pb2
        self.summary_pb2 = summary_pb2
        self.io_lock = threading.Lock()
        self.pending_lock = threading.Lock()
        self.pending: list = []
        self.closed = False
        self.stop = threading.Event()

    def add(self, item: Any) -> int:
        with self.pending_lock:
            if self.closed:
                raise ArgumentError(f"The summary writer of '{self.file.name}' is closed.")
            self.pending.append(item)
            return len(self.pending)

    def _encode(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return _frame(item)
        wall_time, step, values = item
        value = self.summary_pb2.Summary.Value
        summary = self.summary_pb2.Summary(
            value=[value(tag=tag, simple_value=number) for tag, number in values.items()])
        return _frame(self.event_pb2.Event(
            wall_time=wall_time, step=step, summary=summary).SerializeToString())

    def flush(self) -> None:
        with self.io_lock:
            with self.pending_lock:
                items, self.pending = self.pending, []
            if self.file.closed:
                return
            if items:
                self.file.write(b"".join(self._encode(item) for item in items))
            self.file.flush()

    def close(self) -> None:
        self.stop.set()
        with self.pending_lock:
            self.closed = True
        self.flush()
        with self.io_lock:
            if not self.file.closed:
                self.file.close()


def _flush_periodically(state: _FileState, interval: float) -> None:
    while not state.stop.wait(interval):
        state.flush()


class EventWriter:
    """Writes TensorBoard event files without TensorFlow.

    Records are framed as `tensorboard`'s `RecordWriter` and TensorFlow frame
    them (length, masked CRC32C, data, masked CRC32C), so TensorBoard and
    `EventAccumulator` read the files as usual. Events are kept in memory and
    written to disk by a daemon thread every `flush_secs` seconds, when
    `max_pending` events are waiting, on `flush()` and on `close()` (also at
    interpreter exit).

    Args:
        logdir: Directory of the event file (created if needed).
        flush_secs: Maximum seconds between writes to disk; 0 writes every
            event at once.
        filename_suffix: Appended to the event file name.
        max_pending: Number of pending events that triggers a write.

    Raises:
        ArgumentError: the `tensorboard` package is not installed.

    Example:

    ```python
    writer = EventWriter('logs/run-1')
    writer.add_scalars({'loss/total': 0.5}, step=10)
    writer.close()
    ```
    """

    def __init__(self, logdir: str, flush_secs: float = 10.0, filename_suffix: str = "",
                 max_pending: int = 10_000):
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            raise ArgumentError(
                "TensorBoard summaries need the 'tensorboard' package: pip install tensorboard."
            ) from None
        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        name = (f"{_EVENT_FILE_PREFIX}{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{_next_uid()}{filename_suffix}")
        self.path = os.path.join(logdir, name)
        self.flush_secs = float(flush_secs)
        self.max_pending = 1 if self.flush_secs == 0 else int(max_pending)
        self._state = _FileState(self.path, event_pb2, summary_pb2)
        self._finalizer = weakref.finalize(self, _FileState.close, self._state)
        self.add_event(event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="kerasrl.summaries"),
        ))
        self.flush()
        if self.flush_secs > 0:
            thread = threading.Thread(
                target=_flush_periodically, args=(self._state, self.flush_secs),
                name="kerasrl-summary-flush", daemon=True,
            )
            thread.start()

    @property
    def closed(self) -> bool:
        return self._state.closed

    def _add(self, item: Any) -> None:
        if self._state.add(item) >= self.max_pending:
            self._state.flush()

    def add_event(self, event: Any) -> None:
        """Appends an `event_pb2.Event`."""
        self._add(event.SerializeToString())

    def add_summary(self, summary: Any, step: int, wall_time: float | None = None) -> None:
        """Appends a `summary_pb2.Summary` at `step`."""
        self.add_event(self._event_pb2.Event(
            wall_time=time.time() if wall_time is None else wall_time, step=int(step),
            summary=summary,
        ))

    def add_scalars(self, values: Mapping[str, float], step: int,
                    wall_time: float | None = None) -> None:
        """Appends one event with a scalar per tag (`{tag: value}`) at `step`."""
        if values:
            self._add((time.time() if wall_time is None else wall_time, int(step),
                       {tag: float(value) for tag, value in values.items()}))

    def add_text(self, tag: str, text: str, step: int = 0) -> None:
        """Appends a text summary (TensorBoard's Text tab renders it as Markdown)."""
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.text import metadata as text_metadata

        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        )
        value = self._summary_pb2.Summary.Value(
            tag=tag, tensor=tensor,
            metadata=text_metadata.create_summary_metadata(display_name=tag, description=""),
        )
        self.add_summary(self._summary_pb2.Summary(value=[value]), step)

    def add_graph(self, graph_def: Any) -> None:
        """Appends a `graph_pb2.GraphDef` (TensorBoard's Graphs tab)."""
        self.add_event(self._event_pb2.Event(
            wall_time=time.time(), graph_def=graph_def.SerializeToString()
        ))

    def flush(self) -> None:
        """Writes pending events to disk."""
        self._state.flush()

    def close(self) -> None:
        """Flushes and closes the file (further writes raise `ArgumentError`)."""
        self._finalizer()


_uid_lock = threading.Lock()
_uid = [0]


def _next_uid() -> int:
    with _uid_lock:
        _uid[0] += 1
        return _uid[0]


# ---------------------------------------------------------------------- spec parsing
def _check_labels(labels: Any, argument: str) -> tuple[str, ...]:
    if labels is None or labels == "all":
        return LABELS
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, (list, tuple, set, frozenset)) or not all(
            isinstance(label, str) for label in labels):
        raise ArgumentError.invalid(
            argument, f"'all' or a list of labels among {list(LABELS)}", labels,
            where="summarizer",
        )
    labels = list(labels)
    if "all" in labels:
        return LABELS
    unavailable = [label for label in labels if label in UNAVAILABLE_LABELS]
    if unavailable:
        raise ArgumentError(
            f"Invalid argument '{argument}' of summarizer: label(s) {unavailable} of "
            f"Tensorforce are not available in kerasrl yet; valid labels are "
            f"{list(LABELS)} (or 'all')."
        )
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ArgumentError.invalid(
            argument, f"'all' or labels among {list(LABELS)}", unknown, where="summarizer",
        )
    return tuple(label for label in LABELS if label in labels)


def _check_frequency(frequency: Any) -> tuple[str, int]:
    def count(value: Any, argument: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ArgumentError.invalid(argument, "a positive int", value, where="summarizer")
        return int(value)

    if isinstance(frequency, Mapping):
        unknown = set(frequency) - {"unit", "frequency"}
        if unknown:
            raise ArgumentError.invalid(
                "frequency", "dict(unit='updates'|'episodes', frequency=N)", dict(frequency),
                where="summarizer",
            )
        unit = frequency.get("unit", "updates")
        if unit not in ("updates", "episodes"):
            raise ArgumentError.invalid(
                "frequency['unit']", "'updates' or 'episodes'", unit, where="summarizer"
            )
        return unit, count(frequency.get("frequency", 1), "frequency['frequency']")
    return "updates", count(frequency, "frequency")


def parse_summarizer_spec(spec: Any) -> dict:
    """Checks a summarizer spec; returns the keyword arguments of `Summarizer`.

    Args:
        spec: A directory (str or path), or a dict with keys among
            `SPEC_KEYS`: `directory` (required), `filename`, `labels` (or its
            Tensorforce name `summaries`), `frequency`, `flush`,
            `max_summaries`, `step_reward`.

    Returns:
        A dict with every `Summarizer` argument except `agent`.

    Raises:
        ArgumentError: a malformed spec, naming the key, the expectation and
            the received value.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = {"directory": spec}
    if not isinstance(spec, Mapping):
        raise ArgumentError.invalid(
            "summarizer", "a directory or a dict with a 'directory' key", spec
        )
    spec = dict(spec)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ArgumentError.invalid(
            f"summarizer key(s) {unknown}", f"keys among {list(SPEC_KEYS)}", spec
        )
    if "labels" in spec and "summaries" in spec:
        raise ArgumentError(
            "Summarizer keys 'labels' and 'summaries' are synonyms; give only one "
            f"(received labels={spec['labels']!r}, summaries={spec['summaries']!r})."
        )
    directory = spec.get("directory")
    if isinstance(directory, os.PathLike):
        directory = os.fspath(directory)
    if not isinstance(directory, str) or not directory:
        raise ArgumentError.invalid("directory", "a non-empty path", directory, where="summarizer")
    filename = spec.get("filename")
    if filename is not None and (not isinstance(filename, str) or not filename
                                 or os.sep in filename or "/" in filename):
        raise ArgumentError.invalid(
            "filename", "a non-empty run name without path separators, or None", filename,
            where="summarizer",
        )
    labels = _check_labels(spec.get("labels", spec.get("summaries", "all")),
                           "summaries" if "summaries" in spec else "labels")
    unit, frequency = _check_frequency(spec.get("frequency", 1))
    flush = spec.get("flush", 10.0)
    if isinstance(flush, bool) or not isinstance(flush, (int, float, np.number)) or not (
            0 <= flush < float("inf")):
        raise ArgumentError.invalid("flush", "seconds (a number >= 0)", flush, where="summarizer")
    max_summaries = spec.get("max_summaries", DEFAULT_MAX_SUMMARIES)
    if max_summaries is not None and (isinstance(max_summaries, bool) or not isinstance(
            max_summaries, (int, np.integer)) or max_summaries < 1):
        raise ArgumentError.invalid(
            "max_summaries", "a positive int or None (keep every run)", max_summaries,
            where="summarizer",
        )
    step_reward = spec.get("step_reward", False)
    if not isinstance(step_reward, bool):
        raise ArgumentError.invalid("step_reward", "a bool", step_reward, where="summarizer")
    return {
        "directory": directory, "filename": filename, "labels": labels,
        "frequency": {"unit": unit, "frequency": frequency}, "flush": float(flush),
        "max_summaries": None if max_summaries is None else int(max_summaries),
        "step_reward": step_reward,
    }


# ---------------------------------------------------------------------- run directories
def _run_pattern(prefix: str) -> re.Pattern:
    return re.compile(re.escape(prefix) + r"-(\d{8}-\d{6})(?:-(\d+))?$")


def new_run_directory(directory: str, prefix: str = "summary") -> str:
    """Creates and returns `<directory>/<prefix>-<YYYYmmdd-HHMMSS>[-N]` (a new directory)."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime(_RUN_TIME_FORMAT)
    base = os.path.join(directory, f"{prefix}-{stamp}")
    # After the newest existing run of this second (older ones may have been pruned).
    pattern = _run_pattern(prefix)
    taken = [int(match.group(2) or 0) for match in map(pattern.match, os.listdir(directory))
             if match and match.group(1) == stamp]
    index = max(taken) + 1 if taken else 0
    path = f"{base}-{index}" if index else base
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            index += 1
            path = f"{base}-{index}"


def prune_run_directories(directory: str, prefix: str, keep: int,
                          protect: str | None = None) -> list[str]:
    """Deletes the oldest `<prefix>-<time>[-N]` run directories beyond `keep`.

    Only directories that hold nothing but TensorBoard event files are deleted.

    Args:
        directory: The summarizer directory.
        prefix: Run name prefix (the summarizer's `filename`, default `'summary'`).
        keep: Number of runs to keep (the newest).
        protect: A run path never deleted (the current run).

    Returns:
        The deleted paths.
    """
    pattern = _run_pattern(prefix)
    runs = []
    for name in os.listdir(directory):
        match = pattern.match(name)
        path = os.path.join(directory, name)
        if match and os.path.isdir(path):
            runs.append(((match.group(1), int(match.group(2) or 0)), path))
    runs.sort()
    deleted = []
    for _, path in runs[:max(0, len(runs) - keep)]:
        if protect is not None and os.path.abspath(path) == os.path.abspath(protect):
            continue
        entries = os.listdir(path)
        if all(entry.startswith(_EVENT_FILE_PREFIX) and os.path.isfile(os.path.join(path, entry))
               for entry in entries):
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(path)
    return deleted


# ---------------------------------------------------------------------- metric names
def metric_tag(key: str, action_names: Sequence[str] = ("action",)) -> tuple[str, str]:
    """The `(label, tag)` under which an update metric of `agent.last_metrics` is written.

    Known keys: `policy_loss` → `loss/policy`, `value_loss`/`baseline_loss` →
    `loss/baseline`, `loss` → `loss/total`, `entropy` → `entropy/<action>`
    (or `entropy/total` with several actions), `approx_kl`/`kl_divergence`/`kl`
    (TRPO's exact KL) → `kl-divergence/<action>` (or `.../total`),
    `gradient_norm` → `update-norm/gradient`, `update_norm` →
    `update-norm/parameters`. Per-action keys `entropy/<name>` and
    `approx_kl/<name>` (or `kl_divergence/<name>`) keep the action name
    (flattened, e.g. `entropy/a/b` for a nested action). Other
    keys: `<x>_loss` → `loss/<x>`, `<x>_norm` → `update-norm/<x>`, anything
    else → `metrics/<key>`.

    Args:
        key: Metric name.
        action_names: The agent's action names.

    Returns:
        The label that enables the metric and its TensorBoard tag.
    """
    single = action_names[0] if len(action_names) == 1 else "total"
    fixed = {
        "policy_loss": ("loss", "loss/policy"),
        "value_loss": ("loss", "loss/baseline"),
        "baseline_loss": ("loss", "loss/baseline"),
        "loss": ("loss", "loss/total"),
        "entropy": ("entropy", f"entropy/{single}"),
        "approx_kl": ("kl-divergence", f"kl-divergence/{single}"),
        "kl_divergence": ("kl-divergence", f"kl-divergence/{single}"),
        "kl": ("kl-divergence", f"kl-divergence/{single}"),
        "gradient_norm": ("update-norm", "update-norm/gradient"),
        "baseline_gradient_norm": ("update-norm", "update-norm/baseline_gradient"),
        "update_norm": ("update-norm", "update-norm/parameters"),
        "baseline_update_norm": ("update-norm", "update-norm/baseline_parameters"),
    }
    if key in fixed:
        return fixed[key]
    head, _, rest = key.partition("/")
    if rest and head == "entropy":
        return "entropy", key
    if rest and head in ("approx_kl", "kl_divergence", "kl-divergence"):
        return "kl-divergence", f"kl-divergence/{rest}"
    if key.endswith("_loss"):
        return "loss", f"loss/{key[:-5]}"
    if key.endswith("_norm"):
        return "update-norm", f"update-norm/{key[:-5]}"
    return "metrics", f"metrics/{key}"


def tagged_metrics(metrics: Mapping[str, float], tags: dict[str, str | None],
                   action_names: Sequence[str], labels: frozenset[str]) -> dict[str, float]:
    """`{tag: value}` of the update metrics whose label is among `labels`.

    `tags` caches each metric's tag (None: not enabled) across calls.
    """
    values = {}
    for key, value in metrics.items():
        tag = tags.get(key, False)
        if tag is False:
            label, name = metric_tag(key, action_names)
            tag = tags[key] = name if label in labels else None
        if tag is not None:
            values[tag] = value
    return values


def _scheduled_parameters(agent: Any) -> list[tuple[str, Any]]:
    """`(tag, Parameter)` of every non-constant parameter of an agent, found generically."""
    from kerasrl.parameters import Parameter

    found = []
    for attribute, value in vars(agent).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, Parameter):
            found.append((f"parameters/{attribute}", value))
        elif isinstance(value, Mapping) and value and all(
                isinstance(item, Parameter) for item in value.values()):
            if len({id(item) for item in value.values()}) == 1:  # one shared parameter
                found.append((f"parameters/{attribute}", next(iter(value.values()))))
            else:
                found.extend((f"parameters/{attribute}/{key}", item)
                             for key, item in value.items())
        elif isinstance(getattr(value, "learning_rate", None), Parameter):
            prefix = attribute.removesuffix("_spec").removesuffix("optimizer").rstrip("_")
            name = f"{prefix}_learning_rate" if prefix else "learning_rate"
            found.append((f"parameters/{name}", value.learning_rate))
    return [(tag, parameter) for tag, parameter in found if not parameter.is_constant()]


def _flatten_hparams(value: Any, prefix: str, out: dict) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not prefix and key in _PLUGIN_KEYS:
                continue
            _flatten_hparams(item, f"{prefix}/{key}" if prefix else str(key), out)
    elif isinstance(value, bool) or isinstance(value, str):
        out[prefix] = value
    elif isinstance(value, (int, float)) and np.isfinite(value):
        out[prefix] = value
    elif value is not None:
        out[prefix] = json.dumps(value, default=repr)


def _append_text(lines: list, text: str, *args: Any, **kwargs: Any) -> None:
    lines.append(text)


def _markdown_code(text: str) -> str:
    """Indents text by 4 spaces: TensorBoard's Markdown shows it as-is (monospace)."""
    return "\n".join("    " + line for line in text.splitlines())


def _model_graph_nodes(model: Any, scope: str) -> list:
    """GraphDef nodes of a functional Keras model: one node per operation."""
    from tensorboard.compat.proto import attr_value_pb2, node_def_pb2, tensor_shape_pb2

    def shape_proto(shape) -> Any:
        return tensor_shape_pb2.TensorShapeProto(dim=[
            tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if size is None else int(size))
            for size in shape
        ])

    nodes = []
    for operation in model.operations:
        inputs = []
        for node in getattr(operation, "_inbound_nodes", []):
            for tensor in node.input_tensors:
                parent = tensor._keras_history.operation.name
                name = f"{scope}/{parent}"
                if name not in inputs:
                    inputs.append(name)
        outputs = getattr(operation, "output", None)
        if outputs is not None and not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        attr = {}
        if outputs:
            attr["_output_shapes"] = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(
                shape=[shape_proto(tensor.shape) for tensor in outputs]))
        # Not `get_config()`: Keras' serialization imports TensorFlow when installed.
        weights = getattr(operation, "weights", None)
        if weights:
            count = sum(int(np.prod(weight.shape)) for weight in weights)
            attr["parameters"] = attr_value_pb2.AttrValue(i=count)
        activation = getattr(operation, "activation", None)
        if activation is not None:
            name = getattr(activation, "__name__", type(activation).__name__)
            attr["activation"] = attr_value_pb2.AttrValue(s=str(name).encode("utf-8"))
        nodes.append(node_def_pb2.NodeDef(
            name=f"{scope}/{operation.name}", op=type(operation).__name__, input=inputs,
            attr=attr,
        ))
    return nodes


# ---------------------------------------------------------------------- summarizer
class Summarizer:
    """Writes TensorBoard summaries of an agent's training (an agent plugin).

    Created by the agent from its `summarizer` argument (see
    `create_summarizer`), or by `kerasrl.callbacks.TensorBoard`. Hooks are
    called by the agent: `on_episode_end`, `on_update`, `close`, and
    `on_observe` with `step_reward=True`.

    Args:
        agent: The agent (already built).
        directory: Parent directory of the runs (`tensorboard --logdir <directory>`).
        filename: Run name prefix (default `'summary'`); the run directory is
            `<directory>/<filename>-<YYYYmmdd-HHMMSS>[-N]`, new for each summarizer.
        labels: `'all'` or a list among `LABELS`.
        frequency: Update summaries are written every `N` updates (an int),
            or `dict(unit='updates'|'episodes', frequency=N)`: with
            `'episodes'`, at the first update after every `N` episodes.
            Episode summaries are written for every episode.
        flush: Maximum seconds between writes of the event file to disk.
        max_summaries: Number of `<filename>-<time>` runs kept in `directory`
            (the oldest are deleted); None keeps all.
        step_reward: Also write the mean reward of each `observe` call
            (`reward/step`, one point per timestep; off by default as it
            writes at every step).

    Attributes:
        logdir: The run directory.
        writer: The `EventWriter`.
        labels: The enabled labels.
    """

    def __init__(
        self,
        agent: Any,
        directory: str,
        filename: str | None = None,
        labels: Any = "all",
        frequency: Any = 1,
        flush: float = 10.0,
        max_summaries: int | None = DEFAULT_MAX_SUMMARIES,
        step_reward: bool = False,
    ):
        spec = parse_summarizer_spec(dict(
            directory=directory, filename=filename, labels=labels, frequency=frequency,
            flush=flush, max_summaries=max_summaries, step_reward=step_reward,
        ))
        self._spec = spec
        self.labels = frozenset(spec["labels"])
        self.frequency = spec["frequency"]
        self.step_reward = spec["step_reward"]
        prefix = spec["filename"] or "summary"
        self.logdir = new_run_directory(spec["directory"], prefix)
        if spec["max_summaries"] is not None:
            prune_run_directories(spec["directory"], prefix, spec["max_summaries"],
                                  protect=self.logdir)
        self.writer = EventWriter(self.logdir, flush_secs=spec["flush"])
        self._action_names = tuple(agent.actions_spec)
        self._per_environment = agent.parallel_interactions > 1
        self._tags: dict[str, str | None] = {}
        self._parameters = _scheduled_parameters(agent) if "parameters" in self.labels else []
        self._next_episode_mark = self.frequency["frequency"]
        # update-norm/parameters: host copy of the weights after the last update,
        # until the compiled update reports `update_norm` itself.
        self._host_update_norm = "update-norm" in self.labels
        self._variables: list | None = None  # trainable variables, read once
        self._weights = self._read_weights(agent) if self._host_update_norm else None
        self._update_norm = None
        # throughput: time inside agent.act/agent.observe, measured by wrappers.
        self._agent_seconds = 0.0
        self._call_start: float | None = None
        self._interval_start: tuple[float, int, float] | None = None
        self._wrapped: dict[str, Any] = {}
        self._closed = False
        if self.step_reward and "reward" in self.labels:
            # Only then is there an `on_observe` hook (the agent calls it every step).
            self.on_observe = self._observe_reward
        if "graph" in self.labels:
            self._write_graph(agent)

    def get_config(self) -> dict:
        """The summarizer spec (`create_summarizer(agent, config)` makes an equivalent one)."""
        spec = dict(self._spec)
        spec["labels"] = "all" if set(spec["labels"]) == set(LABELS) else list(spec["labels"])
        spec["frequency"] = dict(spec["frequency"])
        return spec

    # ------------------------------------------------------------------ plugin hooks
    def _observe_reward(self, agent: Any, reward: np.ndarray, terminal: np.ndarray,
                        slots: np.ndarray) -> None:
        """The `on_observe` hook when `step_reward` is set: writes `reward/step`."""
        if not self._closed:
            self.writer.add_scalars({"reward/step": float(np.mean(reward))}, agent.timesteps)

    def on_episode_end(self, agent: Any, slot: int, episode_return: float,
                       episode_length: int) -> None:
        """Writes the episode's return and length (also per environment)."""
        if "reward" not in self.labels or self._closed:
            return
        values = {"reward/episode_return": episode_return,
                  "reward/episode_length": episode_length}
        if self._per_environment:
            values[f"reward/episode_return/env{slot}"] = episode_return
            values[f"reward/episode_length/env{slot}"] = episode_length
        self.writer.add_scalars(values, agent.timesteps)

    def on_update(self, agent: Any, metrics: Mapping[str, float]) -> None:
        """Writes the update summaries (every `frequency` updates or episodes)."""
        if self._closed:
            return
        if self._host_update_norm:
            if "update_norm" in metrics:
                self._host_update_norm = False
                self._weights = None
            else:
                weights = self._read_weights(agent)
                self._update_norm = _difference_norm(weights, self._weights)
                self._weights = weights
        if not self._due(agent):
            return
        values = tagged_metrics(metrics, self._tags, self._action_names, self.labels)
        if self._host_update_norm and self._update_norm is not None:
            values["update-norm/parameters"] = self._update_norm
        if self._parameters:
            counters = {"timesteps": agent.timesteps, "episodes": agent.episodes,
                        "updates": agent.updates}
            for tag, parameter in self._parameters:
                values[tag] = parameter.value(counters)
        if "throughput" in self.labels and self._interval_start is not None:
            now = time.perf_counter()
            start, steps, agent_seconds = self._interval_start
            elapsed = now - start
            current = self._agent_time(now)
            if elapsed > 0:
                values["throughput/env_steps_per_second"] = (agent.timesteps - steps) / elapsed
                values["throughput/agent_time_share"] = min(
                    1.0, max(0.0, (current - agent_seconds) / elapsed))
            self._interval_start = (now, agent.timesteps, current)
        self.writer.add_scalars(values, agent.timesteps)

    def close(self, agent: Any = None) -> None:
        """Ends the hparams session, restores the agent's methods and closes the file."""
        if self._closed:
            return
        self._closed = True
        if agent is not None:
            # Called while the agent iterates over its plugins: keep the list as is.
            self._unwrap(agent)
        if "graph" in self.labels:
            self._write_session_end()
        self.writer.close()

    # ------------------------------------------------------------------ attaching
    def attach(self, agent: Any) -> None:
        """Starts timing `agent.act`/`agent.observe` (for `throughput`) and, if the
        summarizer is not yet one of the agent's plugins, adds it."""
        if self._closed:
            raise ArgumentError(f"The summarizer of '{self.logdir}' is closed.")
        if self not in agent._plugins:
            agent._plugins.append(self)
        if self._host_update_norm:
            self._weights = self._read_weights(agent)
        self._wrap(agent)
        self.restart_interval()

    def _wrap(self, agent: Any) -> None:
        if "throughput" in self.labels and not self._wrapped:
            for name in ("act", "observe"):
                previous = vars(agent).get(name)  # another summarizer's timer, if any
                wrapper = self._timed(agent, getattr(agent, name))
                self._wrapped[name] = (wrapper, previous)
                setattr(agent, name, wrapper)

    def detach(self, agent: Any) -> None:
        """Undoes `attach` (the writer stays open)."""
        if self in agent._plugins:
            agent._plugins.remove(self)
        self._unwrap(agent)

    def _unwrap(self, agent: Any) -> None:
        for name, (wrapper, previous) in self._wrapped.items():
            if vars(agent).get(name) is wrapper:
                if previous is None:
                    delattr(agent, name)
                else:
                    setattr(agent, name, previous)
            # Else another timer wraps this one: it stays, passing calls through.
        self._wrapped = {}

    def restart_interval(self) -> None:
        """Starts the throughput interval at the next `act` (e.g. when training starts)."""
        self._interval_start = None

    def _agent_time(self, now: float) -> float:
        """Seconds spent in `act`/`observe` so far, including the call in progress."""
        if self._call_start is None:
            return self._agent_seconds
        return self._agent_seconds + (now - self._call_start)

    def _timed(self, agent: Any, method):
        @functools.wraps(method)
        def timed(*args, **kwargs):
            if self._call_start is not None or not self._wrapped:
                # Re-entrant call (already timed), or detached.
                return method(*args, **kwargs)
            start = self._call_start = time.perf_counter()
            if self._interval_start is None:
                self._interval_start = (start, agent.timesteps, self._agent_seconds)
            try:
                return method(*args, **kwargs)
            finally:
                self._agent_seconds += time.perf_counter() - start
                self._call_start = None

        return timed

    # ------------------------------------------------------------------ helpers
    def _due(self, agent: Any) -> bool:
        unit, every = self.frequency["unit"], self.frequency["frequency"]
        if every == 1:
            return True
        if unit == "updates":
            return agent.updates % every == 0
        if agent.episodes >= self._next_episode_mark:
            self._next_episode_mark = (agent.episodes // every + 1) * every
            return True
        return False

    def _read_weights(self, agent: Any) -> np.ndarray:
        """All trainable weights of the agent's models as one flat float64 vector (a copy)."""
        import keras

        if self._variables is None:
            models = agent._models() if hasattr(agent, "_models") else {}
            unique: dict[int, Any] = {}
            for name, model in models.items():
                if name.startswith("target"):
                    continue  # target networks follow the trained ones; not trained
                for variable in model.trainable_weights:
                    unique.setdefault(id(variable), variable)
            self._variables = list(unique.values())
        if not self._variables:
            return np.zeros(0)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            # Eager `Variable.numpy()` is the cheapest read there.
            parts = [variable.numpy().ravel() for variable in self._variables]
        elif backend == "torch":
            parts = [variable.value.detach().cpu().numpy().ravel()
                     for variable in self._variables]
        else:
            parts = [np.asarray(variable.value).ravel() for variable in self._variables]
        # `concatenate` copies (torch tensors change in place; JAX arrays may be donated).
        return np.concatenate(parts).astype(np.float64)

    def _write_graph(self, agent: Any) -> None:
        from tensorboard.compat.proto import graph_pb2

        step = agent.timesteps
        models = agent._models() if hasattr(agent, "_models") else {}
        nodes = []
        for name, model in models.items():
            lines: list[str] = []
            try:
                model.summary(print_fn=functools.partial(_append_text, lines), line_length=100)
                self.writer.add_text(f"graph/{name}_model", _markdown_code("\n".join(lines)), step)
            except Exception as exc:  # noqa: BLE001 - descriptive only
                logger.warning("Summarizer: no summary of model '%s': %s", name, exc)
            try:
                nodes.extend(_model_graph_nodes(model, name))
            except Exception as exc:  # noqa: BLE001 - descriptive only
                logger.warning("Summarizer: no graph of model '%s': %s", name, exc)
        if nodes:
            self.writer.add_graph(graph_pb2.GraphDef(node=nodes))
        config = agent.get_config()
        self.writer.add_text("graph/agent_spec",
                             _markdown_code(json.dumps(config, indent=2, default=repr)), step)
        hparams: dict = {}
        _flatten_hparams(config, "", hparams)
        from tensorboard.plugins.hparams import summary_v2

        self.writer.add_summary(summary_v2.hparams_pb(
            hparams, trial_id=os.path.basename(self.logdir)), step)

    def _write_session_end(self) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        data = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time()))
        value = summary_pb2.Summary.Value(
            tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
            tensor=metadata.NULL_TENSOR,
        )
        self.writer.add_summary(summary_pb2.Summary(value=[value]), 0)


def _difference_norm(new: np.ndarray, old: np.ndarray | None) -> float | None:
    if old is None or old.shape != new.shape:
        return None
    difference = new - old
    return float(np.sqrt(np.dot(difference, difference)))


def get_summarizer(agent: Any) -> Summarizer | None:
    """The first `Summarizer` attached to `agent` (e.g. to read its `logdir`), or None."""
    for plugin in getattr(agent, "_plugins", []):
        if isinstance(plugin, Summarizer):
            return plugin
    return None


# ---------------------------------------------------------------------- plugin factories
def create_summarizer(agent: Any, spec: Any) -> Summarizer:
    """Creates the summarizer of an agent from its `summarizer`/`summaries` argument.

    Args:
        agent: The agent (built).
        spec: A directory, or a dict (see `parse_summarizer_spec`).

    Returns:
        The `Summarizer` (the agent registers it as a plugin).

    Raises:
        ArgumentError: malformed spec, unknown label.

    Example:

    ```python
    agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=10,
                         summarizer=dict(directory='data/summaries', labels='all'))
    ```
    """
    summarizer = Summarizer(agent, **parse_summarizer_spec(spec))
    summarizer._wrap(agent)  # the agent adds the plugin itself
    return summarizer
