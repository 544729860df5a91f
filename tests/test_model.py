"""Model: output contract, normalisation semantics, bf16, remat, parameter counts, upsampling."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default, tiny
from dwd_jax.modeling import heads as heads_lib
from dwd_jax.modeling import losses
from dwd_jax.modeling import model as model_lib
from dwd_jax.training import train

SIZE = 160  # One pad multiple: the smallest page the model sees.



def random_heads(tree):
    """`tree` with random head kernels: the zero init makes outputs the priors whatever the
    page, and stops gradients before the backbone."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: (
            jax.random.normal(jax.random.key(len(path)), x.shape) * 0.1
            if "_head" in jax.tree_util.keystr(path) and x.ndim > 1
            else x
        ),
        tree,
    )

def _config(**model):
    c = default.get_config()
    c.model.depth = 18
    c.model.width = 0.125
    c.model.update(model)
    return c


def _pages(batch: int, seed: int = 0) -> jax.Array:
    """White pages with a few black rectangles: f32[batch, SIZE, SIZE, 1]."""
    rng = np.random.default_rng(seed)
    pages = np.full((batch, SIZE, SIZE, 1), 255.0, np.float32)
    for page in pages:
        for y, x in rng.integers(0, SIZE - 12, (5, 2)):
            page[y : y + 6, x : x + 10] = 0.0
    return jnp.asarray(pages)


@pytest.fixture(scope="module")
def grouped():
    """One compiled G = 2 model shared by the tests: (config, variables, pages, outputs)."""
    c = _config(output_strides=(1, 4, 8, 32), box_head="linear")
    c.targets.energy_groups = (("ledgerLine",), ("stem",))
    pages = _pages(2)
    model = model_lib.build_model(c)
    variables = jax.jit(model.init)(jax.random.key(0), pages)
    # Heads start with zero kernels (outputs = priors, whatever the page); random ones make
    # the outputs depend on the features, which these tests compare.
    variables = random_heads(variables)
    apply = jax.jit(model.apply)
    return c, variables, pages, apply


def test_outputs_follow_the_design_contract_and_group_norm_is_per_image(grouped):
    _, variables, pages, apply = grouped
    assert set(variables) == {"params"}  # Nothing mutable: apply is pure.
    outputs = apply(variables, pages)
    assert sorted(outputs) == [1, 4, 8, 32]
    for stride, heads in outputs.items():
        h = SIZE // stride
        assert set(heads) == set(heads_lib.NAMES)  # Every declared head (on by default).
        assert heads["energy"].shape == (2, h, h, 2, 20)
        assert heads["class"].shape == (2, h, h, 2, 137)
        assert heads["box"].shape == (2, h, h, 2, 2)
        assert heads["offset"].shape == (2, h, h, 2, 2)  # configs/default.py has the head.
        for value in heads.values():
            assert value.dtype == jnp.float32
            assert np.isfinite(np.asarray(value)).all()
    # GroupNorm: a page's outputs do not depend on its batch mate.
    other = apply(variables, pages.at[1].set(_pages(1, seed=7)[0]))
    np.testing.assert_allclose(
        np.asarray(other[1]["energy"][0]), np.asarray(outputs[1]["energy"][0]), atol=1e-5
    )


def test_bfloat16_compute_keeps_f32_params_and_outputs_close_to_f32(grouped):
    c, variables, pages, apply = grouped
    c16 = c.copy_and_resolve_references()
    c16.model.dtype = "bfloat16"
    out32 = apply(variables, pages)[1]["energy"]
    out16 = jax.jit(model_lib.build_model(c16).apply)(variables, pages)[1]["energy"]
    assert out16.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
    scale = np.abs(np.asarray(out32)).max()
    error = np.abs(np.asarray(out16) - np.asarray(out32)).max()
    # Tolerance: 5 % of the largest f32 logit. bf16 rounds each conv's inputs to 8 significant
    # bits (up to 0.4 % relative), and dozens of layers' roundings add up before the heads.
    assert 0 < error < 0.05 * scale  # bf16 really ran (not bitwise f32) and stayed close.


