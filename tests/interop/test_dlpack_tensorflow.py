"""Array-level interop with TensorFlow: ownership modes, variables, dtypes, layouts (real TF)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _arrays import DTYPES_32, DTYPES_64, RSS_SCRIPT, run_python, same_bits, sample
from conftest import require

import jinit
from jinit.interop import InteropError, from_tensorflow, from_torch, to_tensorflow
from jinit.interop import _tensorflow as adapter

tf = require("tensorflow")


def ptr(t) -> int:
    return adapter.ADAPTER.data_ptr(t)


def test_copy_mode_owns_a_new_buffer():
    x = sample("float32")
    t, rep = to_tensorflow({"w": x}, report=True)
    assert ptr(t["w"]) != x.unsafe_buffer_pointer()
    assert not rep["w"].zero_copy and rep["w"].reason == "copy mode"
    assert same_bits(t["w"].numpy(), x)


def test_move_mode_same_pointer_and_deletes_jax_arrays():
    x = sample("float32")
    p = x.unsafe_buffer_pointer()
    t, rep = to_tensorflow({"w": x, "tied": x}, mode="move", variables=True, report=True)
    assert ptr(t["w"]) == p and x.is_deleted() and rep.all_zero_copy
    assert t["w"] is t["tied"] and isinstance(t["w"], tf.Variable) and t["w"].trainable


def test_share_mode_variable_updates_copy_on_write():
    x = jnp.arange(4.0)
    v = to_tensorflow(x, mode="share", variables=True)
    assert ptr(v) == x.unsafe_buffer_pointer()  # aliased until the first update...
    v.assign_add(tf.ones(4))
    assert x.tolist() == [0, 1, 2, 3]  # ...which TF copies, never writing into JAX memory
    assert v.numpy().tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("dtype", DTYPES_32)
@pytest.mark.parametrize("mode", ["copy", "share"])
def test_dtype_round_trip_bit_exact(dtype, mode):
    x = sample(dtype)
    t, rep = adapter.export_array(x, mode)
    assert t.dtype.name == dtype and rep.zero_copy == (mode == "share")
    back, rec = adapter.import_array_with_record(t, mode)
    assert same_bits(back, x) and rec.zero_copy == (mode == "share")


def test_x64_dtypes_zero_copy_round_trip():
    with jax.enable_x64(True):
        for dtype in DTYPES_64:
            x = sample(dtype)
            t, rep = adapter.export_array(x, "share")
            assert rep.zero_copy and t.dtype.name == dtype
            assert same_bits(adapter.import_array(t, "share"), x)


def test_variable_import_and_narrowing_policy():
    v = tf.Variable(tf.constant([1.0, 2.0], tf.float64))
    with pytest.raises(jinit.DTypeError, match=r"'v' has dtype float64, which JAX holds only with x64"):
        from_tensorflow({"v": v})
    x, rep = from_tensorflow({"v": v}, allow_narrowing=True, report=True)
    assert x["v"].dtype == jnp.float32 and "cast float64->float32 in tensorflow" in rep["v"].reason
    with pytest.raises(jinit.DTypeError, match=r"'i': casting int64 to int32 would wrap around"):
        from_tensorflow({"i": tf.constant([2**40], tf.int64)}, allow_narrowing=True)
    w = tf.Variable(tf.ones((2, 3)))
    y, rep = from_tensorflow({"w": w}, mode="share", report=True)
    assert rep["w"].zero_copy and y["w"].shape == (2, 3)


def test_non_row_major_layout_is_made_contiguous_and_reported():
    import torch

    base = torch.arange(12.0).reshape(3, 4)
    j = from_torch(base.T, mode="share")  # a JAX array with a transposed (non-default) layout
    t, rep = to_tensorflow({"k": j}, mode="share", report=True)
    assert not rep["k"].zero_copy and "made contiguous" in rep["k"].reason
    np.testing.assert_array_equal(t["k"].numpy(), base.T.numpy())
    with pytest.raises(InteropError, match=r"(?s)strict=True.*'k': non-row-major layout"):
        to_tensorflow({"k": j}, mode="move", strict=True)
    assert not j.is_deleted()


def test_unsupported_dtype_raises():
    with pytest.raises(jinit.DTypeError, match=r"'q' has dtype float8_e4m3fn, which tensorflow cannot hold"):
        to_tensorflow({"q": jnp.zeros(3, jnp.float8_e4m3fn)})
    with pytest.raises(jinit.DTypeError, match=r"leaf 'n' is a str, not a tensorflow tensor"):
        from_tensorflow({"n": "x"})


@pytest.mark.slow
def test_move_export_of_1gib_adds_no_resident_memory():
    out = run_python(RSS_SCRIPT.format(fn="to_tensorflow", setup=""))
    assert out["total_mb"] > 1000 and out["zero_copy"] and out["deleted"]
    assert out["delta_mb"] < 20, out
