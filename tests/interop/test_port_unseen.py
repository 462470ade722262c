"""Porting models the equivalence proofs did not cover: tied weights, nnx attribute order,
parameter-free layers, collection handling, nested torch hierarchies (regressions from QA)."""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax_models import assert_close, assert_same_tree

from jinit._errors import PortError, RuleError
from jinit.interop._load_torch import load_torch, params_from_torch


@pytest.fixture(scope="module")
def torch():
    t = require("torch")
    t.manual_seed(0)
    return t


def to_t(torch, x):
    return torch.from_numpy(np.array(x))


class TiedLM(fnn.Module):
    """Embedding, a Dense, and the embedding reused as the output head (``Embed.attend``)."""

    @fnn.compact
    def __call__(self, tokens):
        embed = fnn.Embed(20, 8)
        return embed.attend(fnn.Dense(8)(embed(tokens)))


@pytest.mark.parametrize("mode", ["copy", "share", "move"])
def test_torch_tied_head_is_filled_through_its_owner_and_stays_tied(torch, mode):
    nn = torch.nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(8, 8)
            self.head = nn.Linear(8, 20, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, tokens):
            return self.head(self.fc(self.emb(tokens)))

    tokens = jax.random.randint(jax.random.key(1), (2, 5), 0, 20)
    variables = TiedLM().init(jax.random.key(0), tokens)
    ref = TiedLM().apply(variables, tokens)
    tm = LM()
    rep = load_torch(tm, jax.tree.map(jnp.copy, variables), mode=mode)
    assert rep.ok and [p.target for p in rep.params] == ["emb.weight", "fc.weight", "fc.bias"]
    assert tm.head.weight is tm.emb.weight  # move/share replace the Parameter: every holder gets it
    with torch.no_grad():
        assert_close(ref, tm(to_t(torch, tokens)).numpy())
    assert_same_tree(params_from_torch(tm, like=variables), variables)


def test_torch_partly_tied_layer_is_reported_not_loaded(torch):
    nn = torch.nn
    tm = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)})
    tm["b"].weight = tm["a"].weight  # b keeps its own bias: no Flax layer looks like that
    variables = {"params": {f"Dense_{i}": {"kernel": jnp.ones((4, 4)), "bias": jnp.zeros(4)} for i in range(2)}}
    with pytest.raises(PortError, match=r"weight \(tied to a\): a layer with some weights tied"):
        load_torch(tm, variables)


def test_nnx_module_pairs_in_attribute_creation_order(torch):
    """nnx.state sorts attribute names ('head' < 'stem'); the Module's own order is creation order."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.stem = nnx.Linear(5, 8, rngs=rngs)
            self.blocks = nnx.List([nnx.Linear(8, 8, rngs=rngs) for _ in range(11)])
            self.head = nnx.Linear(8, 3, use_bias=False, rngs=rngs)

        def __call__(self, x):
            x = self.stem(x)
            for b in self.blocks:
                x = x + jax.nn.relu(b(x))
            return self.head(x)

    nn = torch.nn

    class T(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Linear(5, 8)
            self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(11)])
            self.head = nn.Linear(8, 3, bias=False)

        def forward(self, x):
            x = self.stem(x)
            for b in self.blocks:
                x = x + torch.relu(b(x))
            return self.head(x)

    m, tm = Net(nnx.Rngs(0)), T()
    assert list(nnx.state(m).to_pure_dict()) == ["blocks", "head", "stem"]
    load_torch(tm, m)
    x = jax.random.normal(jax.random.key(1), (2, 5))
    with torch.no_grad():
        assert_close(m(x), tm(to_t(torch, x)).numpy())
    assert_same_tree(params_from_torch(tm, like=m), nnx.state(m))
    rep = load_torch(tm, nnx.state(m))  # sorted by name (head before stem): names pair it
    assert rep.ok and {p.paired_by for p in rep.params} == {"name"}


def test_parameter_free_layers_and_collections(torch):
    nn = torch.nn
    x = jax.random.normal(jax.random.key(1), (3, 5))
    fm = fnn.Sequential([fnn.Dense(6), fnn.LayerNorm(use_scale=False, use_bias=False)])
    variables = fm.init(jax.random.key(0), x)
    tm = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6, eps=1e-6, elementwise_affine=False))
    assert load_torch(tm, variables).ok  # a LayerNorm without parameters is not "missing"
    with torch.no_grad():
        assert_close(fm.apply(variables, x), tm(to_t(torch, x)).numpy())

    # batch_stats only (BatchNorm without scale/bias): paths are not prefixed by the collection
    bn = fnn.BatchNorm(use_running_average=True, use_scale=False, use_bias=False, momentum=0.9)
    stats = bn.init(jax.random.key(0), x)
    assert list(stats) == ["batch_stats"]
    rep = load_torch(nn.BatchNorm1d(5, affine=False), stats, source=bn)
    assert rep.ok and not rep.warnings and [p.source for p in rep.params] == [("batch_stats/mean",), ("batch_stats/var",)]
    rep = load_torch(nn.BatchNorm1d(5, affine=False, momentum=0.5), stats)
    assert any("momentum of the Flax layer is unknown (assumed: Flax's default, not read from the model: 0.99, "
               "i.e. 0.01 in torch's convention,)" in w for w in rep.warnings)

    with pytest.raises(RuleError, match=r"collections \['intermediates'\] hold no parameters"):
        load_torch(tm, {**variables, "intermediates": {"h": (jnp.ones(3),)}})


def test_nested_torch_hierarchy_with_mapping_of_nested_names(torch):
    """Registration order differs from creation order: names pair enc/head, structure the rest."""
    nn = torch.nn

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8, bias=False)

    class T(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 3)  # registered first, applied last
            self.blocks = nn.ModuleList([Res(), Res()])
            self.enc = nn.Linear(5, 8)

        def forward(self, x):
            h = torch.relu(self.enc(x))
            for b in self.blocks:
                h = h + torch.relu(b.lin(h))
            return self.head(h)

    class F(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            h = jax.nn.relu(fnn.Dense(8, name="enc")(x))
            for i in range(2):
                h = h + jax.nn.relu(fnn.Dense(8, use_bias=False, name=f"blk{i}")(h))
            return fnn.Dense(3, name="head")(h)

    x = jax.random.normal(jax.random.key(1), (2, 5))
    variables = F().init(jax.random.key(0), x)
    tm = T()
    rep = load_torch(tm, variables)
    assert [(p.target, p.paired_by) for p in rep.params] == [
        ("head.weight", "name"), ("head.bias", "name"), ("blocks.0.lin.weight", "structure"),
        ("blocks.1.lin.weight", "structure"), ("enc.weight", "name"), ("enc.bias", "name")]
    with torch.no_grad():
        assert_close(F().apply(variables, x), tm(to_t(torch, x)).numpy())
    mapping = {"enc": "enc", "head": "head", "blk0": "blocks.0.lin", "blk1": "blocks.1.lin"}
    load_torch(tm, variables, mapping=mapping)
    with torch.no_grad():
        assert_close(F().apply(variables, x), tm(to_t(torch, x)).numpy())
    assert_same_tree(params_from_torch(tm, like=variables, mapping=mapping), variables)
