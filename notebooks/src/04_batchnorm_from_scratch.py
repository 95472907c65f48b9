# %% [markdown]
# # 04 · Batch Normalization from scratch
#
# Notebook 03 ended with a requirement: the normalization has to be a layer of the network,
# differentiated like any other, so that the gradient knows what the normalization will undo. This
# notebook builds that layer and answers one question: **what exactly does Batch Normalization compute,
# forward and backward, in training and at test time?** We write the paper's Algorithm 1 in numpy,
# then in torch operations, derive its backward pass by hand and check it against autograd and
# against PyTorch's own `BatchNorm1d`, and then look at what changes at test time (Algorithm 2).
#
# **Learning goals.** After this notebook you can
# 1. write the Batch Normalization forward pass of a mini-batch (Algorithm 1) and say which variance it uses;
# 2. derive the gradients for $x$, $\gamma$ and $\beta$, check them against autograd, and explain why the
#    input gradients sum to zero over the batch (so a bias right before BN is useless, and the layer
#    before BN learns as if its inputs were centered);
# 3. explain why $\gamma$ and $\beta$ exist: with them, BN can represent the identity, so it takes no
#    expressive power away;
# 4. tell training mode from eval mode: batch statistics versus population (running) statistics, the
#    biased variance used for normalizing versus the unbiased one stored, and what goes wrong when
#    eval mode is forgotten, especially for small batches; build a complete BN layer with running
#    statistics, and debug a model that is worse in eval mode than in training mode;
# 5. say what BN does **not** do (change the shape of a distribution) and how it works on convolutional
#    feature maps (one mean and variance per channel).

# %%
# bnlab set-up: use the copy of the course around this notebook; on Colab, install bnlab.
import importlib.util
import site
import sys
from pathlib import Path

repository = "https://github.com/bnlab-course/bnlab"
here = Path.cwd()
course_copy = next((folder for folder in [here, *here.parents] if (folder / "bnlab" / "course.py").is_file()),
                   None)
if course_copy is not None and str(course_copy) not in sys.path:
    sys.path.insert(0, str(course_copy))  # this copy's bnlab comes first, even where another one is installed
if importlib.util.find_spec("bnlab") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("bnlab is not installed for this kernel and this notebook is not inside a "
                                  "copy of the course: run the README's start command in a clone of "
                                  f"{repository}, or open the course through your hub's link.")
    course_versions = "plotly==7.1.0 ipywidgets==8.1.9 anywidget==0.11.0"
    get_ipython().run_line_magic("pip", f"install -q {course_versions} git+{repository}")
    site.addsitedir(site.getusersitepackages())  # a user site this install created is new to the kernel
    importlib.invalidate_caches()
if "google.colab" in sys.modules:
    from google.colab import output

    output.enable_custom_widget_manager()

# %%
import copy

import numpy as np
import torch
from torch import nn

import bnlab
from bnlab.batchnorm import BatchNorm, batch_statistics, normalize
from bnlab.claims import outcome_of, record
from bnlab.compare import compare_all
from bnlab.data import load_digits
from bnlab.exercises import compare_prediction
from bnlab.lessons.nb04_batchnorm_from_scratch import experiments as bn
from bnlab.lessons.nb04_batchnorm_from_scratch.checks import (
    check_batch_norm_backward,
    check_batch_norm_forward,
    check_batch_norm_layer_1d,
    check_repaired_model,
    show_solution,
)
from bnlab.lessons.nb04_batchnorm_from_scratch.experiments import (
    batch_size_sweep,
    central_share,
    eval_and_training_mode,
    fit_briefly,
    gamma_beta_unit,
    running_vs_population,
    shape_batches,
    skewness,
    sweep_over_seeds,
    train_networks,
)
from bnlab.lessons.nb04_batchnorm_from_scratch.figures import (
    batch_size_panel,
    gamma_beta_panel,
    shape_figure,
    sweep_figure,
)
from bnlab.models import make_mlp
from bnlab.probes import saturated_fraction
from bnlab.seeding import claim_seeds, numpy_rng, torch_generator
from bnlab.statistics import OverSeeds, Support, seed_range

SEED = bnlab.setup()
SEEDS = claim_seeds()  # the seeds every claim is measured over; the first one is the one-run illustration's
print(f"Course seed: {SEED}; claims measured over {seed_range(SEEDS)}")

# %% [markdown]
# ## 1. Algorithm 1, forward: four lines
#
# Take one unit of a layer and a mini-batch of $m$ examples; the unit's values over the batch are
# $x_1, \dots, x_m$. Batch Normalization (Ioffe & Szegedy 2015, Algorithm 1) computes
# $$\mu_B = \frac1m\sum_{i=1}^m x_i, \qquad \sigma_B^2 = \frac1m\sum_{i=1}^m (x_i - \mu_B)^2, \qquad
# \hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \varepsilon}}, \qquad y_i = \gamma\,\hat x_i + \beta .$$
# Every unit has its own $\mu_B$, $\sigma_B^2$ and its own learned $\gamma$ and $\beta$. The small
# $\varepsilon$ (PyTorch's default is $10^{-5}$) keeps the division safe when a unit's values are all alike.
# Note the variance divides by $m$, not $m - 1$: it is the batch's own spread, not an estimate of anything.
#
# In numpy, for a batch `x` of shape (m, C), one column per unit, the four lines are four lines:

# %%
def algorithm_1(x, gamma, beta, eps=1e-5):
    """Batch Normalization of a mini-batch x (m, C) in numpy; gamma, beta: (C,). Returns y (m, C)."""
    mu = x.mean(axis=0)                       # mini-batch mean, (C,)
    var = ((x - mu) ** 2).mean(axis=0)        # mini-batch variance, divided by m, (C,)
    x_hat = (x - mu) / np.sqrt(var + eps)     # normalize
    return gamma * x_hat + beta               # scale and shift


# %% [markdown]
# Our batch: 60 training digits sent through the first Linear layer of a fresh digits network
# (64 pixels in, 100 units out). These are the pre-activations BN would normalize.
#
# **Predict before you run.** After BN with $\gamma = 1$ and $\beta = 0$, each unit has mean 0 over the
# batch. Is its variance exactly 1: **"yes"** or **"no"**?

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
digits = load_digits()
network = make_mlp(norm="bnlab_bn")
with torch.no_grad():
    u = network.linear1(digits.X_train[:60]).double().numpy()   # (60, 100) pre-activations
ones, zeros = np.ones(100), np.zeros(100)
y = algorithm_1(u, gamma=ones, beta=zeros)
print(f"before BN: unit means from {u.mean(axis=0).min():.2f} to {u.mean(axis=0).max():.2f}, "
      f"standard deviations from {u.std(axis=0).min():.2f} to {u.std(axis=0).max():.2f}")
largest_mean = np.abs(y.mean(axis=0)).max()
shown = "below 1e-12" if largest_mean < 1e-12 else f"{largest_mean:.2g}"
print(f"after BN:  every unit's mean is 0 (largest |mean| {shown}), "
      f"variances from {y.var(axis=0).min():.5f} to {y.var(axis=0).max():.5f}")
expected_variance = u.var(axis=0) / (u.var(axis=0) + 1e-5)
print(f"σ²/(σ² + ε) of each unit: from {expected_variance.min():.5f} to {expected_variance.max():.5f}")

