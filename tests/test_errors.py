"""The one error type: its field, its reason, one line."""

from __future__ import annotations

import pytest

from muonlab.config import ConfigError
from muonlab.engine.store import StoreError
from muonlab.errors import MuonlabError
from muonlab.lora.adapters import LoraError
from muonlab.lora.data import DataError
from muonlab.optim.schedules import make_schedule
from muonlab.report.figures import NothingToPlot
from muonlab.reproduce import UnknownExperimentError


def test_about_keeps_the_reason_apart_from_the_field():
    e = ConfigError.about("problem.r", "must be <= n (10),\n  got 20")
    assert isinstance(e, ConfigError)
    assert (e.field, e.reason) == ("problem.r", "must be <= n (10), got 20")
    assert str(e) == "problem.r: must be <= n (10), got 20"
    plain = MuonlabError("whole file:\nbroken")
    assert (plain.field, plain.reason, str(plain)) == (None, "whole file: broken", "whole file: broken")


@pytest.mark.parametrize("cls", [ConfigError, StoreError, LoraError, DataError, NothingToPlot, UnknownExperimentError])
def test_every_user_facing_error_is_a_muonlab_error(cls):
    assert issubclass(cls, MuonlabError) and issubclass(cls, ValueError)


def test_schedules_name_their_parameter():
    with pytest.raises(MuonlabError) as info:
        make_schedule("plateau", factor=2.0)
    assert info.value.field == "factor" and info.value.reason.startswith("must satisfy 0 < factor < 1")
    with pytest.raises(MuonlabError) as info:
        make_schedule("geometric", q=0.9, speed=3)
    assert info.value.field == "speed" and "unknown parameter of schedule 'geometric'" in str(info.value)
