# %% [markdown]
# # 05 · Training with Batch Normalization
#
# Notebook 02 reproduced the paper's Figure 1 on digits: with BN, the distribution of a hidden unit's
# input moves less during training, and the network learns faster. The paper promises more than that.
# Its abstract says BN "allows us to use much higher learning rates and be less careful about
# initialization", and its introduction adds that BN makes it possible to train with saturating
# nonlinearities. This notebook puts each promise to a test on the digits and answers one question:
# **what does Batch Normalization buy in practice, and where does it stop helping?**
#
# **Learning goals.** After this notebook you can
# 1. compare training with and without BN over learning rates spanning three decades, and tell a run
#    that stalls from one that dies or diverges;
# 2. derive BN's scale invariance, $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$, and its consequence for the
#    gradient ($\propto 1/a$); say what it forgives about initialization, and what it does not;
# 3. explain when sigmoid and tanh networks fail without BN (vanishing gradients or saturation) and what
#    BN changes;
# 4. separate the two noises of a mini-batch, the gradient's and BN's own, and explain why very small
#    batches hurt BN;
# 5. describe how $\gamma$ and $\beta$ move during training, and what the learning rate does to them;
# 6. measure the singular values of a layer's Jacobian, and judge the paper's remark that BN brings
#    them close to 1.

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
import numpy as np

import bnlab
from bnlab.claims import record
from bnlab.figures import history_figure
from bnlab.lessons.nb05_training_with_batchnorm import experiments as bt
from bnlab.lessons.nb05_training_with_batchnorm.checks import (
    check_jacobian_singular_values,
    check_scale_hidden_weights,
    show_solution,
)
from bnlab.lessons.nb05_training_with_batchnorm.experiments import learning_rate_grids
from bnlab.lessons.nb05_training_with_batchnorm.figures import (
    batch_size_training_panel,
    gamma_beta_figure,
    init_scale_panel,
    jacobian_figure,
    learning_rate_panel,
    saturation_figure,
    unit_distribution_figure,
)
from bnlab.models import WITH_AND_WITHOUT_BN

SEED = bnlab.setup()
print(f"Course seed: {SEED}")

# %% [markdown]
# ## 1. The paper's experiment on digits
#
# Ioffe and Szegedy (section 4.1) trained a network with 3 hidden layers of 100 sigmoid units on MNIST,
# with mini-batches of 60 examples, with and without BN. Our version is notebook 02's: the 8×8 digits
# (1,347 training and 450 test images), 64 inputs, weights drawn from $N(0, 0.1^2)$, BN (PyTorch's
# `BatchNorm1d`) before every sigmoid. Digits are an easier task than MNIST, so every run here is
# short: **200 SGD steps** (about 9 passes over the training set), with the test accuracy recorded
# every 50 steps.
#
# The notebook trains about fifty networks. Each one is a `Run` (network, BN or not, learning
# rate, batch size, initial weight scale), and one `Experiments` object trains each setting once, with
# `bnlab.training.train`, and keeps the result: later sections and the slider panels look runs up
# instead of training them again. Runs asked for together are trained side by side, one per CPU core;
# each is seeded and single-threaded, so its numbers do not depend on how many cores your machine has.
#
# **Predict before you run.** At learning rate $\eta = 1$, how many steps will each network need to
# reach 90% test accuracy?

# %%
experiments = bt.Experiments()  # 200 steps per run, a record every 50 steps, the course seed
PAPER = bt.NETWORKS["3×100 sigmoid"]  # depth 3, sigmoid
base = experiments.pair(**PAPER)      # η = 1, batches of 60, weights N(0, 0.1²): with and without BN
reach = {net: bt.steps_to(history, 0.9) for net, history in base.items()}
for net, history in base.items():
    print(f"{net:>10}: test accuracy {history.final_accuracy:.1%} after {history.steps[-1]} steps, 90% "
          + (f"first reached at step {reach[net]}" if reach[net] else "not reached"))
assert base["with BN"].final_accuracy > 0.9 and reach["with BN"] <= 50
assert base["with BN"].final_accuracy > base["without BN"].final_accuracy + 0.05
assert reach["without BN"] is None or reach["without BN"] >= 3 * reach["with BN"]

# %%
plain_reach = (f"step {reach['without BN']}" if reach["without BN"] else
               f"not within {base['without BN'].steps[-1]} steps")
history_figure(base, title=f"The paper's 3×100 sigmoid network on digits, η = 1: 90% test accuracy at step "
                           f"{reach['with BN']} with BN, {plain_reach} without")

# %% [markdown]
# Same network, same initial weights, same mini-batches: with BN it passes 90% test accuracy by step 50,
# while without BN it has not got there by the end (it ends between 80% and 90%, depending on the seed).
# Notebook 02 looked inside this network (the percentiles of a sigmoid's input, the paper's Figure 1).
# Here we change the training conditions instead, one at a time.

# %% [markdown]
# ## 2. Higher learning rates
#
# The first promise: with BN, you can raise the learning rate. We train both networks at six learning
# rates over three decades: 0.01, 0.1, 0.3, 1, 3 and 10. We also train a deeper network, **6 hidden
# layers of 100 ReLU units** (same initialization), because depth is where large steps become dangerous: each layer
# multiplies the scale of the signal, so a step that inflates every layer's weights a little inflates
# the output a lot. A run **diverges** when its loss becomes NaN or infinite; we then stop it and mark
# where. A run that ends below 50% test accuracy (chance is 10%) has **failed**.
#
# **Predict before you run.** Which learning rates will the sigmoid network survive without BN? And the
# ReLU network? Will BN survive η = 10?

# %%
grids = learning_rate_grids(experiments)  # 2 networks x 6 learning rates x with/without BN (22 new runs)


def short(history):
    """A run's outcome in a table cell."""
    return f"NaN at {history.diverged_at}" if history.diverged else f"{history.final_accuracy:.0%}"


