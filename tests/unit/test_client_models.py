"""The client's own wire shapes (sandbox_client.models) name the fields and values of the
server's (service.models); tests/integration/test_client.py compares them on real answers."""

from enum import StrEnum

import pytest
import sandbox_client.models as client
from pydantic import BaseModel

import service.models as server

ANSWERS = ["RunResult", "Timing", "ReturnedFile", "CompileResult", "BatchLine", "JobAccepted",
           "JobStatus", "JobCancel", "CaseResult", "JudgeResult"]
REQUESTS = ["RunRequest", "JudgeCase", "Checker", "JudgeRequest"]
ENUMS = ["Outcome", "Verdict", "Priority", "JobState", "CompareMode"]


@pytest.mark.parametrize("name", ANSWERS + REQUESTS)
def test_same_fields(name: str) -> None:
    ours: type[BaseModel] = getattr(client, name)
    theirs: type[BaseModel] = getattr(server, name)
    assert list(ours.model_fields) == list(theirs.model_fields)


@pytest.mark.parametrize("name", ANSWERS)
def test_same_required_fields_of_answers(name: str) -> None:
    ours: type[BaseModel] = getattr(client, name)
    theirs: type[BaseModel] = getattr(server, name)
    assert ({f for f, info in ours.model_fields.items() if info.is_required()}
            <= {f for f, info in theirs.model_fields.items() if info.is_required()})


@pytest.mark.parametrize("name", REQUESTS)
def test_same_defaults_of_requests(name: str) -> None:
    """A field left at its default is not sent: the client's default must be the server's."""
    ours: type[BaseModel] = getattr(client, name)
    theirs: type[BaseModel] = getattr(server, name)
    assert ({f: info.get_default(call_default_factory=True) for f, info in ours.model_fields.items()}
            == {f: info.get_default(call_default_factory=True)
                for f, info in theirs.model_fields.items()})


@pytest.mark.parametrize("name", ENUMS)
def test_same_values(name: str) -> None:
    ours: type[StrEnum] = getattr(client, name)
    theirs: type[StrEnum] = getattr(server, name)
    assert [m.value for m in ours] == [m.value for m in theirs]
