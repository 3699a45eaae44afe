"""An endpoint written once, a method on both clients: :class:`Call`, :func:`endpoint`, :func:`paged_endpoint`.

An endpoint's method only describes the request (a :class:`Call`). Read on a synchronous object (one that
derives from :class:`SyncSide`, such as ``GistClient`` and its resources) the method returns the result;
read on an asynchronous one (:class:`AsyncSide`) it is a coroutine function. Either way the call is run by
the client's ``_run`` (or, for a walk over pages, ``_walk``), and only those differ between the two sides.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from ._models import Page

__all__ = ["AsyncSide", "Call", "SyncSide", "endpoint", "paged_endpoint"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call, described: what to send and how to read the answer.

    Attributes:
        none_if_missing: a 404 answer means "no such object" and the call's result is ``None``.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool | None = None
    scope: str | None = None
    none_if_missing: bool = False


#: A paged endpoint's generator: it yields the call for each page and is sent the page back.
Pages = Generator[Call[Page[T]], Page[T], None]


class SyncSide:
    """Base of the synchronous classes: an endpoint read on them returns its result."""


class AsyncSide:
    """Base of the asynchronous classes: an endpoint read on them is a coroutine function."""


class _Described:
    """What both descriptors share: the describing function, shown under the method's own name and docs."""

    def __init__(self, describe: Callable[..., Any]) -> None:
        self.describe = describe
        self.__doc__ = describe.__doc__
        self.__name__, self.__qualname__ = describe.__name__, describe.__qualname__

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        """The method as a caller sees it: without ``self``, and without the Call it is described by (worked
        out on first use, not at import)."""
        signature = inspect.signature(self.describe)
        parameters = list(signature.parameters.values())[1:]
        return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)

    def _dress(self, method: Any) -> Any:
        method.__name__, method.__qualname__, method.__doc__ = self.__name__, self.__qualname__, self.__doc__
        method.__signature__ = self.__signature__
        return method


class endpoint(_Described, Generic[P, T]):  # lower case: used as a decorator
    """Decorate a method that returns the :class:`Call` of an endpoint; the method then runs that call.

    A method taking ``**kwargs`` marks ``self`` positional-only (``def get(self, /, ...)``) so that the
    type checker can strip it from the signature.
    """

    def __init__(self, describe: Callable[Concatenate[Any, P], Call[T]]) -> None:
        super().__init__(describe)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: SyncSide, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncSide, owner: type | None = None) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, run = self.describe, obj._client._run
        if isinstance(obj, AsyncSide):

            async def awaited(*args: Any, **kwargs: Any) -> Any:
                return await run(describe(obj, *args, **kwargs))

            return self._dress(awaited)

        def method(*args: Any, **kwargs: Any) -> Any:
            return run(describe(obj, *args, **kwargs))

        return self._dress(method)


class paged_endpoint(_Described, Generic[P, T]):  # lower case: used as a decorator
    """Decorate a generator that yields the :class:`Call` of each page and is sent the page back.

    The method then returns every item of every page: an iterator on the synchronous side, an async
    iterator on the asynchronous one. The generator ends the walk by returning.
    """

    def __init__(self, describe: Callable[Concatenate[Any, P], Pages[T]]) -> None:
        super().__init__(describe)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: SyncSide, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: AsyncSide, owner: type | None = None) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        describe, walk = self.describe, obj._client._walk

        def method(*args: Any, **kwargs: Any) -> Any:
            return walk(describe(obj, *args, **kwargs))  # a generator: nothing runs before the first item

        return self._dress(method)
