"""Saving and loading agents.

Formats (`agent.save(directory, filename=None, format='keras', append=None)`):

- `'keras'` (default, a full checkpoint): one zip archive `<filename>.keras`
  holding `spec.json` (the agent spec), `metadata.json` (kerasrl, Keras and
  backend versions, counters, host RNG state, update schedule state),
  `variables.h5` (every network weight, every optimizer variable and the
  sampling RNG states) and `memory.npz` (the agent's memory). Loading it
  resumes training exactly where it stopped (episodes that were running are
  dropped, as after `agent.reset()`).
- `'checkpoint'`: the same full checkpoint under Tensorforce's (i.e.
  TensorFlow's) checkpoint file names: `<filename>-<N>.data-00000-of-00001`
  (the archive), `<filename>-<N>.index` (a small JSON index) and the
  directory's `checkpoint` file listing the checkpoints, newest last. N is
  the save counter (1, 2, ... for `agent.save`) or the counter of `append`
  (the saver). The files are kerasrl's, not TensorFlow's binary format, on
  every backend: Tensorforce's own TensorFlow checkpoints cannot be read
  (save them from Tensorforce with `format='numpy'`, which loads here).
- `'h5'` (alias `'hdf5'`): weights only, `<filename>.h5`, one dataset per
  weight under a stable name such as `policy/network/dense0/kernel`.
- `'numpy'`: the same weights in `<filename>.npz`.

Every save also writes `<filename>.json` (the agent spec) beside it, so
`Agent.load(directory, ...)` can rebuild the agent. Writes are atomic: data
goes to a temporary file in the same directory, then `os.replace` moves it into
place, so an interrupted save never leaves a file that `Agent.load` would pick
up. Nothing is pickled: arrays go to HDF5/NPZ (loaded with
`allow_pickle=False`), everything else to JSON.

Weight names: `<model>/<layer>/<weight>` where `<model>` is `policy`,
`baseline`, ... and network layers named `<model>_network_<layer>` appear as
`network/<layer>`; e.g. `policy/network/dense0/kernel`,
`policy/action_logits/bias`, `baseline/value/kernel`.

Tensorforce 0.6.5 numpy/HDF5 checkpoints load too: their names
(`policy/network/dense0/weights`, `policy/action_distribution/action_values/
linear/weights`, `baseline/value/linear/bias`, ...) are mapped onto these.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from kerasrl.errors import ArgumentError, KerasRLError, SaveError
from kerasrl.validation import check_int

FORMATS = ("keras", "checkpoint", "h5", "hdf5", "numpy")
EXTENSIONS = {"keras": ".keras", "checkpoint": ".index", "h5": ".h5", "hdf5": ".h5",
              "numpy": ".npz"}
#: The data file of a `'checkpoint'` save `<stem>`: `<stem>` + this suffix.
CHECKPOINT_DATA = ".data-00000-of-00001"
#: The index file naming a directory's checkpoints, as TensorFlow's.
CHECKPOINT_INDEX = "checkpoint"
APPEND = ("timesteps", "episodes", "updates")
#: Tensorforce's act-only TensorFlow SavedModel (`agent.save` only; not loadable as an agent).
SAVED_MODEL = "saved-model"
ARCHIVE_VERSION = 1
#: The archive's `config.json`, read by `keras.saving.load_model`: it names
#: `kerasrl.export.AgentArchive`, which refuses to load with a message that
#: points at `Agent.load` (and says so in its config when kerasrl is not imported).
KERAS_CONFIG = {
    "module": None, "class_name": "AgentArchive", "registered_name": "kerasrl>AgentArchive",
    "config": {"note": "a kerasrl agent archive: load it with kerasrl.Agent.load(path)"},
}


# ---------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path in the same directory; renames it to `path` on success."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _write_json(path: str, value: Any) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2)


# ---------------------------------------------------------------------- weight names
def _layer_name(model_key: str, layer_name: str) -> str:
    prefix = f"{model_key}_"
    name = layer_name[len(prefix):] if layer_name.startswith(prefix) else layer_name
    if name.startswith("network_"):
        name = "network/" + name[len("network_"):]
    return name


def named_weights(agent) -> dict[str, Any]:
    """Stable names of all network weights of `agent` (shared weights once).

    Returns:
        Ordered dict `{name: keras.Variable}`.
    """
    result: dict[str, Any] = {}
    seen: set[int] = set()
    for model_key, model in agent._models().items():
        for layer in model.layers:
            for weight in layer.weights:
                if id(weight) in seen:
                    continue
                seen.add(id(weight))
                path = weight.path
                head, _, rest = path.partition("/")
                if head == layer.name and rest:
                    relative = rest
                else:
                    relative = weight.name
                name = f"{model_key}/{_layer_name(model_key, layer.name)}/{relative}"
                if name in result:
                    name = f"{name}_{len(result)}"
                result[name] = weight
    return result


_TENSORFORCE = [
    (re.compile(r"^(policy|baseline)/network/([^/]+)/weights$"), r"\1/network/\2/kernel"),
    (re.compile(r"^(policy|baseline)/network/([^/]+)/bias$"), r"\1/network/\2/bias"),
    (re.compile(r"^policy/action_distribution/action_values/linear/weights$"),
     "policy/action_logits/kernel"),
    (re.compile(r"^policy/action_distribution/action_values/linear/bias$"),
     "policy/action_logits/bias"),
    (re.compile(r"^baseline/value/linear/weights$"), "baseline/value/kernel"),
    (re.compile(r"^baseline/value/linear/bias$"), "baseline/value/bias"),
]
_TENSORFORCE_IGNORED = re.compile(r"^(memory/|episodes$|timesteps$|updates$|last-update$)")


def _from_tensorforce(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Maps Tensorforce 0.6.5 variable names onto kerasrl's (if they look like them)."""
    if not any(key.endswith("/weights") for key in arrays):
        return arrays
    mapped = {}
    for key, value in arrays.items():
        if _TENSORFORCE_IGNORED.match(key):
            continue
        for pattern, replacement in _TENSORFORCE:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        mapped[key] = value
    return mapped


