# The two commands a new user needs (see README):
#   make run    create .venv if missing, install the app (no PyTorch), open the viewer
#   make test   create .venv if missing, install app + search + test tools, lint with ruff, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch. On our machines pip finds it on disk; elsewhere pass the CPU index, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH  ?= torch==2.13.0
TORCH_PIP_ARGS ?=

.PHONY: run test replay search clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip

$(VENV)/.app-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)" $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[search,test,bundle]"
	touch $@ $(VENV)/.app-installed

run: $(VENV)/.app-installed
	$(BIN)/python -m app

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

search: $(VENV)/.dev-installed
	$(BIN)/python -m search

clean-venv:
	rm -rf $(VENV)