# %%
# Check: mean 0, variance σ²/(σ² + ε)
assert largest_mean < 1e-12
assert np.allclose(y.var(axis=0), expected_variance, atol=1e-12) and y.var(axis=0).max() < 1
compare_prediction(my_prediction, "yes" if np.all(y.var(axis=0) == 1) else "no")

# %% [markdown]
# Not quite 1: the variance after BN is $\sigma_B^2/(\sigma_B^2 + \varepsilon)$, a hair below 1, and
# far below 1 for a unit whose spread is comparable to $\sqrt\varepsilon \approx 0.003$.
#
# ### The same in torch: pure functions plus a thin layer
#
# bnlab's own BN, the one that `make_mlp(norm="bnlab_bn")` puts into networks, has two parts
# (`bnlab/batchnorm.py`):
# * two **pure functions** that do the arithmetic: `batch_statistics(x)` returns the per-unit mean and
#   (biased) variance, and `normalize(x, mean, var, gamma, beta, eps)` turns statistics into outputs.
#   Statistics in, normalized values out: nothing is stored, so they are easy to test and to reuse;
# * a thin **layer**, `BatchNorm`, that does the bookkeeping: it owns $\gamma$ and $\beta$ as parameters,
#   keeps running statistics as buffers, knows whether it is in training or eval mode, and refuses bad
#   input with a clear message.
#
# Here they are on the same batch, with random $\gamma$ and $\beta$, against the numpy version and
# against PyTorch's `nn.BatchNorm1d`. `compare_all` (from `bnlab.compare`) prints one line per
# comparison: bit-for-bit equal?, equal up to rounding (`allclose`)?, and the largest difference,
# rounded up to a power of ten (with `floor=1e-12`, anything smaller, which is float64 rounding, prints
# as `< 1e-12`: the exact size of rounding errors differs from machine to machine).

# %%
generator = torch_generator(stream=44)
gamma = torch.rand(100, generator=generator, dtype=torch.float64) * 1.5 + 0.5      # (100,) in [0.5, 2]
beta = torch.randn(100, generator=generator, dtype=torch.float64)                    # (100,)
x = torch.tensor(u)                                                                   # (60, 100) float64
y_numpy = algorithm_1(u, gamma.numpy(), beta.numpy())

layer = BatchNorm(100).double()             # bnlab's layer: gamma, beta, running statistics, mode
reference = nn.BatchNorm1d(100).double()    # PyTorch's
with torch.no_grad():
    layer.gamma.copy_(gamma), layer.beta.copy_(beta)
    reference.weight.copy_(gamma), reference.bias.copy_(beta)
print(layer)
print(f"parameters: {[name for name, _ in layer.named_parameters()]}, "
      f"buffers: {[name for name, _ in layer.named_buffers()]}\n")

forward_checks = compare_all({
    "pure functions vs numpy": (normalize(x, *batch_statistics(x), gamma, beta, 1e-5), y_numpy),
    "bnlab's BatchNorm vs numpy": (layer(x), y_numpy),
    "nn.BatchNorm1d vs numpy": (reference(x), y_numpy),
}, floor=1e-12)

# %%
# Check: the three forwards agree
assert all(forward_checks.values())

# %% [markdown]
# All three agree with the numpy lines up to the rounding of float64 arithmetic. They are not
# bit-for-bit equal: each adds its numbers in a different order.
#
# ## 2. Algorithm 1, backward: the gradients by hand
#
# Training needs $\partial L/\partial x_i$ (to pass the gradient on to the layers below) and
# $\partial L/\partial\gamma$, $\partial L/\partial\beta$ (to learn them). The paper's section 3 gives
# them by the chain rule. Start from $\partial L/\partial y_i$, which the layers above provide:
# $$\frac{\partial L}{\partial\beta} = \sum_{i=1}^m \frac{\partial L}{\partial y_i}, \qquad
# \frac{\partial L}{\partial\gamma} = \sum_{i=1}^m \frac{\partial L}{\partial y_i}\,\hat x_i, \qquad
# \frac{\partial L}{\partial\hat x_i} = \frac{\partial L}{\partial y_i}\,\gamma .$$
# Each $x_i$ reaches the loss three ways: directly through $\hat x_i$, and through $\mu_B$ and
# $\sigma_B^2$, which every $\hat x_j$ uses. So
# $$\frac{\partial L}{\partial\sigma_B^2} = \sum_{i=1}^m \frac{\partial L}{\partial\hat x_i}(x_i - \mu_B)
# \cdot\left(-\tfrac12\right)(\sigma_B^2 + \varepsilon)^{-3/2}, \qquad
# \frac{\partial L}{\partial\mu_B} = \sum_{i=1}^m \frac{\partial L}{\partial\hat x_i}\cdot
# \frac{-1}{\sqrt{\sigma_B^2 + \varepsilon}} + \frac{\partial L}{\partial\sigma_B^2}\cdot
# \frac{\sum_{i} -2(x_i - \mu_B)}{m},$$
# $$\frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial\hat x_i}\cdot\frac{1}{\sqrt{\sigma_B^2
# + \varepsilon}} + \frac{\partial L}{\partial\sigma_B^2}\cdot\frac{2(x_i - \mu_B)}{m}
# + \frac{\partial L}{\partial\mu_B}\cdot\frac1m .$$
# (The last term of $\partial L/\partial\mu_B$ is zero, since the centered values sum to zero; the paper
# keeps it.) Putting the pieces together gives a compact form worth remembering:
# $$\frac{\partial L}{\partial x_i} = \frac{1}{m\sqrt{\sigma_B^2 + \varepsilon}}\left(m\,
# \frac{\partial L}{\partial\hat x_i} - \sum_{j=1}^m \frac{\partial L}{\partial\hat x_j}
# - \hat x_i \sum_{j=1}^m \frac{\partial L}{\partial\hat x_j}\,\hat x_j\right).$$
#
# `bn.batch_norm_backward(grad_out, x, gamma, eps)` implements the paper's chain, line by line (you will
# write it yourself in exercise 2). Let's check it. Any loss will do: we take a random
# $\partial L/\partial y$ and compare our three gradients with autograd (differentiating bnlab's pure
# functions) and with `nn.BatchNorm1d`'s backward.
#
# **Predict before you run.** Will the hand-written gradients equal autograd's bit for bit: **"yes"** or
# **"no"**?

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
grad_out = torch.randn(60, 100, generator=generator, dtype=torch.float64)   # dL/dy, (60, 100)
grad_x, grad_gamma, grad_beta = bn.batch_norm_backward(grad_out, x, gamma, eps=1e-5)

x_autograd, gamma_autograd, beta_autograd = (t.clone().requires_grad_(True) for t in (x, gamma, beta))
normalize(x_autograd, *batch_statistics(x_autograd), gamma_autograd, beta_autograd, 1e-5).backward(grad_out)
x_torch = x.clone().requires_grad_(True)
reference.zero_grad()
reference(x_torch).backward(grad_out)

backward_checks = compare_all({
    "dL/dx vs autograd": (grad_x, x_autograd.grad),
    "dL/dx vs nn.BatchNorm1d": (grad_x, x_torch.grad),
    "dL/dgamma vs autograd": (grad_gamma, gamma_autograd.grad),
    "dL/dgamma vs nn.BatchNorm1d": (grad_gamma, reference.weight.grad),
    "dL/dbeta vs autograd": (grad_beta, beta_autograd.grad),
    "dL/dbeta vs nn.BatchNorm1d": (grad_beta, reference.bias.grad),
}, floor=1e-12)

