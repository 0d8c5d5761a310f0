"""course_lib: the thin library behind the neural language modelling course notebooks.

Modules (flat, one job each):

- ``course_lib.data``     data registry and ``fetch(name)`` (mirror -> cache -> download, checksummed)
- ``course_lib.device``   ``get_device()``, ``seed_everything()``, ``fast_mode()``
- ``course_lib.notebook`` ``setup_notebook(name, seed=...)``: what each notebook's first cell runs
- ``course_lib.text``     character vocabularies, padding and batching for language models
- ``course_lib.train``    a training loop with progress bars, history, best checkpoint, callbacks
- ``course_lib.plot``     loss / perplexity curves
- ``course_lib.tables``   result tables
- ``course_lib.grading``  the ``course`` command: release, autograde, feedback, gradebook
- ``course_lib.runners``  command-line experiment runners (``python -m course_lib.runners.rnn_lm``)

Reference solutions are instructor material: they live in the separate package ``course_solutions``,
which the student distribution never contains.
"""

__version__ = "0.1.0"
