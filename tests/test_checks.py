"""The helpers test cells call: any correct answer passes, wrong ones fail with a clear message."""

import warnings

import numpy as np
import pytest
import torch

from course_lib.grading.checks import (
    CheckFailed,
    as_float,
    as_int,
    assert_close,
    assert_equal,
    assert_shape,
    assert_true,
    quiet,
    to_tensor,
)


@pytest.mark.parametrize("value", [0.5, np.float32(0.5), np.array(0.5), torch.tensor(0.5),
                                   torch.tensor([0.5]), torch.tensor(0.5, dtype=torch.bfloat16),
                                   torch.tensor(0.5, requires_grad=True) * 1])
def test_scalar_answers_in_any_container(value):
    assert as_float(value) == pytest.approx(0.5)
    assert_close(value, 0.5, atol=1e-3)


def test_counts_accept_integral_values_only():
    assert as_int(torch.tensor(320800)) == 320800
    assert as_int(320800.0) == 320800
    with pytest.raises(CheckFailed, match="whole number"):
        as_int(2.5)


def test_assert_close_reports_where_values_differ():
    with pytest.raises(CheckFailed, match=r"1 of 4 values differ.*index \(1, 0\).*expected 3, got 4"):
        assert_close([[1, 2], [4, 4]], torch.tensor([[1.0, 2.0], [3.0, 4.0]]), name="m")
    assert_close([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(CheckFailed, match="NaN"):
        assert_close(float("nan"), 1.0)
    with pytest.raises(CheckFailed, match="None"):
        assert_close(None, 1.0)


def test_assert_shape_message_names_the_axes():
    with pytest.raises(CheckFailed, match=r"expected shape \(B, T, V\) = \(2, 7, 29\), got \(2, 29, 7\)"):
        assert_shape(torch.zeros(2, 29, 7), (2, 7, 29), name="logits", dims="B, T, V")
    assert_shape(torch.zeros(2, 7, 29), (2, 7, 29))


def test_masks_compare_as_values_whatever_the_dtype():
    expected = [[1, 1, 0], [1, 0, 0]]
    for dtype in (torch.bool, torch.long, torch.float32):
        assert_equal(torch.tensor(expected).to(dtype), expected)
    with pytest.raises(CheckFailed):
        assert_equal(torch.ones(2, 3), expected)


def test_assert_true_survives_optimised_mode_and_quiet_captures():
    with pytest.raises(CheckFailed, match="boom"):
        assert_true(False, "boom")
    with quiet() as buf:
        warnings.warn("hidden", stacklevel=1)
        import sys
        print("to stderr", file=sys.stderr)
    assert "to stderr" in buf.getvalue()


def test_to_tensor_rejects_non_numbers():
    with pytest.raises(CheckFailed):
        to_tensor("abc")


def test_a_passing_test_cell_says_its_checks_are_the_public_ones(capsys):
    """A released test cell holds the public checks only: passing them is not the grade, and it says so."""
    from course_lib.grading import record
    from course_lib.grading.checks import grade, passed_message

    grade("test_x", lambda: 1, lambda out: assert_equal(out, 1))
    assert capsys.readouterr().out == "test_x: public checks passed (hidden tests run at grading)\n"
    assert passed_message("test_x") == "test_x: public checks passed (hidden tests run at grading)"
    # the instructor's copy, whose cells still hold the hidden tests, says that instead
    assert passed_message("test_x", hidden=True) == "test_x: passed (public and hidden tests: this is the instructor's copy)"
    assert record._cell_has_hidden_tests() is False  # outside IPython: the student's wording
    failure = CheckFailed("add(1, 2): expected 3, got 4")
    failure.test_id = "test_add"
    assert failure._render_traceback_()[0].endswith("test_add: FAILED\x1b[0m")