print(f"{'η':>5} | {'3×100 sigmoid':^23} | {'6×100 ReLU':^23}")
print(f"{'':>5} | {'without BN':>11} {'with BN':>11} | {'without BN':>11} {'with BN':>11}")
for lr in bt.LEARNING_RATES:
    cells = [short(grids[network][lr][net]) for network in grids for net in WITH_AND_WITHOUT_BN]
    print(f"{lr:>5g} | {cells[0]:>11} {cells[1]:>11} | {cells[2]:>11} {cells[3]:>11}")

sigmoid_grid, relu_grid = grids["3×100 sigmoid"], grids["6×100 ReLU"]
assert all(bt.trained(runs["with BN"], 0.8) for runs in sigmoid_grid.values())
for lr in (0.01, 0.1, 0.3, 10.0):  # the sigmoid net without BN stalls at both ends ...
    assert sigmoid_grid[lr]["without BN"].final_accuracy < 0.5
assert bt.trained(sigmoid_grid[1.0]["without BN"], 0.75)  # ... and trains only around η = 1
for lr in (0.01, 0.1, 0.3, 1.0, 3.0):
    assert bt.trained(relu_grid[lr]["with BN"], 0.85)
assert relu_grid[10.0]["with BN"].final_accuracy < 0.5 and not relu_grid[10.0]["with BN"].diverged
assert relu_grid[3.0]["without BN"].diverged and relu_grid[10.0]["without BN"].diverged
assert not bt.trained(relu_grid[1.0]["without BN"], 0.75)  # diverged, or far behind
assert not bt.trained(relu_grid[0.01]["without BN"], 0.75)  # slow
assert all(bt.trained(relu_grid[lr]["without BN"], 0.85) for lr in (0.1, 0.3))
trains_at = {net: [lr for lr in bt.LEARNING_RATES if bt.trained(relu_grid[lr][net], 0.85)]
             for net in WITH_AND_WITHOUT_BN}
record("bn-allows-higher-learning-rates",
       holds=max(trains_at["with BN"]) >= 10 * max(trains_at["without BN"]),
       measured="6×100 ReLU reaches 85% at η = " + "; ".join(
           f"{', '.join(f'{lr:g}' for lr in lrs)} {net}" for net, lrs in trains_at.items()))

# %% [markdown]
# The panel opens on the ReLU network at η = 3. Drag the learning rate, and switch networks. Left: the two
# runs at that learning rate. Right: where each network ends after 200 steps, at every learning rate (an X
# is a run that diverged).

# %%
lr_panel = learning_rate_panel(learning_rate_grids(experiments), lr=3.0, network="6×100 ReLU")
lr_panel

# %% [markdown]
# What the grid says:
# * **The sigmoid network without BN trains only in a narrow window** around η = 1 (for most seeds η = 3
#   works too). At η = 0.3 and below it stays under 50% after 200 steps: its first layers get a tiny
#   gradient (each sigmoid passes back at most 1/4, notebook 02 §4). At η = 10 it stalls too: the first
#   large steps push the sigmoids into saturation, where they pass back almost nothing (notebook 02 §4
#   measured it at η = 8). With BN it reaches 80% or more at every learning rate from 0.01 to 10.
# * **The ReLU network without BN diverges** at η = 3 and 10 (NaN within a few dozen steps), and at
#   η = 1 it diverges or ends far behind, depending on the seed; at η = 0.01 it is slow. With BN
#   it reaches 85% at every learning rate from 0.01 to 3.
# * **BN has a limit too.** At η = 10 the ReLU network with BN does not diverge, but it fails: the
#   output layer and γ, β are not normalized, and steps that large wreck them. "Much higher learning
#   rates" means a wider window, not no window.
#
# Why does BN forgive large steps? The next section shows the mechanism: a BN layer's output does not
# depend on the scale of the weights before it, and the gradient shrinks as those weights grow.

# %% [markdown]
# ## 3. Initialization and scale invariance
#
# ### 3.1 BN(aWu) = BN(Wu)
#
# Multiply the weights $W$ before a BN layer by $a > 0$. Every pre-activation $x = Wu$ becomes $ax$, so
# its batch mean becomes $a\mu$ and its batch standard deviation $a\sigma$, and
# $$\hat x = \frac{ax - a\mu}{\sqrt{a^2\sigma^2 + \epsilon}} \approx \frac{x - \mu}{\sigma}:$$
# the output does not change, as long as $a^2\sigma^2 \gg \epsilon$ (PyTorch's $\epsilon = 10^{-5}$). So the
# loss satisfies $L(aW) = L(W)$ for every $a$, and differentiating both sides with respect to $W$ gives
# $a\,L'(aW) = L'(W)$, that is, the gradient at the scaled weights is
# $$\frac{\partial L}{\partial W}\Big|_{aW} = \frac{1}{a}\,\frac{\partial L}{\partial W}\Big|_{W}:$$
# **larger weights get smaller gradients** (paper, section 3.3). Notebook 03 met the same property on a
# toy layer (the effective learning rate $\eta/\lVert W\rVert^2$). Checked here on one Linear → BN layer
# of 100 units, on 60 digits, in double precision, with the loss a fixed random projection of the output:

# %%
first_batch = experiments.data.X_train[:60]
preactivation_variance, invariance = bt.scale_invariance([0.01, 0.1, 10.0, 100.0], first_batch)
print(f"pre-activation variance at a = 1: about {preactivation_variance:.2f} (ε = 1e-5)")
print(f"{'a':>6} {'a²·variance':>12} {'largest change of BN output':>28} {'a·|dL/d(aW)| / |dL/dW|':>24}")
for a, (change, gradient_ratio) in invariance.items():
    print(f"{a:>6g} {a**2 * preactivation_variance:>12.2g} {change:>28.1e} {gradient_ratio:>24.4f}")
for a in (0.1, 10.0, 100.0):
    change, gradient_ratio = invariance[a]
    assert change < 0.05 and abs(gradient_ratio - 1) < 0.01