def test_batch_norm_uses_the_statistics_of_the_batch(grouped):
    c, variables, pages, _ = grouped
    c_batch = c.copy_and_resolve_references()
    c_batch.model.norm = "batch"  # Same parameters as "group": the fixture's variables fit.
    apply = jax.jit(model_lib.build_model(c_batch).apply)
    first = apply(variables, pages)[8]["energy"][0]
    mate_changed = apply(variables, pages.at[1].set(255.0))[8]["energy"][0]
    assert np.abs(np.asarray(first) - np.asarray(mate_changed)).max() > 1e-3


def test_image_norm_is_batch_norm_at_batch_one_and_ignores_batch_mates(grouped):
    c, variables, pages, _ = grouped
    apply = {}
    for kind in ("image", "batch"):
        ck = c.copy_and_resolve_references()
        ck.model.norm = kind  # Same parameters as "group": the fixture's variables fit.
        apply[kind] = jax.jit(model_lib.build_model(ck).apply)
    alone = [apply["image"](variables, pages[i : i + 1])[8]["energy"] for i in range(2)]
    batch_norm = apply["batch"](variables, pages[:1])[8]["energy"]
    # At batch 1, "image" computes what "batch" computes.
    np.testing.assert_allclose(np.asarray(alone[0]), np.asarray(batch_norm), rtol=1e-6, atol=1e-6)
    together = apply["image"](variables, pages)[8]["energy"]
    for i in range(2):  # In a batch of 2, each page's outputs are its outputs alone.
        # Up to float rounding, relative to the outputs' scale: a batch of 2 compiles to other
        # reduction orders (2.3e-5 apart on outputs up to 7 on an AMD EPYC), while a batch
        # mate's statistics would move every output by a good part of its scale.
        scale = float(np.abs(np.asarray(alone[i])).max())
        np.testing.assert_allclose(
            np.asarray(together[i]), np.asarray(alone[i][0]), rtol=1e-5, atol=2e-5 * scale
        )


@pytest.mark.slow  # Two compiles of the tiny config's loss and gradients.
def test_remat_keeps_the_parameter_tree_loss_and_gradients():
    config = tiny.get_config()
    size, objects = config.data.crop_size, config.data.max_objects
    rng = np.random.default_rng(0)
    y0x0 = rng.uniform(0, size - 16, (2, objects, 2)).astype(np.float32)
    boxes = np.concatenate([y0x0, y0x0 + rng.uniform(3, 16, (2, objects, 2))], -1)
    batch = {
        "image": np.asarray(_pages(2)[:, :size, :size]).astype(np.uint8),
        "boxes": boxes.astype(np.float32),
        "classes": rng.integers(1, 20, (2, objects)).astype(np.int32),
        "valid": rng.random((2, objects)) < 0.7,
    }
    # One output stride: remat wraps the backbone and decoder blocks, which every stride
    # reads, and a smaller graph compiles faster.
    config.model.output_strides = (8,)
    for head in ("energy", "class", "box", "offset"):
        config.loss[f"{head}_strides"] = (8,)
    configs = {}
    for remat in (False, True):
        configs[remat] = config.copy_and_resolve_references()
        configs[remat].model.remat = remat
    nets = {remat: model_lib.build_model(c) for remat, c in configs.items()}
    init = lambda net: model_lib.init_params(net, jax.random.key(0), side=size)
    shapes = {remat: jax.eval_shape(functools.partial(init, net)) for remat, net in nets.items()}
    # The same tree, names, shapes and dtypes: checkpoints are interchangeable.
    assert jax.tree.structure(shapes[False]) == jax.tree.structure(shapes[True])
    assert jax.tree.leaves(shapes[False]) == jax.tree.leaves(shapes[True])
    params = init(nets[False])
    # Random head kernels (not the zero init), so that gradients reach the backbone.
    params = random_heads(params)
    normaliser = losses.init_normaliser(config.loss.normaliser_window)
    step = jnp.int32(3)  # The "combined" stage: every head's loss contributes.
    results = {}
    for remat, net in nets.items():
        loss_fn = functools.partial(train.dwd_loss, net=net, config=configs[remat])
        grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
        results[remat] = grad_fn(params, normaliser, batch, step)
    (loss, _), grads = results[False]
    (loss_remat, _), grads_remat = results[True]
    np.testing.assert_allclose(float(loss_remat), float(loss), rtol=1e-6)
    # The recomputation runs the same ops, but XLA may fuse them differently: float rounding,
    # hence a tolerance relative to each gradient's largest entry.
    for g, g_remat in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat), strict=True):
        scale = np.abs(np.asarray(g)).max()
        np.testing.assert_allclose(np.asarray(g_remat), np.asarray(g), rtol=1e-4, atol=1e-5 * scale)
    assert np.abs(np.asarray(grads["backbone"]["stem"]["kernel"])).max() > 0


