"""Adversarial submissions against the grader (see tests/test_adversarial.py)."""
