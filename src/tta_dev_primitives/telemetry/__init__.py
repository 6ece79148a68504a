"""Telemetry: spans and counters through ``opentelemetry-api`` only.

Tracer and meter are both named ``tta_dev_primitives``. Every primitive's ``execute`` runs in an
INTERNAL span named after the primitive; memory operations add ``memory.*`` spans. See the
observability guide for every name; ``tta_dev_primitives.testing.capture_spans`` collects them in
tests.
"""

from ._metrics import METER_NAME
from ._tracing import TRACER_NAME

__all__ = ["METER_NAME", "TRACER_NAME"]
