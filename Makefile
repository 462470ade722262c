# jinit: the README's commands.  `make demo`, `make test`, `make docs`, `make bench`.
PYTHON ?= python
PIP := $(PYTHON) -m pip
PYTEST_ARGS ?=

.PHONY: demo docs docs-deps frameworks test bench bench-quick deps install lint

# The three frameworks, each installed only where it is absent (an existing torch, TensorFlow
# or MXNet is never replaced): torch 2.13.0 (the CPU wheel; a bare `torch` pulls CUDA),
# tensorflow-cpu, and MXNet 1.9.1 with --no-deps (it declares numpy<2).
frameworks:
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" \
	  || $(PIP) install -q "torch==2.13.0"
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is None)" \
	  || $(PIP) install -q "tensorflow-cpu>=2.16"
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('mxnet') is None)" \
	  || $(PIP) install -q --no-deps "mxnet==1.9.1"

# Installs what the tests need without replacing any framework already present.
# Test-only: torchvision (the release paired with the installed torch, --no-deps so that
# it cannot replace torch), tf-keras (Keras 2, which HF TF models need; paired with the
# installed TensorFlow, --no-deps since it declares `tensorflow`, not tensorflow-cpu) and
# transformers 4.49.0 (the last release with Flax and TF twins; its dependencies are
# pure-Python or tokenizers/safetensors wheels and touch no framework).
deps: frameworks
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('torchvision') is None)" \
	  || $(PIP) install -q --no-deps "torchvision==$$($(PYTHON) -c "import importlib.metadata as m; print('0.%d.*' % (int(m.version('torch').split('.')[1]) + 15))")"
	@$(PYTHON) -c "import importlib.util as u, sys; sys.exit(u.find_spec('tf_keras') is None)" \
	  || $(PIP) install -q --no-deps "tf-keras==$$($(PYTHON) -c "import importlib.metadata as m; print(m.version(m.packages_distributions()['tensorflow'][0]).rsplit('.', 1)[0] + '.*')")"
	@$(PYTHON) -c "import importlib.metadata as m, sys; sys.exit(m.version('transformers') != '4.49.0')" 2>/dev/null \
	  || $(PIP) install -q "transformers==4.49.0"
	@$(PIP) install -q -e ".[flax,plot,progress,test,docs]"

install:
	@$(PIP) install -q -e ".[flax,plot,progress]"

# The tour shows PyTorch, Keras and Gluon next to JAX, so it installs them as `deps` does.
demo: frameworks install
	$(PYTHON) -m jinit demo

docs-deps:
	@$(PIP) install -q -e ".[docs]"

# The documentation site, warnings as errors: docs/_build/html/index.html.
docs: docs-deps
	$(PYTHON) -m sphinx -W --keep-going -q -b html docs docs/_build/html

test: deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: deps
	$(PYTHON) -m benchmarks

bench-quick: deps
	$(PYTHON) -m benchmarks --quick

lint:
	$(PYTHON) -m ruff check jinit interop tests benchmarks
