"""The composition core: context, the primitive base class, and the composites."""

from ._base import LambdaPrimitive, WorkflowPrimitive
from ._context import WorkflowContext
from ._parallel import ParallelPrimitive
from ._router import RouterPrimitive
from ._sequential import SequentialPrimitive

__all__ = [
    "LambdaPrimitive",
    "ParallelPrimitive",
    "RouterPrimitive",
    "SequentialPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
]
