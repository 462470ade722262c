"""Proof by equivalence: Flax models ported to torch compute the same function; round trips."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax_models import assert_close, assert_same_tree, build

from jinit._errors import PortError
from jinit.interop._load_torch import load_torch, params_from_torch


@pytest.fixture(scope="module")
def torch():
    t = require("torch")
    t.manual_seed(0)
    return t


def torch_model(torch, name):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(8, eps=1e-6)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.ln2 = nn.LayerNorm(8, eps=1e-6)
            self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4, eps=1e-5, momentum=0.01)
            self.fc = nn.Linear(4 * 4 * 4, 5)

        def forward(self, x):  # x: NHWC like Flax; convs run NCHW; flatten channels-last
            x = self.bn(self.conv(x.permute(0, 3, 1, 2)))
            x = nn.functional.avg_pool2d(torch.relu(x), 2)
            return self.fc(x.permute(0, 2, 3, 1).flatten(1))

    class RNN(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.embed = nn.Embedding(20, 6)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(6, 5, batch_first=True)
            self.fc = nn.Linear(5, 3)

        def forward(self, tokens):
            return self.fc(self.rnn(self.embed(tokens))[0][:, -1])

    if name == "mlp":
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    if name == "cnn":
        return CNN().eval()
    if name in ("lstm", "gru"):
        return RNN(name)
    return Block()


def to_t(torch, x):
    return torch.from_numpy(np.array(x))


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "gru", "block"])
def test_equivalent_forward_and_bit_exact_round_trip(torch, name):
    fm, variables, x = build(name)
    tm = torch_model(torch, name)
    report = load_torch(tm, variables)
    assert report.ok and len(report.params) == len(dict(tm.named_parameters())) + len(
        [b for n, b in tm.named_buffers() if not n.endswith("num_batches_tracked")]
    )
    with torch.no_grad():
        got = tm(to_t(torch, x)).numpy()
    assert_close(fm.apply(variables, x), got)
    assert_same_tree(params_from_torch(tm, like=variables), variables)


def test_share_and_move_are_zero_copy_views(torch):
    fm, variables, x = build("mlp")
    kernel = variables["params"]["layers_0"]["kernel"]
    tm = torch_model(torch, "mlp")
    rep = load_torch(tm, variables, mode="share")
    assert rep.zero_copy == 4
    w = tm[0].weight
    assert w.data_ptr() == kernel.unsafe_buffer_pointer() and not w.is_contiguous()
    assert isinstance(w, torch.nn.Parameter) and w.requires_grad
    with torch.no_grad():  # the documented hazard of share: torch writes reach JAX
        w[0, 0] = 42.0
    assert float(kernel[0, 0]) == 42.0

    _, variables, _ = build("mlp")
    leaves = jax.tree.leaves(variables)
    rep = load_torch(tm, variables, mode="move")
    assert rep.zero_copy == 4 and all(x.is_deleted() for x in leaves)
    with torch.no_grad():
        assert_close(fm.apply(build("mlp")[1], x), tm(to_t(torch, x)).numpy())


def test_copy_mode_never_aliases_and_keeps_parameter_objects(torch):
    _, variables, _ = build("mlp")
    tm = torch_model(torch, "mlp")
    before = tm[0].weight
    rep = load_torch(tm, variables)
    assert tm[0].weight is before and rep.zero_copy == 0
    kernel = variables["params"]["layers_0"]["kernel"]
    snapshot = np.array(kernel)
    np.testing.assert_array_equal(tm[0].weight.detach().numpy().T, snapshot)
    with torch.no_grad():
        tm[0].weight.add_(1.0)
    np.testing.assert_array_equal(np.asarray(kernel), snapshot)


def test_lstm_copies_and_reports_the_gate_concat(torch):
    _, variables, _ = build("lstm")
    tm = torch_model(torch, "lstm")
    rep = load_torch(tm, variables, mode="share")
    by = {p.target: p for p in rep.params}
    assert by["rnn.weight_ih_l0"].source == tuple(f"params/LSTMCell_0/i{g}/kernel" for g in "ifgo")
    assert "concat" in by["rnn.weight_ih_l0"].transform and not by["rnn.weight_ih_l0"].zero_copy
    assert float(tm.rnn.bias_ih_l0.detach().abs().max()) == 0.0  # Flax's single bias lives in b_hh


def test_strict_reports_everything_together_and_changes_nothing(torch):
    _, variables, _ = build("block")
    nn = torch.nn
    tm = nn.Sequential(nn.LayerNorm(8),  # eps 1e-5 != Flax 1e-6
                       nn.MultiheadAttention(8, 2, batch_first=True),
                       nn.Linear(8, 15),  # wrong width
                       nn.Conv1d(3, 3, 1))  # nothing in Flax for it
    state = {k: v.clone() for k, v in tm.state_dict().items()}
    flat = jax.tree.leaves(variables)
    with pytest.raises(PortError, match="nothing was changed") as e:
        load_torch(tm, variables)
    rep = e.value.report
    assert any("epsilon" in m for m in rep.mismatched)
    assert any("'weight': shape (16, 8) after conversion, target has (15, 8)" in m for m in rep.mismatched)
    assert any(m.startswith("3 (conv1d)") for m in rep.missing)
    assert any(u.startswith("LayerNorm_1") for u in rep.unexpected)
    assert all(torch.equal(state[k], v) for k, v in tm.state_dict().items())
    assert not any(x.is_deleted() for x in flat)
    # non-strict: loads what fits, reports the rest
    rep = load_torch(tm, variables, strict=False)
    assert {p.target.split(".")[0] for p in rep.params} == {"1"} and not rep.ok


def test_square_kernel_transposition_is_right_by_kind(torch):
    """A square Dense kernel can't be shape-checked: the Dense rule always transposes."""
    k = jnp.arange(16.0).reshape(4, 4)
    variables = {"params": {"Dense_0": {"kernel": k, "bias": jnp.zeros(4)}}}
    lin = torch.nn.Linear(4, 4)
    load_torch(lin, variables)
    np.testing.assert_array_equal(lin.weight.detach().numpy(), np.asarray(k).T)


