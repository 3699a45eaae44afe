"""The effects every sans-IO flow of the package yields, and the one pair of drivers that performs them.

The login sequence (:mod:`gist_authlib._login`), the API client's calls (:mod:`gist_authlib.client`) and a
canvas request (:mod:`gist_authlib.canvas`) are each written once, as a generator that yields what it needs
done and is sent the answer, as httpx's ``Auth.auth_flow`` is. :func:`drive` runs such a generator in a plain
thread and :func:`drive_async` in an event loop. A failure of an effect is thrown back into the generator,
which decides what it means.

Three effects are the same everywhere; anything else a flow yields (an HTTP request, a token exchange) goes
to the ``perform`` function its caller passes. One rule covers an app's own code (:class:`UserCode`) in both
worlds:

- in an event loop, an ``async`` callback is awaited and a plain one runs in a worker thread, so that a
  blocking callback never stalls the loop (as Starlette runs plain endpoints);
- in a plain thread, a plain callback is called, and an ``async`` one is run to completion in a new event
  loop (as Flask runs ``async`` views); inside a running loop that is impossible, and it is refused.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar, cast

from .errors import ConfigurationError

T = TypeVar("T")

#: A flow: a generator that yields effects, is sent their answers, and returns its result.
# What an effect is answered with depends on the effect: the flow reads it at the one place that yields it.
Steps: TypeAlias = Generator[object, Any, T]


@dataclass(frozen=True, slots=True)
class Blocking:
    """Blocking work of the package's own (a token store's database): a worker thread in an event loop."""

    call: Callable[..., object] = field(repr=False)  # a partial may hold a token: never in a repr
    args: tuple[object, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class UserCode:
    """An app's own callback, plain or ``async``; the answer is what it returned (see the module's rule)."""

    call: Callable[..., object] = field(repr=False)  # a partial may hold a token: never in a repr
    args: tuple[object, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait this many seconds (with the driver's ``sleep``)."""

    seconds: float


def _is_async(call: Callable[..., object]) -> bool:
    while isinstance(call, functools.partial):
        call = call.func
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004


@dataclass(frozen=True, slots=True)
class _Done:
    """The flow returned: ``value`` is its result."""

    value: object


def _advance(steps: Steps[T], answer: object, failure: BaseException | None) -> object:
    """Send the last effect's answer (or throw its failure) into ``steps``: its next effect, or :class:`_Done`."""
    try:
        return steps.throw(failure) if failure is not None else steps.send(answer)
    except StopIteration as done:
        return _Done(done.value)


def run_to_completion(awaitable: Awaitable[T]) -> T:
    """The result of an ``async`` callback's awaitable, from plain code (a new event loop).

    Raises:
        ConfigurationError: this thread already runs an event loop (use the async form of the call).
    """
    import asyncio  # here: most flows never run an async callback from sync code, and asyncio is slow to import

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        raise ConfigurationError(
            "An async callback cannot be run from synchronous code inside a running event loop; "
            "use the async form of the call."
        )

    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def drive(
    steps: Steps[T],
    perform: Callable[[Any], object] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``steps`` to its end in this thread and return its result.

    Args:
        steps: the flow.
        perform: answers every effect that is not one of this module's (``None``: there are none).
        sleep: how :class:`Pause` waits.
    """
    answer: object = None
    failure: BaseException | None = None
    while not isinstance(effect := _advance(steps, answer, failure), _Done):
        answer, failure = None, None
        try:
            if isinstance(effect, (Blocking, UserCode)):
                answer = effect.call(*effect.args)
                if isinstance(effect, UserCode) and inspect.isawaitable(answer):
                    answer = run_to_completion(answer)
            elif isinstance(effect, Pause):
                sleep(effect.seconds)
            elif perform is not None:
                answer = perform(effect)
            else:
                raise TypeError(f"Nothing performs the effect {type(effect).__name__}.")
        except Exception as exc:  # thrown back into the flow, which decides what it means
            failure = exc
    result = cast(T, effect.value)
    return result


async def drive_async(
    steps: Steps[T],
    perform: Callable[[Any], Awaitable[object]] | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """Run ``steps`` to its end in the running event loop and return its result (see :func:`drive`)."""
    import anyio
    import anyio.to_thread

    answer: object = None
    failure: BaseException | None = None
    while not isinstance(effect := _advance(steps, answer, failure), _Done):
        answer, failure = None, None
        try:
            if isinstance(effect, UserCode) and _is_async(effect.call):
                answer = await cast(Awaitable[object], effect.call(*effect.args))
            elif isinstance(effect, (Blocking, UserCode)):
                answer = await anyio.to_thread.run_sync(effect.call, *effect.args)
                if isinstance(effect, UserCode) and inspect.isawaitable(answer):
                    answer = await answer
            elif isinstance(effect, Pause):
                await (sleep or anyio.sleep)(effect.seconds)
            elif perform is not None:
                answer = await perform(effect)
            else:
                raise TypeError(f"Nothing performs the effect {type(effect).__name__}.")
        except Exception as exc:  # thrown back into the flow, which decides what it means
            failure = exc
    result = cast(T, effect.value)
    return result
