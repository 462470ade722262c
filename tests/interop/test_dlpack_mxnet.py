"""Array-level interop with MXNet 1.9.1 under numpy 2: the import shim, modes, dtypes (real MXNet)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _arrays import RSS_SCRIPT, run_python, same_bits, sample
from conftest import require

import jinit
from jinit.interop import InteropError, from_mxnet, from_torch, to_mxnet
from jinit.interop import _mxnet as adapter

mx = require("mxnet")

DTYPES_MX = ("bool", "int8", "int32", "uint8", "float16", "bfloat16", "float32")

# Snapshot of numpy's namespace (names and the identity of every attribute) in a subprocess.
# Submodules (np.fft, np.testing, ...) are left out: numpy 2 imports them lazily on first
# access, which any importer triggers; that is not an alias the shim leaves behind.
_SNAPSHOT = """
import json, sys, types, numpy as np
{pre}
def snap():
    return {{k: id(v) for k, v in vars(np).items() if not isinstance(v, types.ModuleType)}}
before = snap()
from jinit.interop._mxnet import import_mxnet
mx = import_mxnet()
after = snap()
a = mx.nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
print(json.dumps(dict(same=before == after, added=sorted(set(after) - set(before)),
                      removed=sorted(set(before) - set(after)), version=mx.__version__,
                      pzero=hasattr(np, "PZERO"), total=float(a.sum().asscalar()))))