def _assign_weights(agent, arrays: dict[str, np.ndarray], source: str) -> None:
    weights = named_weights(agent)
    arrays = _from_tensorforce(arrays)
    missing = [name for name in weights if name not in arrays]
    if missing:
        raise SaveError(
            f"Invalid weights file '{source}': expected arrays for {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, which are missing (found {sorted(arrays)[:8]})."
        )
    for name, variable in weights.items():
        value = np.asarray(arrays[name])
        if tuple(value.shape) != tuple(variable.shape):
            raise SaveError(
                f"Invalid weights file '{source}': '{name}' has shape {tuple(value.shape)}, "
                f"expected {tuple(variable.shape)} (does the spec match the saved weights?)."
            )
        _check_finite(name, value, source)
    for name, variable in weights.items():
        variable.assign(np.asarray(arrays[name]).astype(variable.dtype))
    agent._weights_loaded()


# ---------------------------------------------------------------------- save
def _filename(agent, filename: str | None, append: str | None) -> str:
    if filename is None:
        filename = agent.config.get("name") or "agent"
    if not isinstance(filename, str) or not filename or os.sep in filename:
        raise ArgumentError.invalid("filename", "a file name without directory", filename)
    if append is not None:
        if append not in APPEND:
            raise ArgumentError.invalid("append", f"None or one of {APPEND}", append)
        filename = f"{filename}-{getattr(agent, append)}"
    return filename


def is_single_file(directory: Any, filename: Any = None, format: str | None = "keras",
                   append: Any = None) -> bool:
    """Whether `save`/`load` are given one `.keras` file, as in Keras (`agent.save('agent.keras')`).

    A path ending in `.keras` with no `filename`/`append`, in the `'keras'`
    format, is the archive itself; anything else names a directory
    (Tensorforce's `agent.save(directory, filename, format)`).
    """
    return (isinstance(directory, (str, os.PathLike)) and filename is None and append is None
            and format in ("keras", None) and os.fspath(directory).endswith(".keras")
            and not os.path.isdir(directory))


