"""An endpoint written once, a method on both clients: :class:`Call`, :func:`endpoint`, :func:`paged_endpoint`.

An endpoint's method only describes the request (a :class:`Call`). Read on a synchronous object (one that
derives from :class:`SyncSide`, such as ``GistClient`` and its resources) the method returns the result;
read on an asynchronous one (:class:`AsyncSide`) it is a coroutine function. Either way the call is run by
the client's ``_run`` (or, for a walk over pages, ``_walk``), and only those differ between the two sides.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeAlias, TypeVar, overload

from .._types import JSON
from ._models import Page

__all__ = ["AsyncRunner", "AsyncSide", "Call", "QueryValue", "SyncRunner", "SyncSide", "endpoint", "paged_endpoint"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., object])

#: A query parameter's value, as httpx2 takes it (a sequence repeats the parameter).
QueryValue: TypeAlias = str | int | float | bool | Sequence[str | int | float | bool | None] | None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call, described: what to send and how to read the answer.

    Attributes:
        none_if_missing: a 404 answer means "no such object" and the call's result is ``None``.
    """

    method: str
    path: str
    parse: Callable[[JSON], T]
    params: Mapping[str, QueryValue] | None = None
    json: object = None
    idempotent: bool | None = None
    scope: str | None = None
    none_if_missing: bool = False


#: A paged endpoint's generator: it yields the call for each page and is sent the page back.
Pages = Generator[Call[Page[T]], Page[T], None]


class SyncRunner(Protocol):
    """What runs the calls of the endpoints read on a synchronous object: ``GistClient``."""

    def _run(self, call: Call[T], /) -> T:
        """``call``'s result."""
        ...

    def _walk(self, pages: Pages[T], /) -> Iterator[T]:
        """Every item of the pages ``pages`` asks for."""
        ...


class AsyncRunner(Protocol):
    """What runs the calls of the endpoints read on an asynchronous object: ``AsyncGistClient``."""

    def _run(self, call: Call[T], /) -> Awaitable[T]:
        """``call``'s result, to await."""
        ...

    def _walk(self, pages: Pages[T], /) -> AsyncIterator[T]:
        """Every item of the pages ``pages`` asks for."""
        ...


class SyncSide:
    """Base of the synchronous classes: an endpoint read on them returns its result."""

    if TYPE_CHECKING:  # for the type checker only: a resource sets it, a client is its own (a property)

        @property
        def _client(self) -> SyncRunner:
            """Who runs the calls of the endpoints read on this object: a client, or a resource's client."""
            ...


class AsyncSide:
    """Base of the asynchronous classes: an endpoint read on them is a coroutine function."""

    if TYPE_CHECKING:  # for the type checker only: a resource sets it, a client is its own (a property)

        @property
        def _client(self) -> AsyncRunner:
            """Who runs the calls of the endpoints read on this object: a client, or a resource's client."""
            ...


class _Described(Generic[P, R]):
    """What both descriptors share: the describing function, shown under the method's own name and docs."""

    # The describing method's ``self`` is whichever class defines it: its first parameter is left untyped.
    def __init__(self, describe: Callable[Concatenate[Any, P], R]) -> None:
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

    def _dress(self, method: F) -> F:
        method.__name__, method.__qualname__, method.__doc__ = self.__name__, self.__qualname__, self.__doc__
        method.__dict__["__signature__"] = self.__signature__  # what inspect.signature() reads
        return method


class endpoint(_Described[P, Call[T]]):  # lower case: used as a decorator
    """Decorate a method that returns the :class:`Call` of an endpoint; the method then runs that call.

    A method taking ``**kwargs`` marks ``self`` positional-only (``def get(self, /, ...)``) so that the
    type checker can strip it from the signature.
    """

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: SyncSide, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncSide, owner: type | None = None) -> Callable[P, Coroutine[object, None, T]]: ...
    def __get__(self, obj: SyncSide | AsyncSide | None, owner: type | None = None) -> object:
        if obj is None:
            return self
        describe = self.describe
        if isinstance(obj, AsyncSide):
            run_async = obj._client._run

            async def awaited(*args: P.args, **kwargs: P.kwargs) -> T:
                return await run_async(describe(obj, *args, **kwargs))

            return self._dress(awaited)
        run = obj._client._run

        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return run(describe(obj, *args, **kwargs))

        return self._dress(method)


class paged_endpoint(_Described[P, Pages[T]]):  # lower case: used as a decorator
    """Decorate a generator that yields the :class:`Call` of each page and is sent the page back.

    The method then returns every item of every page: an iterator on the synchronous side, an async
    iterator on the asynchronous one. The generator ends the walk by returning.
    """

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: SyncSide, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: AsyncSide, owner: type | None = None) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: SyncSide | AsyncSide | None, owner: type | None = None) -> object:
        if obj is None:
            return self
        describe, walk = self.describe, obj._client._walk

        def method(*args: P.args, **kwargs: P.kwargs) -> Iterator[T] | AsyncIterator[T]:
            return walk(describe(obj, *args, **kwargs))  # a generator: nothing runs before the first item

        return self._dress(method)
