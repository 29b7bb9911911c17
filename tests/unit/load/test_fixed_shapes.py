"""Unknown input dimensions are fixed before converting: from the data, from `model.input_shapes`, or refused
with the fix named."""

from __future__ import annotations

import numpy as np
import pytest

from stages.load.shapes import fixed_shapes
from stages.result import InputError

IMAGE = {"name": "image", "shape": [None, None, None, 3], "dtype": "float32"}


TOKENS = {"name": "token_ids", "shape": [None, None], "dtype": "int32"}


def test_unknown_dims_come_from_the_data_and_the_batch_stays_dynamic() -> None:
    data = {"image": np.zeros((4, 24, 32, 3), np.float32), "token_ids": np.zeros((4, 10), np.int32)}
    assert fixed_shapes([IMAGE, TOKENS], None, data) == {"image": [None, 24, 32, 3], "token_ids": [None, 10]}


def test_input_shapes_override_wins_and_a_conflict_is_refused() -> None:
    data = {"image": np.zeros((4, 24, 24, 3), np.float32)}
    assert fixed_shapes([IMAGE], {"image": [1, 64, 64, 3]}, data) == {"image": [1, 64, 64, 3]}
    assert fixed_shapes([IMAGE], {"image": [-1, 64, 48, -1]}, None) == {"image": [None, 64, 48, 3]}
    with pytest.raises(InputError, match="the model's input is"):
        fixed_shapes([IMAGE], {"image": [1, 64, 64, 4]}, data)


def test_unknown_dims_without_data_or_override_name_the_fix() -> None:
    with pytest.raises(InputError, match=r"model.input_shapes=\{image: \[1, \.\.\.\]\}"):
        fixed_shapes([IMAGE], None, None)