# %%
# Check: the hand-written gradients
assert all(backward_checks.values())
assert grad_gamma.shape == gamma.shape == grad_beta.shape
bit_for_bit = all(torch.equal(ours, theirs) for ours, theirs in
                  ((grad_x, x_autograd.grad), (grad_gamma, gamma_autograd.grad), (grad_beta, beta_autograd.grad)))
compare_prediction(my_prediction, "yes" if bit_for_bit else "no")

# %% [markdown]
# The hand-written gradients agree with both references to within float64 rounding. The only exact
# match is $\partial L/\partial\beta$, a plain sum that all three compute the same way.
#
# ### The input gradients sum to zero
#
# Sum the compact form over the batch: the first two terms give $m\sum_j \partial L/\partial\hat x_j -
# m\sum_j \partial L/\partial\hat x_j = 0$, and the third is a multiple of $\sum_i \hat x_i = 0$. So for
# every unit, **whatever the loss**,
# $$\sum_{i=1}^m \frac{\partial L}{\partial x_i} = 0 .$$
# Moving all of a unit's inputs up together cannot change the loss, because BN subtracts their mean
# anyway; the gradient knows it.

# %%
column_sums = grad_x.sum(dim=0)             # (100,): one sum per unit
typical = grad_x.abs().mean()
print(f"|dL/dx_i| is about {typical:.3f} on average; the sum over the 60 examples, largest over the 100 "
      f"units: {'below 1e-13' if column_sums.abs().max() < 1e-13 else column_sums.abs().max()}")

# %%
# Check: the input gradients sum to zero
assert column_sums.abs().max() < 1e-13

# %% [markdown]
# **What this means for a bias before BN.** If the unit is $x_i = w^\top u_i + b$, then
# $\partial L/\partial b = \sum_i \partial L/\partial x_i = 0$: the bias never learns (notebook 03 watched
# it stay put for 1,000 steps). It does not matter in the forward pass either: BN subtracts the batch
# mean, which includes $b$. Below, the same network in training mode, with its Linear biases as
# initialized and with them set to zero:

# %%
with_bias = make_mlp(norm="bnlab_bn")
biases_zeroed = copy.deepcopy(with_bias)
with torch.no_grad():
    for name in ("linear1", "linear2", "linear3"):
        getattr(biases_zeroed, name).bias.zero_()
batch = digits.X_train[:60]
change = (with_bias(batch) - biases_zeroed(batch)).abs().max().item()
without_bias = bn.without_hidden_biases(with_bias)   # the hidden Linear layers without a bias
print(f"largest change in the 60 × 10 outputs when the hidden biases are zeroed: "
      f"{'below 1e-5 (float32 rounding)' if change < 1e-5 else change}")
counts = [sum(p.numel() for p in model.parameters()) for model in (with_bias, without_bias)]
print(f"parameters: {counts[0]:,} with the hidden biases, {counts[1]:,} without ({counts[0] - counts[1]} fewer)")

# %%
# Check: the bias changes no output
assert change < 1e-5

# %% [markdown]
# Neither in the forward pass nor in the gradient, so not in training either: SGD never moves $b$ (its
# gradient is zero at every step) and $b$ never moves an output, so a BN network trains as the same network
# without its biases would, up to float32 rounding. Checked: the digits network trained for 50 SGD steps
# (batches of 60, $\eta = 0.5$) twice from the same weights, once with its hidden biases as PyTorch
# initialized them (not zero) and once with them removed, then both run in training mode on the test set as
# one batch. (In eval mode one trace of $b$ remains for a while: the running mean starts at 0, so after $t$
# steps it still lacks the share $(1 - \text{momentum})^t$ of the batch means, $b$ included. It fades within
# a few hundred steps.)

# %%
logit_gap, labels_alike, bias_moved = bn.train_with_and_without_bias(digits, seed=SEEDS[0], steps=50)
print(f"after 50 steps, the two networks' test logits differ by less than 1% of the largest logit "
      f"(float32 rounding): {logit_gap < 0.01}; they label at least 99% of the test digits alike: "
      f"{labels_alike >= 0.99}")
print(f"largest change of a hidden bias during training: {'below 1e-6' if bias_moved < 1e-6 else bias_moved}")

# %%
# Check: with or without the bias, the same training
assert logit_gap < 0.01 and labels_alike >= 0.99 and bias_moved < 1e-6

# %% [markdown]
# So in your own networks drop the Linear bias before BN (`bias=False`, as in the paper's section 3.2):
# $\beta$ does its job, after the normalization, where it is not erased, and the bias would only cost
# parameters and memory. The course's networks keep it for one reason: `make_mlp` builds the network with
# and the network without BN from the *same* Linear layers and the same initial weights, so that a
# comparison changes nothing but the normalization; in the BN network the bias is dead weight, exactly as
# shown above, and changes no result.
#
# ### Why a layer after BN learns as if its inputs were centered
#
# A learner asks: *why does limiting the variation of the hidden distributions speed up
# training?* The zero sum above gives one mechanism. Take the Linear layer $x_i = W h_i + b$ that feeds a
# BN layer, with inputs $h_i$ (the sigmoid outputs of the layer below) and $g_i = \partial L/\partial x_i$.
# Its weight gradient is $\sum_i g_i h_i^\top$, and since $\sum_i g_i = 0$,
# $$\frac{\partial L}{\partial W} = \sum_{i=1}^m g_i\, h_i^\top = \sum_{i=1}^m g_i\,(h_i - \bar h)^\top:$$
# **the layer learns as if its inputs were centered**, whatever their mean. Notebook 01 showed what an
# offset in the inputs costs a linear model: its least-squares Hessian $\mathrm E[h h^\top] =
# \mathrm{Cov}[h] + \bar h \bar h^\top$ gains one steep direction along $\bar h$, and the learning rate
# must be small enough for that direction, so every other direction crawls. Sigmoid outputs are all
# positive, so $\bar h$ is large. Here is that Hessian for the inputs of the digits network's second Linear
# layer (the sigmoid outputs of the first hidden layer, over the training set), raw and centered, for the
# network of every claim seed as initialized:

# %%
conditioning = [bn.input_conditioning(make_mlp(norm="bnlab_bn", seed=seed), digits.X_train) for seed in SEEDS]
ratio = np.array([c.raw / c.centered for c in conditioning])   # (8,): how much centering helps, per seed
top_is_mean = np.array([abs(c.raw_top / c.mean_square - 1) < 0.05 for c in conditioning])
print(f"the raw Hessian's largest eigenvalue is |h̄|² to within 5%, the steep mean direction: "
      f"{Support.of(top_is_mean)}")
print(f"centering divides the condition number by more than 30: {Support.of(ratio > 30)}")

# %%
# Check: the mean direction is the steep one, and centering removes it
assert top_is_mean.all() and (ratio > 30).all()