def save(agent, directory: str, filename: str | None = None, format: str = "keras",
         append: str | None = None, overwrite: bool = True) -> str:
    """Saves `agent`; returns the path of the written file (for `'checkpoint'`,
    the checkpoint prefix `<directory>/<filename>-<N>`).

    Args:
        agent: The agent.
        directory: Target directory (created if needed), or a path ending in
            `.keras`: the full archive is that one file, as Keras'
            `model.save('model.keras')` (no spec JSON beside it: the archive
            holds the spec).
        filename: Base file name (default: `config['name']`, i.e. `'agent'`).
        format: `'keras'` or `'checkpoint'` (full), `'h5'`/`'hdf5'` or
            `'numpy'` (weights only).
        append: Add `-<counter>` of `'timesteps'`, `'episodes'` or `'updates'`.
        overwrite: False refuses to replace an existing file (SaveError).

    Raises:
        ArgumentError: invalid arguments.
        SaveError: the file could not be written (nothing existing is replaced).
    """
    if format not in FORMATS + (SAVED_MODEL,):
        raise ArgumentError.invalid("format", f"one of {FORMATS + (SAVED_MODEL,)}", format)
    if not isinstance(directory, (str, os.PathLike)):
        raise ArgumentError.invalid("directory", "a directory path", directory)
    if not isinstance(overwrite, bool):
        raise ArgumentError.invalid("overwrite", "True or False", overwrite)
    if is_single_file(directory, filename, format, append):
        return _save_file(agent, os.fspath(directory), overwrite, _save_full)
    directory = os.fspath(directory)
    name = _filename(agent, filename, append)
    if format == SAVED_MODEL:
        from kerasrl.export import export_saved_model

        # As Tensorforce: into `directory`, or `directory/<filename>` for another name.
        default = agent.config.get("name") or "agent"
        target = directory if name == default else os.path.join(directory, name)
        try:
            export_saved_model(agent, target)
            _write_json(os.path.join(target, name + ".json"), agent.get_config())
        except OSError as exc:
            raise SaveError(f"Saving to '{target}' failed: {exc}.") from None
        return target
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"Cannot create save directory '{directory}': {exc}.") from None
    path = os.path.join(directory, name + EXTENSIONS[format])
    if format != "checkpoint":
        _refuse_existing(path, overwrite)
    agent._sync_weights()
    try:
        if format == "checkpoint":
            base = name.rsplit("-", 1)[0] if append else name
            stem = name if append else f"{name}-{_next_checkpoint_number(directory, name)}"
            _save_full(agent, os.path.join(directory, stem + CHECKPOINT_DATA))
            _write_json(os.path.join(directory, stem + ".index"),
                        {"format": "kerasrl-checkpoint", "data": stem + CHECKPOINT_DATA})
            _write_checkpoint_index(directory, [*_listed_checkpoints(directory), stem])
            _write_json(os.path.join(directory, base + ".json"), agent.get_config())
            return os.path.join(directory, stem)
        if format == "keras":
            _save_full(agent, path)
        else:
            arrays = weight_arrays(agent)
            if format == "numpy":
                with atomic_path(path) as temporary, open(temporary, "wb") as file:
                    np.savez(file, **arrays)
            else:
                _write_h5(path, arrays)
        _write_json(os.path.join(directory, name.rsplit("-", 1)[0] if append else name) + ".json",
                    agent.get_config())
    except OSError as exc:
        raise SaveError(f"Saving to '{path}' failed: {exc}.") from None
    return path


def _refuse_existing(path: str, overwrite: bool) -> None:
    """SaveError when `path` exists and may not be replaced (or is a directory)."""
    if os.path.isdir(path):
        raise SaveError(f"Cannot save to '{path}': it is a directory (give a new file path, "
                        "or the directory to save into with a filename).")
    if not overwrite and os.path.exists(path):
        raise SaveError(f"Cannot save to '{path}': the file exists and overwrite=False.")


def save_weights(agent, filepath: str, overwrite: bool = True) -> str:
    """Writes the network weights to one HDF5 file (Keras' `model.save_weights`).

    Args:
        agent: The agent.
        filepath: A path ending in `.weights.h5`, Keras' rule.
        overwrite: False refuses to replace an existing file.

    Returns:
        `filepath`.

    Raises:
        ArgumentError: `filepath` does not end in `.weights.h5`.
        SaveError: the file exists (with `overwrite=False`) or cannot be written.
    """
    if not isinstance(filepath, (str, os.PathLike)) or not os.fspath(filepath).endswith(
            ".weights.h5"):
        raise ArgumentError.invalid("filepath", "a path ending in '.weights.h5'", filepath,
                                    where="save_weights")
    return _save_file(agent, os.fspath(filepath), overwrite,
                      lambda agent, path: _write_h5(path, weight_arrays(agent)))


