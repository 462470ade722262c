"""`import jinit.interop` (and resolving its public names) imports no framework."""

from __future__ import annotations

from _arrays import run_python

_FRAMEWORKS = ("torch", "tensorflow", "keras", "mxnet")


def test_import_and_attribute_access_import_no_framework():
    out = run_python(f"""
        import json, sys
        import jinit, jinit.interop as interop
        names = sorted(interop.__all__)
        fns = [getattr(interop, n) for n in names]  # resolves the lazy names
        print(json.dumps(dict(loaded=[m for m in {_FRAMEWORKS!r} if m in sys.modules],
                              names=names, dir_ok=set(names) <= set(dir(interop)))))
    """)
    assert out["loaded"] == [], out
    assert {"to_torch", "from_torch", "to_tensorflow", "from_tensorflow", "to_mxnet",
            "from_mxnet", "ExportRecord", "ExportReport"} <= set(out["names"])
    assert out["dir_ok"]


def test_unknown_attribute_raises_attribute_error():
    import pytest

    import jinit.interop

    with pytest.raises(AttributeError, match="has no attribute 'to_caffe'"):
        jinit.interop.to_caffe  # noqa: B018
