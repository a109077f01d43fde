"""Schedule configs, one per :data:`muonlab.optim.schedules.SCHEDULES` dataclass."""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias, Union

from pydantic import (
    Field,
    create_model,
    model_validator,
)

from muonlab.config.base import _error, _Model, _StepCount
from muonlab.errors import MuonlabError
from muonlab.optim.schedules import SCHEDULES, Schedule, make_schedule

# ----------------------------------------------------------------------------- schedules


class _Schedule(_Model):
    """Base of the schedule configs, generated from :data:`SCHEDULES` (one per dataclass)."""

    name: str
    schedule_class: ClassVar[type[Schedule]]

    def build(self) -> Schedule:
        """The :class:`~muonlab.optim.schedules.Schedule` this config describes."""
        return make_schedule(self.name, **self.params())

    @model_validator(mode="after")
    def _check_with_make_schedule(self) -> _Schedule:
        try:
            self.build()
        except MuonlabError as e:  # the schedule names its parameter: report it at schedule.<field>
            if e.field in type(self).model_fields:
                raise _error(e.reason, e.field) from None
            raise _error(e.message) from None
        return self


def _schedule_config(cls: type[Schedule]) -> type[_Schedule]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {"name": (Literal[cls.name], cls.name)}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if tp is int:
            tp = _StepCount
        default = f.default if f.default is not dataclasses.MISSING else ...
        fields[f.name] = (tp, default)
    model = create_model(
        f"{cls.__name__}ScheduleConfig", __base__=_Schedule, __module__=__name__, **fields
    )
    model.schedule_class = cls
    return model


#: Schedule name → its config model (fields = the schedule dataclass's parameters).
SCHEDULE_CONFIGS: dict[str, type[_Schedule]] = {name: _schedule_config(cls) for name, cls in SCHEDULES.items()}
if TYPE_CHECKING:
    # The configs are generated at import time: statically, each is a _Schedule.
    ScheduleConfig: TypeAlias = _Schedule
else:
    ScheduleConfig = Annotated[
        Union[tuple(SCHEDULE_CONFIGS.values())],  # noqa: UP007 - a union over a runtime tuple has no `X | Y` spelling
        Field(discriminator="name"),
    ]

