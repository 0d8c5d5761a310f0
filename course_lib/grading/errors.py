"""The one error the grading steps raise for a problem the instructor can fix."""


class GradingError(RuntimeError):
    """A grading step failed; the message says which and what to do."""