def test_group_norm_matches_flax_group_norm():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 24)) * 3.0 + 1.0
    norm = model_lib.Norm("group", 32, jnp.float32)  # gcd(32, 24) = 8 groups.
    variables = norm.init(jax.random.key(1), x)
    reference = nn.GroupNorm(num_groups=8, epsilon=1e-5)
    np.testing.assert_allclose(
        np.asarray(norm.apply(variables, x)),
        np.asarray(reference.apply(reference.init(jax.random.key(1), x), x)),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "depth, backbone_params",
    # torchvision resnet18 / resnet101 without the fc layer and with one input channel instead
    # of three (7*7*64*2 fewer stem weights); GroupNorm has BatchNorm's scale and bias.
    [(18, 11_689_512 - 513_000 - 6_272), (101, 44_549_160 - 2_049_000 - 6_272)],
)
def test_backbone_parameter_count_matches_torchvision_resnet(depth, backbone_params):
    c = _config(depth=depth, width=1.0, output_strides=(1,))
    model = model_lib.build_model(c)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 1)))
    assert model_lib.count_params(shapes["params"]["backbone"]) == backbone_params


def test_no_norm_backbone_convs_have_biases():
    model = model_lib.build_model(_config(norm="none", output_strides=(4,)))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 1)))
    assert "bias" in shapes["params"]["backbone"]["stem"]
    assert "stem_norm" not in shapes["params"]["backbone"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("depth", 42),
        ("norm", "layer"),
        ("dtype", "float16"),
        ("output_strides", (3,)),
        ("box_head", "sqrt"),
    ],
)
def test_bad_model_config_names_the_field(field, value):
    c = _config()
    c.model[field] = value
    with pytest.raises(ValueError, match=f"config.model.{field}"):
        model_lib.build_model(c)


def test_non_multiple_of_32_input_is_rejected():
    model = model_lib.build_model(_config())
    with pytest.raises(ValueError, match="multiples of 32"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 100, 96, 1)))


@pytest.mark.parametrize("factor", [2, 4])
def test_upsample_bilinear_matches_jax_image_resize(factor):
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
    expected = jax.image.resize(x, (2, 5 * factor, 7 * factor, 3), "bilinear")
    np.testing.assert_allclose(
        np.asarray(model_lib.upsample_bilinear(x, factor)), np.asarray(expected), atol=1e-6
    )


def test_heads_on_upsampled_features_equal_upsampled_head_logits():
    # Why the model upsamples stride-4 logits instead of features: the two are the same.
    features = jax.random.normal(jax.random.key(0), (1, 6, 5, 16))
    head = nn.Conv(7, (1, 1))
    variables = head.init(jax.random.key(1), features)
    np.testing.assert_allclose(
        np.asarray(model_lib.upsample_bilinear(head.apply(variables, features), 4)),
        np.asarray(head.apply(variables, model_lib.upsample_bilinear(features, 4))),
        atol=1e-5,
    )


