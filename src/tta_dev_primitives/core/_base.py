"""The primitive base class, the function adapter, and the ``>>`` / ``|`` operators."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast, overload

from tta_dev_primitives._blocked import in_own_thread, on_portal
from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.telemetry._tracing import traced_execute

from ._context import WorkflowContext

if TYPE_CHECKING:
    from ._parallel import ParallelPrimitive
    from ._sequential import SequentialPrimitive

__all__ = ["LambdaPrimitive", "StepFunction", "WorkflowPrimitive", "as_primitive"]

S = TypeVar("S")
T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")

StepFunction: TypeAlias = Callable[[Any, WorkflowContext], Any]
"""A plain step: ``(input, context) -> output``, sync or async.

Kept loose on purpose: a union of sync and async callables makes type checkers infer ``Never``.
``LambdaPrimitive`` and ``CachePrimitive`` have overloads that infer the output type exactly.
"""


class WorkflowPrimitive(ABC, Generic[T, U]):
    """A composable async step: subclasses implement ``execute(input_data, context)``.

    ``a >> b`` runs ``b`` on ``a``'s output; ``a | b`` runs both on the same input concurrently.
    Every subclass's ``execute`` is wrapped once, at class creation, so that each run is an
    OpenTelemetry span made current for its children (a single check when no SDK is set up).
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("execute")
        if (
            impl is not None
            and not getattr(impl, "__isabstractmethod__", False)
            and not getattr(impl, "_tta_traced", False)
        ):
            cls.execute = traced_execute(impl)  # type: ignore[method-assign,assignment]

    @property
    def name(self) -> str:
        """The span name for runs of this primitive (a subclass overrides this property to
        name its spans otherwise, as ``LambdaPrimitive`` does)."""
        return type(self).__name__

    @abstractmethod
    async def execute(self, input_data: T, context: WorkflowContext) -> U:
        """Run this step on ``input_data`` within ``context``."""

    # Overloads keep the chain's types: a WorkflowPrimitive[int, str] >> a step from str to float
    # is a SequentialPrimitive[int, float], whether that step is a primitive or a function, sync
    # or async (the async overload comes first, so its output is the awaited type).
    @overload
    def __rshift__(self, other: WorkflowPrimitive[U, V]) -> SequentialPrimitive[T, V]: ...
    @overload
    def __rshift__(
        self, other: Callable[[U, WorkflowContext], Awaitable[V]]
    ) -> SequentialPrimitive[T, V]: ...
    @overload
    def __rshift__(self, other: Callable[[U, WorkflowContext], V]) -> SequentialPrimitive[T, V]: ...
    def __rshift__(
        self, other: WorkflowPrimitive[U, Any] | StepFunction
    ) -> SequentialPrimitive[T, Any]:
        from ._sequential import SequentialPrimitive

        return SequentialPrimitive._chain(self, as_primitive(other))

    @overload
    def __rrshift__(
        self, other: Callable[[S, WorkflowContext], Awaitable[T]]
    ) -> SequentialPrimitive[S, U]: ...
    @overload
    def __rrshift__(
        self, other: Callable[[S, WorkflowContext], T]
    ) -> SequentialPrimitive[S, U]: ...
    def __rrshift__(self, other: StepFunction) -> SequentialPrimitive[Any, U]:
        from ._sequential import SequentialPrimitive

        return SequentialPrimitive._chain(as_primitive(other), self)

    def __or__(self, other: WorkflowPrimitive[T, Any] | StepFunction) -> ParallelPrimitive[T, Any]:
        from ._parallel import ParallelPrimitive

        return ParallelPrimitive._chain(self, as_primitive(other))

    def __ror__(self, other: StepFunction) -> ParallelPrimitive[T, Any]:
        from ._parallel import ParallelPrimitive

        return ParallelPrimitive._chain(as_primitive(other), self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LambdaPrimitive(WorkflowPrimitive[T, U]):
    """Adapts a plain function ``(input, context) -> output``, sync or async, into a primitive.

    A sync function runs on the event loop: keep it quick, or make it async. (Run from a sync
    call, ``as_runnable(...).invoke``, on the library's own loop, it runs in a thread of its
    own, with no event loop, as a sync ``RunnableLambda`` runs under LCEL's ``invoke``.)
    """

    __slots__ = ("_func", "_is_async", "_name")

    @overload
    def __init__(
        self, func: Callable[[T, WorkflowContext], Awaitable[U]], name: str | None = None
    ) -> None: ...
    @overload
    def __init__(
        self, func: Callable[[T, WorkflowContext], U], name: str | None = None
    ) -> None: ...
    def __init__(self, func: Callable[[T, WorkflowContext], Any], name: str | None = None) -> None:
        if not callable(func):
            raise InvalidArgumentTypeError(
                f"LambdaPrimitive needs a callable, got {type(func).__name__}"
            )
        self._func = func
        self._is_async = inspect.iscoroutinefunction(func)
        self._name = name or getattr(func, "__name__", None) or type(func).__name__
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            # Its output would be the generator object, never run (LCEL would stream it).
            raise InvalidArgumentTypeError(
                f"step {self._name!r} is a generator function; a step returns its output: "
                "collect its items into what it returns (return [x async for x in ...])"
            )
        try:
            inspect.signature(func).bind(None, None)
        except TypeError:
            raise InvalidArgumentTypeError(
                f"step {self._name!r} must take two arguments, (input, context), as every step "
                f"does: its signature is {inspect.signature(func)}"
            ) from None
        except ValueError:  # no signature to read (some builtins): it is called as it is
            pass

    @property
    def name(self) -> str:
        """The wrapped function's name (or the name given)."""
        return self._name

    @property
    def func(self) -> Callable[[T, WorkflowContext], Any]:
        """The wrapped function."""
        return self._func

    async def execute(self, input_data: T, context: WorkflowContext) -> U:
        """Call the function; await its result if it is awaitable."""
        if not self._is_async and on_portal.get():
            result = await in_own_thread(self._func, input_data, context)
        else:
            result = self._func(input_data, context)
        if self._is_async or inspect.isawaitable(result):
            return await cast(Awaitable[U], result)
        return cast(U, result)

    def __repr__(self) -> str:
        return f"LambdaPrimitive({self._name})"


def as_primitive(obj: WorkflowPrimitive[T, U] | StepFunction) -> WorkflowPrimitive[T, U]:
    """Return ``obj`` if it is a primitive, else wrap a callable in a ``LambdaPrimitive``."""
    if isinstance(obj, WorkflowPrimitive):
        return obj
    if hasattr(obj, "ainvoke") and hasattr(obj, "invoke"):  # a LangChain Runnable
        raise InvalidArgumentTypeError(
            f"cannot compose {type(obj).__name__!r} directly: wrap a LangChain runnable with "
            "tta_dev_primitives.integrations.langchain.from_runnable(...)"
        )
    if callable(obj):
        return LambdaPrimitive(obj)
    raise InvalidArgumentTypeError(
        f"cannot compose {type(obj).__name__!r}: expected a WorkflowPrimitive or a function "
        "(input, context) -> output"
    )