# %% [markdown]
# The raw problem's steepest direction is the mean direction, in every seed, and removing it divides
# the condition number by over thirty. The BN layer's gradient removes it without anyone centering
# the inputs: the layer below may shift its outputs' mean as it likes, and the layer above does not
# need a smaller step for it. (This is one mechanism among several: [notebook 06](06_why_batchnorm_works.ipynb)
# tests the others.)
#
# ## 3. $\gamma$ and $\beta$: BN takes no expressive power away
#
# Normalizing every pre-activation to mean 0 and variance 1 would restrict what a layer can do: a
# sigmoid fed such inputs works mostly in its nearly linear middle. So BN gives every unit a scale
# $\gamma$ and a shift $\beta$, learned like any weight. Whatever the input's mean and spread were, the
# output has mean $\beta$ and standard deviation $\gamma$ (times
# $\sqrt{\sigma_B^2/(\sigma_B^2+\varepsilon)}$, a hair below 1).
# And if the network needs it, $\gamma = \sqrt{\sigma_B^2 + \varepsilon}$, $\beta = \mu_B$ gives the input
# back unchanged.
#
# **Predict, then drag.** The panel shows one unit of a fresh network over the 450 test digits. Where
# does the blue histogram go for $\gamma = 0.5$, $\beta = 2$? Does its *shape* ever change? Which
# setting drives most of the sigmoid's inputs into saturation?

# %%
unit = gamma_beta_unit()   # (450,) pre-activations of the most skewed unit of a fresh first layer
gamma_beta = gamma_beta_panel(unit)
gamma_beta

# %% [markdown]
# The sliders only shift and stretch the histogram; its shape is the input's (more on that in section 5).
# What they do to the sigmoid, in numbers (saturated: the sigmoid's slope below a tenth of its maximum,
# $|y| > 3.64$, as in notebook 02):

# %%
unit_hat = (unit - unit.mean()) / np.sqrt(unit.var() + 1e-5)      # the unit's x̂, (450,)
settings = [(0.5, 0), (1, 0), (3, 0), (1, 3), (3, 3)]                 # (γ, β)
saturated = {(g, b): saturated_fraction(g * unit_hat + b) for g, b in settings}
for (g, b), share in saturated.items():
    print(f"γ = {g}, β = {b}: {share:5.1%} of the sigmoid's inputs saturated")

# %%
# Check: γ and β decide the saturation
assert saturated[0.5, 0] <= saturated[1, 0] < 0.02 and saturated[3, 0] > 2 * saturated[1, 0]
assert saturated[3, 3] > 0.2 and saturated[1, 3] > 3 * saturated[1, 0]

# %% [markdown]
# With $\gamma = 1$, $\beta = 0$ the sigmoid hardly ever saturates: plain normalization would keep it in its
# nearly linear middle. A larger $\gamma$, or a $\beta$ away from 0, lets the network use the curved and
# flat parts when it needs them. The identity, checked on the whole layer (all 100 units of the batch
# from section 1): with $\gamma = \sqrt{\sigma_B^2 + \varepsilon}$ and $\beta = \mu_B$, BN returns its input.

# %%
mean, var = batch_statistics(x)                                    # (100,) each
identity = compare_all({"BN(x) with γ = √(σ² + ε), β = μ vs x":
                        (normalize(x, mean, var, torch.sqrt(var + 1e-5), mean, 1e-5), x)}, floor=1e-12)

# %%
# Check: the identity
assert all(identity.values()) and max(c.max_abs_diff for c in identity.values()) < 1e-12

# %% [markdown]
# The same holds for a whole network: set every BN layer of the digits network to its identity on a
# batch (`bn.set_to_identity`), and the network computes exactly what the same weights compute
# without BN.

# %%
plain = make_mlp(norm="none")            # same seed, so the same Linear weights
normalized = make_mlp(norm="bnlab_bn")
bn.set_to_identity(normalized, batch)
difference = (normalized(batch) - plain(batch)).abs().max().item()
print(f"network with BN set to the identity vs the network without BN, largest output difference: "
      f"{'below 1e-5 (float32 rounding)' if difference < 1e-5 else difference}")

# %%
# Check: a BN network set to the identity is the network without BN
assert difference < 1e-5

# %% [markdown]
# ## 4. Training mode and eval mode
#
# In training, a unit's output depends on the other examples of its mini-batch. A trained network
# should not do that when it classifies one image: "we want the output to depend only on the input,
# deterministically" (Ioffe & Szegedy 2015, section 3.1). Algorithm 2 therefore replaces the batch
# statistics at test time by **population statistics**, averaged over many training mini-batches of
# size $m$:
# $$\mathrm E[x] = \mathrm E_B[\mu_B], \qquad \mathrm{Var}[x] = \frac{m}{m-1}\,\mathrm E_B[\sigma_B^2],$$
# and the layer becomes a fixed map, $y = \gamma\,(x - \mathrm E[x])/\sqrt{\mathrm{Var}[x] + \varepsilon}
# + \beta$. The factor $m/(m-1)$ is there because the average of biased batch variances is too small by
# $(m-1)/m$. PyTorch (and bnlab's `BatchNorm`) do not make a separate pass: they keep **running
# averages** during training,
# `running = (1 - momentum) · running + momentum · batch statistic`, with `momentum = 0.1`.
#
# We train the digits network (64-100-100-100-10, sigmoid, bnlab's BN) for 1,000 SGD steps at
# $\eta = 0.5$ on mini-batches of 60, under each of the 8 claim seeds (initial weights and order of the
# mini-batches): 8 networks, trained together in one batched computation (`bnlab.ensemble`). Each is
# what the course's training loop would give for its seed. The first seed's network, `model`, is the one
# the single-network illustrations below look at; the claims are measured on all eight.

# %%
trained = train_networks(digits, SEEDS, steps=1000, lr=0.5)   # 8 networks, in eval mode
model = trained.networks[0]
final_accuracy = trained.final_accuracy()
print(f"test accuracy (eval mode) after 1,000 steps: {final_accuracy.describe('{:.0%}')} over {len(SEEDS)} seeds")

# %%
# Check: the networks trained
assert final_accuracy.median > 0.94 and final_accuracy.low > 0.9

# %% [markdown]
# ### Algorithm 2 against the running averages
#
# `bn.population_statistics` runs a trained network over one epoch of training mini-batches of 60,
# in training mode, and averages each layer's batch statistics as Algorithm 2 says
# (`running_vs_population` then compares them with the network's running averages). How close are the
# running averages, and does the difference matter? For each of the 8 networks:

# %%
comparisons = [running_vs_population(network, digits, batch_size=60, seed=seed)
               for network, seed in zip(trained.networks, SEEDS)]                # one per seed
for name in comparisons[0].mean_gap:
    mean_gap = max(c.mean_gap[name] for c in comparisons)
    low, high = min(c.var_ratio[name][0] for c in comparisons), max(c.var_ratio[name][1] for c in comparisons)
    print(f"{name}: |E[x] − running mean| at most {mean_gap:.2f} standard deviations; "
          f"Var[x] / running var from {low:.2f} to {high:.2f} (over all units and {len(SEEDS)} seeds)")
accuracy_running = OverSeeds(SEEDS, [c.accuracy_running for c in comparisons])
accuracy_population = OverSeeds(SEEDS, [c.accuracy_population for c in comparisons])
largest_change = np.abs(accuracy_running.values - accuracy_population.values).max()
print(f"test accuracy with the running averages {accuracy_running.describe('{:.0%}')}, "
      f"with Algorithm 2's population statistics {accuracy_population.describe('{:.0%}')}")
print(f"the two differ by less than 2 points in every seed: {largest_change < 0.02}")

# %%
# Check: Algorithm 2 and the running averages agree
assert largest_change < 0.02
assert all(gap < 0.2 for c in comparisons for gap in c.mean_gap.values())
assert all(0.75 < low and high < 1.35 for c in comparisons for low, high in c.var_ratio.values())