assert invariance[10.0][0] < 1e-3 and abs(invariance[10.0][1] - 1) < 1e-4
assert invariance[0.01][0] > 0.1  # a²σ² close to ε: the invariance breaks

# %% [markdown]
# Invariant, up to $\epsilon$: at $a = 0.01$ the pre-activation variance is only a few times $\epsilon$,
# and the output shrinks. That is a practical limit, not a curiosity: weights initialized very small meet
# $\epsilon$.
#
# ### 3.2 A whole network, initialized at the wrong scale
#
# Now the paper's network with the initial weights of its three hidden layers multiplied by
# $a = 0.01, 0.1, 1, 10, 100$ (so their standard deviation runs from 0.001 to 10; the output layer keeps
# $N(0, 0.1^2)$), trained at η = 1.
#
# **Predict before you run.** Which scales will the network without BN survive? How does the gradient
# of the first hidden layer at initialization depend on $a$, with and without BN?

# %%
init_grid = experiments.grid("init_scale", bt.INIT_SCALES, **PAPER)  # 8 new runs (a = 1 is the base run)
initial_gradient = bt.initial_gradients(experiments, **PAPER)      # a -> net -> |dL/dW1| before training
saturated = {a: bt.saturated_share(bt.Run(net="without BN", init_scale=a, **PAPER).build(SEED),
                                   experiments.data.X_train, "sigmoid") for a in bt.INIT_SCALES}
print(f"{'a':>6} | {'|dL/dW1| at the start':^25} | {'a·|dL/dW1|':^10} | {'saturated':^10} | "
      f"{'test accuracy at the end':^25}")
print(f"{'':>6} | {'without BN':>12} {'with BN':>12} | {'with BN':>10} | {'without BN':>10} | "
      f"{'without BN':>12} {'with BN':>12}")
for a in bt.INIT_SCALES:
    g, runs = initial_gradient[a], init_grid[a]
    print(f"{a:>6g} | {g['without BN']:>12.2e} {g['with BN']:>12.2e} | {a * g['with BN']:>10.3f} | "
          f"{saturated[a]:>10.0%} | {short(runs['without BN']):>12} {short(runs['with BN']):>12}")

scaled_gradient = np.array([a * initial_gradient[a]["with BN"] for a in (0.1, 1.0, 10.0, 100.0)])
assert np.ptp(scaled_gradient) < 0.02 * scaled_gradient.mean()              # with BN: gradient ∝ 1/a
assert initial_gradient[0.01]["with BN"] < 0.5 * initial_gradient[1.0]["with BN"] / 0.01  # ... until ε
assert initial_gradient[0.01]["without BN"] < initial_gradient[1.0]["without BN"] / 100  # vanishing
assert all(bt.trained(runs["with BN"], 0.9) for runs in init_grid.values())
assert all(init_grid[a]["without BN"].final_accuracy < 0.25 for a in (0.01, 0.1))
assert init_grid[100.0]["without BN"].final_accuracy < 0.75 and saturated[100.0] > 0.5
trained_from = {net: [a for a in bt.INIT_SCALES if bt.trained(init_grid[a][net], 0.9)]
                for net in WITH_AND_WITHOUT_BN}
gradient_spread = np.ptp(scaled_gradient) / scaled_gradient.mean()
record("bn-forgives-initialization",
       holds=trained_from["with BN"] == list(bt.INIT_SCALES) and gradient_spread < 0.02,
       measured="reaches 90% from initial weights × a = " + "; ".join(
           f"{', '.join(f'{a:g}' for a in scales) or 'none'} {net}" for net, scales in trained_from.items())
       + f"; a·|dL/dW1| with BN varies by {gradient_spread:.1%}")

# %% [markdown]
# Without BN the gradient that reaches the first layer collapses as the weights shrink (each layer passes
# back a share proportional to its weights), and with the smallest two scales the network never leaves
# chance. At $a = 100$ most sigmoids start saturated (slope below a tenth of its maximum) and it ends far
# behind. With BN, the forward pass is the same at every scale, and the gradient follows $1/a$ within 2%,
# until $\epsilon$ interferes at $a = 0.01$. Every scale trains.

# %%
init_panel = init_scale_panel(init_grid, initial_gradient)
init_panel

# %% [markdown]
# ### 3.3 What BN does not forgive: the size of the step
#
# The forward pass ignores $a$, but training does not. The step $\eta\,\partial L/\partial W$ shrinks like
# $1/a$ while the weights grow like $a$, so relative to the weights a step shrinks like $1/a^2$. How far
# did the hidden weights of the BN network travel in 200 steps, relative to where they started?

# %%
travel = {a: bt.relative_weight_change(bt.Run(init_scale=a, **PAPER).build(SEED),
                                       experiments.model(bt.Run(init_scale=a, **PAPER)))
          for a in bt.INIT_SCALES}
for a, change in travel.items():
    print(f"a = {a:>6g}: |W_end - W_start| / |W_start| = {change:.2g}")
ratios = [travel[small] / travel[large] for small, large in zip(bt.INIT_SCALES, bt.INIT_SCALES[1:])]
assert all(ratio > 8 for ratio in ratios)  # each factor 10 in a: the weights travel at least ~10x less
assert travel[100.0] < 0.003 and travel[0.01] > 100

# %% [markdown]
# With $a = 0.01$ the first steps are enormous compared with the weights, which grow a hundredfold or more
# (and, as they grow, their gradient shrinks: BN "stabilizes the parameter growth", section 3.3). With
# $a = 100$ the hidden weights hardly move at all: they stay essentially the random weights they started
# as, and the network still reaches over 90% by learning the output layer and γ, β on top of them (an
# easy task helps). BN makes the *output* independent of the weights' scale; the *learning dynamics*
# still depend on it, through the effective learning rate $\eta/\lVert W\rVert^2$ of notebook 03.

