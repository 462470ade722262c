"""Array-level interop with PyTorch: ownership modes, dtypes, reports, errors (real torch)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _arrays import DTYPES_32, DTYPES_64, RSS_SCRIPT, run_python, same_bits, sample
from conftest import require
from flax.core import FrozenDict
from jinit.interop import ExportReport, InteropError, from_torch, to_torch
from jinit.interop import _torch as adapter

import jinit

torch = require("torch")

DTYPES_TORCH = DTYPES_32 + ("float8_e4m3fn", "float8_e5m2")


def test_copy_mode_torch_write_never_reaches_jax():
    x = sample("float32")
    before = np.asarray(x).copy()
    t, rep = to_torch({"w": x}, report=True)
    t["w"][0, 0] = 1e6
    t["w"].mul_(3)
    assert t["w"].data_ptr() != x.unsafe_buffer_pointer()
    np.testing.assert_array_equal(np.asarray(x), before)
    assert not rep["w"].zero_copy and rep["w"].reason == "copy mode"
    assert rep.bytes_copied == x.nbytes


def test_move_mode_same_pointer_and_deletes_jax_arrays():
    x, b = sample("float32"), sample("int32", (4,))
    ptr = x.unsafe_buffer_pointer()
    t, rep = to_torch({"w": x, "b": b}, mode="move", report=True)
    assert t["w"].data_ptr() == ptr
    assert x.is_deleted() and b.is_deleted()
    assert rep.all_zero_copy and rep.bytes_copied == 0
    t["w"].add_(1)  # the tensor owns the buffer now and stays valid
    assert float(t["w"][0, 0]) == pytest.approx(-1.1 + 1, abs=1e-6)


def test_move_mode_tied_leaves_exported_once():
    x = sample("float32")
    tree = {"embed": x, "head": x, "other": sample("float32")}
    t, rep = to_torch(tree, mode="move", parameters=True, report=True)
    assert t["embed"] is t["head"]
    assert isinstance(t["embed"], torch.nn.Parameter) and t["embed"].requires_grad
    assert rep["head"].tied_to == "embed" and rep.bytes_copied == 0
    assert x.is_deleted()


def test_share_mode_aliases_both_ways():
    x = jnp.zeros((4,), jnp.float32)
    t = to_torch(x, mode="share")
    t[1] = 7.0
    assert float(x[1]) == 7.0  # the hazard share mode documents
    y = from_torch(t, mode="share")
    t[2] = 5.0
    assert float(y[2]) == 5.0


def test_import_copy_mode_is_independent():
    t = torch.arange(6.0).reshape(2, 3)
    x, rep = from_torch({"t": t}, report=True)
    t.mul_(0)
    assert x["t"].tolist() == [[0, 1, 2], [3, 4, 5]] and not rep["t"].zero_copy


@pytest.mark.parametrize("dtype", DTYPES_TORCH)
@pytest.mark.parametrize("mode", ["copy", "share"])
def test_dtype_round_trip_bit_exact(dtype, mode):
    x = sample(dtype)
    t, rep = adapter.export_array(x, mode)
    assert str(t.dtype) == f"torch.{dtype}"
    assert rep.zero_copy == (mode == "share")
    back, rec = adapter.import_array_with_record(t, mode)
    assert same_bits(back, x)
    assert rec.zero_copy == (mode == "share")


def test_x64_dtypes_zero_copy_round_trip():
    with jax.enable_x64(True):
        for dtype in DTYPES_64:
            x = sample(dtype)
            t, rep = adapter.export_array(x, "share")
            assert rep.zero_copy and str(t.dtype) == f"torch.{dtype}"
            assert same_bits(adapter.import_array(t, "share"), x)
            assert same_bits(adapter.import_array(t, "copy"), x)


@pytest.mark.parametrize("tdtype", ["float64", "int64", "complex128"])
def test_narrowing_raises_without_opt_in(tdtype):
    t = torch.ones(3, dtype=getattr(torch, tdtype))
    with pytest.raises(jinit.DTypeError, match=rf"'w' has dtype {tdtype}.*x64.*allow_narrowing"):
        from_torch({"w": t})


def test_narrowing_opt_in_range_checked():
    t = torch.tensor([-3, 0, 2**31 - 1], dtype=torch.int64)
    x, rep = from_torch({"i": t}, report=True, allow_narrowing=True)
    assert x["i"].dtype == jnp.int32 and x["i"].tolist() == [-3, 0, 2**31 - 1]
    assert "cast int64->int32" in rep["i"].reason
    f = from_torch(torch.tensor([0.1, 2.5], dtype=torch.float64), allow_narrowing=True)
    assert f.dtype == jnp.float32 and np.allclose(f, [0.1, 2.5])
    with pytest.raises(jinit.DTypeError, match=r"'big': casting int64 to int32 would wrap around: values span \[7, 1099511627783\]"):
        from_torch({"big": torch.tensor([7, 2**40 + 7])}, allow_narrowing=True)


def test_cast_opt_in_both_directions():
    t = torch.tensor([1.5, -2.0], dtype=torch.float64)
    x = from_torch(t, cast={"float64": jnp.bfloat16})
    assert x.dtype == jnp.bfloat16 and x.tolist() == [1.5, -2.0]
    y, rec = adapter.export_array(jnp.array([1, 200], jnp.int32), "share", cast={"int32": "uint8"})
    assert y.dtype == torch.uint8 and not rec.zero_copy and "cast int32->uint8" in rec.reason
    with pytest.raises(jinit.DTypeError, match=r"'n': casting int32 to uint8 would wrap around"):
        to_torch({"n": jnp.array([-1, 3], jnp.int32)}, cast={"int32": "uint8"})


def test_unsupported_dtype_raises_and_failed_move_deletes_nothing():
    good = sample("float32")
    tree = {"a": good, "z": jnp.zeros(4, jnp.int4)}
    with pytest.raises(jinit.DTypeError, match=r"'z' has dtype int4, which torch cannot hold"):
        to_torch(tree, mode="move")
    assert not good.is_deleted()


def test_strict_refuses_copies_and_changes_nothing():
    x = jnp.arange(5, dtype=jnp.int32)
    with pytest.raises(InteropError, match=r"(?s)strict=True: 1 leaves.*'x': cast int32->int8"):
        to_torch({"x": x}, mode="move", strict=True, cast={"int32": "int8"})
    assert not x.is_deleted()


def test_argument_and_leaf_errors():
    x = sample("float32")
    with pytest.raises(InteropError, match=r"mode must be one of \('copy', 'move', 'share'\)"):
        to_torch(x, mode="steal")
    with pytest.raises(InteropError, match=r"JAX cannot take ownership.*mode='share'"):
        from_torch(torch.ones(2), mode="move")
    with pytest.raises(jinit.DTypeError, match=r"leaf 'n' is a ndarray, not a jax.Array"):
        to_torch({"n": np.ones(2)})
    with pytest.raises(jinit.DTypeError, match=r"leaf 'n' is a int, not a torch tensor"):
        from_torch({"n": 3})
    x.delete()
    with pytest.raises(InteropError, match=r"'d' is a deleted jax.Array"):
        to_torch({"d": x})
    with pytest.raises(jinit.DTypeError, match=r"'nonsense_dtype' is not a dtype"):
        to_torch(sample("float32"), cast={"nonsense_dtype": "float32"})


def test_container_types_kept():
    tree = FrozenDict({"a": [sample("float32"), (sample("int8"),)], "b": None})
    t = to_torch(tree)
    assert type(t) is FrozenDict and isinstance(t["a"], list) and isinstance(t["a"][1], tuple)
    assert t["b"] is None
    back = from_torch(t)
    assert type(back) is FrozenDict and same_bits(back["a"][1][0], tree["a"][1][0])


def test_import_views_and_grad_tensors():
    base = torch.arange(24.0).reshape(4, 6)
    perm, rep = from_torch(base.T, mode="share", report=True)  # a permutation: zero-copy
    assert rep.all_zero_copy and perm.tolist() == base.T.tolist()
    gapped, rep = from_torch({"g": base[:, ::2]}, mode="share", report=True)
    assert not rep["g"].zero_copy and "made contiguous" in rep["g"].reason
    assert gapped["g"].tolist() == base[:, ::2].tolist()
    p = torch.nn.Parameter(torch.ones(3))
    x, rep = from_torch({"p": p}, mode="share", report=True)
    assert rep["p"].zero_copy and x["p"].tolist() == [1, 1, 1]
    with pytest.raises(InteropError, match=r"(?s)strict=True.*'g'.*made contiguous"):
        from_torch({"g": base[:, ::2]}, mode="share", strict=True)


def test_empty_and_scalar_leaves():
    t = to_torch({"e": jnp.zeros((0, 3)), "s": jnp.float32(2.5)}, mode="move")
    assert tuple(t["e"].shape) == (0, 3) and t["s"].item() == 2.5


def test_report_type_and_table():
    _, rep = to_torch({"w": sample("float32")}, mode="share", report=True)
    assert isinstance(rep, ExportReport) and len(rep) == 1
    assert "zero-copy DLPack alias" in rep.table() and rep.copied == ()
    with pytest.raises(KeyError, match="no leaf 'nope'"):
        rep["nope"]


@pytest.mark.slow
def test_move_export_of_1gib_adds_no_resident_memory():
    out = run_python(RSS_SCRIPT.format(fn="to_torch", setup=""))
    assert out["total_mb"] > 1000 and out["zero_copy"] and out["deleted"]
    assert out["delta_mb"] < 20, out  # wrappers cost ~3 KB/leaf; a copy would add ~1 GiB
