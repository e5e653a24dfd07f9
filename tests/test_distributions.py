"""Tests of kerasrl.distributions against scipy/numpy references, on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from scipy import integrate, special, stats

from kerasrl import distributions as D
from kerasrl.errors import ArgumentError, InputError, UnknownTypeError
from kerasrl.specs import ValueSpec

BACKEND = keras.backend.backend()
SHAPES = [(), (2, 3)]


# ---------------------------------------------------------------------- helpers
def np_(x):
    return ops.convert_to_numpy(x)


def tensors(params):
    return {key: ops.convert_to_tensor(np.asarray(value, dtype="float32")) for key, value in params.items()}


def run_compiled(fn, *args, seed=None):
    """Runs `fn(*args)` in the backend's compiled mode (jax.jit / tf.function / torch eager).

    With a `SeedGenerator`, its state is threaded through the jitted function as the
    kerasrl JAX backend does (a `StatelessScope`), and written back afterwards.
    """
    if BACKEND == "jax":
        import jax

        if seed is None:
            return jax.jit(fn)(*args)

        def pure(state, *inner_args):
            with keras.StatelessScope(state_mapping=[(seed.state, state)]) as scope:
                outputs = fn(*inner_args)
            return outputs, scope.get_current_value(seed.state)

        outputs, new_state = jax.jit(pure)(seed.state.value, *args)
        seed.state.assign(new_state)
        return outputs
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)(*args)
    return fn(*args)


def random_mask(rng, shape, num_values):
    """A random bool mask with at least one True per position."""
    mask = rng.random(shape + (num_values,)) < 0.5
    forced = rng.integers(num_values, size=shape)
    np.put_along_axis(mask, forced[..., None], True, axis=-1)
    return mask


def np_log_softmax(logits, mask=None):
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sum_action(x, shape):
    return x.reshape(x.shape[0], -1).sum(axis=1) if shape else x


def int_spec(shape, n=5):
    return ValueSpec(type="int", shape=shape, num_values=n)


def chi2_ok(counts, probs, df_extra=0):
    """Chi-square goodness of fit with a very generous threshold (p = 1e-6)."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() * np.asarray(probs, dtype=np.float64)
    keep = expected > 0
    statistic = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    return statistic < stats.chi2.ppf(1 - 1e-6, keep.sum() - 1 + df_extra)