# %% [markdown]
# ## 4. Saturating nonlinearities: sigmoid and tanh
#
# A learner asks (seed 001): does BN really let sigmoid and tanh networks train, by keeping them out of
# saturation? Notebook 02 (§4) watched saturation in the 3-layer network; there both networks still
# reached 95%. Depth makes the question sharper, so we use **6 hidden layers of 100 units**, sigmoid or
# tanh, initial weights of standard deviation 0.1 or 1 ($a = 1$ or 10), trained at η = 0.3 (a rate at
# which the plain ReLU network trains, section 2). Two numbers at initialization explain the outcomes:
# the share of the hidden units' inputs at which the activation's slope is below a tenth of its maximum
# (**saturated**), and the size of the first hidden layer's gradient relative to the last's (**reach**).
#
# **Predict before you run.** Sigmoid and tanh have the same S shape ($\tanh x = 2\sigma(2x) - 1$). Will
# they fail in the same settings without BN?

# %%
variants = {f"{activation}, std {bt.INIT_STD * a:g}": dict(depth=bt.DEEP_DEPTH, activation=activation,
                                                          lr=bt.SATURATION_LR, init_scale=a)
            for activation in ("sigmoid", "tanh") for a in (1.0, 10.0)}
saturation_runs = experiments.pairs(variants)  # label -> both networks: 8 new runs
print(f"{'6×100 network':>18} | {'saturated at the start':^23} | {'reach at the start':^21} | "
      f"{'test accuracy at the end':^23}")
print(f"{'':>18} | {'without BN':>11} {'with BN':>11} | {'without BN':>10} {'with BN':>10} | "
      f"{'without BN':>11} {'with BN':>11}")
at_start = {}
for label, fields in variants.items():
    models = {net: bt.Run(net=net, **fields).build(SEED) for net in WITH_AND_WITHOUT_BN}
    at_start[label] = {net: (bt.saturated_share(model, experiments.data.X_train, fields["activation"]),
                             bt.gradient_reach(model, experiments.data)) for net, model in models.items()}
    (sat_plain, reach_plain), (sat_bn, reach_bn) = at_start[label].values()
    runs = saturation_runs[label]
    print(f"{label:>18} | {sat_plain:>11.0%} {sat_bn:>11.0%} | {reach_plain:>10.2g} {reach_bn:>10.2g} | "
          f"{short(runs['without BN']):>11} {short(runs['with BN']):>11}")

final = {label: {net: h.final_accuracy for net, h in runs.items()} for label, runs in saturation_runs.items()}
assert all(bt.trained(runs["with BN"], 0.85) for runs in saturation_runs.values())
assert final["sigmoid, std 0.1"]["without BN"] < 0.2                                   # vanishing gradient
assert at_start["sigmoid, std 0.1"]["without BN"][1] < 0.01                        # ... of the first layer
assert all(0.5 < start["with BN"][1] < 2 for start in at_start.values())             # BN: similar sizes
assert abs(final["tanh, std 0.1"]["without BN"] - final["tanh, std 0.1"]["with BN"]) < 0.03  # tanh is fine
for label in ("sigmoid, std 1", "tanh, std 1"):                                         # saturation
    assert at_start[label]["without BN"][0] > 0.3 and at_start[label]["with BN"][0] < 0.1
    assert final[label]["with BN"] > final[label]["without BN"] + 0.05
assert final["tanh, std 1"]["with BN"] > final["tanh, std 1"]["without BN"] + 0.15
record("bn-trains-saturating-nets",
       holds=all(bt.trained(runs["with BN"], 0.85) for runs in saturation_runs.values()),
       measured="test accuracy without → with BN: " + "; ".join(
           f"{label} {accuracy['without BN']:.0%} → {accuracy['with BN']:.0%}" for label, accuracy in final.items()))

# %%
worst_with_bn = min(accuracy["with BN"] for accuracy in final.values())
saturation_figure(saturation_runs, title=f"6×100 networks, η = 0.3: with BN all reach {worst_with_bn:.0%} or "
                                         f"more; sigmoid at std 0.1 without BN: "
                                         f"{final['sigmoid, std 0.1']['without BN']:.0%}")

# %% [markdown]
# Two different failures, and BN fixes both:
# * **Sigmoid with small weights: vanishing gradient, no saturation at all.** A sigmoid's slope is at most
#   1/4 and its output is centred on 1/2, not 0; through five layers the first layer's gradient becomes a
#   tiny fraction of the last's, and the network never leaves chance. Tanh, whose slope at 0 is 1 and whose
#   output is centred on 0, trains fine in the same setting: the trouble is not the S shape.
# * **Either one with large weights: saturation.** With a standard deviation of 1, most units start in
#   the flat tails, and both networks end well behind (tanh far behind).
# * **With BN**, the input of every nonlinearity has mean $\beta$ and standard deviation $\gamma$ over the
#   batch, 0 and 1 at the start: few inputs are saturated (the tails of a standard normal, about 6% for
#   tanh) and every layer gets a gradient of similar size, whatever the weights. Seed 001's summary, "BN prevents the vanishing gradient, so sigmoid and
#   tanh can be used", holds here. It does not make saturation impossible: γ and β are learned, and
#   notebook 02 §4 showed the last layer saturating on purpose at η = 8.

# %% [markdown]
# ## 5. Batch size: two kinds of noise
#
# A mini-batch of $m$ examples is a noisy sample of the training set, in two ways:
# * **the gradient** is an average over $m$ examples, so it scatters around the full-batch gradient
#   by about $1/\sqrt m$ (the same law as the batch means of notebook 02 §2);
# * **with BN, the forward pass itself** depends on the batch: an example is normalized with the mean
#   and variance of the $m$ examples it happens to share its batch with.
#
# We measure both at initialization, over 20 random batches of each size: the distance of the
# mini-batch gradient from the full-batch gradient (relative to the latter's length), and the
# root-mean-square difference between the first layer's pre-activations normalized with the batch's
# statistics and with the whole training set's. Then we train both networks with batches of 2, 4, 8, 16
# and 60, for the same 200 steps at η = 1.
#
# **Predict before you run.** With $m = 2$, what does BN turn the two pre-activations of a unit into?
# (Notebook 04 showed it.) How much gradient will then reach the layer below the BN layer?

