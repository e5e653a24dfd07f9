"""Error hierarchy of kerasrl.

Every problem with user input raises a subclass of `KerasRLError`. Messages
name the argument, what was expected and what was received, so that a user
never has to read a backend stack trace from inside a compiled graph.
"""

from __future__ import annotations

from typing import Any


def _short(value: Any, limit: int = 200) -> str:
    """Returns a short, readable representation of `value` for messages."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            text = f"array(shape={value.shape}, dtype={value.dtype})"
            if value.size <= 12:
                text = f"{value.tolist()!r} ({text})"
            return text
    except ImportError:  # pragma: no cover
        pass
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class KerasRLError(Exception):
    """Base class of every error raised by kerasrl."""

    @classmethod
    def invalid(
        cls, argument: str, expected: str, received: Any, where: str | None = None
    ) -> KerasRLError:
        """Builds an error for an invalid value.

        Args:
            argument: Name of the argument (or spec key) that is wrong.
            expected: What was expected, in words.
            received: The value that was received.
            where: Optional context, e.g. the agent or layer name.

        Returns:
            An instance of `cls` with a message of the form
            "Invalid argument 'x' (for ...): expected ..., received ...".
        """
        context = f" of {where}" if where else ""
        return cls(
            f"Invalid argument '{argument}'{context}: expected {expected}, "
            f"received {_short(received)}."
        )


class SpecError(KerasRLError, ValueError):
    """A state, action or module specification is malformed."""


class ArgumentError(KerasRLError, ValueError):
    """An argument of a kerasrl function or constructor is invalid."""


class UnknownTypeError(ArgumentError):
    """A module type key (agent, layer, memory, ...) is not registered."""


class UnsafeSpecError(ArgumentError):
    """A spec, file or checkpoint asks for code that kerasrl does not run unless allowed.

    Raised for dotted import paths read from a file in safe mode, for import
    paths that do not name a subclass of what is expected there, and for
    expressions outside the restricted language (see `docs/security.md`).
    """


class InputError(KerasRLError, ValueError):
    """A value passed to `act`/`observe` or returned by an environment is invalid."""


class CallOrderError(KerasRLError, RuntimeError):
    """Agent methods were called in an invalid order (e.g. observe before act)."""


class EnvironmentFailure(KerasRLError, RuntimeError):
    """An environment failed or returned something invalid."""


class NonFiniteError(KerasRLError, ArithmeticError):
    """An update produced a non-finite loss or gradient (its steps were not applied)."""


class SaveError(KerasRLError, OSError):
    """Saving or loading a checkpoint failed."""


class NotSupportedError(UnknownTypeError, ImportError):
    """A Tensorforce feature or adapter that kerasrl deliberately does not provide.

    The message says why and what to use instead. It is an `ImportError` too,
    so `from kerasrl.environments import OpenAIRetro` fails as a missing name
    would, with the reason.
    """


#: Tensorforce's name for the base error (`from tensorforce import TensorforceError`).
TensorforceError = KerasRLError


__all__ = [
    "KerasRLError",
    "SpecError",
    "ArgumentError",
    "UnknownTypeError",
    "UnsafeSpecError",
    "InputError",
    "CallOrderError",
    "EnvironmentFailure",
    "SaveError",
    "NotSupportedError",
    "TensorforceError",
    "NonFiniteError",
]