# ---------------------------------------------------------------------- special functions
def test_lgamma_digamma_match_scipy():
    x = np.concatenate([np.linspace(0.05, 5.0, 50), np.geomspace(5.0, 2000.0, 30)]).astype("float32")
    lgamma = np_(D._lgamma(ops.convert_to_tensor(x)))
    digamma = np_(D._digamma(ops.convert_to_tensor(x)))
    np.testing.assert_allclose(lgamma, special.gammaln(x.astype(np.float64)), rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(digamma, special.digamma(x.astype(np.float64)), rtol=2e-6, atol=2e-5)


# ---------------------------------------------------------------------- categorical
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_categorical_log_prob_entropy_kl(shape, masked):
    rng = np.random.default_rng(0)
    n, batch = 5, 7
    dist = D.Categorical(int_spec(shape, n))
    logits_p = rng.normal(size=(batch,) + shape + (n,)) * 2.0
    logits_q = rng.normal(size=(batch,) + shape + (n,)) * 2.0
    mask = random_mask(rng, (batch,) + shape, n) if masked else None
    allowed = mask if masked else np.ones_like(logits_p, dtype=bool)
    action = np.argmax(rng.random(allowed.shape) * allowed, axis=-1)  # an allowed value
    log_p = np_log_softmax(logits_p, mask)
    log_q = np_log_softmax(logits_q, mask)
    p = np.exp(log_p)
    expected_log_prob = sum_action(np.take_along_axis(log_p, action[..., None], -1)[..., 0], shape)
    with np.errstate(invalid="ignore"):  # 0 * -inf at forbidden values, dropped by the where
        expected_entropy = sum_action(-np.where(allowed, p * log_p, 0.0).sum(-1), shape)
        expected_kl = sum_action(np.where(allowed, p * (log_p - log_q), 0.0).sum(-1), shape)

    params_p, params_q = tensors({"logits": logits_p}), tensors({"logits": logits_q})
    mask_t = None if mask is None else ops.convert_to_tensor(mask)
    log_prob = np_(dist.log_prob(params_p, ops.convert_to_tensor(action.astype("int64")), mask_t))
    entropy = np_(dist.entropy(params_p, mask_t))
    kl = np_(dist.kl_divergence(params_p, params_q, mask_t))
    assert log_prob.shape == entropy.shape == kl.shape == (batch,)
    np.testing.assert_allclose(log_prob, expected_log_prob, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(entropy, expected_entropy, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np_(dist.kl_divergence(params_p, params_p, mask_t)), 0.0, atol=1e-5)


def test_categorical_masked_value_has_negligible_probability_and_no_nan():
    dist = D.Categorical(int_spec((), 3))
    params = tensors({"logits": [[100.0, -100.0, 0.0]]})
    mask = ops.convert_to_tensor(np.array([[False, True, True]]))
    log_prob = np_(dist.log_prob(params, ops.convert_to_tensor([0]), mask))
    assert np.isfinite(log_prob).all() and log_prob[0] < -1e6
    assert np.isfinite(np_(dist.entropy(params, mask))).all()
    assert np.isfinite(np_(dist.kl_divergence(params, params, mask))).all()
    assert np_(dist.mode(params, mask)).tolist() == [2]


@pytest.mark.parametrize("shape", SHAPES)
def test_categorical_sampling_never_returns_masked_values(shape):
    rng = np.random.default_rng(1)
    n, batch = 6, 512
    dist = D.Categorical(int_spec(shape, n))
    logits = rng.normal(size=(batch,) + shape + (n,)) * 3.0
    mask = random_mask(rng, (batch,) + shape, n)
    # Forbid the most likely value everywhere it is not the only allowed one.
    best = np.argmax(logits, axis=-1)[..., None]
    only_one = mask.sum(-1, keepdims=True) == 1
    np.put_along_axis(mask, best, only_one, axis=-1)
    assert mask.any(-1).all()
    seed = keras.random.SeedGenerator(3)
    params, mask_t = tensors({"logits": logits}), ops.convert_to_tensor(mask)
    for _ in range(8):
        action = np_(dist.sample(params, seed, mask_t))
        assert action.shape == (batch,) + shape
        assert action.dtype == np.int32
        assert np.take_along_axis(mask, action[..., None].astype(np.int64), -1).all()
    mode = np_(dist.mode(params, mask_t))
    assert np.take_along_axis(mask, mode[..., None].astype(np.int64), -1).all()
    expected_mode = np.argmax(np.where(mask, logits, -np.inf), axis=-1)
    np.testing.assert_array_equal(mode, expected_mode)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_categorical_sampling_frequencies_match_softmax(temperature):
    logits = np.array([1.0, 0.0, -1.0, 0.5, 2.0], dtype="float32")
    mask = np.array([True, True, False, True, True])
    batch = 20000
    dist = D.Categorical(int_spec((), 5))
    params = tensors({"logits": np.tile(logits, (batch, 1))})
    mask_t = ops.convert_to_tensor(np.tile(mask, (batch, 1)))
    action = np_(dist.sample(params, keras.random.SeedGenerator(7), mask_t, temperature))
    counts = np.bincount(action, minlength=5)
    probs = np.exp(np_log_softmax(logits / temperature, mask))
    assert counts[2] == 0
    assert chi2_ok(counts, probs)
    # A wrong distribution (no temperature, no mask renormalisation) is rejected.
    assert not chi2_ok(counts, np.exp(np_log_softmax(logits)))


def test_categorical_zero_temperature_is_mode():
    rng = np.random.default_rng(2)
    dist = D.Categorical(int_spec((2, 3), 4))
    params = tensors({"logits": rng.normal(size=(10, 2, 3, 4))})
    action = dist.sample(params, keras.random.SeedGenerator(0), temperature=0.0)
    np.testing.assert_array_equal(np_(action), np_(dist.mode(params)))


def test_categorical_explore():
    batch = 6000
    dist = D.Categorical(int_spec((), 4))
    mask = np.tile([True, False, True, True], (batch, 1))
    action = ops.convert_to_tensor(np.zeros(batch, dtype="int32"))
    seed = keras.random.SeedGenerator(11)
    unchanged = np_(dist.explore(action, 0.0, seed, ops.convert_to_tensor(mask)))
    assert (unchanged == 0).all()
    explored = np_(dist.explore(action, 1.0, seed, ops.convert_to_tensor(mask)))
    counts = np.bincount(explored, minlength=4)
    assert counts[1] == 0 and chi2_ok(counts, [1 / 3, 0.0, 1 / 3, 1 / 3])
    half = np_(dist.explore(action, 0.5, seed, ops.convert_to_tensor(mask)))
    # P(kept) = 0.5 + 0.5 / 3 for value 0
    assert abs((half == 0).mean() - 2 / 3) < 0.03


# ---------------------------------------------------------------------- bernoulli
@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_against_scipy(shape):
    rng = np.random.default_rng(3)
    batch = 9
    dist = D.Bernoulli(ValueSpec(type="bool", shape=shape))
    logits_p = rng.normal(size=(batch,) + shape) * 2.0
    logits_q = rng.normal(size=(batch,) + shape) * 2.0
    p, q = special.expit(logits_p), special.expit(logits_q)
    action = rng.random((batch,) + shape) < 0.5
    expected_log_prob = sum_action(stats.bernoulli.logpmf(action, p), shape)
    expected_entropy = sum_action(stats.bernoulli.entropy(p), shape)
    expected_kl = sum_action(
        sum(stats.bernoulli.pmf(x, p) * (stats.bernoulli.logpmf(x, p) - stats.bernoulli.logpmf(x, q))
            for x in (0, 1)),
        shape,
    )
    params_p, params_q = tensors({"logits": logits_p}), tensors({"logits": logits_q})
    np.testing.assert_allclose(
        np_(dist.log_prob(params_p, ops.convert_to_tensor(action))), expected_log_prob, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(np_(dist.entropy(params_p)), expected_entropy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_(dist.kl_divergence(params_p, params_q)), expected_kl, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np_(dist.mode(params_p)), logits_p > 0)


def test_bernoulli_sampling_frequencies_and_explore():
    batch = 20000
    logits = np.array([-1.0, 0.0, 2.0], dtype="float32")
    dist = D.Bernoulli(ValueSpec(type="bool", shape=(3,)))
    params = tensors({"logits": np.tile(logits, (batch, 1))})
    seed = keras.random.SeedGenerator(5)
    action = np_(dist.sample(params, seed))
    assert action.dtype == np.bool_ and action.shape == (batch, 3)
    for i, probability in enumerate(special.expit(logits)):
        true_count = action[:, i].sum()
        assert chi2_ok([batch - true_count, true_count], [1 - probability, probability])
    np.testing.assert_array_equal(np_(dist.sample(params, seed, temperature=0.0)), np.tile(logits > 0, (batch, 1)))
    explored = np_(dist.explore(ops.convert_to_tensor(np.zeros((batch, 3), bool)), 1.0, seed))
    assert abs(explored.mean() - 0.5) < 0.02


# ---------------------------------------------------------------------- gaussian
def gaussian_params(rng, shape, batch=8):
    return {
        "mean": rng.normal(size=(batch,) + shape),
        "log_stddev": rng.uniform(-1.5, 0.8, size=(batch,) + shape),
    }


@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_against_scipy(shape):
    rng = np.random.default_rng(4)
    dist = D.Gaussian(ValueSpec(type="float", shape=shape))
    p, q = gaussian_params(rng, shape), gaussian_params(rng, shape)
    action = rng.normal(size=p["mean"].shape) * 2.0
    sigma_p, sigma_q = np.exp(p["log_stddev"]), np.exp(q["log_stddev"])
    expected_log_prob = sum_action(stats.norm.logpdf(action, p["mean"], sigma_p), shape)
    expected_entropy = sum_action(stats.norm.entropy(p["mean"], sigma_p), shape)
    params_p, params_q = tensors(p), tensors(q)
    log_prob = np_(dist.log_prob(params_p, ops.convert_to_tensor(action.astype("float32"))))
    np.testing.assert_allclose(log_prob, expected_log_prob, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np_(dist.entropy(params_p)), expected_entropy, rtol=1e-5, atol=1e-5)
    kl = np_(dist.kl_divergence(params_p, params_q))
    # Reference KL by numerical integration, for the first batch element.
    flat = lambda x: x.reshape(x.shape[0], -1)[0]  # noqa: E731
    expected_kl = 0.0
    for mu_p, s_p, mu_q, s_q in zip(flat(p["mean"]), flat(sigma_p), flat(q["mean"]), flat(sigma_q)):
        integrand = lambda x, a=mu_p, b=s_p, c=mu_q, d=s_q: stats.norm.pdf(x, a, b) * (  # noqa: E731
            stats.norm.logpdf(x, a, b) - stats.norm.logpdf(x, c, d)
        )
        expected_kl += integrate.quad(integrand, mu_p - 12 * s_p, mu_p + 12 * s_p)[0]
    np.testing.assert_allclose(kl[0], expected_kl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np_(dist.mode(params_p)), p["mean"], rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_gaussian_change_of_variables(shape):
    rng = np.random.default_rng(5)
    low, high = -2.0, 3.0
    dist = D.Gaussian(ValueSpec(type="float", shape=shape, min_value=low, max_value=high))
    assert dist.squashed
    p = gaussian_params(rng, shape)
    u = rng.normal(size=p["mean"].shape) * 1.5
    action = 0.5 * (high + low) + 0.5 * (high - low) * np.tanh(u)
    sigma = np.exp(p["log_stddev"])
    expected = stats.norm.logpdf(u, p["mean"], sigma) - np.log(0.5 * (high - low) * (1 - np.tanh(u) ** 2))
    log_prob = np_(dist.log_prob(tensors(p), ops.convert_to_tensor(action.astype("float32"))))
    np.testing.assert_allclose(log_prob, sum_action(expected, shape), rtol=1e-4, atol=2e-3)
    # Entropy is that of the underlying Gaussian.
    np.testing.assert_allclose(
        np_(dist.entropy(tensors(p))), sum_action(stats.norm.entropy(p["mean"], sigma), shape), rtol=1e-5
    )
    mode = np_(dist.mode(tensors(p)))
    np.testing.assert_allclose(mode, 0.5 * (high + low) + 0.5 * (high - low) * np.tanh(p["mean"]), rtol=1e-5, atol=1e-6)
    # Actions at the bounds give finite log-probabilities.
    edges = np.where(rng.random(p["mean"].shape) < 0.5, low, high).astype("float32")
    assert np.isfinite(np_(dist.log_prob(tensors(p), ops.convert_to_tensor(edges)))).all()


def test_tanh_gaussian_density_integrates_to_one():
    low, high = -1.0, 2.0
    dist = D.Gaussian(ValueSpec(type="float", shape=(), min_value=low, max_value=high))
    # A grid denser near the bounds, where the density can be large.
    grid = 0.5 * (high + low) + 0.5 * (high - low) * np.tanh(np.linspace(-6.0, 6.0, 20001))
    for mean, log_stddev in [(0.0, 0.0), (0.7, -0.5), (-1.0, 0.5)]:
        params = tensors({"mean": np.full(grid.shape, mean), "log_stddev": np.full(grid.shape, log_stddev)})
        log_prob = np_(dist.log_prob(params, ops.convert_to_tensor(grid.astype("float32"))))
        assert abs(integrate.trapezoid(np.exp(log_prob.astype(np.float64)), grid) - 1.0) < 2e-3


@pytest.mark.parametrize("transform", ["tanh", "clipping"])
def test_gaussian_sampling_moments_and_bounds(transform):
    batch = 20000
    seed = keras.random.SeedGenerator(9)
    mean, log_stddev = 0.5, np.log(0.8)
    params = tensors({"mean": np.full((batch, 2), mean), "log_stddev": np.full((batch, 2), log_stddev)})
    unbounded = D.Gaussian(ValueSpec(type="float", shape=(2,)))
    x = np_(unbounded.sample(params, seed))
    assert x.dtype == np.float32 and x.shape == (batch, 2)
    assert abs(x.mean() - mean) < 5 * 0.8 / np.sqrt(x.size)
    assert abs(x.std() - 0.8) < 0.03
    cold = np_(unbounded.sample(params, seed, temperature=0.25))
    assert abs(cold.std() - 0.2) < 0.01

    low, high = np.array([-0.5, 0.0]), np.array([1.0, 0.7])
    bounded = D.Gaussian(
        ValueSpec(type="float", shape=(2,), min_value=low, max_value=high), bounded_transform=transform
    )
    y = np_(bounded.sample(params, seed))
    assert (y >= low.astype("float32")).all() and (y <= high.astype("float32")).all()
    if transform == "tanh":
        center, half = (high + low) / 2, (high - low) / 2
        u = np.arctanh(np.clip((y - center) / half, -1 + 1e-6, 1 - 1e-6))
        assert abs(np.median(u) - mean) < 0.05
        np.testing.assert_allclose(np_(bounded.mode(params))[0], center + half * np.tanh(mean), rtol=1e-5)
    else:
        assert (y == high.astype("float32")).any(axis=0).all()  # clipped samples sit on the bound
        np.testing.assert_allclose(np_(bounded.mode(params))[0], np.clip(mean, low, high), rtol=1e-6)
        # Clipping keeps the Gaussian density.
        action = ops.convert_to_tensor(np.full((batch, 2), 0.3, "float32"))
        expected = 2 * stats.norm.logpdf(0.3, mean, 0.8)
        np.testing.assert_allclose(np_(bounded.log_prob(params, action))[0], expected, rtol=1e-5)
    explored = np_(bounded.explore(ops.convert_to_tensor(np.zeros((batch, 2), "float32")), 2.0, seed))
    assert (explored >= low.astype("float32")).all() and (explored <= high.astype("float32")).all()
    assert explored.std() > 0.1


def test_gaussian_one_sided_bound_clips():
    dist = D.Gaussian(ValueSpec(type="float", shape=(), min_value=0.0))
    assert not dist.squashed
    params = tensors({"mean": np.zeros(1000), "log_stddev": np.zeros(1000)})
    sample = np_(dist.sample(params, keras.random.SeedGenerator(1)))
    assert (sample >= 0.0).all() and (sample == 0.0).any()


# ---------------------------------------------------------------------- beta
def beta_params(rng, shape, batch=6):
    return {
        "alpha": rng.uniform(1.0, 12.0, size=(batch,) + shape),
        "beta": rng.uniform(1.0, 12.0, size=(batch,) + shape),
    }


@pytest.mark.parametrize("shape", SHAPES)
def test_beta_against_scipy(shape):
    rng = np.random.default_rng(6)
    low, high = -1.0, 3.0
    dist = D.Beta(ValueSpec(type="float", shape=shape, min_value=low, max_value=high))
    p, q = beta_params(rng, shape), beta_params(rng, shape)
    reference = stats.beta(p["alpha"], p["beta"], loc=low, scale=high - low)
    action = reference.rvs(random_state=rng)
    params_p, params_q = tensors(p), tensors(q)
    log_prob = np_(dist.log_prob(params_p, ops.convert_to_tensor(action.astype("float32"))))
    np.testing.assert_allclose(log_prob, sum_action(reference.logpdf(action), shape), rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(np_(dist.entropy(params_p)), sum_action(reference.entropy(), shape), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np_(dist.mode(params_p)), reference.mean(), rtol=1e-5, atol=1e-5)
    kl = np_(dist.kl_divergence(params_p, params_q))
    flat = lambda x: x.reshape(x.shape[0], -1)[0]  # noqa: E731
    expected_kl = 0.0
    for a_p, b_p, a_q, b_q in zip(flat(p["alpha"]), flat(p["beta"]), flat(q["alpha"]), flat(q["beta"])):
        integrand = lambda y, a=a_p, b=b_p, c=a_q, d=b_q: stats.beta.pdf(y, a, b) * (  # noqa: E731
            stats.beta.logpdf(y, a, b) - stats.beta.logpdf(y, c, d)
        )
        expected_kl += integrate.quad(integrand, 0.0, 1.0)[0]
    np.testing.assert_allclose(kl[0], expected_kl, rtol=1e-3, atol=1e-4)


def test_beta_large_concentrations_stay_accurate():
    dist = D.Beta(ValueSpec(type="float", shape=(), min_value=0.0, max_value=1.0))
    alpha, beta = np.array([300.0, 900.0]), np.array([500.0, 40.0])
    params = tensors({"alpha": alpha, "beta": beta})
    action = alpha / (alpha + beta)
    expected = stats.beta.logpdf(action, alpha, beta)
    log_prob = np_(dist.log_prob(params, ops.convert_to_tensor(action.astype("float32"))))
    np.testing.assert_allclose(log_prob, expected, atol=0.05)
    np.testing.assert_allclose(np_(dist.entropy(params)), stats.beta.entropy(alpha, beta), atol=0.05)


def test_beta_sampling_moments_and_bounds():
    batch = 20000
    low, high, alpha, beta = -2.0, 2.0, 2.0, 5.0
    dist = D.Beta(ValueSpec(type="float", shape=(2,), min_value=low, max_value=high))
    params = tensors({"alpha": np.full((batch, 2), alpha), "beta": np.full((batch, 2), beta)})
    seed = keras.random.SeedGenerator(13)
    y = np_(dist.sample(params, seed))
    assert y.dtype == np.float32 and y.shape == (batch, 2)
    assert (y >= low).all() and (y <= high).all()
    reference = stats.beta(alpha, beta, loc=low, scale=high - low)
    assert abs(y.mean() - reference.mean()) < 5 * reference.std() / np.sqrt(y.size)
    assert abs(y.std() - reference.std()) < 0.03 * reference.std() + 0.01
    np.testing.assert_allclose(np_(dist.sample(params, seed, temperature=0.0)), reference.mean(), rtol=1e-5)


# ---------------------------------------------------------------------- build
BUILD_CASES = [
    ("categorical", int_spec((), 4), None, {"logits": (4,)}),
    ("categorical", int_spec((2, 3), 4), dict(temperature_mode="predicted"), {"logits": (2, 3, 4)}),
    ("categorical", int_spec((2,), 3), dict(temperature_mode="global"), {"logits": (2, 3)}),
    ("bernoulli", ValueSpec(type="bool", shape=()), None, {"logits": ()}),
    ("bernoulli", ValueSpec(type="bool", shape=(2, 3)), None, {"logits": (2, 3)}),
    ("gaussian", ValueSpec(type="float", shape=()), None, {"mean": (), "log_stddev": ()}),
    (
        "gaussian",
        ValueSpec(type="float", shape=(2, 3), min_value=-1.0, max_value=1.0),
        dict(stddev_mode="global"),
        {"mean": (2, 3), "log_stddev": (2, 3)},
    ),
    ("beta", ValueSpec(type="float", shape=(2,), min_value=0.0, max_value=4.0), None,
     {"alpha": (2,), "beta": (2,)}),
]


@pytest.mark.parametrize("key,spec", [
    ("categorical", ValueSpec(type="int", shape=(2,), num_values=4)),
    ("bernoulli", ValueSpec(type="bool", shape=(3,))),
    ("gaussian", ValueSpec(type="float", shape=(2,), min_value=-1.0, max_value=1.0)),
])
def test_initialization_scale_sets_the_head_gain(key, spec):
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    outputs = {}
    for scale in (0.01, 1.0):
        dist = D.create(spec, dict(type=key, initialization_scale=scale))
        assert dist.get_config()["initialization_scale"] == scale
        inputs = keras.Input((8,))
        model = keras.Model(inputs, dist.build(inputs))
        head = "mean" if key == "gaussian" else "logits"
        outputs[scale] = np.abs(np_(model(x)[head])).max()
    assert outputs[0.01] < 0.3 < outputs[1.0]
    for bad in (-1.0, float("nan"), "big", True):
        with pytest.raises(ArgumentError, match="initialization_scale"):
            D.create(spec, dict(type=key, initialization_scale=bad))


@pytest.mark.parametrize("key,spec,options,shapes", BUILD_CASES)
def test_build_functional_model(key, spec, options, shapes):
    dist = D.create(spec, dict(type=key, **(options or {})), name="move/arm")
    inputs = keras.Input((8,))
    params = dist.build(inputs)
    model = keras.Model(inputs, params)
    assert all(layer.name.startswith("move_arm_") for layer in model.layers[1:])
    x = np.random.default_rng(0).normal(size=(5, 8)).astype("float32")
    outputs = {k: np_(v) for k, v in model(x).items()}
    assert {k: v.shape[1:] for k, v in outputs.items()} == shapes
    assert all(v.shape[0] == 5 and np.isfinite(v).all() for v in outputs.values())
    # Logits layers start with Tensorforce's orthogonal gain 1 (logits of order 1);
    # the Gaussian's mean and log stddev layers with gain 0.01 (close to standard).
    if "logits" in outputs:
        assert 0.3 < np.abs(outputs["logits"]).max() < 10
    if "mean" in outputs:
        assert np.abs(outputs["mean"]).max() < 0.3 and np.abs(outputs["log_stddev"]).max() < 0.3
    if "alpha" in outputs:
        assert (outputs["alpha"] >= 1.0).all() and (outputs["beta"] >= 1.0).all()
    action = dist.sample(model(x), keras.random.SeedGenerator(0))
    assert tuple(action.shape) == (5,) + spec.shape
    assert tuple(dist.log_prob(model(x), action).shape) == (5,)


def test_global_parameter_model_saves_and_loads(tmp_path):
    dist = D.Gaussian(ValueSpec(type="float", shape=(2,)), stddev_mode="global", name="action")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, dist.build(inputs))
    layer = model.get_layer("action_log_stddev")
    assert isinstance(layer, D.GlobalParameter)
    layer.value.assign(np.array([0.3, -0.4], "float32"))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.ones((3, 4), "float32")
    np.testing.assert_allclose(np_(loaded(x)["log_stddev"]), np.tile([0.3, -0.4], (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(np_(loaded(x)["mean"]), np_(model(x)["mean"]), rtol=1e-6)


def test_global_log_stddev_is_clamped():
    dist = D.Gaussian(ValueSpec(type="float", shape=()), stddev_mode="global")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, dist.build(inputs))
    model.get_layer("action_log_stddev").value.assign(np.array(50.0, "float32"))
    log_stddev = np_(model(np.zeros((2, 3), "float32"))["log_stddev"])
    np.testing.assert_allclose(log_stddev, [D.LOG_STDDEV_RANGE[1]] * 2)


def test_build_embedding_rank():
    dist = D.Categorical(int_spec((), 3))
    inputs = keras.Input((2, 4))
    model = keras.Model(inputs, dist.build(inputs))
    assert np_(model(np.zeros((5, 2, 4), "float32"))["logits"]).shape == (5, 3)
    with pytest.raises(ArgumentError, match="embedding"):
        D.Categorical(int_spec((), 3)).build(keras.Input(batch_shape=(5,)))


def test_categorical_skip_linear():
    dist = D.Categorical(int_spec((2,), 3), skip_linear=True)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, dist.build(inputs))
    x = np.arange(12, dtype="float32").reshape(2, 6)
    np.testing.assert_allclose(np_(model(x)["logits"]), x.reshape(2, 2, 3))
    with pytest.raises(ArgumentError, match="skip_linear"):
        dist.build(keras.Input((5,)))


# ---------------------------------------------------------------------- compiled mode
def test_functions_run_compiled():
    rng = np.random.default_rng(8)
    batch, shape, n = 64, (2, 3), 4
    seed = keras.random.SeedGenerator(21)
    cases = [
        (D.Categorical(int_spec(shape, n)), tensors({"logits": rng.normal(size=(batch,) + shape + (n,))}),
         ops.convert_to_tensor(random_mask(rng, (batch,) + shape, n))),
        (D.Bernoulli(ValueSpec(type="bool", shape=shape)), tensors({"logits": rng.normal(size=(batch,) + shape)}), None),
        (D.Gaussian(ValueSpec(type="float", shape=shape, min_value=-1.0, max_value=1.0)),
         tensors(gaussian_params(rng, shape, batch)), None),
        (D.Beta(ValueSpec(type="float", shape=shape, min_value=0.0, max_value=2.0)),
         tensors(beta_params(rng, shape, batch)), None),
    ]
    for dist, params, mask in cases:
        def act(params, mask, dist=dist):
            action = dist.sample(params, seed, mask, temperature=1.0)
            return action, dist.log_prob(params, action, mask), dist.mode(params, mask)

        def train(params, action, mask, dist=dist):
            return (dist.log_prob(params, action, mask), dist.entropy(params, mask),
                    dist.kl_divergence(params, params, mask))

        action, log_prob, mode = run_compiled(act, params, mask, seed=seed)
        action_2, _, _ = run_compiled(act, params, mask, seed=seed)
        assert not np.array_equal(np_(action), np_(action_2))  # the seed state advanced
        assert tuple(action.shape) == (batch,) + shape and tuple(log_prob.shape) == (batch,)
        np.testing.assert_array_equal(np_(mode), np_(dist.mode(params, mask)))
        compiled = [np_(x) for x in run_compiled(train, params, action, mask)]
        eager = [np_(x) for x in train(params, action, mask)]
        for got, expected in zip(compiled, eager):
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np_(log_prob), eager[0], rtol=1e-4, atol=1e-3)
        if mask is not None:
            assert np.take_along_axis(np_(mask), np_(action)[..., None].astype(np.int64), -1).all()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="dynamic batch size is a tf.function feature")
def test_tf_function_with_unknown_batch_size():
    import tensorflow as tf

    seed = keras.random.SeedGenerator(2)
    for dist, keys in [
        (D.Categorical(int_spec((2,), 3)), {"logits": (2, 3)}),
        (D.Bernoulli(ValueSpec(type="bool", shape=(2,))), {"logits": (2,)}),
        (D.Gaussian(ValueSpec(type="float", shape=(2,), min_value=0.0, max_value=1.0)),
         {"mean": (2,), "log_stddev": (2,)}),
        (D.Beta(ValueSpec(type="float", shape=(2,), min_value=0.0, max_value=1.0)), {"alpha": (2,), "beta": (2,)}),
    ]:
        signature = [{k: tf.TensorSpec((None,) + s, tf.float32) for k, s in keys.items()}]

        @tf.function(input_signature=signature)
        def act(params, dist=dist):
            action = dist.sample(params, seed)
            return action, dist.log_prob(params, action), dist.explore(action, 0.1, seed)

        params = {k: tf.ones((5,) + s) * 1.5 for k, s in keys.items()}
        action, log_prob, explored = act(params)
        assert tuple(action.shape) == (5, 2) and tuple(log_prob.shape) == (5,)
        assert tuple(explored.shape) == (5, 2)


# ---------------------------------------------------------------------- factory
def test_create_defaults():
    bounded = ValueSpec(type="float", shape=(), min_value=-1.0, max_value=1.0)
    assert type(D.create(ValueSpec(type="bool"))) is D.Bernoulli
    assert type(D.create(int_spec(()))) is D.Categorical
    assert type(D.create(ValueSpec(type="float"))) is D.Gaussian
    assert type(D.create(bounded)) is D.Gaussian
    assert type(D.create(bounded, use_beta_distribution=True)) is D.Beta
    assert type(D.create(ValueSpec(type="float"), use_beta_distribution=True)) is D.Gaussian


def test_create_config_forms():
    spec = ValueSpec(type="float", shape=(2,), min_value=0.0, max_value=1.0)
    assert type(D.create(spec, "beta")) is D.Beta
    assert type(D.create(spec, "Beta")) is D.Beta
    dist = D.create(spec, dict(type="gaussian", stddev_mode="global", bounded_transform="clipping"))
    assert (dist.stddev_mode, dist.bounded_transform) == ("global", "clipping")
    assert D.create(spec, dict(stddev_mode="global")).stddev_mode == "global"
    per_type = dict(float=dict(type="gaussian", stddev_mode="global"), int="categorical")
    assert D.create(spec, per_type, name="x").stddev_mode == "global"
    assert type(D.create(int_spec(()), per_type)) is D.Categorical
    assert type(D.create(ValueSpec(type="bool"), per_type)) is D.Bernoulli  # not listed: default
    per_name = dict(float="gaussian", arm=dict(type="beta"))
    assert type(D.create(spec, per_name, name="arm")) is D.Beta  # the name wins over the type
    assert type(D.create(spec, per_name, name="leg")) is D.Gaussian
    assert type(D.create(spec, D.Beta)) is D.Beta
    assert type(D.create(spec, dict(type=D.Beta))) is D.Beta
    assert type(D.create(spec, "kerasrl.distributions.Beta")) is D.Beta
    instance = D.Beta(spec)
    assert D.create(spec, instance) is instance
    for original in [dist, D.Categorical(int_spec((3,)), temperature_mode="global"), instance]:
        rebuilt = D.create(original.spec, original.get_config())
        assert type(rebuilt) is type(original) and rebuilt.get_config() == original.get_config()


def test_create_errors():
    float_spec = ValueSpec(type="float", shape=())
    with pytest.raises(UnknownTypeError, match="poisson"):
        D.create(float_spec, "poisson")
    with pytest.raises(UnknownTypeError, match="poisson"):
        D.create(float_spec, dict(type="poisson"))
    with pytest.raises(ArgumentError, match="action 'steer'.*float action"):
        D.create(float_spec, "categorical", name="steer")
    with pytest.raises(ArgumentError, match="action 'flag'.*bool action"):
        D.create(ValueSpec(type="bool"), "gaussian", name="flag")
    with pytest.raises(ArgumentError, match="action 'steer'.*min_value and max_value"):
        D.create(float_spec, "beta", name="steer")
    with pytest.raises(ArgumentError, match="stddev_mode"):
        D.create(float_spec, dict(type="gaussian", stddev_mode="learned"))
    with pytest.raises(ArgumentError, match="temperature_mode"):
        D.Categorical(int_spec(()), temperature_mode="fixed")
    with pytest.raises(ArgumentError, match="bounded_transform"):
        D.Gaussian(float_spec, bounded_transform="sigmoid")
    with pytest.raises(ArgumentError, match="unexpected keyword"):
        D.create(float_spec, dict(type="gaussian", sharpness=2))
    with pytest.raises(ArgumentError, match="num_values"):
        D.Categorical(ValueSpec(type="int", shape=()))
    with pytest.raises(ArgumentError, match="spec"):
        D.Categorical({"type": "int", "num_values": 3})
    with pytest.raises(ArgumentError, match="distributions"):
        D.create(float_spec, 3.5)


# ---------------------------------------------------------------------- check_mask
def test_check_mask_valid():
    spec = int_spec((2,), 3)
    mask = np.ones((4, 2, 3), dtype=bool)
    assert D.check_mask(mask, spec, "action_mask").dtype == np.bool_
    converted = D.check_mask(mask.astype(np.int64), spec, "action_mask")
    assert converted.dtype == np.bool_ and converted.all()


def test_check_mask_errors():
    spec = int_spec((), 3)
    mask = np.ones((5, 3), dtype=bool)
    mask[3] = False
    with pytest.raises(InputError) as info:
        D.check_mask(mask, spec, "action_mask")
    assert str(info.value).startswith(
        "Invalid argument 'action_mask': expected at least one allowed (True) value per action, "
        "received all-False mask at batch index 3"
    )
    shaped = np.ones((2, 2, 3, 4), dtype=bool)
    shaped[1, 0, 2] = False
    with pytest.raises(InputError, match=r"'arm_mask'.*batch index 1, action index \(0, 2\)"):
        D.check_mask(shaped, int_spec((2, 3), 4), "arm_mask")
    with pytest.raises(InputError, match=r"'action_mask'.*\(batch, 3\)"):
        D.check_mask(np.ones((5, 4), dtype=bool), spec, "action_mask")
    with pytest.raises(InputError, match="'action_mask'.*shape"):
        D.check_mask(np.ones(3, dtype=bool), spec, "action_mask")
    with pytest.raises(InputError, match="'action_mask'.*bool"):
        D.check_mask(np.full((5, 3), 2), spec, "action_mask")
    with pytest.raises(InputError, match="'action_mask'.*bool"):
        D.check_mask([["a", "b", "c"]], spec, "action_mask")
    with pytest.raises(ArgumentError, match="'action_mask'"):
        D.check_mask(np.ones((5, 3), bool), ValueSpec(type="float"), "action_mask")