# %%
noise = bt.batch_noise(experiments, **PAPER)                          # name -> (5,), one value per m
batch_grid = experiments.grid("batch_size", bt.BATCH_SIZES, **PAPER)  # 8 new runs (m = 60 is the base run)
print(f"{'m':>3} | {'gradient noise':^21} | {'BN batch noise':>14} | {'test accuracy at the end':^21}")
print(f"{'':>3} | {'without BN':>10} {'with BN':>10} | {'':>14} | {'without BN':>10} {'with BN':>10}")
plain_noise, bn_noise = noise["gradient, without BN"], noise["gradient, with BN"]
normalization_noise = noise["BN's batch statistics"]
for i, m in enumerate(bt.BATCH_SIZES):
    runs = batch_grid[m]
    print(f"{m:>3} | {plain_noise[i]:>10.2f} {bn_noise[i]:>10.2f} | {normalization_noise[i]:>14.2f} | "
          f"{short(runs['without BN']):>10} {short(runs['with BN']):>10}")

law = np.sqrt(60 / 4)  # from m = 4 to m = 60 the 1/√m law predicts a factor √15
assert abs(plain_noise[1] / plain_noise[-1] / law - 1) < 0.2
assert bn_noise[0] > 5 * plain_noise[0]                                   # m = 2: BN's gradient is spiky
assert np.all(np.diff(normalization_noise) < 0)
assert normalization_noise[0] > 0.8 and normalization_noise[-1] < 0.3
advantage = {m: batch_grid[m]["with BN"].final_accuracy - batch_grid[m]["without BN"].final_accuracy
             for m in bt.BATCH_SIZES}
assert batch_grid[2]["with BN"].final_accuracy < 0.5                        # m = 2: BN fails ...
assert advantage[2] < 0.5 * min(advantage[4], advantage[8])                 # ... its lead shrinks
assert advantage[4] > 0.3 and advantage[8] > 0.3

# %%
batch_panel = batch_size_training_panel(batch_grid, noise)
batch_panel

# %% [markdown]
# Check your prediction about the gradient. Notebook 04's backward pass gives, for the input $x_i$ of a
# BN layer, with $g_i = \partial L/\partial y_i$:
# $\partial L/\partial x_i = \frac{\gamma}{\sigma}\big(g_i - \bar g - \hat x_i\,\overline{g \hat x}\big)$.
# With two examples $\hat x = (+1, -1)$, and for both the bracket is exactly 0: whatever the loss wants,
# nothing reaches the layer below, except where $\epsilon$ matters, when the two values nearly tie and
# $\sigma$ is tiny. We measure $|\partial L/\partial x|$ at the first BN layer's input over 200 random
# batches of each size, at initialization.

# %%
first_bn_gradient = {m: bt.first_bn_input_gradients(bt.Run(**PAPER).build(SEED), experiments.data, m)
                     for m in (2, 4, 8)}
print(f"{'m':>3} | {'median |dL/dx|':>14} | {'share below 1e-3':>16} | {'largest':>8}")
for m, gradient in first_bn_gradient.items():
    print(f"{m:>3} | {np.median(gradient):>14.1e} | {np.mean(gradient < 1e-3):>16.0%} | "
          f"{gradient.max():>8.1g}")
assert np.median(first_bn_gradient[2]) < 0.01 * np.median(first_bn_gradient[4])
assert np.mean(first_bn_gradient[2] < 1e-3) > 0.7
assert first_bn_gradient[2].max() > 10 * first_bn_gradient[4].max()

# %% [markdown]
# * **Gradient noise** follows the $1/\sqrt m$ law in the network without BN. Small batches are noisy for
#   everyone, and with the number of steps fixed they also see fewer examples (at $m = 2$, only 400), so
#   both networks are slower with small batches.
# * **BN's batch noise** is a second, BN-only noise. It shrinks as $m$ grows, which is why BN counts as
#   a mild regularizer (paper, section 3.4). At $m = 2$ it is as large as the signal: the two
#   pre-activations of a unit always normalize to $-1$ and $+1$, whatever their values.
# * **At $m = 2$ BN's advantage all but disappears.** The BN network stays below 50%, and its lead over
#   the network without BN is less than half its lead at $m = 4$ or 8. The main reason is the gradient
#   table: with $\hat x = \pm 1$ a BN layer passes almost nothing back (the median $|\partial L/\partial x|$
#   is about a thousand times smaller than at $m = 4$), so the layers below it barely learn. The rare
#   exceptions are near-ties, where $\sigma$ is tiny and the gradient spikes: those spikes are the large
#   "gradient noise" of BN at $m = 2$ in the first table, a symptom rather than the cause. On top of
#   that, the running statistics that BN uses at test time are averaged over pairs (notebook 04). From
#   $m = 4$ on, BN is ahead again, far ahead with batches of 4 and 8.
#   When only tiny batches fit in memory, alternatives that do not normalize over the batch (LayerNorm,
#   GroupNorm, notebook 06) or batch renormalization (Ioffe 2017) are the usual answer.

# %% [markdown]
# ## 6. γ and β during training
#
# A learner asks (seed 004): if γ and β change at every step, how is a layer's input distribution any
# more stable than without BN? Do γ and β settle early? What does the learning rate do to them?
#
# The runs of section 2 recorded γ and β of every BN layer every 50 steps. We take the sigmoid network
# with BN at three learning rates, 0.1, 1 and 10, and measure, for each layer and each of γ and β
# (100 units as one vector $\theta$):
# * the **total change**: the mean over units of $|\theta_{200} - \theta_0|$;
# * how much of it was **made by step 50** (a quarter of training): $\lVert\theta_{50} - \theta_0\rVert /
#   \lVert\theta_{200} - \theta_0\rVert$. A steady pace would give 25%, "settling early" close to 100%;
# * the **wobble**: the standard deviation of the record-to-record changes of a unit's parameter over the
#   second half of training.
#
# **Predict before you run.** How will the wobble change from η = 0.1 to η = 10: ten times larger, a
# hundred times, or about the same?

