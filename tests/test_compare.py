"""``python -m jinit compare``: writes a PNG; bad names raise clear errors."""

from __future__ import annotations

import pytest
from conftest import require

from jinit import InitializerArgumentError
from jinit.__main__ import main as cli
from jinit._demos import compare

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cli_writes_png_jax(tmp_path):
    out = tmp_path / "c.png"
    assert cli(["compare", "jax.lecun_normal", "--shape", "64", "48", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000


def test_torch_png_and_matching_samples(tmp_path):
    require("torch")
    out = compare.plot("torch.kaiming_uniform", shape=(128, 256), out=str(tmp_path / "t.png"),
                       a=0.5)
    assert open(out, "rb").read(8) == PNG_MAGIC
    ours, theirs, fw = compare.samples("kaiming_uniform", "torch", (256, 512), a=0.5)
    # Same U(-b, b) law, n = m = 131072: the 0.1% KS critical value is 1.95*sqrt(2/n) = 0.0076.
    assert fw == "torch" and compare._ks(ours.ravel(), theirs.ravel()) < 0.0076


@pytest.mark.parametrize("name, framework, match", [
    ("caffe.xavier", None, "unknown framework 'caffe'"),
    ("torch.xavier_uniform", "keras", "names framework 'torch' but --framework is 'keras'"),
    ("torch.no_such_init", None, "has no initializer 'no_such_init'"),
])
def test_bad_names(name, framework, match):
    with pytest.raises(InitializerArgumentError, match=match):
        compare.samples(name, framework, (4, 4))


def test_kwarg_parsing():
    assert compare._kwarg("a=0.5") == ("a", 0.5)
    assert compare._kwarg("mode=fan_out") == ("mode", "fan_out")
    with pytest.raises(Exception, match="NAME=VALUE"):
        compare._kwarg("oops")


def test_framework_side_missing():
    require("torch")
    with pytest.raises(InitializerArgumentError, match="torch.nn.init has no defaults_"):
        compare.samples("torch.defaults", None, (4, 4))


def test_mxnet_side_missing():
    require("mxnet")
    with pytest.raises(InitializerArgumentError, match="mxnet.init has no initializer 'defaults'"):
        compare.samples("mxnet.defaults", None, (4, 4))
