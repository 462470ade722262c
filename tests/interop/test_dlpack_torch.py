"""Array-level interop with PyTorch: ownership modes, dtypes, reports, errors (real torch)."""

from __future__ import annotations

import dataclasses
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _arrays import DTYPES_32, DTYPES_64, RSS_SCRIPT, run_python, same_bits, sample
from conftest import require
from flax.core import FrozenDict

import jinit
from jinit.interop import ExportRecord, ExportReport, InteropError, _dlpack, from_torch, to_torch
from jinit.interop import _torch as adapter

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


# --- the fast per-leaf path (interop/_dlpack.py "fast calls"): same results as the public calls
def test_fast_calls_are_active_and_match_the_public_calls():
    # If JAX's internals change, each fast call falls back to the public one (correct, slower):
    # this test then fails first, so the benchmark numbers are not silently lost.
    assert _dlpack._capsule_maker() is not _dlpack._public_capsule
    assert _dlpack._row_major_check() is not _dlpack._public_row_major
    assert _dlpack._host_importer() is not None
    for x in (sample("float32"), jnp.float32(2.5), jnp.zeros((0, 3)), sample("bfloat16", (4, 1, 2))):
        fast, public = _dlpack.to_capsule(x), x.__dlpack__()
        assert _dlpack.capsule_data_ptr(fast) == _dlpack.capsule_data_ptr(public)
        assert torch.equal(torch.from_dlpack(fast), torch.from_dlpack(public))
    t = torch.arange(12.0).reshape(3, 4)
    for view in (t, t.T):  # default and transposed (non-default JAX layout) buffers
        fast, public = _dlpack._host_importer()(torch.utils.dlpack.to_dlpack(view)), jnp.from_dlpack(view)
        assert fast.unsafe_buffer_pointer() == public.unsafe_buffer_pointer() == view.data_ptr()
        assert (fast.dtype, fast.shape, fast.sharding, fast.committed, fast.format) == (
            public.dtype, public.shape, public.sharding, public.committed, public.format)
        assert _dlpack.is_row_major(fast) == _dlpack._public_row_major(fast) == (view is t)
        np.testing.assert_array_equal(fast, view.numpy())


def test_export_waits_for_a_pending_computation():
    a = jnp.full((600, 600), 1.0 / 600, jnp.float32)
    f = jax.jit(lambda a: a @ a @ a @ a @ a @ a + 1.0)
    f(a).block_until_ready()
    for mode in ("move", "share", "copy"):
        x = f(a)  # dispatched asynchronously; the export must not read it before it is written
        t, rec = adapter.export_array(x, mode)
        np.testing.assert_allclose(t.numpy(), 1 + 1 / 600, rtol=1e-5)  # (a @ a = a for a = 1/600)
        assert rec.zero_copy == (mode != "copy")


@pytest.mark.parametrize("mode", ["share", "copy"])
def test_deleting_the_source_after_export_keeps_the_tensor_valid(mode):
    # share: the capsule holds a view of x, not x (deleting an array a live capsule holds
    # aborts the process); copy: the temporary alias of x was released before returning.
    x = jnp.arange(6.0).reshape(2, 3)
    t, rec = adapter.export_array(x, mode)
    x.delete()
    t.add_(1)
    assert rec.zero_copy == (mode == "share") and t.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_leaf_level_cast_accepts_dtype_objects():
    y, rec = adapter.export_array(jnp.array([1, 200], jnp.int32), "share", cast={jnp.int32: jnp.uint8})
    assert y.dtype == torch.uint8 and rec.reason.startswith("cast int32->uint8 (cast=)")
    x = adapter.import_array(torch.tensor([1.5], dtype=torch.float64), cast={jnp.float64: jnp.float32})
    assert x.dtype == jnp.float32 and x.tolist() == [1.5]


def test_records_and_lazy_report_equal_their_dataclass_forms():
    x = sample("float32")
    tree = {"enc": [x, {"b": sample("int8", (4,))}], "dec": x}
    out, rep = to_torch(tree, mode="share", report=True)
    # summaries come from the per-leaf rows, before any record is built
    assert len(rep) == 3 and rep.all_zero_copy and rep.bytes_copied == 0
    assert "records" not in vars(rep)
    for r in rep:
        assert r == ExportRecord(**{f.name: getattr(r, f.name) for f in dataclasses.fields(r)})
        assert r == dataclasses.replace(r) and hash(r) == hash(dataclasses.replace(r))
    assert [r.path for r in rep] == ["dec", "enc/0", "enc/1/b"]
    tie = rep["enc/0"]
    assert tie.tied_to == "dec" and tie.reason == "same array as 'dec': same tensor"
    assert tie.bytes_copied == 0 and tie.nbytes == x.nbytes and tie.target_dtype == "float32"
    assert rep == ExportReport(rep.records) and pickle.loads(pickle.dumps(rep)) == rep
    _, copied = to_torch({"w": x}, report=True)
    assert copied.bytes_copied == x.nbytes and not copied.all_zero_copy and len(copied.copied) == 1
    back, imp = from_torch({"w": out["dec"], "v": out["dec"]}, mode="share", report=True)
    assert imp["v"].tied_to is None and imp["w"].reason == "same tensor as 'v': same array"  # sorted keys
    assert back["v"] is back["w"]


def test_import_copy_of_a_transposed_view_is_independent():
    base = torch.arange(12.0).reshape(3, 4)
    x, rec = adapter.import_array_with_record(base.T, "copy")
    base.mul_(0)
    np.testing.assert_array_equal(x, np.arange(12.0).reshape(3, 4).T)
    assert not rec.zero_copy and rec.reason == "copy mode" and x.committed


@pytest.mark.slow
def test_move_export_of_1gib_adds_no_resident_memory():
    out = run_python(RSS_SCRIPT.format(fn="to_torch", setup=""))
    assert out["total_mb"] > 1000 and out["zero_copy"] and out["deleted"]
    assert out["delta_mb"] < 20, out  # wrappers cost ~3 KB/leaf; a copy would add ~1 GiB
