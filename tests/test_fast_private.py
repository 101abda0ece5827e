"""``fast_private_attributes``: private attributes read fast and behave exactly as pydantic's own."""

from __future__ import annotations

import copy
import pickle
from typing import Optional

import pytest
from pydantic import BaseModel, PrivateAttr

from llama_index_mm_st.fast_private import fast_private_attributes


class Plain(BaseModel):
    x: int = 1
    _default: Optional[int] = PrivateAttr(default=None)
    _factory: dict = PrivateAttr(default_factory=dict)
    _unset: int = PrivateAttr()


@fast_private_attributes
class Fast(Plain):
    pass


def test_reads_writes_and_missing_values_match_pydantic() -> None:
    for cls in (Plain, Fast):
        model = cls()
        assert model._default is None and model._factory == {}
        with pytest.raises(AttributeError, match="_unset"):
            model._unset  # noqa: B018 - the read is the test
        assert getattr(model, "_unset", "missing") == "missing"
        model._unset = 3
        model._default = 5
        model._factory["k"] = 1
        assert (model._unset, model._default, model._factory) == (3, 5, {"k": 1})
        assert model.__pydantic_private__ == {"_default": 5, "_factory": {"k": 1}, "_unset": 3}


def test_copies_and_pickles_keep_private_values() -> None:
    model = Fast()
    model._unset = 7
    for twin in (model.model_copy(), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(twin, Fast) and twin._unset == 7 and twin._factory == {}
    other = Fast()
    other._default = 9
    assert model._default is None  # instances don't share values


def test_the_reader_is_a_class_property_not_pydantics_fallback() -> None:
    assert isinstance(Fast.__dict__["_default"], property)
    assert "_default" not in Plain.__dict__