# %% [markdown]
# The two estimates differ a little, in every seed: the means by at most about a tenth of a standard
# deviation, the variances by the ratios printed above. The running averages lean towards the last batches,
# and the weights kept moving while they were collected. The accuracy hardly notices.
#
# Why the $m/(m-1)$? With small batches the bias is large. For the first layer (its input does not depend
# on any BN layer), average the biased variance of training batches of $m = 4$ and compare it with the
# variance of the whole training set:

# %%
z_train = model.linear1(digits.X_train).detach()              # (1347, 100): the first BN layer's input
unbiased_by_algorithm_2 = bn.population_statistics(model, digits.X_train, batch_size=4, seed=SEEDS[0])["norm1"][1]
average_biased = unbiased_by_algorithm_2 * 3 / 4               # E_B[σ_B²] before the m/(m-1) factor
whole_set = z_train.var(dim=0, unbiased=False)
print(f"m = 4: E_B[σ_B²] / variance of the training set, median over the 100 units: "
      f"{(average_biased / whole_set).median():.3f} (theory: (m − 1)/m = 0.750)")
print(f"after the factor m/(m − 1) = 4/3: {(unbiased_by_algorithm_2 / whole_set).median():.3f}")

# %%
# Check: the bias of the batch variance, and its correction
assert abs((average_biased / whole_set).median() - 0.75) < 0.03
assert abs((unbiased_by_algorithm_2 / whole_set).median() - 1) < 0.04

# %% [markdown]
# ### A common confusion: PyTorch normalizes with one variance and stores another
#
# In training mode, `nn.BatchNorm1d` normalizes with the **biased** batch variance (divided by $m$, as
# Algorithm 1 says), but the `running_var` it stores is updated with the **unbiased** one (divided by
# $m - 1$, as Algorithm 2 says). With `momentum=1.0` the running statistics are exactly those of the
# last batch, which makes it visible: feed a batch of $m = 4$ in training mode, then the *same* batch in
# eval mode.
#
# **Predict before you run.** The running statistics now describe exactly this batch. Will eval mode
# give the same outputs as training mode did: **"yes"** or **"no"**?

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
four = x[:4, :5].float()                        # a batch of m = 4, 5 units
for name, norm_layer in {"torch BatchNorm1d": nn.BatchNorm1d(5, momentum=1.0),
                         "bnlab BatchNorm": BatchNorm(5, momentum=1.0)}.items():
    train_out = norm_layer.train()(four)
    stored_unbiased = torch.allclose(norm_layer.running_var, four.var(dim=0, unbiased=True))
    eval_out = norm_layer.eval()(four)
    print(f"{name}: running_var == unbiased variance of the batch: {stored_unbiased}; output std per unit "
          f"in train mode {train_out.std(dim=0, unbiased=False).mean():.3f}, "
          f"in eval mode on the same batch {eval_out.std(dim=0, unbiased=False).mean():.3f}")
    assert stored_unbiased
    assert abs(train_out.std(dim=0, unbiased=False).mean() - 1) < 1e-3
    assert abs(eval_out.std(dim=0, unbiased=False).mean() - np.sqrt(3 / 4)) < 1e-3
print(f"√((m − 1)/m) = √(3/4) = {np.sqrt(3 / 4):.3f}")
compare_prediction(my_prediction, "yes" if torch.allclose(train_out, eval_out, atol=1e-4) else "no")

# %% [markdown]
# Same statistics, different outputs: eval mode divides by the unbiased standard deviation, which is
# larger by $\sqrt{m/(m-1)}$. For $m = 60$ the difference is under 1%; for tiny batches it is not.
#
# **`momentum` means opposite things in different libraries.** PyTorch's `momentum=0.1` is the weight of
# the *new* batch. Keras and TensorFlow write the same average the other way round:
# `moving = momentum · moving + (1 − momentum) · batch`, with `momentum=0.99` weighting the *old* value.
# Porting a Keras model with `momentum=0.99` into PyTorch unchanged makes the running mean little more than
# the last batch's mean. On the first layer of our trained network, three epochs of batch means:

# %%
order = torch.randperm(len(digits.X_train), generator=torch_generator(SEEDS[0], stream=45))
_, batch_statistics_per_layer = bn.forward_in_batches(model, digits.X_train[order], 60)
batch_means = batch_statistics_per_layer["norm1"][0]             # (22 batches, 100 units)
whole_mean = z_train.mean(dim=0)
errors = {}
for momentum in (0.1, 0.99):
    running = torch.zeros(100)
    for epoch in range(3):
        for batch_mean in batch_means:
            running = (1 - momentum) * running + momentum * batch_mean   # PyTorch's convention
    errors[momentum] = (running - whole_mean).abs().mean().item()
    print(f"PyTorch momentum {momentum}: mean |running mean − training-set mean| = {errors[momentum]:.4f}")

# %%
# Check: momentum 0.99 in PyTorch's convention follows the last batches
assert errors[0.99] > 2 * errors[0.1]

# %% [markdown]
# ### Eval mode is one affine map
#
# With the statistics frozen, each unit of a BN layer in eval mode computes $y = a\,x + c$ with
# $a = \gamma/\sqrt{\mathrm{Var}[x] + \varepsilon}$ and $c = \beta - a\,\mathrm E[x]$ (Algorithm 2, step 11).
# A deployed network can fold $a$ and $c$ into the Linear layer before it and drop BN altogether.

# %%
scale, shift = bn.inference_affine(model.norm1)            # (100,) each
with torch.no_grad():
    z_test = model.linear1(digits.X_test)
    affine_error = (model.norm1.eval()(z_test) - (scale * z_test + shift)).abs().max().item()
print(f"eval-mode norm1 vs a·x + c over the test set: largest difference "
      f"{'below 1e-5' if affine_error < 1e-5 else affine_error}")

# %%
# Check: eval mode is one affine map
assert affine_error < 1e-5

# %% [markdown]
# ### Forgetting eval mode
#
# A network left in training mode at test time normalizes every test batch with that batch's own
# statistics. Three things go wrong.
#
# **1. A single example cannot be classified at all:** one value per unit has no variance.

# %%
one_digit = digits.X_test[:1]
for name, net in {"bnlab": model, "torch": make_mlp(norm="torch_bn")}.items():
    try:
        net.train()(one_digit)
    except ValueError as error:
        print(f"{name}: {error}")
    finally:
        net.eval()

# %% [markdown]
# **2. A prediction depends on the other examples of the batch.** Each of the first 50 test digits,
# classified 20 times in training mode, each time in a batch of 4 with three other random test digits
# (`bn.forward_in_batches` runs the network the way training mode does, batch by batch):

# %%
rng = numpy_rng(SEEDS[0], stream=46)
n_digits, repeats = 50, 20
others = np.arange(n_digits, len(digits.X_test))
batches = np.array([[i, *rng.choice(others, size=3, replace=False)]                # (1000, 4) test indices
                    for i in range(n_digits) for _ in range(repeats)])
logits, _ = bn.forward_in_batches(model, digits.X_test[batches.ravel()], batch_size=4)
in_batches = logits[::4].argmax(dim=1).reshape(n_digits, repeats)     # each digit's label in its 20 batches
with torch.no_grad():
    alone = model.eval()(digits.X_test[:n_digits]).argmax(dim=1)       # eval mode: one label per digit
