# Two commands for a newcomer: `make demo` and `make test`. Each sets itself up in .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Users (and Colab) bring their own torch; the package metadata only sets a lower bound.
# Here we pin the CPU build that this machine provides, for a reproducible local setup.
TORCH_VERSION ?= 2.13.0
# The linter too: a newer ruff may flag what this one accepts.
RUFF_VERSION ?= 0.17.6
# The Hugging Face packages of the GPT-2 part (the `hf` extra sets lower bounds), pinned here
# to versions tested together; installing them leaves the CPU torch above as it is.
GRADING_PINS ?= copydetect==0.5.0
HF_PINS ?= transformers==5.25.0 peft==0.21.2 tokenizers==0.23.3 accelerate==1.16.0 datasets==5.2.0
STAMP := $(VENV)/.installed-$(TORCH_VERSION)-ruff$(RUFF_VERSION)
WORKDIR ?= build/demo
export MPLBACKEND ?= Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

LABDIR ?= lab
# pytest processes for `make test` (pytest-xdist; each test file stays in one process, so a module's
# fixtures run once and a notebook's cells run in order); TEST_WORKERS=0 runs everything in one.
TEST_WORKERS ?= 2

.PHONY: help setup sandbox browser demo test test-fast release lint notebooks lab clean distclean

help:
	@echo "make demo      release every assignment, autograde the example submissions, print the gradebook"
	@echo "make test      run every test (unit tests, notebooks in fast mode, end-to-end grading)"
	@echo "make lab       students: copy the assignments into lab/ (once) and open them in JupyterLab"
	@echo "make release   write the student versions to build/release/"
	@echo "make notebooks rebuild notebooks/*/*.ipynb from their jupytext .py sources"
	@echo "make clean     remove build outputs (keeps .venv); make distclean also removes .venv"

setup: $(STAMP) sandbox

# $(call apt_ensure,COMMAND,DEBIAN PACKAGE,WHAT IT IS FOR,WHAT HAPPENS WITHOUT IT): install the
# package where we can (root on Debian/Ubuntu, as in CI); elsewhere say how, and go on without it.
define apt_ensure
@command -v $(1) >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(2) ($(3))"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) >/dev/null \
			|| echo "warning: could not install $(2); $(4)" >&2; \
	else \
		echo "note: $(2) ($(1)) is not installed; $(4). Install it with: sudo apt-get install -y $(2)" >&2; \
	fi; }
endef

# The grader runs students' kernels in a bubblewrap sandbox; without it grading warns and runs with
# rlimits only (see README).
sandbox:
	$(call apt_ensure,bwrap,bubblewrap,the grader's sandbox,grading runs without a sandbox)

# The browser tests drive Debian's Chromium with Playwright (pip package `playwright`, in the dev
# extra; `playwright install` would download its own browser, which we do not need).
browser:
	$(call apt_ensure,chromium,chromium,for the browser tests,the browser tests are skipped)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed (nbgrader 0.9.6); set PYTHON=/path/to/python3.11"' \
		|| { echo "error: $(PYTHON) is older than 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e '.[dev]' ruff==$(RUFF_VERSION) $(GRADING_PINS) $(HF_PINS) torch==$(TORCH_VERSION)
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/course --workdir $(WORKDIR) demo

test: setup browser
	$(BIN)/ruff check .
	COURSE_FAST=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q tests notebooks --nbval-lax --durations=15 \
		$$([ "$(TEST_WORKERS)" = 0 ] || echo "-n $(TEST_WORKERS) --dist loadfile")

release: setup
	$(BIN)/course --workdir build/grading release --all --output build/release

# JupyterLab on your own copies of the student notebooks (in $(LABDIR)/, never overwritten).
lab: setup
	$(BIN)/course --workdir build/grading lab --dir $(LABDIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/course lint

notebooks: setup
	$(BIN)/python -m course_lib.grading.project sync  # setup cells and README badges from [tool.course]
	@for py in notebooks/*/*.py; do \
		name=$$(basename $$(dirname $$py)); \
		if [ "$$(basename $$py .py)" = "$$name" ]; then \
			$(BIN)/jupytext --to ipynb --update --update-metadata '{"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}' $$py -o notebooks/$$name/$$name.ipynb; \
		fi; \
	done

clean:
	rm -rf build grading release .pytest_cache checkpoints

distclean: clean
	rm -rf $(VENV)
