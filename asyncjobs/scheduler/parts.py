"""What the dispatcher and the tracker of one run share, so that each reaches the others the same way."""

from __future__ import annotations

from collections.abc import Mapping

from ..model import Service
from ..services.base import ServiceAdapter
from .control import Control
from .outcomes import Outcomes
from .reporting import Reporter
from .state import RunState


class RunPart:
    """A long-lived task of one run: it reads and changes :class:`RunState`, ends with the
    run's :class:`Control`, commits through :class:`Outcomes`, reports through :class:`Reporter`,
    and calls the services through their adapters."""

    def __init__(
        self,
        state: RunState,
        control: Control,
        outcomes: Outcomes,
        reporter: Reporter,
        adapters: Mapping[Service, ServiceAdapter],
    ) -> None:
        self._state = state
        self._control = control
        self._outcomes = outcomes
        self._reporter = reporter
        self._adapters = adapters
