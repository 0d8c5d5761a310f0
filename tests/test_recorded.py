"""course_solutions.load_recorded: the recorded reference runs (instructor material)."""

import json

import pytest

import course_solutions
from course_solutions import RecordedError, load_recorded


def test_load_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(course_solutions, "RECORDED", tmp_path)
    with pytest.raises(RecordedError) as info:
        load_recorded("rnn_lm", "laptop")
    assert "rnn_lm-laptop.json" in str(info.value) and "python -m course_lib.runners.rnn_lm" in str(info.value)
    (tmp_path / "rnn_lm.json").write_text(json.dumps({"dev_ppl": 123.4}))
    assert load_recorded("rnn_lm") == {"dev_ppl": 123.4}
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RecordedError, match="not valid JSON"):
        load_recorded("broken")
    with pytest.raises(RecordedError, match="Invalid assignment name"):
        load_recorded("../registry")
    with pytest.raises(RecordedError, match="Invalid assignment name"):
        load_recorded("rnn_lm", "huge")


def test_the_full_rnn_lm_run_is_recorded():
    assert load_recorded("rnn_lm")["best_dev_ppl"] > 1