# %%
GAMMA_BETA_LRS = (0.1, 1.0, 10.0)
bn_runs = {lr: sigmoid_grid[lr]["with BN"] for lr in GAMMA_BETA_LRS}
settled, wobble = {}, {}
print(f"{'η':>5} {'layer':>6} | {'mean change per unit':^21} | {'made by step 50':^17} | {'wobble':^19}")
print(f"{'':>5} {'':>6} | {'γ':>10} {'β':>10} | {'γ':>8} {'β':>8} | {'γ':>9} {'β':>9}")
for lr, history in bn_runs.items():
    for layer in ("norm1", "norm2", "norm3"):
        gamma, beta = bt.gamma_beta(history, layer)
        changes = [np.abs(v[-1] - v[0]).mean() for v in (gamma, beta)]
        settled[lr, layer] = [bt.settled_fraction(v, history.steps, 50) for v in (gamma, beta)]
        wobble[lr, layer] = [bt.fluctuation(v) for v in (gamma, beta)]
        print(f"{lr:>5g} {layer:>6} | {changes[0]:>10.3f} {changes[1]:>10.3f} | "
              f"{settled[lr, layer][0]:>8.0%} {settled[lr, layer][1]:>8.0%} | "
              f"{wobble[lr, layer][0]:>9.4f} {wobble[lr, layer][1]:>9.4f}")

mean_settled = {lr: np.mean([settled[lr, layer] for layer in ("norm1", "norm2", "norm3")])
                for lr in GAMMA_BETA_LRS}
print("\nmade by step 50, averaged over layers, γ and β: "
      + ", ".join(f"{mean_settled[lr]:.0%} at η = {lr:g}" for lr in GAMMA_BETA_LRS))
assert mean_settled[0.1] < mean_settled[1.0] < mean_settled[10.0]
assert mean_settled[0.1] < 0.45 and mean_settled[10.0] > 0.55
for layer in ("norm1", "norm2", "norm3"):
    for which in (0, 1):
        assert wobble[0.1, layer][which] < wobble[1.0, layer][which] < wobble[10.0, layer][which]
        assert wobble[10.0, layer][which] > 20 * wobble[0.1, layer][which]
early = {lr: mean_settled[lr] > 0.5 for lr in GAMMA_BETA_LRS}
record("gamma-beta-settle-early", holds=all(early.values()) or ("partly" if any(early.values()) else False),
       measured="share of γ and β's change made by step 50: "
                + ", ".join(f"{mean_settled[lr]:.0%} at η = {lr:g}" for lr in GAMMA_BETA_LRS))
growth = np.mean([wobble[10.0, layer][which] / wobble[0.1, layer][which]
                  for layer in ("norm1", "norm2", "norm3") for which in (0, 1)])
record("gamma-beta-fluctuate-with-learning-rate",
       holds=all(wobble[0.1, layer][w] < wobble[1.0, layer][w] < wobble[10.0, layer][w]
                 for layer in ("norm1", "norm2", "norm3") for w in (0, 1)),
       measured=f"γ and β wobble {growth:.0f}× more at η = 10 than at η = 0.1 (mean over layers), "
                "rising with η")

# %% [markdown]
# Eight units of the last BN layer (the units whose total change of γ at η = 1 ranks at the 5th, 17th,
# ..., 89th percentile: typical units, not picked by hand). Each panel has its own vertical scale: at
# η = 0.1 the changes are far smaller than at η = 10.

# %%
last_gamma = bt.gamma_beta(bn_runs[1.0], "norm3")[0]
ranked = np.argsort(np.abs(last_gamma[-1] - last_gamma[0]))
units = [int(ranked[int(q * 99)]) for q in np.linspace(0.05, 0.89, 8)]
growth = wobble[10.0, "norm3"][0] / wobble[0.1, "norm3"][0]
gamma_beta_figure(bn_runs, "norm3", units,
                  title=f"γ and β of 8 units of layer 3: γ's wobble grows {growth:.0f}-fold "
                        "from η = 0.1 to η = 10")

# %% [markdown]
# So, for seed 004's questions:
# * **Do they settle early?** Not at small learning rates: at η = 0.1, γ and β drift at a steady pace for
#   the whole run (less than 40% of their change is made in the first quarter). The larger the learning
#   rate, the more of the change happens at the start. The network itself settles much earlier than its
#   γ and β: at η = 1 it passed 90% test accuracy by step 50.
# * **What does the learning rate do?** It sets how far they move and how much they wobble: the
#   wobble grows with every increase of η, by a factor of several tens from η = 0.1 to η = 10. A small
#   learning rate gives slowly drifting γ and β, a large one jittery γ and β.
# * **Why is the distribution still more stable?** Because γ and β alone set the mean and the spread of
#   a BN layer's output: two numbers per unit, each moved by its own gradient (the weights below can
#   still change its shape). Without BN, every weight of every layer below moves the mean and the
#   spread. We check it on the recorded percentiles of the last BN layer's output (the sigmoid inputs,
#   over the test images): for a typical unit, the median sits within a tenth of γ of β, and the band
#   from the 15th to the 85th percentile is about 2γ wide, as for a normally distributed $\hat x$
#   ($\beta \mp 1.04\gamma$). Then one unit, the one with the median change of β, during the runs at
#   η = 1 and η = 10.

# %%
follow = {lr: bt.output_versus_gamma_beta(bn_runs[lr], 3) for lr in (1.0, 10.0)}  # (records, 100 units) each
for lr, measures in follow.items():
    print(f"η = {lr:g}, layer 3, all units, steps 50 to {bn_runs[lr].steps[-1]}: median of the BN output "
          f"within {np.median(measures['median offset']):.2f}·γ of β (typical unit), its 15-85th percentile band "
          f"{np.median(measures['band width']):.2f} × 2γ wide")
    assert np.median(measures["median offset"]) < 0.15 and 0.9 < np.median(measures["band width"]) < 1.25
