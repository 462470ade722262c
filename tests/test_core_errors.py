"""Bad input to the core (jinit._initializers, jinit._fans): jinit errors naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinit

KEY = jax.random.key(0)
NAN, INF = float("nan"), float("inf")

# --- construction: every invalid hyperparameter raises InitializerArgumentError ---------------

BAD_ARGS = [
    (lambda: jinit.variance_scaling(-1.0, "fan_in", "normal"), "scale must be >= 0; got scale=-1.0"),
    (lambda: jinit.variance_scaling(NAN, "fan_in", "normal"), "scale must be finite; got scale=nan"),
    (lambda: jinit.variance_scaling("2", "fan_in", "normal"), "scale must be a number"),
    (lambda: jinit.variance_scaling([1, 2], "fan_in", "normal"), "scale must be a scalar"),
    (lambda: jinit.variance_scaling(1.0, "fan_xx", "normal"),
     r"mode must be one of \('fan_in', 'fan_out', 'fan_avg', 'fan_geo_avg'\); got mode='fan_xx'"),
    (lambda: jinit.variance_scaling(1.0, "fan_in", "gaussian"),
     "distribution must be one of .*got distribution='gaussian'"),
    (lambda: jinit.glorot_uniform(in_axis=1.5), "in_axis must be an int or a sequence of ints"),
    (lambda: jinit.he_normal(batch_axis=None), "batch_axis must be an int or a sequence"),
    (lambda: jinit.normal(-0.1), "normal: stddev must be >= 0"),
    (lambda: jinit.normal(INF), "normal: stddev must be finite"),
    (lambda: jinit.uniform(-1.0), "uniform: scale must be >= 0"),
    (lambda: jinit.uniform("a"), "uniform: scale must be a number"),
    (lambda: jinit.truncated_normal(NAN), "truncated_normal: stddev must be finite"),
    (lambda: jinit.truncated_normal(1.0, lower=2.0, upper=-2.0), "lower must be < upper"),
    (lambda: jinit.truncated_normal(1.0, lower=NAN), "lower must be finite"),
    (lambda: jinit.orthogonal(NAN), "orthogonal: scale must be finite"),
    (lambda: jinit.orthogonal(column_axis=(0, 1)), "column_axis must be an int"),
    (lambda: jinit.orthogonal(column_axis=True), "column_axis must be an int"),
    (lambda: jinit.delta_orthogonal(scale=NAN), "scale must be finite"),
    (lambda: jinit.constant("abc"), "constant: value must be a number or an array"),
    (lambda: jinit.constant(None), "constant: value must be a number or an array"),
    (lambda: jinit.layout_axes("nchw", 4), "layout must be one of .*got layout='nchw'"),
    (lambda: jinit.compute_fans((4, 3), in_axis=1.5), "in_axis must be an int or a sequence"),
]


@pytest.mark.parametrize(("build", "match"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises(jinit.InitializerArgumentError, match=match) as info:
        build()
    assert isinstance(info.value, ValueError)


# --- call: shapes and dtypes -------------------------------------------------------------------

FAN_INITS = [jinit.glorot_uniform(), jinit.he_normal(), jinit.lecun_normal(),
             jinit.variance_scaling(1.0, "fan_geo_avg", "uniform")]


@pytest.mark.parametrize("init", FAN_INITS, ids=repr)
@pytest.mark.parametrize("shape", [(), (5,)], ids=str)
def test_fans_of_0d_and_1d_shapes_raise(init, shape):
    with pytest.raises(jinit.ShapeError, match=rf"cannot compute fans of a {len(shape)}-D shape"):
        init(KEY, shape)


@pytest.mark.parametrize("init", [jinit.normal(), jinit.uniform(), jinit.truncated_normal(),
                                  jinit.he_uniform(), jinit.orthogonal(),
                                  jinit.delta_orthogonal()], ids=repr)
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_], ids=str)
def test_integer_dtypes_for_random_inits_raise(init, dtype):
    shape = (3, 3, 4, 8)
    with pytest.raises(jinit.DTypeError, match=rf"cannot produce dtype {np.dtype(dtype)}"):
        init(KEY, shape, dtype)


def test_constants_allow_integer_dtypes():
    assert jinit.zeros(KEY, (2,), jnp.int32).dtype == jnp.int32
    assert jinit.constant(3)(KEY, (2,), jnp.uint8).tolist() == [3, 3]


BAD_CALLS = [
    (jinit.normal(), (2.5, 3), None, jinit.ShapeError, "sequence of ints; got \\(2.5, 3\\)"),
    (jinit.normal(), None, None, jinit.ShapeError, "sequence of ints; got None"),
    (jinit.normal(), (-1, 3), None, jinit.ShapeError, "negative dimension"),
    (jinit.normal(), (3,), "floaty", jinit.DTypeError, "dtype='floaty', which is not a dtype"),
    (jinit.glorot_uniform(in_axis=5), (3, 3), None, jinit.ShapeError,
     r"in_axis=5 is out of range for a 2-D shape \(3, 3\)"),
    (jinit.he_normal(), (0, 4), None, jinit.ShapeError, "the in/out/batch axes have size zero"),
    (jinit.orthogonal(), (3,), None, jinit.ShapeError, "at least 2 dimensions; got \\(3,\\)"),
    (jinit.orthogonal(column_axis=3), (3, 3), None, jinit.ShapeError,
     "column_axis=3 is out of range"),
    (jinit.delta_orthogonal(), (3, 3, 8, 4), None, jinit.ShapeError,
     "needs in <= out .*got in=8, out=4"),
    (jinit.delta_orthogonal(), (3, 3), None, jinit.ShapeError, "3-D, 4-D or 5-D conv kernel"),
    (jinit.delta_orthogonal(), (2, 2, 2, 2, 3, 3), None, jinit.ShapeError, "3-D, 4-D or 5-D"),
    (jinit.constant(np.ones(3)), (2, 2), None, jinit.ShapeError,
     r"shape \(3,\) cannot be broadcast to the requested shape \(2, 2\)"),
]


@pytest.mark.parametrize(("init", "shape", "dtype", "error", "match"), BAD_CALLS,
                         ids=[m for *_, m in BAD_CALLS])
def test_bad_calls_raise(init, shape, dtype, error, match):
    with pytest.raises(error, match=match):
        init(KEY, shape, dtype)


# --- compute_fans ------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "match"), [
    ((5,), "1-D shape"), ((), "0-D shape"), ((0, 5), "size zero"),
    ((-1, 3), "negative dimension"), ((2.5, 3), "sequence of ints"), (None, "sequence of ints"),
], ids=str)
def test_compute_fans_bad_shapes(shape, match):
    with pytest.raises(jinit.ShapeError, match=match):
        jinit.compute_fans(shape)


def test_compute_fans_accepts_numpy_ints_and_matches_jax():
    shape = (np.int64(3), 3, 64, np.int32(128))
    assert jinit.compute_fans(shape, in_axis=np.int64(-2)) == (576.0, 1152.0)
    from jax._src.nn.initializers import _compute_fans

    for axes in [dict(in_axis=-2, out_axis=0), dict(in_axis=(0, 1), out_axis=-1, batch_axis=2)]:
        assert jinit.compute_fans((2, 3, 4, 5), **axes) == _compute_fans((2, 3, 4, 5), **axes)


# --- failed calls leave user inputs untouched --------------------------------------------------

def test_failed_calls_leave_inputs_untouched():
    shape, axes = [3, 3, 8, 4], [0, 1]
    with pytest.raises(jinit.ShapeError):
        jinit.delta_orthogonal()(KEY, shape)
    init = jinit.variance_scaling(1.0, "fan_in", "normal", in_axis=axes)
    with pytest.raises(jinit.ShapeError):
        init(KEY, [5])
    assert shape == [3, 3, 8, 4] and axes == [0, 1] and init.in_axis == (0, 1)
    value = np.ones(3)
    with pytest.raises(jinit.ShapeError):
        jinit.constant(value)(KEY, (2, 2))
    np.testing.assert_array_equal(value, np.ones(3))


# --- QA regressions: odd shapes and dtypes give jinit errors or exact values --------------------

@pytest.mark.parametrize(("init", "shape", "dtype", "error", "match"), [
    (jinit.constant(np.arange(3.0)), (1, 1), None, jinit.ShapeError, r"\(3,\) cannot be broadcast"),
    (jinit.constant(np.arange(3.0)), (), None, jinit.ShapeError, r"to the requested shape \(\)"),
    (jinit.glorot_uniform(), (2, 0, 3, 3), None, jinit.ShapeError, "receptive-field axes"),
    (jinit.uniform(), (2, 3), jnp.complex64, jinit.DTypeError, "real numbers.*complex64"),
    (jinit.truncated_normal(), (2, 3), jnp.complex64, jinit.DTypeError, "real numbers"),
], ids=["const-into-1x1", "const-into-0d", "empty-rf", "uniform-complex", "tn-complex"])
def test_odd_shapes_and_dtypes_raise_jinit_errors(init, shape, dtype, error, match):
    # Before: a bare jnp.full ValueError, ZeroDivisionError and jax.random ValueErrors.
    with pytest.raises(error, match=match):
        init(KEY, shape, dtype)


def test_constant_array_broadcasts_into_larger_shapes_and_empty_delta_orthogonal():
    assert jinit.constant(np.arange(3.0))(KEY, (2, 3)).tolist() == [[0, 1, 2]] * 2
    assert jinit.compute_fans((2, 1, 3, 3)) == (6.0, 6.0)
    w = jinit.delta_orthogonal()(KEY, (2, 0, 3, 3))  # was an IndexError on the centre tap
    assert w.shape == (2, 0, 3, 3) and w.dtype == jnp.float32


# --- hostile values: the exact reports behind tests/test_bad_inputs.py's fuzzing --------------

HOSTILE_BUILDS = [
    (lambda: jinit.compat.torch.xavier_uniform(gain=1e200), "gain=1e\\+200", OverflowError),
    (lambda: jinit.compat.torch.xavier_normal(gain=1e200), "gain=1e\\+200", OverflowError),
    (lambda: jinit.compat.torch.kaiming_uniform(a=1e200), "a=1e\\+200", OverflowError),
    (lambda: jinit.compat.torch.kaiming_normal(a=1e200), "a=1e\\+200", OverflowError),
    (lambda: jinit.compat.mxnet.msra_prelu(slope=1e200), "slope=1e\\+200", OverflowError),
    (lambda: jinit.calculate_gain("leaky_relu", 1e200), "param=1e\\+200", OverflowError),
    (lambda: jinit.normal(stddev=1j), "stddev must be a real number, not complex", None),
    (lambda: jinit.scaled(jinit.normal(), 1j), "factor must be a real number", None),
    (lambda: jinit.mixture([(1j, jinit.zeros)]), "probability 0 must be a real number", None),
    (lambda: jinit.gate_bias(f=2j), "f must be a real number", None),
    (lambda: jinit.compat.keras.random_normal(stddev=1j), "stddev must be a real number", None),
    (lambda: jinit.normal(stddev=True), "stddev must be a number, not a bool", None),
    (lambda: jinit.dirac(gain=np.array(float("nan"))), "gain must be finite", None),
]


@pytest.mark.parametrize(("build", "match", "cause"), HOSTILE_BUILDS,
                         ids=[m for _, m, _ in HOSTILE_BUILDS])
def test_hostile_hyperparameters_name_the_argument(build, match, cause):
    with pytest.raises(jinit.InitializerArgumentError, match=match) as info:
        build()
    if cause is not None:  # the overflow itself is kept as the cause
        error: BaseException = info.value
        while isinstance(error, jinit.JinitError) and error.__cause__ is not None:
            error = error.__cause__
        assert isinstance(error, cause)


def test_zero_d_arrays_are_numbers_and_keep_the_initializer_hashable():
    init = jinit.normal(np.array(0.5))
    assert init == jinit.normal(0.5) and hash(init) == hash(jinit.normal(0.5))


@pytest.mark.parametrize(("shape", "match"), [
    ((2**31, 2**31), "XLA cannot compile arrays of more than 2\\*\\*50"),
    ((2**70,), "XLA cannot compile"),
    ((0, 2**62, 2**62), "XLA cannot compile"),
    ((True, 3), "sequence of ints"),
])
def test_shapes_xla_cannot_represent_are_shape_errors(shape, match):
    for init in (jinit.he_normal(), jinit.zeros, jinit.orthogonal(), jinit.scaled(jinit.ones, 2)):
        with pytest.raises(jinit.ShapeError, match=match):
            init(KEY, shape)


@pytest.mark.parametrize(("init", "dtype", "match"), [
    (jinit.normal(1e39), jnp.float32, "stddev=1e\\+39 times 9 .*does not fit in float32"),
    (jinit.normal(1e10), jnp.float16, "does not fit in float16"),
    (jinit.constant(300), jnp.uint8, "value=300 does not fit in uint8"),
    (jinit.constant(1j), jnp.float32, "value=1j is complex but the dtype float32 is real"),
    (jinit.variance_scaling(1e300, "fan_in", "uniform"), jnp.float32, "scale"),
    (jinit.constant(0), "U3", "JAX arrays hold numbers and bools only"),
])
def test_values_that_do_not_fit_the_dtype_are_dtype_errors(init, dtype, match):
    with pytest.raises(jinit.DTypeError, match=match):
        init(KEY, (4, 4), dtype)


def test_custom_subclasses_get_the_field_checks():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class MyInit(jinit.Initializer):
        width: float = 1.0
        flag: bool = False

        def __post_init__(self) -> None:  # its own checks run first, then the base's
            if isinstance(self.width, str):
                raise jinit.InitializerArgumentError("my_init: width must not be a string.")

        def _sample(self, key, shape, dtype, out_sharding):
            return jax.random.normal(key, shape, dtype) * self.width

    assert MyInit(2.0, True)(KEY, (3,)).shape == (3,)  # a bool field may hold a bool
    with pytest.raises(jinit.InitializerArgumentError, match="my_init: width must be a real"):
        MyInit(1j)
    with pytest.raises(jinit.InitializerArgumentError, match="width must be a number, not a bool"):
        MyInit(True)
    with pytest.raises(jinit.InitializerArgumentError, match="width must be finite"):
        MyInit(float("nan"))
    with pytest.raises(jinit.InitializerArgumentError, match="must not be a string"):
        MyInit("1")