def _write_h5(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes `{name: array}` atomically to an HDF5 file, one dataset per name."""
    import h5py

    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)


def _save_file(agent, path: str, overwrite: bool, write) -> str:
    """Writes one file with `write(agent, path)`: refused if it exists (without
    `overwrite`), parent directories created, OSError turned into SaveError."""
    _refuse_existing(path, overwrite)
    agent._sync_weights()
    try:
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        write(agent, path)
    except OSError as exc:
        raise SaveError(f"Saving to '{path}' failed: {exc}.") from None
    return path


def load_weights(agent, filepath: str) -> None:
    """Reads weights written by `save_weights` (or an `'h5'`/`'numpy'` save) into `agent`.

    Raises:
        SaveError: missing or corrupt file, or weights that do not fit the agent.
    """
    path = os.fspath(filepath)
    if not os.path.isfile(path):
        raise SaveError(f"Cannot load weights: '{path}' is not a file.")
    _assign_weights(agent, read_weights(path, "numpy" if path.endswith(".npz") else "h5"), path)


def _listed_checkpoints(directory: str) -> list[str]:
    """The checkpoint stems of the directory's `checkpoint` file, oldest first.

    Only plain `name: "stem"` lines naming a file in the directory are read;
    anything else in the file is ignored (it is data, never a path to follow).
    """
    try:
        with open(os.path.join(directory, CHECKPOINT_INDEX), encoding="utf-8") as file:
            text = file.read(1 << 20)
    except OSError:
        return []
    stems: list[str] = []
    for match in re.finditer(r'^all_model_checkpoint_paths: "([^"/\\]+)"\s*$', text,
                             re.MULTILINE):
        if match[1] not in stems:
            stems.append(match[1])
    latest = re.search(r'^model_checkpoint_path: "([^"/\\]+)"\s*$', text, re.MULTILINE)
    if latest and latest[1] in stems:  # the latest last
        stems.remove(latest[1])
        stems.append(latest[1])
    elif latest:
        stems.append(latest[1])
    return [stem for stem in stems
            if os.path.isfile(os.path.join(directory, stem + CHECKPOINT_DATA))]


def _write_checkpoint_index(directory: str, stems: list[str]) -> None:
    stems = list(dict.fromkeys(reversed(stems)))[::-1]  # unique, the last one latest
    lines = [f'model_checkpoint_path: "{stems[-1]}"'] if stems else []
    lines += [f'all_model_checkpoint_paths: "{stem}"' for stem in stems]
    with atomic_path(os.path.join(directory, CHECKPOINT_INDEX)) as temporary, \
            open(temporary, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def _next_checkpoint_number(directory: str, name: str) -> int:
    """TensorFlow's save counter: one more than the largest `<name>-N` saved."""
    pattern = re.compile(re.escape(name) + r"-(\d+)\.index$")
    numbers = [int(m[1]) for entry in os.listdir(directory) if (m := pattern.match(entry))]
    return max(numbers, default=0) + 1


def weight_arrays(agent) -> dict[str, np.ndarray]:
    """The network weights of `agent` as `{stable name: numpy array}` (`named_weights` order)."""
    return {name: _value(variable) for name, variable in named_weights(agent).items()}


def _value(variable) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(variable.value)


def _save_full(agent, path: str) -> None:
    import h5py
    import keras

    from kerasrl import __version__
    from kerasrl import backend as kbackend

    weights = named_weights(agent)
    states = agent._state_variables()
    variables = io.BytesIO()
    with h5py.File(variables, "w") as file:
        for key, variable in list(weights.items()) + [(f"state/{k}", v) for k, v in states.items()]:
            file.create_dataset(key, data=_value(variable))
    memory = io.BytesIO()
    np.savez(memory, **agent._memory_arrays())
    metadata = {
        "format": "kerasrl-agent",
        "archive_version": ARCHIVE_VERSION,
        "kerasrl_version": __version__,
        "keras_version": keras.__version__,
        "backend": kbackend.name(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "agent": agent.agent_type,
        "host_state": agent._host_state(),
    }
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("spec.json", json.dumps(agent.get_config(), indent=2))
        archive.writestr("metadata.json", json.dumps(metadata, indent=2))
        archive.writestr("variables.h5", variables.getvalue())
        archive.writestr("memory.npz", memory.getvalue())
        archive.writestr("config.json", json.dumps(KERAS_CONFIG))


# ---------------------------------------------------------------------- load
def _split_extension(filename: str) -> tuple[str, str | None]:
    for format_, extension in (("keras", ".keras"), ("numpy", ".npz"), ("h5", ".h5"),
                               ("h5", ".hdf5"), ("checkpoint", ".index"),
                               ("checkpoint", CHECKPOINT_DATA)):
        if filename.endswith(extension):
            return filename[: -len(extension)], format_
    return filename, None


def find_checkpoint(directory: str, filename: str | None = None,
                    format: str | None = None) -> tuple[str, str, str]:
    """Finds the checkpoint to load, Tensorforce's rules (reference §6.2).

    Returns:
        `(path, format, spec_path)`.

    Raises:
        SaveError: no matching checkpoint.
    """
    if not os.path.isdir(directory):
        raise SaveError(f"Cannot load: directory '{directory}' does not exist.")
    if format == SAVED_MODEL:
        raise SaveError(
            f"Cannot load '{directory}' as an agent: a 'saved-model' export holds only the act "
            "function (as in Tensorforce); load it with tf.saved_model.load for inference, or "
            "save with format='keras' or 'checkpoint' to resume training."
        )
    if format is not None and format not in FORMATS:
        raise ArgumentError.invalid("format", f"None or one of {FORMATS}", format)
    base, explicit = _split_extension(filename) if filename else (None, None)
    if explicit is not None:
        format = format or explicit
    formats = [format] if format else ["keras", "checkpoint", "numpy", "h5"]
    extensions = []
    for fmt in formats:
        extensions += [".h5", ".hdf5"] if fmt in ("h5", "hdf5") else [EXTENSIONS[fmt]]
    candidates = []
    if base is not None:
        for extension in extensions:
            path = os.path.join(directory, base + extension)
            if os.path.isfile(path):
                candidates.append((path, 0))
    if not candidates:
        prefix = base or None
        pattern = re.compile(
            r"^(?P<name>.+?)(-(?P<n>\d+))?(?P<ext>\.keras|\.npz|\.h5|\.hdf5|\.index)$")
        for entry in os.listdir(directory):
            match = pattern.match(entry)
            if not match or entry.startswith(".tmp-") or match["ext"] not in extensions:
                continue
            if prefix is not None and match["name"] != prefix and entry[: -len(match["ext"])] != prefix:
                continue
            number = int(match["n"]) if match["n"] else -1
            candidates.append((os.path.join(directory, entry), number))
    if not candidates and "checkpoint" in formats and base is None:
        listed = _listed_checkpoints(directory)  # TensorFlow's latest_checkpoint
        if listed:
            candidates.append((os.path.join(directory, listed[-1] + CHECKPOINT_DATA), 0))
    if not candidates:
        raise SaveError(
            f"Cannot load: no checkpoint{' ' + repr(filename) if filename else ''} "
            f"({', '.join(extensions)}) in directory '{directory}'."
        )
    # Newest: largest -N suffix, then modification time.
    path = max(candidates, key=lambda c: (c[1], os.path.getmtime(c[0])))[0]
    found_format = _split_extension(os.path.basename(path))[1]
    stem = _split_extension(os.path.basename(path))[0]
    if found_format == "checkpoint":
        path = os.path.join(directory, stem + CHECKPOINT_DATA)
        if not os.path.isfile(path):
            raise SaveError(f"Cannot load checkpoint '{stem}': its data file '{path}' is "
                            "missing.")
    spec_path = os.path.join(directory, stem + ".json")
    if not os.path.isfile(spec_path):
        spec_path = os.path.join(directory, re.sub(r"-\d+$", "", stem) + ".json")
    return path, found_format, spec_path


def _read_archive(path: str) -> tuple[dict, dict, dict, dict]:
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            required = {"spec.json", "metadata.json", "variables.h5", "memory.npz"}
            if not required <= names:
                raise SaveError(
                    f"Corrupt checkpoint '{path}': missing {sorted(required - names)} in archive."
                )
            spec = json.loads(archive.read("spec.json"))
            metadata = json.loads(archive.read("metadata.json"))
            with h5py.File(io.BytesIO(archive.read("variables.h5")), "r") as file:
                arrays: dict[str, np.ndarray] = {}
                file.visititems(lambda key, item: arrays.__setitem__(key, item[()])
                                if isinstance(item, h5py.Dataset) else None)
            with np.load(io.BytesIO(archive.read("memory.npz")), allow_pickle=False) as data:
                memory = {key: data[key] for key in data.files}
    except SaveError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
        raise SaveError(f"Corrupt or truncated checkpoint '{path}': {exc}.") from None
    _check_metadata(metadata, path)
    return spec, metadata, arrays, memory


#: Metadata fields of an archive and their types (`host_state` is checked by the agent).
_METADATA_FIELDS = {"kerasrl_version": str, "keras_version": str, "backend": str,
                    "saved_at": str, "agent": str, "host_state": dict}


def _check_metadata(metadata: Any, path: str) -> None:
    """Checks the type of every metadata field of an archive (SaveError naming it)."""
    if not isinstance(metadata, dict) or metadata.get("format") != "kerasrl-agent":
        raise SaveError(f"Invalid checkpoint '{path}': not a kerasrl agent archive.")
    check_int(metadata.get("archive_version"), "metadata['archive_version']", minimum=1,
              maximum=ARCHIVE_VERSION, where=path, error=SaveError)
    for key, type_ in _METADATA_FIELDS.items():
        if key in metadata and not isinstance(metadata[key], type_):
            raise SaveError.invalid(f"metadata['{key}']", f"a {type_.__name__}",
                                    metadata[key], where=path)


def _check_finite(name: str, array: np.ndarray, source: str) -> None:
    """Refuses a weight that is not numeric or holds NaN/inf."""
    if array.dtype.kind not in "biuf":
        raise SaveError.invalid(name, "a numeric array", array, where=source)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        count = int(array.size - np.isfinite(array).sum())
        raise SaveError.invalid(name, "finite values (no NaN/inf)",
                                f"{count} non-finite of {array.size} values", where=source)


def read_weights(path: str, format: str) -> dict[str, np.ndarray]:
    """Reads a weights-only file into `{name: array}`."""
    try:
        if format == "numpy":
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        import h5py

        arrays: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as file:
            file.visititems(lambda key, item: arrays.__setitem__(key, item[()])
                            if isinstance(item, h5py.Dataset) else None)
        return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SaveError(f"Corrupt or unreadable weights file '{path}': {exc}.") from None


_DROPPED_SPEC_KEYS = ("internals", "initial_internals", "saver", "summarizer", "summaries",
                      "recorder", "tracking")


def load(directory: str | None = None, filename: str | None = None, format: str | None = None,
         environment: Any = None, safe_mode: bool = True,
         custom_objects: dict[str, Any] | None = None, **kwargs: Any):
    """Loads an agent saved by `agent.save` (or a Tensorforce numpy/HDF5 checkpoint).

    Args:
        directory: Checkpoint directory, or one saved file (`'agent.keras'`,
            as written by `agent.save('agent.keras')`).
        filename: File name (with or without extension; default: the newest
            checkpoint in the directory).
        format: `'keras'`, `'checkpoint'`, `'h5'`/`'hdf5'`, `'numpy'`, or
            None to infer (the newest of any format; for `'checkpoint'`
            without a filename, the latest in the `checkpoint` file).
        environment: Environment to take missing specs from.
        safe_mode: Refuse import paths in the saved spec (the default: a
            checkpoint is data, see `docs/security.md`); False trusts the file.
        custom_objects: `{name: class}` the saved spec may name.
        **kwargs: Override spec entries (e.g. `parallel_interactions`), or
            attach plugins again (`saver=...`, `summarizer=...`,
            `recorder=...`): saved plugins are not re-attached.

    Returns:
        The agent.

    Raises:
        SaveError: missing/corrupt files, or a spec that does not match.
        UnsafeSpecError: the spec names code by import path (in safe mode).
    """
    from kerasrl import registry
    from kerasrl.agents.agent import Agent

    if directory is None:
        raise ArgumentError.invalid("directory", "a checkpoint directory", directory)
    directory = os.fspath(directory)
    if filename is None and os.path.isfile(directory):  # one file: `Agent.load('agent.keras')`
        directory, filename = os.path.dirname(directory) or ".", os.path.basename(directory)
    path, found_format, spec_path = find_checkpoint(directory, filename, format)
    full = found_format in ("keras", "checkpoint")
    if full:
        spec, metadata, arrays, memory = _read_archive(path)
    else:
        if not os.path.isfile(spec_path):
            raise SaveError(f"Cannot load '{path}': the agent spec '{spec_path}' is missing.")
        try:
            with open(spec_path, encoding="utf-8") as file:
                spec = json.load(file)
        except (OSError, json.JSONDecodeError) as exc:
            raise SaveError(f"Corrupt agent spec '{spec_path}': {exc}.") from None
        arrays = read_weights(path, found_format)
    if not isinstance(spec, dict) or "agent" not in spec:
        raise SaveError(f"Invalid agent spec in '{spec_path}': expected a dict with 'agent'.")
    spec = {k: v for k, v in spec.items() if k not in _DROPPED_SPEC_KEYS}
    if "agent" in kwargs and kwargs["agent"] != spec["agent"]:
        raise SaveError(
            f"Cannot load '{path}' as agent '{kwargs['agent']}': it holds a "
            f"'{spec['agent']}' agent."
        )
    kwargs.pop("agent", None)
    with registry.safe_mode_scope(False if safe_mode is False else None), \
            registry.custom_object_scope(custom_objects):
        registry.check_file_content(spec, f"checkpoint '{path}'")
        with registry.reading_file(), _restoring():
            agent = Agent.create({**spec, **kwargs}, environment=environment)
    _restore(agent, path, arrays, memory if full else None, metadata if full else None)
    for plugin in agent._plugins:  # a saver given to `load` counts from the loaded state
        if isinstance(plugin, Saver):
            plugin._last = getattr(agent, plugin.unit)
    return agent


#: True while `load` creates an agent: a saver attached then writes no initial checkpoint
#: (the agent's state is the loaded one only after creation).
_RESTORING = contextvars.ContextVar("kerasrl_restoring", default=False)


@contextlib.contextmanager
def _restoring() -> Iterator[None]:
    token = _RESTORING.set(True)
    try:
        yield
    finally:
        _RESTORING.reset(token)


def _restore(agent, path: str, arrays: dict, memory: Any, metadata: dict | None) -> None:
    """Puts a checkpoint's state into `agent`: all of it (`metadata` given) or the weights."""
    if metadata is None:
        _assign_weights(agent, arrays, path)
        return
    if metadata.get("agent") != agent.agent_type:
        raise SaveError(
            f"Cannot load '{path}': it holds a '{metadata.get('agent')}' agent, "
            f"not '{agent.agent_type}'."
        )
    _restore_full(agent, arrays, memory, metadata, path)


def _restore_full(agent, arrays, memory, metadata, path) -> None:
    weights = named_weights(agent)
    states = {f"state/{k}": v for k, v in agent._state_variables().items()}
    expected = {**weights, **states}
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise SaveError(
            f"Checkpoint '{path}' does not match the agent spec: missing variables {missing[:5]}."
        )
    for key, variable in expected.items():
        if tuple(arrays[key].shape) != tuple(variable.shape):
            raise SaveError(
                f"Checkpoint '{path}' does not match the agent spec: '{key}' has shape "
                f"{tuple(arrays[key].shape)}, expected {tuple(variable.shape)}."
            )
        _check_finite(key, np.asarray(arrays[key]), path)
    try:  # memory and host state are checked by the agent before anything is assigned
        agent._set_memory_arrays(memory)
        agent._set_host_state(metadata.get("host_state", {}))
    except KerasRLError as exc:
        raise SaveError(f"Invalid checkpoint '{path}': {exc}") from None
    for key, variable in expected.items():
        variable.assign(np.asarray(arrays[key]).astype(variable.dtype))
    agent._weights_loaded()


# ---------------------------------------------------------------------- saver plugin
def _clock() -> float:
    """Wall-clock seconds of the saver's `max_hour_frequency` (a function, for tests)."""
    return time.time()


class Saver:
    """Periodic checkpoints: the `saver` agent argument (Tensorforce's).

    `saver=dict(directory, filename=<agent name>, frequency=10, unit='updates',
    max_checkpoints=10, max_hour_frequency=None, format='checkpoint',
    load=False)`, or a directory string. Checkpoints are named
    `<filename>-<counter>` (counter of `unit`): one at creation
    (`<filename>-0`, unless one was loaded), one whenever `frequency` units
    passed since the last, and a final one at `agent.close()`. The newest
    `max_checkpoints` are kept, and besides them one every
    `max_hour_frequency` hours. With `load=True` the agent starts from the
    newest checkpoint of `directory` when there is one.
    """

    def __init__(self, agent, spec: Any):
        if isinstance(spec, (str, os.PathLike)):
            spec = {"directory": spec}
        if not isinstance(spec, dict):
            raise ArgumentError.invalid("saver", "a directory or dict(directory=...)", spec)
        spec = dict(spec)
        allowed = {"directory", "filename", "frequency", "unit", "max_checkpoints",
                   "max_hour_frequency", "format", "load"}
        unknown = set(spec) - allowed
        if unknown:
            raise ArgumentError.invalid(f"saver key(s) {sorted(unknown)}",
                                        f"keys among {sorted(allowed)}", spec)
        if "directory" not in spec:
            raise ArgumentError("Missing key 'directory' of argument 'saver'.")
        self.directory = os.fspath(spec["directory"])
        self.filename = spec.get("filename") or agent.config.get("name") or "agent"
        self.unit = spec.get("unit", "updates")
        if self.unit not in APPEND:
            raise ArgumentError.invalid("saver['unit']", f"one of {APPEND}", self.unit)
        self.frequency = check_int(spec.get("frequency", 10), "saver['frequency']", minimum=1,
                                   allow_none=True)
        self.max_checkpoints = check_int(spec.get("max_checkpoints", 10),
                                         "saver['max_checkpoints']", minimum=0, allow_none=True)
        hours = spec.get("max_hour_frequency")
        if hours is not None and (isinstance(hours, bool) or not isinstance(
                hours, (int, float)) or not hours > 0):
            raise ArgumentError.invalid("saver['max_hour_frequency']",
                                        "None or a number of hours > 0", hours)
        self.max_hour_frequency = None if hours is None else float(hours)
        load_requested = spec.get("load", False)
        if not isinstance(load_requested, bool):
            raise ArgumentError.invalid("saver['load']", "True or False", load_requested)
        # Tensorforce's saver writes its checkpoint format: code that loads
        # with `Agent.load(directory, format='checkpoint')` finds the saves.
        self.format = spec.get("format", "checkpoint")
        if self.format not in FORMATS:
            raise ArgumentError.invalid("saver['format']", f"one of {FORMATS}", self.format)
        # As Tensorforce's CheckpointManager: the hourly keeping counts from now.
        self._last_kept_time = _clock()
        self._saved_at: dict[str, float] = {}
        self._kept: set[str] = set()
        self._last = 0
        if _RESTORING.get():
            return  # `load` restores the agent, then sets `_last`
        if not (load_requested and self._load(agent)):
            self.save(agent)

    def _load(self, agent) -> bool:
        """Restores `agent` from the newest checkpoint of the directory; False if there is none."""
        try:
            path, found_format, _ = find_checkpoint(self.directory, None, self.format)
        except SaveError:
            return False
        if found_format in ("keras", "checkpoint"):
            _, metadata, arrays, memory = _read_archive(path)
            _restore(agent, path, arrays, memory, metadata)
        else:
            _restore(agent, path, read_weights(path, found_format), None, None)
        self._last = getattr(agent, self.unit)
        return True

    def _maybe_save(self, agent) -> None:
        if self.frequency is None:
            return
        count = getattr(agent, self.unit)
        if count - self._last >= self.frequency:
            self.save(agent)

    def save(self, agent) -> str:
        self._last = getattr(agent, self.unit)
        path = save(agent, self.directory, self.filename, self.format, append=self.unit)
        self._saved_at[f"{self.filename}-{self._last}"] = _clock()
        self._prune()
        return path

    def _prune(self) -> None:
        if not self.max_checkpoints:
            return
        pattern = re.compile(re.escape(self.filename) + r"-(\d+)(\.keras|\.npz|\.h5|\.index)$")
        entries = sorted(
            (int(m[1]), entry) for entry in os.listdir(self.directory)
            if (m := pattern.match(entry)) and os.path.splitext(entry)[0] not in self._kept
        )
        removed = []
        for _, entry in entries[: -self.max_checkpoints]:
            stem, extension = os.path.splitext(entry)
            if self.max_hour_frequency is not None:
                saved_at = self._saved_at.get(stem)
                if saved_at is None:
                    with contextlib.suppress(OSError):
                        saved_at = os.path.getmtime(os.path.join(self.directory, entry))
                if saved_at is not None and \
                        saved_at - self._last_kept_time >= 3600.0 * self.max_hour_frequency:
                    self._kept.add(stem)  # one every max_hour_frequency hours stays
                    self._last_kept_time = saved_at
                    continue
            files = [entry] + ([stem + CHECKPOINT_DATA] if extension == ".index" else [])
            for name in files:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.directory, name))
            removed.append(stem)
        if removed and self.format == "checkpoint":
            _write_checkpoint_index(self.directory, [
                stem for stem in _listed_checkpoints(self.directory) if stem not in removed])

    def on_update(self, agent, metrics) -> None:
        if self.unit == "updates":
            self._maybe_save(agent)

    def on_episode_end(self, agent, slot, episode_return, episode_length) -> None:
        if self.unit == "episodes":
            self._maybe_save(agent)

    def on_observe(self, agent, reward, terminal, slots) -> None:
        if self.unit == "timesteps":
            self._maybe_save(agent)

    def close(self, agent) -> None:
        self.save(agent)


def create_saver(agent, spec: Any) -> Saver:
    """Plugin factory for the `saver` agent argument."""
    return Saver(agent, spec)