last_beta = bt.gamma_beta(bn_runs[10.0], "norm3")[1]
unit = bt.typical_unit(np.abs(last_beta[-1] - last_beta[0]))  # the unit with the median change of β
beta_travel = np.ptp(last_beta[:, unit])
print(f"unit {unit}: β travels {beta_travel:.1f} at η = 10")
assert beta_travel > 1

# %%
unit_distribution_figure({lr: bn_runs[lr] for lr in (1.0, 10.0)}, 3, unit,
                         title=f"Unit {unit} of layer 3: its BN output follows β (which travels "
                               f"{beta_travel:.1f} at η = 10) and β ± γ")

# %% [markdown]
# ## 7. Do the layer Jacobians have singular values near 1?
#
# Section 3.3 of the paper closes with a remark (quoted in seed 003): "Batch Normalization may lead the
# layer Jacobians to have singular values close to 1, which is known to be beneficial for training"
# (Saxe et al. 2013). When all singular values of each layer's Jacobian are 1, a gradient passes back
# through the layers with its size unchanged, neither vanishing nor exploding. The paper offers it as a
# conjecture, for Gaussian, uncorrelated normalized inputs. Let us measure it.
#
# **What we measure.** A hidden block is Linear → (BN) → sigmoid. For one example $h$ (the block's
# input), its Jacobian $J = \partial\,\mathrm{block}(h)/\partial h$ is a 100×100 matrix (100×64 for the
# first block). BN makes an example's output depend on its batch companions, so we fix BN's mean and
# variance to those of the whole training set (eval mode with those statistics): each example then goes
# through a fixed function, $J = \mathrm{diag}\big(\mathrm{sigmoid}'(z)\,\gamma/s\big)\,W$, with $s$ the
# training set's standard deviation of each pre-activation. We take the singular values at 10 test
# images, for each block and for the whole hidden stack (input → last hidden layer), at initialization
# and after the 200 steps of section 1 (η = 1).

# %%
jacobians = {}
for net in WITH_AND_WITHOUT_BN:
    setting = bt.Run(net=net, **PAPER)
    models = {"at initialization": setting.build(SEED), "after training": experiments.model(setting)}
    for when, model in models.items():
        jacobians[f"{net}, {when}"] = bt.block_singular_values(model, experiments.data, n_examples=10)

print(f"{'':>32} {'block 1':>16} {'blocks 2-3':>22} {'hidden stack':>14}")
print(f"{'':>32} {'median':>8} {'within 2x':>9} {'10/50/90th pct':>15} {'within 2x':>9} {'median':>8}")
summary = {}
for label, values in jacobians.items():
    hidden = np.concatenate([values["block 2"].ravel(), values["block 3"].ravel()])
    summary[label] = dict(median=np.median(hidden), near=bt.near_one(hidden),
                          spread=np.percentile(hidden, [10, 90]), first_near=bt.near_one(values["block 1"]),
                          stack=np.median(values["hidden stack"]))
    p10, p50, p90 = np.percentile(hidden, [10, 50, 90])
    print(f"{label:>32} {np.median(values['block 1']):>8.2f} {summary[label]['first_near']:>9.0%} "
          f"{p10:>5.2f}/{p50:.2f}/{p90:.2f} {summary[label]['near']:>9.0%} {summary[label]['stack']:>8.3f}")

for when in ("at initialization", "after training"):
    plain, with_bn = summary[f"without BN, {when}"], summary[f"with BN, {when}"]
    assert with_bn["median"] > 2.5 * plain["median"] and plain["near"] < 0.1  # BN moves them toward 1,
    assert with_bn["near"] < 0.7 and with_bn["spread"][1] / with_bn["spread"][0] > 5  # not to 1
    assert with_bn["first_near"] < 0.15 and with_bn["stack"] < 0.3 and plain["stack"] < 0.01
assert summary["with BN, after training"]["median"] < summary["with BN, at initialization"]["median"]
bn_start, bn_end = summary["with BN, at initialization"], summary["with BN, after training"]
plain_start = summary["without BN, at initialization"]
toward_one = bn_start["median"] > 2.5 * plain_start["median"]  # closer to 1 than without BN, not near it
record("jacobian-singular-values-near-one",
       holds=bn_start["near"] > 0.9 or ("partly" if toward_one else False),
       measured=f"with BN, hidden blocks: median {bn_start['median']:.2f} at initialization, "
                f"{bn_end['median']:.2f} after training; {bn_start['near']:.0%} / {bn_end['near']:.0%} within "
                f"2x of 1 (without BN: median {plain_start['median']:.2f})")

# %%
at_init = summary["with BN, at initialization"]
plain_at_init = summary["without BN, at initialization"]
jacobian_figure(jacobians, title=f"Blocks 2-3 at initialization: median singular value "
                                 f"{plain_at_init['median']:.2f} without BN, {at_init['median']:.2f} with "
                                 f"BN, only {at_init['near']:.0%} within 2x of 1")

# %% [markdown]
# What the measurement shows, on this network and data:
# * **Without BN** the singular values are small (median about 0.2, almost none within a factor 2 of
#   1): a sigmoid passes back at most 1/4 of the signal, and the gradient shrinks at every layer. Through
#   the whole hidden stack the median is below 0.01.
# * **With BN** the hidden-to-hidden blocks move toward 1 (median about 0.8 at initialization), because BN
#   divides by the batch standard deviation of the pre-activations, which is small here. But they are
#   **not concentrated near 1**: they spread over more than a decade (10th to 90th percentile about 0.15
#   to 1.9), and only about 60% are within a factor 2. The first block (raw pixels in) stays near 0.25,
#   and the whole stack's median stays below 0.3.
# * **After training** the BN network's singular values move *away* from 1 (median about 0.5).
#
# So "close to 1" does not reproduce as stated: BN improves the conditioning of the gradient's path
# through the network compared with the plain sigmoid network, which section 4 showed matters, but it
# does not produce the near-isometric Jacobians of Saxe et al. Later theory found the opposite effect in
# very deep BN networks at initialization: gradients that *explode* with depth (Yang et al. 2019).

