"""The validator seam: the implementation offers every member of the contract, with the same
parameters (no type checker runs here, so this is the check that they never drift apart)."""

from __future__ import annotations

import inspect

from handlers.validation.interface import ModelValidator
from handlers.validation.validator import Validator


def _members(cls: type) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def test_the_validator_implements_every_member_of_the_contract() -> None:
    contract = _members(ModelValidator)
    assert contract, "the contract is read at all"
    for name, member in contract.items():
        implemented = getattr(Validator, name, None)
        assert implemented is not None, name
        if isinstance(member, property):
            assert isinstance(implemented, property), name
        else:
            assert list(inspect.signature(implemented).parameters) == list(
                inspect.signature(member).parameters  # type: ignore[arg-type]
            ), name