def test_log_box_head_returns_exp_of_the_linear_heads_output(grouped):
    c, variables, pages, apply = grouped
    linear = apply(variables, pages)
    c = c.copy_and_resolve_references()
    c.model.box_head = "log"
    logged = jax.jit(model_lib.build_model(c).apply)(variables, pages)  # Same parameters.
    for stride in linear:
        np.testing.assert_allclose(
            np.asarray(logged[stride]["box"]),
            np.exp(np.clip(np.asarray(linear[stride]["box"]), -4, 9)),
            rtol=1e-4,
        )
        np.testing.assert_allclose(logged[stride]["energy"], linear[stride]["energy"], atol=1e-5)


def test_a_fresh_model_outputs_the_head_priors():
    c = _config(output_strides=(2,))
    pages = _pages(1)
    net = model_lib.build_model(c)
    outputs = jax.jit(net.apply)(jax.jit(net.init)(jax.random.key(0), pages), pages)[2]
    p = jax.nn.softmax(outputs["energy"], axis=-1)
    np.testing.assert_allclose(p[..., 0], model_lib.BACKGROUND_PRIOR, rtol=1e-5)
    np.testing.assert_allclose(jax.nn.softmax(outputs["class"], -1), 1 / 137, rtol=1e-5)
    np.testing.assert_allclose(outputs["box"], model_lib.INITIAL_BOX_SIZE, rtol=1e-5)
    np.testing.assert_array_equal(outputs["offset"], 0.0)
    c.model.offset_head = False
    net = model_lib.build_model(c)
    assert "offset" not in jax.eval_shape(net.apply, net.init(jax.random.key(0), pages), pages)[2]


def test_class_size_prior_adds_the_size_of_the_pixels_class():
    c = _config(output_strides=(2,))
    pages = _pages(1)
    net = model_lib.build_model(c)
    params = jax.jit(net.init)(jax.random.key(0), pages)["params"]
    assert params["class_size_prior"].shape == (137, 2)
    # A class head sure of class 5 everywhere (bias 50 on it), and class 5's usual size 30x60.
    params["class_head2"]["bias"] = params["class_head2"]["bias"].at[5::137].set(50.0)
    params["class_size_prior"] = (
        params["class_size_prior"].at[5].set(jnp.log(jnp.array([30.0, 60.0])))
    )
    box = jax.jit(net.apply)({"params": params}, pages)[2]["box"]
    np.testing.assert_allclose(box, np.broadcast_to([30.0, 60.0], box.shape), rtol=1e-4)

    # The box loss trains the table and the box head, never the class head.
    def box_sum(params):
        return net.apply({"params": params}, pages)[2]["box"].sum()

    grads = jax.jit(jax.grad(box_sum))(params)
    assert float(jnp.abs(grads["class_size_prior"][5]).sum()) > 0
    assert float(jnp.abs(grads["box_head2"]["bias"]).sum()) > 0
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["class_head2"]))

    c.model.class_size_prior = False
    net = model_lib.build_model(c)
    assert "class_size_prior" not in jax.eval_shape(net.init, jax.random.key(0), pages)["params"]


@pytest.mark.parametrize("size", [3, 5])
def test_max_pool_same_matches_flax_max_pool(size):
    x = jax.random.normal(jax.random.key(size), (2, 9, 7, 3))  # No ties: gradients agree too.
    reference = lambda x: nn.max_pool(x, (size, size), (1, 1), padding="SAME")  # noqa: E731
    np.testing.assert_array_equal(model_lib.max_pool_same(x, size), reference(x))
    weights = jax.random.normal(jax.random.key(9), x.shape)
    grad = lambda f: jax.grad(lambda x: (f(x) * weights).sum())(x)  # noqa: E731
    np.testing.assert_allclose(
        grad(lambda x: model_lib.max_pool_same(x, size)), grad(reference), atol=1e-6
    )