# %% [markdown]
# ## 8. Exercises
#
# **Exercise 1: scale the hidden weights.** Write `scale_hidden_weights(model, a)` for a `make_mlp`
# network: multiply the weight matrix of every Linear layer that feeds a hidden layer (`linear1`,
# `linear2`, ...) by `a`, **in place**, and return the model. Leave the biases, the BN layers and the
# `output` layer alone. The check then confirms scale invariance on a BN network: the same output, and
# gradients divided by `a`. (Parameters that require gradients can only be changed in place inside
# `with torch.no_grad():`.)

# %%
def scale_hidden_weights(model, a):
    """Multiply linear1.weight, linear2.weight, ... of `model` by a, in place; return the model."""
    raise NotImplementedError  # replace this line with your code


check_scale_hidden_weights(scale_hidden_weights)

# %% [markdown]
# **Exercise 2: the singular values of a Jacobian.** Write `jacobian_singular_values(block, x)`: `block`
# maps one example, a tensor of shape `(d_in,)`, to a tensor of shape `(d_out,)`; `x` holds `n` examples,
# shape `(n, d_in)`. Return the singular values of the block's Jacobian at each example, shape
# `(n, min(d_in, d_out))`. Hint: `torch.autograd.functional.jacobian(block, x[i])` gives the
# `(d_out, d_in)` Jacobian, and `torch.linalg.svdvals` its singular values. The check compares your
# values with the closed form $\mathrm{diag}(\tanh'(z)\,\gamma/s)\,W$ of a Linear → BN (eval mode, standard
# deviation $s$) → tanh block.

# %%
def jacobian_singular_values(block, x):
    """Singular values (n, min(d_in, d_out)) of the Jacobian of `block` at each row of x (n, d_in)."""
    raise NotImplementedError  # replace this line with your code


check_jacobian_singular_values(jacobian_singular_values)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("scale_hidden_weights")
# show_solution("jacobian_singular_values")

# %% [markdown]
# ## Summary
# * **Speed.** On the paper's 3×100 sigmoid network, BN reached 90% test accuracy by step 50; without it
#   the same network had not reached it after 200 steps.
# * **Learning rates.** Without BN the sigmoid network got past 50% only around η = 1, and the 6×100
#   ReLU network reached 85% only at 0.1 and 0.3 (it diverged from η = 3, or 1, on). With BN both
#   trained over the whole range, up to 3 for the ReLU network; at 10 it failed too. BN widens the window;
#   it does not remove it.
# * **Initialization.** $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$ and
#   $\partial L/\partial(aW) = \frac1a\,\partial L/\partial W$, checked to four digits (up to ε, which
#   matters for tiny weights). With BN every scale from 0.01 to 100 trained; without, the two smallest
#   stayed at chance and the largest fell behind. BN does not make training independent of the scale:
#   the step relative to the weights shrinks like $1/a^2$.
# * **Saturating nonlinearities.** In 6-layer networks, sigmoid without BN failed from vanishing gradients
#   even without saturation; large weights saturated both sigmoid and tanh. With BN all four trained.
# * **Batch size.** Mini-batches add gradient noise (∝ $1/\sqrt m$) and, with BN, noise in the forward
#   pass. With batches of 2 a BN layer passes almost no gradient to the layer below ($\hat x = \pm 1$),
#   apart from spikes at near-ties, and BN's advantage all but disappears.
# * **γ and β** never stop moving; larger learning rates move them more and make them wobble far more.
#   They are the only handle on a BN layer's output distribution, and the distribution follows them.
# * **Jacobians.** BN moved the layers' singular values toward 1 compared with the plain sigmoid network,
#   but left them spread over more than a decade: the paper's "close to 1" did not reproduce.
#
# **Next:** [06 · Why BN works, and when it fails](06_why_batchnorm_works.ipynb) tests the
# internal-covariate-shift explanation itself, and collects BN's pitfalls and its alternatives. The map of the series is in
# [00 · Start here](00_start_here.ipynb).
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), sections 3.3,
#   3.4 and 4.1.
# * A. M. Saxe, J. L. McClelland and S. Ganguli (2014). *Exact solutions to the nonlinear dynamics of
#   learning in deep linear neural networks.* ICLR. [arXiv:1312.6120](https://arxiv.org/abs/1312.6120).
# * X. Glorot and Y. Bengio (2010). *Understanding the difficulty of training deep feedforward neural
#   networks.* AISTATS.
# * T. van Laarhoven (2017). *L2 Regularization versus Batch and Weight Normalization.*
#   [arXiv:1706.05350](https://arxiv.org/abs/1706.05350) (the effective learning rate η/‖W‖²).
# * S. Arora, Z. Li and K. Lyu (2019). *Theoretical Analysis of Auto Rate-Tuning by Batch Normalization.*
#   ICLR. [arXiv:1812.03981](https://arxiv.org/abs/1812.03981).
# * N. Bjorck, C. P. Gomes, B. Selman and K. Q. Weinberger (2018). *Understanding Batch Normalization.*
#   NeurIPS. [arXiv:1806.02375](https://arxiv.org/abs/1806.02375) (BN and large learning rates).
# * S. Ioffe (2017). *Batch Renormalization: Towards Reducing Minibatch Dependence in Batch-Normalized
#   Models.* NeurIPS. [arXiv:1702.03275](https://arxiv.org/abs/1702.03275).
# * J. Pennington, S. S. Schoenholz and S. Ganguli (2017). *Resurrecting the sigmoid in deep learning
#   through dynamical isometry: theory and practice.* NeurIPS. [arXiv:1711.04735](https://arxiv.org/abs/1711.04735).
# * G. Yang, J. Pennington, V. Rao, J. Sohl-Dickstein and S. S. Schoenholz (2019). *A Mean Field Theory of
#   Batch Normalization.* ICLR. [arXiv:1902.08129](https://arxiv.org/abs/1902.08129).