undecided = [i for i in range(n_digits) if len(set(in_batches[i].tolist())) > 1]
example = undecided[0]
labels = in_batches[example].tolist()
counts = {label: labels.count(label) for label in sorted(set(labels))}
print(f"test digit {example} (a {digits.y_test[example].item()}): eval mode says {alone[example].item()}; "
      f"training mode, in 20 batches of 4, says {counts} (label: times)")
print(f"{len(undecided)} of the first {n_digits} test digits get more than one label across their 20 batches")

# %%
# Check: predictions depend on the batch
assert len(undecided) >= 5

# %% [markdown]
# **3. The running statistics learn from the test data.** Every forward pass in training mode also
# updates the running averages, without a single gradient step. One forgotten `eval()` while scoring
# the test set:

# %%
before = copy.deepcopy(model.state_dict())
with torch.no_grad():
    model.train()(digits.X_test)          # eval() forgotten
    model.eval()
test_mean = z_test.mean(dim=0)
moved = (model.norm1.running_mean - before["norm1.running_mean"]).abs().max().item()
print(f"norm1's running means moved by up to {moved:.3f}, exactly 10% (momentum 0.1) of the way "
      "towards the test set's means")
expected = 0.9 * before["norm1.running_mean"] + 0.1 * test_mean       # running = 0.9 running + 0.1 batch
moved_as_expected = torch.allclose(model.norm1.running_mean, expected, atol=1e-5)
model.load_state_dict(before)             # undo it
assert moved > 0 and moved_as_expected

# %% [markdown]
# How much accuracy does a forgotten `eval()` cost? It depends on the test batch size $m$. The panel
# evaluates the first seed's trained network in training mode on the test set cut into batches of $m$
# (averaged over 5 random orders; `bn.accuracy_with_batch_statistics`, which leaves the network
# untouched), and shows the normalized values $\hat x$ of one unit of the first BN layer.
#
# **Predict, then drag.** How large can $|\hat x|$ get in a batch of $m$? At which $m$ does the accuracy
# come close to eval mode's?

# %%
sweep = batch_size_sweep(model, digits, seed=SEEDS[0])   # every m from 2 to 64
batch_size_view = batch_size_panel(model, digits, sweep)
batch_size_view

# %%
largest = {m: bn.normalize_in_batches(z_test.double(), m).abs().max().item() for m in (2, 4, 8)}
print("largest |x̂| for m = 2, 4, 8: " + ", ".join(f"{v:.3f} (√(m − 1) = {np.sqrt(m - 1):.3f})"
                                                    for m, v in largest.items()))

# %%
# Check: |x̂| ≤ √(m − 1)
assert all(v <= np.sqrt(m - 1) for m, v in largest.items())

# %% [markdown]
# Is the panel's curve a property of BN or of one network? The same sweep for the network of every
# seed (at 11 batch sizes from 2 to 64), the median and the range over the 8 seeds:

# %%
sweeps = sweep_over_seeds(trained.networks, SEEDS, digits)   # (8 seeds, 11 batch sizes)
sweep_figure(sweeps)

# %%
at = {m: sweeps.at(m) for m in (2, 4, 8, 16, 64)}    # m -> OverSeeds of the batch-statistics accuracy
for m, accuracy_at_m in at.items():
    print(f"test batches of m = {m:2d}: accuracy with batch statistics {accuracy_at_m.describe('{:.0%}')}")
print(f"eval mode, whatever m: {sweeps.eval.describe('{:.0%}')}")

# %%
# Check: the claim of section 4
medians = {m: a.median for m, a in at.items()}
assert medians[2] + 0.1 < medians[4] < medians[8] - 0.04 and medians[8] + 0.01 < medians[16]  # grows with m
assert medians[16] < sweeps.eval.median                                       # ... towards eval mode
assert (at[2].values < sweeps.eval.values - 0.25).all()                      # every seed: m = 2 collapses
assert (at[64].values > sweeps.eval.values - 0.04).all()                     # ... m = 64 nearly recovers
costs = at[4].values < sweeps.eval.values - 0.02                              # per seed: m = 4 costs accuracy
record("eval-needs-population-statistics", holds=outcome_of(Support.of(costs)), support=Support.of(costs),
       measured=f"{seed_range(SEEDS)}: test accuracy with batch statistics {at[2].describe('{:.0%}')} / "
                f"{at[4].describe('{:.0%}')} / {at[8].describe('{:.0%}')} at m = 2 / 4 / 8, with running "
                f"statistics {sweeps.eval.describe('{:.0%}')}")

# %% [markdown]
# In a batch of $m$, $|\hat x| \le \sqrt{m - 1}$; at $m = 2$ every value becomes $\pm 1$, whatever the
# image ([notebook 05](05_training_with_batchnorm.ipynb), section 5, follows what that does to training).
# The networks were trained on batches of 60, whose statistics are close to the population's; batches of
# 2 to 8 give them inputs they never saw, and the accuracy falls, the more the smaller the batch, in every
# seed, while eval mode gives the same answer for every $m$ (it does
# not look at the batch).
#
# ## 5. What BN does not fix: the shape of a distribution
#
# A learner's question: *if one mini-batch is Gaussian and the next has a completely different shape, how
# can matching the mean and the variance help?* Let us look at what BN does to three batches of 500
# values each: a Gaussian one, a bimodal one (two well-separated clusters) and a skewed one (a long
# right tail).
#
# **Predict before you run.** After BN, all three have mean 0 and variance 1. Will the bimodal batch
# still have two modes: **"yes"** or **"no"**?

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
shapes = shape_batches(SEEDS[0])   # name -> (500,) values: one draw of each shape
after_bn = {name: bn.batch_norm_1d(values) for name, values in shapes.items()}   # Algorithm 1, γ = 1, β = 0
print(f"{'batch':>9} {'mean':>14} {'std':>13} {'skewness':>17} {'within ±0.5 std':>21}")
for name, values in shapes.items():
    out = after_bn[name]
    print(f"{name:>9} {values.mean():6.2f} → {abs(out.mean()):.2f} {values.std():5.2f} → {out.std():.2f} "
          f"{skewness(values):+7.2f} → {skewness(out):+.2f} {central_share(values):9.0%} → "
          f"{central_share(out):.0%}")

# %%
# Check: BN moves and stretches, never bends
for name, values in shapes.items():
    out = after_bn[name]
    assert abs(out.mean()) < 1e-9 and abs(out.std() - 1) < 1e-4
    assert abs(skewness(out) - skewness(values)) < 1e-9 and central_share(out) == central_share(values)
compare_prediction(my_prediction, "yes" if central_share(after_bn["bimodal"]) < 0.05 else "no")

# %%
near_centre = {name: central_share(values) for name, values in after_bn.items()}
shape_figure(after_bn, f"After BN all three have mean 0 and std 1, yet only {near_centre['bimodal']:.0%} of the "
                       f"bimodal batch lies within ±0.5 std (Gaussian: {near_centre['Gaussian']:.0%})")

# %% [markdown]
# That was one draw of each batch. Two kinds of fact are mixed in the table: that BN leaves the skewness
# and the share near the centre exactly as they were is algebra, true for any batch; how skewed or how
# bimodal a batch of 500 is depends on the draw. The same for a fresh draw under each of the 8 claim seeds:

