# jinit: the README's commands.  `make demo`, `make test`, `make bench`.
PYTHON ?= python
PIP := $(PYTHON) -m pip
PYTEST_ARGS ?=

.PHONY: demo test bench bench-quick deps install lint

# Installs what the tests need without replacing any framework already present:
# torch 2.13.0 (CPU wheel) only where torch is absent, tensorflow-cpu only where
# TensorFlow is absent, and MXNet 1.9.1 with --no-deps (it declares numpy<2).
deps:
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" \
	  || $(PIP) install -q "torch==2.13.0"
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is None)" \
	  || $(PIP) install -q "tensorflow-cpu>=2.16"
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('mxnet') is None)" \
	  || $(PIP) install -q --no-deps "mxnet==1.9.1"
	@$(PIP) install -q -e ".[flax,plot,progress,test]"

install:
	@$(PIP) install -q -e ".[flax,plot,progress]"

demo: install
	$(PYTHON) -m jinit demo

test: deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: deps
	$(PYTHON) -m benchmarks

bench-quick: deps
	$(PYTHON) -m benchmarks --quick

lint:
	$(PYTHON) -m ruff check jinit interop tests benchmarks