"""


def test_shim_leaves_numpy_as_found():
    out = run_python(_SNAPSHOT.format(pre=""))
    assert out["version"] == "1.9.1" and out["total"] == 15.0
    assert out["same"] and not out["added"] and not out["removed"] and not out["pzero"]


def test_shim_keeps_user_aliases_and_an_already_imported_mxnet():
    # The user set one of the names themselves: it must survive (same object).
    out = run_python(_SNAPSHOT.format(pre="np.PZERO = 0.0"))
    assert out["same"] and out["pzero"]
    # MXNet already imported through the user's own shim: reused, numpy untouched by jinit.
    pre = (
        "from jinit.interop._mxnet import _numpy2_aliases\n"
        "names = _numpy2_aliases()\n"
        "[setattr(np, k, v) for k, v in names.items()]\n"
        "import mxnet\n"
        "[delattr(np, k) for k in names]"
    )
    out = run_python(_SNAPSHOT.format(pre=pre))
    assert out["same"] and not out["pzero"] and out["version"] == "1.9.1"


def test_missing_mxnet_says_how_to_install():
    out = run_python("""
        import json, sys
        sys.modules["mxnet"] = None  # makes `import mxnet` raise ImportError
        import jax.numpy as jnp
        from jinit.interop import to_mxnet
        try:
            to_mxnet({"w": jnp.ones(2)})
        except Exception as e:
            print(json.dumps(dict(type=type(e).__name__, msg=str(e))))
    """)
    assert out["type"] == "BackendUnavailableError"
    assert "pip install --no-deps mxnet==1.9.1" in out["msg"]


def test_copy_mode_mxnet_write_never_reaches_jax():
    x = sample("float32")
    before = np.asarray(x).copy()
    m, rep = to_mxnet({"w": x}, report=True)
    m["w"][0, 0] = 1e6
    m["w"] *= 3
    mx.nd.waitall()
    np.testing.assert_array_equal(np.asarray(x), before)
    assert not rep["w"].zero_copy and rep["w"].reason == "copy mode"


def test_move_mode_same_pointer_and_deletes_jax_arrays():
    x = sample("float32")
    p = x.unsafe_buffer_pointer()
    m, rep = to_mxnet({"a": x, "b": x}, mode="move", report=True)
    assert adapter.ADAPTER.data_ptr(m["a"]) == p and m["a"] is m["b"]
    assert x.is_deleted() and rep.all_zero_copy and rep["b"].tied_to == "a"
    m["a"] += 1  # MXNet owns the buffer now
    mx.nd.waitall()
    assert m["a"].shape == (3, 5) and all(type(d) is int for d in m["a"].shape)


def test_share_mode_aliases_and_gluon_style_writes_land_in_jax():
    x = jnp.zeros((4,), jnp.float32)
    m = to_mxnet(x, mode="share")
    m[1] = 77
    m += 1
    mx.nd.waitall()  # MXNet is asynchronous
    assert x.tolist() == [1, 78, 1, 1]
    y = from_mxnet(m, mode="share")
    m[0] = 5
    mx.nd.waitall()
    assert float(y[0]) == 5.0


@pytest.mark.parametrize("dtype", DTYPES_MX)
@pytest.mark.parametrize("mode", ["copy", "share"])
def test_dtype_round_trip_bit_exact(dtype, mode):
    x = sample(dtype)
    m, rep = adapter.export_array(x, mode)
    assert adapter.ADAPTER.dtype_name(m) == dtype
    zero_copy = mode == "share" and dtype != "bool"  # bool goes through uint8 (copied)
    assert rep.zero_copy == zero_copy
    back, rec = adapter.import_array_with_record(m, mode)
    assert same_bits(back, x) and rec.zero_copy == zero_copy


def test_bf16_arrives_as_structured_dtype_and_reads_back():
    m = to_mxnet({"w": jnp.array([1.5, -2.25], jnp.bfloat16)}, mode="move")["w"]
    assert np.dtype(m.dtype).names == ("bfloat16",)
    assert m.astype("float32").asnumpy().tolist() == [1.5, -2.25]


def test_x64_dtypes_zero_copy_round_trip():
    with jax.enable_x64(True):
        for dtype in ("float64", "int64"):
            x = sample(dtype)
            m, rep = adapter.export_array(x, "share")
            assert rep.zero_copy and adapter.ADAPTER.dtype_name(m) == dtype
            assert same_bits(adapter.import_array(m, "share"), x)


@pytest.mark.parametrize("dtype,hint", [("int16", "int32"), ("uint16", "int32"), ("uint32", "int32")])
def test_unsupported_dtypes_raise_with_cast_hint(dtype, hint):
    with pytest.raises(jinit.DTypeError, match=rf"'w' has dtype {dtype}, which mxnet cannot hold.*cast=\{{'{dtype}': '{hint}'\}}"):
        to_mxnet({"w": jnp.zeros(2, dtype)})


def test_cast_opt_in_is_range_checked():
    m, rep = to_mxnet({"i": jnp.array([-5, 300], jnp.int16)}, cast={"int16": "int32"}, report=True)
    assert m["i"].asnumpy().tolist() == [-5, 300] and "cast int16->int32" in rep["i"].reason
    with pytest.raises(jinit.DTypeError, match=r"'u': casting uint32 to int32 would wrap around"):
        to_mxnet({"u": jnp.array([2**32 - 1], jnp.uint32)}, cast={"uint32": "int32"})


def test_narrowing_policy_on_import():
    m = mx.nd.array([1, 2**31 + 5], dtype="int64")
    with pytest.raises(jinit.DTypeError, match=r"'m' has dtype int64, which JAX holds only with x64"):
        from_mxnet({"m": m})
    with pytest.raises(jinit.DTypeError, match=r"'m': casting int64 to int32 would wrap around"):
        from_mxnet({"m": m}, allow_narrowing=True)
    ok = from_mxnet(mx.nd.array([1.25], dtype="float64"), allow_narrowing=True)
    assert ok.dtype == jnp.float32 and ok.tolist() == [1.25]


def test_non_row_major_layout_is_made_contiguous_and_reported():
    import torch

    base = torch.arange(12.0).reshape(3, 4)
    j = from_torch(base.T, mode="share")
    m, rep = to_mxnet({"k": j}, mode="share", report=True)
    assert not rep["k"].zero_copy and "made contiguous" in rep["k"].reason
    np.testing.assert_array_equal(m["k"].asnumpy(), base.T.numpy())
    with pytest.raises(InteropError, match=r"(?s)strict=True.*'k': non-row-major"):
        to_mxnet({"k": j}, mode="move", strict=True)
    assert not j.is_deleted()


def test_gluon_parameter_data_imports():
    dense = mx.gluon.nn.Dense(3, in_units=4)
    dense.initialize(mx.init.Xavier())
    params = {k: p.data() for k, p in dense.collect_params().items()}
    x, rep = from_mxnet(params, mode="share", report=True)
    assert rep.all_zero_copy and sorted(v.shape for v in x.values()) == [(3,), (3, 4)]


@pytest.mark.slow
def test_move_export_of_1gib_adds_no_resident_memory():
    out = run_python(RSS_SCRIPT.format(fn="to_mxnet", setup=""))
    assert out["total_mb"] > 1000 and out["zero_copy"] and out["deleted"]
    assert out["delta_mb"] < 20, out