# %%
draws = [shape_batches(seed) for seed in SEEDS]                        # 8 × {name: (500,)}
normalized = [{name: bn.batch_norm_1d(values) for name, values in draw.items()} for draw in draws]
unchanged = np.array([all(abs(skewness(out[name]) - skewness(draw[name])) < 1e-9
                          and central_share(out[name]) == central_share(draw[name]) for name in draw)
                      for draw, out in zip(draws, normalized)])       # (8,): the exact part, per draw
share = {name: OverSeeds(SEEDS, [central_share(out[name]) for out in normalized]) for name in shapes}
skew = {name: OverSeeds(SEEDS, [skewness(out[name]) for out in normalized]) for name in shapes}
print(f"BN left the skewness and the share within ±0.5 std of every batch unchanged: {Support.of(unchanged)}")
print(f"within ±0.5 std after BN: bimodal {share['bimodal'].describe('{:.1%}')}, "
      f"Gaussian {share['Gaussian'].describe('{:.0%}')}")
print(f"skewness after BN: skewed {skew['skewed'].describe('{:+.1f}')}, Gaussian {skew['Gaussian'].describe('{:+.1f}')}")

# %%
# Check: the claim of section 5
assert unchanged.all()
assert share["bimodal"].high < 0.05 < 0.3 < share["Gaussian"].low         # every draw: bimodal stays bimodal
assert skew["skewed"].median > 1.5 and skew["skewed"].low > 1              # ... and skewed stays skewed
assert np.median(np.abs(skew["Gaussian"].values)) < 0.2 and np.abs(skew["Gaussian"].values).max() < 0.5
shape_kept = unchanged & (share["bimodal"].values < 0.05) & (skew["skewed"].values > 1)
record("bn-matches-two-moments-only", holds=outcome_of(Support.of(shape_kept)), support=Support.of(shape_kept),
       measured=f"{seed_range(SEEDS)} (a draw of 500 values per seed; skewness and central share unchanged by BN "
                f"exactly): after BN the bimodal batch has {share['bimodal'].describe('{:.1%}')} within ±0.5 std "
                f"(Gaussian {share['Gaussian'].describe('{:.0%}')}); the skewed batch keeps skewness "
                f"{skew['skewed'].describe('{:+.1f}')}")

# %% [markdown]
# BN is an affine map per unit, $y = a x + c$ with $a > 0$: it moves and stretches the histogram and never
# bends it. Skewness, the number of modes, the share of values near the centre: all unchanged. So, to the
# question: matching the first two moments does **not** make two batches of different shapes alike, and
# BN does not claim to. What it guarantees is narrower: whatever the weights below do, each unit reaches
# the next layer with the location and the scale that $\beta$ and $\gamma$ choose. Location and scale are
# what push a sigmoid into saturation (section 3, and notebook 02), and what the weights of the layer above
# must otherwise keep re-adapting to. The shape is left to the network. And since BN cannot make
# differently shaped batches alike, shuffling the training data, so that every mini-batch is a fair
# sample of the same distribution, stays necessary.
#
# ## 6. Convolutional feature maps: one mean and variance per channel
#
# A convolutional layer computes the same feature (channel) at every position of the image. For the
# normalization to keep that property, every position of a channel must be normalized the same way, so BN
# computes **one mean and one variance per channel**, over the batch *and* all positions: over $m = N\cdot
# H\cdot W$ values (the paper's section 3.2). A feature map $(N, C, H, W)$ gets $C$ means, not
# $C\cdot H\cdot W$. bnlab's `BatchNorm` reduces over every dimension but the channel one (`reduction_dims`),
# so the same layer, and the same hand-written backward, work for feature maps.
#
# Our feature maps: the 60 digits as 8×8 images through a 3×3 convolution with 4 output channels.

# %%
images = digits.X_train[:60].reshape(60, 1, 8, 8).double()
convolution = nn.Conv2d(1, 4, kernel_size=3, padding=1).double()
with torch.no_grad():
    convolution.weight.copy_(torch.randn(4, 1, 3, 3, generator=generator, dtype=torch.float64) / 3)
    convolution.bias.zero_()
    maps = convolution(images)                                              # (60, 4, 8, 8)
conv_mean, conv_var = batch_statistics(maps)
print(f"feature maps {tuple(maps.shape)}: {conv_mean.numel()} means and {conv_var.numel()} variances, "
      f"each over m = {maps.numel() // maps.shape[1]:,} values")

ours_2d, torch_2d = BatchNorm(4).double(), nn.BatchNorm2d(4).double()
maps_ours, maps_torch = maps.clone().requires_grad_(True), maps.clone().requires_grad_(True)
grad_maps = torch.randn(maps.shape, generator=generator, dtype=torch.float64)
out_ours, out_torch = ours_2d(maps_ours), torch_2d(maps_torch)
out_ours.backward(grad_maps)
out_torch.backward(grad_maps)
by_hand = bn.batch_norm_backward(grad_maps, maps, torch.ones(4, dtype=torch.float64))
conv_checks = compare_all({
    "output": (out_ours, out_torch),
    "running_mean": (ours_2d.running_mean, torch_2d.running_mean),
    "running_var": (ours_2d.running_var, torch_2d.running_var),
    "dL/dx (autograd)": (maps_ours.grad, maps_torch.grad),
    "dL/dx (by hand)": (by_hand[0], maps_torch.grad),
    "dL/dgamma (by hand)": (by_hand[1], torch_2d.weight.grad),
    "dL/dbeta (by hand)": (by_hand[2], torch_2d.bias.grad),
}, floor=1e-12)

# %%
# Check: per-channel BN agrees with nn.BatchNorm2d
assert all(conv_checks.values()) and conv_mean.shape == (4,)

# %% [markdown]
# Everything agrees with `nn.BatchNorm2d`. Normalizing each position separately would instead give
# $4\cdot 8\cdot 8 = 256$ means from 60 values each, and a corner pixel would be scaled differently from
# the centre: the same feature would mean different things in different places.
#
# ## 7. Exercises
#
# **Exercise 1: the forward.** Write `batch_norm_forward(x, gamma, beta, eps)`: Algorithm 1 in training
# mode, in torch operations, for `x` of shape (N, C) **and** for feature maps (N, C, H, W) (one mean
# and variance per channel, over every dimension but dimension 1). `gamma` and `beta` have shape (C,).
# Return `y`, shaped like `x`. The check tries both layouts and names the usual mistakes.
# (Exercise 3 turns it into a layer.)

# %%
def batch_norm_forward(x, gamma, beta, eps=1e-5):
    """Algorithm 1 (training mode). x: (N, C) or (N, C, H, W); gamma, beta: (C,). Returns y like x."""
    raise NotImplementedError  # replace this line with your code


check_batch_norm_forward(batch_norm_forward)

# %% [markdown]
# **Exercise 2: the backward.** Write `batch_norm_backward(grad_out, x, gamma, eps)` for `x` of shape
# (N, C): given $\partial L/\partial y$ (`grad_out`, shaped like `x`), return the three gradients
# `(grad_x, grad_gamma, grad_beta)`, shaped like `x`, `gamma` and `beta`. Recompute $\mu_B$,
# $\sigma_B^2$ and $\hat x$ from `x`, then follow the chain of section 2 (or use its compact form). The
# check compares with autograd and names what is missing. It calls your function with autograd switched
# off (inside `torch.no_grad()`, on inputs that do not require a gradient) and watches it: a function that
# asks autograd for the gradient (`.backward()`, `torch.autograd.grad`, `torch.func`, `requires_grad_`)
# does not pass. Sums, products and square roots are all you need.