def test_eps_and_momentum_conventions(torch):
    _, variables, _ = build("cnn")
    tm = torch_model(torch, "cnn")
    tm.bn.momentum = 0.1  # Flax 0.99 == torch 0.01: a training-only difference -> warning
    rep = load_torch(tm, variables)
    assert rep.ok and any("momentum" in w and "0.01" in w for w in rep.warnings)
    tm.bn.eps = 1e-3
    with pytest.raises(PortError, match=r"epsilon of the Flax layer is unknown \(assumed: Flax's default, not read "
                                        r"from the model: 1e-05\) and the target has 0.001; pass source="):
        load_torch(tm, variables)
    rep = load_torch(tm, variables, hparams={"BatchNorm_0": {"epsilon": 1e-3, "momentum": 0.9}})
    assert rep.ok and not rep.warnings


@pytest.mark.slow
def test_mapping_and_sorted_dicts(torch):
    """Twelve Dense layers after jax.tree.map (keys sorted: Dense_10 < Dense_2) still pair in order."""
    import flax.linen as fnn

    widths = list(range(3, 15))  # 11 layers: layers_10 exists
    layers = [fnn.Dense(w) for w in widths[1:]]
    fm = fnn.Sequential(layers)
    x = jnp.ones((1, 3))
    variables = jax.tree.map(lambda a: a, fm.init(jax.random.key(0), x))
    assert list(variables["params"])[:3] == ["layers_0", "layers_1", "layers_10"]
    tm = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False)])
    load_torch(tm, variables)
    with torch.no_grad():
        assert_close(fm.apply(variables, x), tm(torch.ones(1, 3)).numpy())
    # an explicit mapping pins pairs; a bad key names the available layers
    two = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 4), "b": torch.nn.Linear(3, 4)})
    v2 = {"params": {"x": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)},
                     "y": {"kernel": 2 * jnp.ones((3, 4)), "bias": jnp.zeros(4)}}}
    load_torch(two, v2, mapping={"x": "b", "y": "a"})
    assert float(two["a"].weight[0, 0].detach()) == 2.0 and float(two["b"].weight[0, 0].detach()) == 1.0
    with pytest.raises(KeyError, match="no Flax layer 'z'"):
        load_torch(two, v2, mapping={"z": "a"})
    with pytest.raises(KeyError, match="no target layer 'c'"):
        load_torch(two, v2, mapping={"x": "c"})


@pytest.mark.parametrize("n", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_conv_ranks_groups_and_transpose(torch, n):
    import flax.linen as fnn

    x = jax.random.normal(jax.random.key(1), (1,) + (3,) * n + (4,))
    xt = to_t(torch, x).permute(0, n + 1, *range(1, n + 1))
    back = (0,) + tuple(range(2, n + 2)) + (1,)
    Conv = getattr(torch.nn, f"Conv{n}d")
    ConvT = getattr(torch.nn, f"ConvTranspose{n}d")
    cases = [
        (fnn.Conv(6, (2,) * n, padding="VALID", feature_group_count=2), Conv(4, 6, 2, groups=2)),
        (fnn.ConvTranspose(6, (2,) * n, padding="VALID"), ConvT(4, 6, 2)),
        (fnn.ConvTranspose(6, (2,) * n, padding="VALID", transpose_kernel=True), ConvT(4, 6, 2)),
    ]
    for fm, tm in cases:
        v = fm.init(jax.random.key(0), x)
        hp = {"": {"transpose_kernel": True}} if getattr(fm, "transpose_kernel", False) else None
        load_torch(tm, v, hparams=hp)
        with torch.no_grad():
            assert_close(fm.apply(v, x), tm(xt).permute(*back).numpy())
        assert_same_tree(params_from_torch(tm, like=v, hparams=hp), v)


def test_groupnorm_and_nnx(torch):
    from flax import nnx

    m = nnx.Sequential(nnx.Linear(3, 8, rngs=nnx.Rngs(0)),
                       nnx.GroupNorm(8, num_groups=2, rngs=nnx.Rngs(0)),
                       nnx.LayerNorm(8, epsilon=1e-5, rngs=nnx.Rngs(0)))
    tm = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.GroupNorm(2, 8, eps=1e-6), torch.nn.LayerNorm(8))
    load_torch(tm, m)  # hyper-parameters read from the nnx modules
    x = jax.random.normal(jax.random.key(1), (2, 3))
    with torch.no_grad():
        assert_close(m(x), tm(to_t(torch, x)).numpy())
    tm[1].num_groups = 4
    with pytest.raises(PortError, match="num_groups"):
        load_torch(tm, m)
    state = params_from_torch(torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.GroupNorm(2, 8, eps=1e-6),
                                                  torch.nn.LayerNorm(8)), like=m)
    assert type(state).__name__ == "State"
