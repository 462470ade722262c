"""Hostile arguments, shapes and dtypes for every public initializer: only jinit errors escape.

The initializers are discovered from the public modules (``jinit`` and ``jinit.compat.*``):
every factory annotated ``-> Initializer``, every public ``Initializer`` instance, and the
numeric arguments from their signatures. Each case builds and calls one initializer with one
hostile value and checks that it either works (with finite values where the arguments are
finite) or raises a :class:`jinit.JinitError` that names the argument, ``shape`` or ``dtype``.
Shapes past what XLA can compile run in a subprocess, so a regression cannot abort the suite.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jinit

KEY = jax.random.key(0)
MODULES = {"jinit": jinit, "jinit.compat.torch": jinit.compat.torch,
           "jinit.compat.keras": jinit.compat.keras, "jinit.compat.mxnet": jinit.compat.mxnet,
           "jinit.compat.flax": jinit.compat.flax}
#: Valid values for required arguments, by argument name (not by initializer).
REQUIRED = {"scale": 1.0, "mode": "fan_in", "distribution": "normal", "sparsity": 0.5,
            "t_max": 10.0, "value": 1.0, "val": 1.0, "init": jinit.normal(1.0), "factor": 2.0,
            "offset": 1.0, "components": [(0.5, jinit.normal(1.0)), (0.5, jinit.zeros)],
            "mask_fn": lambda w: w > 0, "splits": 2, "min": -1.0, "max": 1.0,
            "dtype": jnp.float32, "input_axes": (0,), "output_axes": (1,)}
#: Arguments that are numbers, though they have no numeric default.
NUMERIC_REQUIRED = {"scale", "sparsity", "t_max", "value", "val", "factor", "offset", "min",
                    "max"}
#: A shape every initializer accepts: (out, in, H, W) divisible by 4 gates and 2 splits.
GOOD_SHAPE = (8, 4, 3, 4)
#: Rank 3 is also a valid STFT kernel (frame_length, 1, bins).
SHAPES_BY_RANK = {1: (8,), 2: (8, 4), 3: (8, 1, 3), 4: GOOD_SHAPE}


def _is_factory(obj) -> bool:
    """A public function returning an initializer, or a concrete Initializer class."""
    if inspect.isclass(obj):
        return issubclass(obj, jinit.Initializer) and not inspect.isabstract(obj)
    if not inspect.isfunction(obj):
        return False
    ret = inspect.signature(obj).return_annotation
    return ret in ("Initializer", jinit.Initializer)


def discover() -> dict[str, tuple]:
    """``{qualified name: (factory, {numeric argument: default})}`` for every public factory
    and initializer class."""
    found = {}
    for mod_name, mod in MODULES.items():
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name, None)
            if not _is_factory(obj):
                continue
            numeric = {}
            for p in inspect.signature(obj).parameters.values():
                default = p.default
                if p.name in NUMERIC_REQUIRED or (
                        isinstance(default, numbers.Real) and not isinstance(default, bool)):
                    numeric[p.name] = REQUIRED.get(p.name, default)
            found[f"{mod_name}.{name}"] = (obj, numeric)
    return found


def instances() -> dict[str, jinit.Initializer]:
    return {f"{m}.{n}": getattr(mod, n) for m, mod in MODULES.items()
            for n in getattr(mod, "__all__", dir(mod))
            if isinstance(getattr(mod, n, None), jinit.Initializer)}


FACTORIES = discover()
CASES = [(f, arg) for f, (_, numeric) in FACTORIES.items() for arg in numeric]


def build(name: str, **override):
    factory, _ = FACTORIES[name]
    kwargs = {p.name: REQUIRED[p.name] for p in inspect.signature(factory).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind != p.VAR_KEYWORD
              or p.default is None and p.name in NUMERIC_REQUIRED}
    kwargs.update(override)
    return factory(**kwargs)


def call(init, shape=None, dtype=None):
    """Calls ``init`` on the first shape of GOOD_SHAPE's family that it accepts when valid."""
    if shape is not None:
        return init(KEY, shape, dtype)
    last = None
    for rank in (2, 4, 1, 3):
        try:
            return init(KEY, SHAPES_BY_RANK[rank], dtype)
        except jinit.ShapeError as e:  # the rank is wrong for this initializer; try another
            last = e
    raise last


def test_discovery_finds_every_family():
    names = set(FACTORIES)
    assert len(FACTORIES) >= 80, sorted(names)
    for expected in ("jinit.normal", "jinit.mixture", "jinit.chrono", "jinit.scaled",
                     "jinit.compat.torch.kaiming_uniform", "jinit.compat.keras.variance_scaling",
                     "jinit.compat.mxnet.msra_prelu", "jinit.he_normal", "jinit.Normal",
                     "jinit.compat.torch.TruncNormal", "jinit.compat.mxnet.SVDOrthogonal"):
        assert expected in names
    assert len(CASES) >= 90
    assert {"jinit.zeros", "jinit.ones"} <= set(instances())