# %%
def batch_norm_backward(grad_out, x, gamma, eps=1e-5):
    """dL/dx (N, C), dL/dgamma (C,), dL/dbeta (C,) of Algorithm 1, from dL/dy = grad_out (N, C)."""
    raise NotImplementedError  # replace this line with your code


check_batch_norm_backward(batch_norm_backward)

# %% [markdown]
# **Exercise 3: a complete BN layer.** Exercise 1 computed Algorithm 1 for one batch; a layer also keeps
# the running statistics and knows its mode. Complete `forward` below for inputs of shape (N, C): in
# **training mode** (`self.training` is True) normalize with the batch's mean and biased variance and update
# `running_mean` and `running_var` with PyTorch's convention, `running = (1 - momentum) · running +
# momentum · batch statistic` (momentum weights the *new* batch; the variance stored is the unbiased one,
# the batch's biased variance times $m/(m-1)$), inside `with torch.no_grad():`; in **eval mode** normalize with the running statistics
# and change nothing. The check compares your layer with `nn.BatchNorm1d` over three training batches
# (outputs, gradients, running statistics), at two momentums, and in eval mode (a whole batch, and a single
# example). Notebook 07 extends the same layer to feature maps.

# %%
class MyBatchNorm(nn.Module):
    """Batch Normalization for (N, C) inputs, with running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        raise NotImplementedError  # replace this line with your code


check_batch_norm_layer_1d(MyBatchNorm)

# %% [markdown]
# **Exercise 4: debug this model.** A colleague ported their Keras model of the digits to PyTorch. It
# trains well, and in training mode it classifies the test digits well; switched to eval mode, as it must
# be to classify one digit at a time, it is far worse (how much worse depends on the seed). Here is their
# model, trained with `fit_briefly`, a plain SGD loop in training mode (200 steps, batches of 60,
# $\eta = 0.5$):

# %%
def colleague_model(seed):
    """The colleague's digits MLP (64-100-100-10, sigmoid) with PyTorch's BatchNorm1d, set up as in Keras."""
    model = make_mlp(hidden=(100, 100), norm="torch_bn", seed=seed)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d):
            layer.eps = 1e-3         # Keras's default epsilon
            layer.momentum = 0.0     # "we trained without momentum"
    return model


broken = fit_briefly(colleague_model(SEEDS[0]), digits, seed=SEEDS[0])
in_eval, in_training = eval_and_training_mode(broken, digits)
print(f"test accuracy in training mode (the whole test set as one batch) above 90%: {in_training > 0.9}; "
      f"in eval mode more than 15 points lower: {in_eval < in_training - 0.15}")

# %%
# Check: the symptom
assert in_eval < in_training - 0.15 and in_training > 0.9

# %% [markdown]
# Find the cause (look at what eval mode uses that training mode does not), then write
# `repaired_model(seed)`: the colleague's model, repaired, keeping its BN layers. The check trains it with
# `fit_briefly` and compares eval mode with training mode, and names what is still wrong.

# %%
def repaired_model(seed):
    """The colleague's model, repaired: as good in eval mode as in training mode after fit_briefly."""
    raise NotImplementedError  # replace this line with your code


check_repaired_model(repaired_model)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("batch_norm_forward")
# show_solution("batch_norm_backward")
# show_solution("batch_norm_layer_1d")
# show_solution("repaired_model")

# %% [markdown]
# ## Summary
# * **Forward (Algorithm 1):** per unit, subtract the mini-batch mean, divide by $\sqrt{\sigma_B^2 +
#   \varepsilon}$ with the *biased* variance (divided by $m$), then scale by $\gamma$ and shift by $\beta$.
#   bnlab splits it into pure functions (statistics in, normalized values out) and a thin layer that
#   keeps $\gamma$, $\beta$, the running statistics and the mode; numpy, bnlab and PyTorch agree to
#   float64 rounding.
# * **Backward:** $\partial L/\partial\beta = \sum_i \partial L/\partial y_i$, $\partial L/\partial\gamma =
#   \sum_i \partial L/\partial y_i\,\hat x_i$, and $\partial L/\partial x_i$ has three paths (direct, through
#   $\mu_B$, through $\sigma_B^2$). The hand-written gradients match autograd and `nn.BatchNorm1d`. The
#   input gradients sum to zero over the batch, so a bias before BN never learns and changes nothing
#   (a network trains as without it, up to rounding): drop it in your networks, $\beta$ replaces it. The same zero
#   sum makes the layer before BN learn as if its inputs were centered, which removes the steep mean
#   direction of notebook 01 from its problem (its condition number fell over thirtyfold, every seed).
# * **$\gamma$ and $\beta$** set the output's mean and spread; $\gamma = \sqrt{\sigma_B^2 + \varepsilon}$,
#   $\beta = \mu_B$ is the identity, so a BN network can compute whatever the network without BN computes.
# * **Training vs eval:** Algorithm 2 uses population statistics with the unbiased variance
#   ($m/(m-1)$; the biased average at $m = 4$ is 3/4 of the truth); PyTorch keeps running averages
#   instead, normalizes with the biased variance but stores the unbiased one. Eval mode is one affine map
#   per unit. Forgetting `eval()` makes predictions depend on the batch, lets test data move the running
#   statistics, and costs accuracy: on digits, in the median over 8 seeds, 61% at $m = 2$ and 83% at
#   $m = 4$, against 98% in eval mode.
# * **BN matches two moments, not shapes:** a bimodal batch stays bimodal, a skewed one skewed, in every
#   draw (BN changes neither the skewness nor the share of values near the centre).
# * **Feature maps:** one mean and variance per channel, over $N\cdot H\cdot W$ values.
#
# **Next:** [05 · Training with BN](05_training_with_batchnorm.ipynb) trains with BN: higher learning rates,
# bad initializations, saturating nonlinearities, and what $\gamma$ and $\beta$ do during training. [00 ·
# Start here](00_start_here.ipynb) has the map.
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167): Algorithm 1
#   and the gradients (section 3), Algorithm 2 and the unbiased variance (section 3.1), convolutional BN
#   and the dropped bias (section 3.2).
# * PyTorch documentation, [`torch.nn.BatchNorm1d`](https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html):
#   the biased variance for normalizing, the unbiased one for the running estimate, and the meaning of
#   `momentum`.
# * Keras documentation, [`BatchNormalization`](https://keras.io/api/layers/normalization_layers/batch_normalization/):
#   the moving averages with `momentum=0.99`.
# * A. Zhang, Z. C. Lipton, M. Li and A. J. Smola (2023). *Dive into Deep Learning.* Cambridge University
#   Press. [Section 8.5, Batch Normalization](https://d2l.ai/chapter_convolutional-modern/batch-norm.html)
#   (a from-scratch implementation split into a function and a layer).
# * A. Karpathy (2022). *Building makemore Part 4: Becoming a Backprop Ninja*, in the lecture series
#   [Neural Networks: Zero to Hero](https://github.com/karpathy/nn-zero-to-hero) (BN's backward pass by
#   hand, checked tensor by tensor).
# * S. Ioffe (2017). *Batch Renormalization: Towards Reducing Minibatch Dependence in Batch-Normalized
#   Models.* NeurIPS. [arXiv:1702.03275](https://arxiv.org/abs/1702.03275) (the train/test mismatch of
#   small batches).
