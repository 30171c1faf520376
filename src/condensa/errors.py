"""The Condensa error hierarchy.

Every error raised on purpose by Condensa derives from :class:`CondensaError`, and
each subclass also inherits the builtin a caller would naturally catch
(``ValueError`` for bad values, ``TypeError`` for unsupported modules), so both
``except condensa.CondensaError`` and ``except ValueError`` work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CondensaError(Exception):
    """Root of every error Condensa raises on purpose."""


class ConfigError(CondensaError, ValueError):
    """An option, a scheme spec or a configuration value is invalid."""


class ShapeError(CondensaError, ValueError):
    """A tensor's shape does not fit what an operator needs (e.g. a block that does not tile)."""


class SelectionError(ConfigError):
    """A layer selection (types, include/exclude patterns) matched nothing, or too little."""


class UnsupportedModuleError(CondensaError, TypeError):
    """A module type cannot be handled by the requested operation."""


class NonFiniteError(CondensaError, ValueError):
    """A tensor holds NaN or infinite values where finite ones are required."""


class EnvironmentFailure(CondensaError, RuntimeError):
    """The machine failed, not the input: another process was lost, memory ran out.

    A search stops on it without recording a result; the interrupted trial runs again
    when the search resumes.
    """


class UserCodeError(CondensaError, RuntimeError):
    """The user's model, data or callback raised (its type and message are kept)."""


LOST_PEER = ("gloo", "nccl", "connection reset by peer", "connection closed by peer")
"""Phrases of the errors a collective raises when another process died."""
OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory")
"""Phrases of allocator errors (CPU and CUDA) raised as plain RuntimeErrors."""
LOST_WORKER = (
    "WorkerCrashedError", "ActorDiedError", "RayActorError", "NodeDiedError", "OwnerDiedError",
    "ObjectLostError", "LocalRayletDiedError",
)  # fmt: skip
"""Ray's errors for a worker, actor or node that died (matched by class name: no import)."""


def environmental(error: BaseException) -> str | None:
    """Why ``error`` is a failure of the environment rather than of the input, or None.

    ``MemoryError``, ``RuntimeError`` s from an allocator (CPU or CUDA out of memory) or
    from a communication backend whose peer died (gloo, NCCL), and Ray's errors for a
    worker or node that died.
    """
    if isinstance(error, MemoryError):
        return "out of memory"
    if any(cls.__name__ in LOST_WORKER for cls in type(error).__mro__):
        return "the worker running the trial died"
    if isinstance(error, EnvironmentFailure):
        return str(error)
    if isinstance(error, RuntimeError):
        text = str(error).lower()
        if any(phrase in text for phrase in OUT_OF_MEMORY):
            return "out of memory"
        if any(phrase in text for phrase in LOST_PEER):
            return "another process of the launch stopped answering"
    return None


def user_code(run: Callable[[], T], what: str) -> T:
    """``run()``, with an error raised by the user's model or data named as such.

    Condensa's own errors, environmental failures (:func:`environmental`) and
    ``OSError`` pass through unchanged; anything else becomes a :class:`UserCodeError`
    saying what was being done, instead of surfacing as an internal error.
    """
    try:
        return run()
    except (CondensaError, OSError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if environmental(exc) is not None:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserCodeError(
            f"{what} failed in the model or data: {type(exc).__name__}: {first} (run with "
            "--debug, or catch it in Python, for the traceback)"
        ) from exc


__all__ = [
    "CondensaError",
    "ConfigError",
    "EnvironmentFailure",
    "NonFiniteError",
    "SelectionError",
    "UserCodeError",
    "environmental",
    "user_code",
    "ShapeError",
    "UnsupportedModuleError",
]


def check_int(name: str, value: object, minimum: int = 1, *, optional: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int >= ``minimum`` (bools refused).

    The message names the option and the value: ``"steps must be a positive integer,
    got 0"``; with ``optional``, None is accepted too.
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        prefix = "None or " if optional else ""
        raise ConfigError(f"{name} must be {prefix}{wanted}, got {value!r}")