def test_every_factory_works_with_its_valid_arguments():
    for name in FACTORIES:
        out = call(build(name))
        assert bool(jnp.isfinite(out).all()), name


HOSTILE = [1j, complex(1, 0), np.complex64(1j), np.array(2j), True, False, np.bool_(True),
           float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.array(float("nan")),
           1e200, -1e200, 1e308, np.float64(1e200), 10**400, 2**63, np.int64(2**62), -1.0,
           -1e-300, 0, "1.0", "", None, np.array([1.0, 2.0]), [1.0], object()]


def check_outcome(name: str, arg: str, value, run) -> None:
    try:
        out = run()
    except jinit.JinitError as e:
        assert isinstance(e, (ValueError, TypeError)), (name, arg, type(e))
        message = str(e)
        assert arg in message or "shape" in message or "dtype" in message, (name, arg, message)
        return
    # It worked: a finite argument must give finite values (never silently inf or wrapped).
    try:
        finite_arg = math.isfinite(complex(np.asarray(value).item()).real)
    except (TypeError, ValueError, OverflowError):
        finite_arg = False
    if finite_arg:
        assert bool(jnp.isfinite(out).all()), (name, arg, value)


@pytest.mark.parametrize(("name", "arg"), CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_hostile_argument_values(name, arg):
    for value in HOSTILE:
        check_outcome(name, arg, value, lambda v=value: call(build(name, **{arg: v})))


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
numbers_st = st.one_of(
    st.floats(min_value=-1e30, max_value=1e30), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2**70, max_value=2**70), st.complex_numbers(max_magnitude=1e3),
    st.booleans(), st.sampled_from(HOSTILE))


@SETTINGS
@given(case=st.sampled_from(CASES), value=numbers_st,
       dtype=st.sampled_from([None, jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64]))
def test_fuzzed_arguments(case, value, dtype):
    name, arg = case
    check_outcome(name, arg, value, lambda: call(build(name, **{arg: value}), dtype=dtype))


BAD_SHAPES = [(-1, 3), (2.5, 3), ("a", 3), (True, 3), None, "abc", 3.0, (3, None),
              [[2, 3]], (np.float32(2), 3)]
BAD_DTYPES = ["not a dtype", 3.5, "U3", object, "M8", [("a", "f4")], np.longdouble, jnp.int32,
              jnp.uint8, jnp.bool_]


@SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES)), shape=st.sampled_from(BAD_SHAPES))
def test_fuzzed_bad_shapes(name, shape):
    with pytest.raises(jinit.ShapeError, match="shape"):
        build(name)(KEY, shape)


@SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES) + sorted(instances())),
       dtype=st.sampled_from(BAD_DTYPES), rank=st.sampled_from([1, 2, 3, 4]))
def test_fuzzed_bad_dtypes(name, dtype, rank):
    init = instances()[name] if name in instances() else build(name)
    try:
        out = init(KEY, SHAPES_BY_RANK[rank], dtype)
    except jinit.JinitError as e:
        assert "dtype" in str(e) or "shape" in str(e), str(e)
        return
    # Constants, identity and Dirac accept integer dtypes; their values stay exact.
    assert np.dtype(dtype).kind in "iub" and out.dtype == np.dtype(dtype), (name, dtype)


@SETTINGS
@given(name=st.sampled_from(sorted(FACTORIES)),
       key=st.sampled_from([None, 0, 1.5, "key", (0, 0), np.zeros(2, np.float32),
                            np.zeros((), np.int32)]))
def test_fuzzed_bad_keys(name, key):
    init = build(name)
    try:
        init(key, SHAPES_BY_RANK[2])
    except jinit.JinitError as e:
        assert "key" in str(e) or "shape" in str(e), str(e)


def test_gain_overflow_names_the_argument():
    with pytest.raises(jinit.InitializerArgumentError, match="param=1e\\+200") as info:
        jinit.calculate_gain("leaky_relu", 1e200)
    assert isinstance(info.value.__cause__, OverflowError)
    assert jinit.calculate_gain("leaky_relu", 1e150) == pytest.approx(2**0.5 * 1e-150)


HUGE = textwrap.dedent("""
    import inspect, json, sys
    import jax, jinit
    sys.path.insert(0, "tests")
    from test_bad_inputs import FACTORIES, build, instances
    out = {}
    inits = {**{n: build(n) for n in FACTORIES}, **instances()}
    for shape in [(2**31, 2**31), (2**70,), (2**61,), (0, 2**62, 2**62), (2**26, 2**25)]:
        for name, init in inits.items():
            try:
                init(jax.random.key(0), shape)
                out[f"{name}{shape}"] = "ok"
            except Exception as e:
                out[f"{name}{shape}"] = [type(e).__name__, isinstance(e, jinit.ShapeError), str(e)]
    print(json.dumps(out))
""")


def test_shapes_xla_cannot_compile_are_shape_errors_and_the_process_survives():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", HUGE], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) >= 5 * 60
    for case, result in results.items():
        assert result != "ok", case
        kind, is_shape_error, message = result
        assert is_shape_error and "elements" in message, (case, kind, message)
