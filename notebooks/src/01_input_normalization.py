# %% [markdown]
# # 01 · Input normalization
#
# Before Batch Normalization normalizes what happens *inside* a network, it helps to see why we
# normalize what goes *into* it. This notebook answers one question: **why do we center, scale
# and decorrelate inputs before training, and how must the first weights be scaled so that the signal
# keeps that scale inside the network?**
#
# **Learning goals.** After this notebook you can
# 1. explain the loss surface of a linear model as a bowl whose shape is set by the inputs (the Hessian);
# 2. predict how scale, offset and correlation of the inputs slow gradient descent down, via the
#    condition number κ;
# 3. compare raw, centered, min-max, standardized (z-score) and whitened inputs on real data;
# 4. say why full whitening inside a network is costly, singular on a mini-batch smaller than the layer
#    and noisy, which is why Batch Normalization normalizes each unit separately;
# 5. derive why weights drawn with std gain / √fan-in keep a layer's output at the size of its input
#    (LeCun, Xavier/Glorot and He/Kaiming initialization), check a fresh network's loss against ln 10,
#    and read each layer's activation and gradient distributions over training and its update-to-data ratio.

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
import math
import time

import numpy as np
import torch

import bnlab
from bnlab.claims import outcome_of, record
from bnlab.data import load_digits, make_regression_2d
from bnlab.exercises import compare_prediction
from bnlab.figures import add_line, new_figure
from bnlab.lessons.nb01_input_normalization import experiments as conditioning
from bnlab.lessons.nb01_input_normalization import initialization as init
from bnlab.lessons.nb01_input_normalization.checks import (check_he_std, check_standardize, check_whiten,
                                                           show_solution)
from bnlab.lessons.nb01_input_normalization.figures import (descent_comparison_panel, gain_panel,
                                                            init_training_figure, input_variants,
                                                            layer_distributions_figure, layer_statistics_figure)
from bnlab.models import make_mlp
from bnlab.seeding import claim_seeds, numpy_rng
from bnlab.statistics import Support

SEED = bnlab.setup()
print(f"Course seed: {SEED}")

# %% [markdown]
# ## 1. The loss surface is a bowl, and the inputs shape it
#
# Take a linear model $\hat y = w^\top x$ and the squared loss over $n$ examples,
# $L(w) = \frac{1}{2n}\lVert Xw - y\rVert^2$. Its second derivative, the **Hessian**
# $H = X^\top X / n$, does not depend on $w$ or on $y$: the inputs alone fix the shape of the bowl.
#
# Gradient descent $w \leftarrow w - \eta \nabla L(w)$ shrinks the error along each eigenvector of
# $H$ by the factor $(1 - \eta\lambda_i)$ per step. Two consequences:
# * it is stable only if $\eta < 2/\lambda_{\max}$: the steepest direction sets the largest usable learning rate;
# * at such a learning rate the flattest direction shrinks by only $(1 - \lambda_{\min}/\lambda_{\max})$
#   per step. The ratio $\kappa = \lambda_{\max}/\lambda_{\min}$, the **condition number**, says how many
#   times slower the slowest direction is.
#
# For $H = X^\top X / n$ written with the feature means $\mu$ and covariance $\Sigma$:
# $H = \Sigma + \mu\mu^\top$. A large **offset** $\mu$ adds one very steep direction; features of
# very different **scale** make $\Sigma$'s eigenvalues far apart; **correlation** tilts and
# stretches the bowl. Standardizing (subtracting each feature's mean and dividing by its standard
# deviation) removes the first two; whitening (a linear map that also removes the correlations, so the
# features have identity covariance) removes all three.
#
# Our toy problem has two features: feature 2 has 6 times the spread of feature 1, both are shifted
# by 1, and they are correlated (ρ = 0.5).

# %%
X_toy, y_toy = make_regression_2d(scale=6.0, offset=1.0, correlation=0.5)
for name, inputs in input_variants(X_toy).items():
    eigenvalues = np.linalg.eigvalsh(conditioning.hessian(inputs))
    print(f"{name:>12}: Hessian eigenvalues {eigenvalues.round(3)}, "
          f"condition number κ = {eigenvalues[-1] / eigenvalues[0]:.3g}")

# %% [markdown]
# **Predict before you run the panel.** On raw inputs the bowl is a long, tilted valley. If gradient
# descent uses the largest safe learning rate, will its path go straight to the minimum? And on
# whitened inputs, where the bowl is round?
#
# In the panel, each of the three plots uses its own learning rate $\eta = s/\lambda_{\max}$, where
# $s$ is the slider value: this is the fairest comparison, since each problem gets a step size
# matched to its own steepest direction. Below $s = 2$ every run is stable; above it every run
# diverges. Drag **feature 2 scale** and **input offset** to make the raw problem worse, and
# watch the step counts.

# %%
panel = descent_comparison_panel()
panel

# %% [markdown]
# Each title counts the steps until the weights are within 1% of their starting distance from the
# minimum. What the panel shows, checked in code: at $s = 1$ the whitened problem is solved in one
# step, and the raw one never takes fewer steps than the standardized one; a larger feature scale, or a
# larger offset, slows the raw problem while the standardized problem keeps its condition number
# (standardizing undoes any scale and offset); and past $s = 2$ every run diverges.

# %%
def steps_shown(panel):
    """The step counts (None for a diverged run) in the panel's three subplot titles."""
    counts = []
    for annotation in panel.figure.layout.annotations:
        result = annotation.text.split("<br>")[1]
        counts.append(int(result.split()[4].replace(",", "")) if result.startswith("at the minimum") else None)
    return dict(zip(["raw", "standardized", "whitened"], counts))


settings = {"scale 1, offset 0": dict(scale=1.0, offset=0.0), "scale 1, offset 5": dict(scale=1.0, offset=5.0),
            "scale 6, offset 1": dict(scale=6.0, offset=1.0), "scale 10, offset 0": dict(scale=10.0, offset=0.0)}
steps = {}
for label, setting in settings.items():
    panel.set(lr_times_lambda_max=1.0, **setting)
    steps[label] = steps_shown(panel)
    print(f"s = 1, {label:>18}: {steps[label]}")
panel.set(lr_times_lambda_max=2.2)
past_the_limit = steps_shown(panel)
print(f"s = 2.2, {'scale 10, offset 0':>16}: {past_the_limit}")
panel.set(lr_times_lambda_max=1.0, scale=6.0, offset=1.0)

# %%
# Check: what section 1 says about the panel
for counts in steps.values():
    assert counts["whitened"] == 1 and counts["whitened"] < counts["standardized"] <= counts["raw"]
assert steps["scale 10, offset 0"]["raw"] > 3 * steps["scale 1, offset 0"]["raw"]   # scale hurts raw inputs
assert steps["scale 1, offset 5"]["raw"] > 2 * steps["scale 1, offset 0"]["raw"]    # so does an offset
standardized_kappas = [conditioning.condition_number(input_variants(make_regression_2d(correlation=0.5, **setting)[0])
                                                      ["standardized"]) for setting in settings.values()]
assert np.ptp(standardized_kappas) < 1e-9
assert all(count is None for count in past_the_limit.values())

# %% [markdown]
# ## 2. The same effect on real data: digits, least squares
#
# Now the 8×8 digits (1,347 training images, 64 pixels each, intensities 0 to 16), fitted by least
# squares to one-hot labels. A few border pixels are 0 in every training image: they carry no
# information and make the Hessian singular, so we drop them. We compare five preprocessings, each run at its
# own learning rate $\eta = 1/\lambda_{\max}$, and count the steps until the excess loss
# $L(w_t) - L(w^\star)$ falls below 1% of where it started.

# %%
digits = load_digits(standardized=False)
pixels = digits.X_train.double().numpy()
informative = pixels.std(axis=0) > 0
pixels = pixels[:, informative]
one_hot = np.eye(10)[digits.y_train.numpy()]
table = conditioning.convergence_table(pixels, one_hot)

print(f"{int((~informative).sum())} constant pixels dropped, {pixels.shape[1]} kept\n")
print(f"{'inputs':>16} {'condition number κ':>20} {'η = 1/λmax':>12} {'steps to 1%':>12}")
for name, row in table.items():
    print(f"{name:>16} {row['condition number']:>20.3g} {row['lr']:>12.3g} {row['steps']:>12,}")

# %%
# Check: what section 2 says about the table
assert table["raw"]["condition number"] > 1e6
assert table["centered"]["condition number"] < table["raw"]["condition number"] / 10
assert table["min-max [0, 1]"]["condition number"] > 100 * table["standardized"]["condition number"]
assert 50 < table["standardized"]["condition number"] < 500
assert abs(table["whitened"]["condition number"] - 1) < 1e-6
assert table["raw"]["steps"] > 10 * table["standardized"]["steps"] > 10 * table["whitened"]["steps"]

# %% [markdown]
# The whole descent, not just the end point:

# %%
curves = new_figure(f"Digits least squares: standardized inputs reach 1% in {table['standardized']['steps']} steps, "
                    f"raw inputs in {table['raw']['steps']:,}",
                    "gradient-descent step (η = 1/λ_max of each problem)",
                    "excess loss / starting excess loss", log_y=True, log_x=True)
shown_steps = np.unique(np.geomspace(1, 3000, 120).astype(int))
for i, (name, inputs) in enumerate(conditioning.preprocessings(pixels).items()):
    excess = conditioning.excess_loss_curve(inputs, one_hot, table[name]["lr"], 3000)
    add_line(curves, shown_steps, np.maximum(excess[shown_steps] / excess[0], 1e-10), name, i)
curves.add_hline(y=1e-2, line_dash="dot", annotation_text="1% (the table's criterion)")
curves.add_annotation(x=np.log10(3), y=-9.5, text="whitened: exact after one step", showarrow=False)
curves.update_yaxes(range=[-10.3, 0.3])
curves

# %% [markdown]
# Three things to notice:
# * **Centering** alone removes the steep "offset" direction (pixel intensities are all positive),
#   dividing κ by more than 10.
# * **Min-max scaling** to [0, 1] fixes the units but not the offset: every feature stays positive,
#   so the steep $\mu\mu^\top$ direction remains, and it converges more slowly than centering alone.
# * **Standardizing** (z-score: subtract the mean, divide by the standard deviation) brings κ down
#   to about 150; what is left comes from correlated pixels, which only **whitening** removes (κ = 1,
#   one step).
#
# A rule of thumb says gradient descent needs about κ steps. Here the raw problem needed far fewer
# than its κ of several million: little of the starting error lies along the flattest directions.
# κ bounds the worst case; the data decide how close you get to it.
#
# One more difference: min-max scaling is set by the two most extreme values, so a single outlier
# squeezes all other values together. The z-score is less fragile.

# %%
rng = numpy_rng(stream=10)
feature = rng.normal(10.0, 2.0, size=500)
feature_with_outlier = np.append(feature, 200.0)
bulk = slice(0, 500)  # the 500 ordinary values
spread_min_max = conditioning.min_max_scale(feature_with_outlier[:, None])[bulk].std()
spread_z_score = ((feature_with_outlier - feature_with_outlier.mean()) / feature_with_outlier.std())[bulk].std()
print(f"spread of the 500 ordinary values after min-max scaling: {spread_min_max:.3f}")
print(f"spread of the 500 ordinary values after z-scoring:      {spread_z_score:.3f}")

# %%
# Check: the outlier squeezes min-max scaling, not the z-score
assert spread_min_max < 0.05 < 0.2 < spread_z_score

# %% [markdown]
# ## 3. Why not whiten everything, everywhere?
#
# Whitening made the problem perfect. Batch Normalization does *not* whiten; it only standardizes each
# unit separately. Why settle for less? Whitening inside a network is costly, and on a mini-batch its
# covariance is singular, or noisy once made invertible.
#
# **Cost.** Whitening $d$ features needs their $d \times d$ covariance (about $m d^2$ multiply-adds for a
# batch of $m$ examples) and its inverse square root, an eigendecomposition costing on the order of
# $d^3$. Per-unit standardization costs about $m d$. Inside a network this happens at every layer,
# at every step, and the backward pass must differentiate through the eigendecomposition too.

# %%
def whitening_cost(m, d):
    """Multiply-adds for the covariance (m d^2) plus an eigendecomposition (~d^3)."""
    return m * d**2 + d**3


def standardizing_cost(m, d):
    """Multiply-adds for a mean and a variance per feature (~2 m d)."""
    return 2 * m * d


widths = [64, 256, 1024, 4096]
m = 60
for d in widths:
    ratio = whitening_cost(m, d) / standardizing_cost(m, d)
    print(f"d = {d:>5} units, batch of {m}: whitening costs ~{ratio:,.0f} times as much as standardizing")

# %%
# Check: whitening 4096 units costs more than 100,000 times as much
assert whitening_cost(m, 4096) / standardizing_cost(m, 4096) > 100_000

# %% [markdown]
# Measured on this machine (the figure shows one run; times vary from machine to machine):

# %%
def seconds_per_eigendecomposition(d, repeats=3):
    """Median time of np.linalg.eigh on a random d x d covariance matrix."""
    H = conditioning.hessian(np.random.default_rng(d).standard_normal((2 * d, d)))
    np.linalg.eigh(H)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.linalg.eigh(H)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


timings = {d: seconds_per_eigendecomposition(d) for d in [32, 64, 128, 256, 512]}
eigen_time = new_figure("The eigendecomposition that whitening needs grows like d³",
                        "number of features d", "time of one eigendecomposition (seconds)", log_x=True, log_y=True)
add_line(eigen_time, list(timings), list(timings.values()), "measured", 0, mode="lines+markers")
add_line(eigen_time, list(timings), [timings[512] * (d / 512) ** 3 for d in timings], "∝ d³", 7, dash="dot")
eigen_time

# %% [markdown]
# **Mini-batches make it singular.** Batch Normalization (notebook 04) normalizes with the statistics
# of the current mini-batch. With a batch of $m = 60$ examples and a layer of $d = 100$ units, the batch covariance
# has rank at most $m - 1 = 59$ (less when the examples are alike): it has no inverse square root
# at all. Here is the first hidden layer of a digits network:

# %%
network = make_mlp(hidden=(100, 100), init_std=0.1)
batch = load_digits().X_train[:m]
with torch.no_grad():
    hidden_preactivations = network.linear1(batch).double().numpy()  # (60, 100)
centered = hidden_preactivations - hidden_preactivations.mean(axis=0)
rank = np.linalg.matrix_rank(centered.T @ centered / m)
d = hidden_preactivations.shape[1]
print(f"batch covariance of {d} units over {m} examples: rank {rank} (at most m - 1 = {m - 1}, and d = {d})")
try:
    conditioning.whiten(hidden_preactivations)
except ValueError as error:
    print(f"whitening refuses: {error}")

# %%
# Check: the batch covariance is singular
assert rank <= m - 1 < d

# %% [markdown]
# Whitening a layer is still possible, at a price: adding a small multiple of the identity to the
# covariance (a regularizer) makes it invertible, and Decorrelated Batch Normalization (Huang et al. 2018)
# whitens groups of units that way. The price is an eigendecomposition per layer and step, and noise:
# a covariance of 100 × 100 entries estimated from 60 examples is far from the true one. Standardizing each unit needs only one mean and one variance per unit, which 60
# examples estimate well. That is the compromise Batch Normalization makes (Ioffe & Szegedy 2015,
# section 3): normalize each unit on its own, with the mini-batch's mean and variance.

# %% [markdown]
# ## 4. Inside the network: initialization keeps the signal at scale
#
# Sections 1 to 3 prepared what enters the network. A network then multiplies it by one weight matrix
# after another, and the initial weights decide whether the signal that reaches layer 6 still has the
# size it had at the input, or has shrunk to nothing, or has exploded. Getting this right is the other
# half of "normalize the inputs", and every network without BN that the next notebooks compare with BN
# is initialized the way this section derives.
#
# **Why the std is gain / √fan-in.** A Linear layer computes $z_j = \sum_{i=1}^{n} w_{ji} h_i$ over its
# $n$ inputs: $n$ is the layer's **fan-in**. Draw the weights independently of the inputs, with mean 0
# and variance $\mathrm{Var}(w)$. The cross terms $\mathbb E[w_{ji} w_{jk}]$ vanish, so
#
# $$\mathbb E[z_j^2] = \sum_{i=1}^{n} \mathbb E[w_{ji}^2]\,\mathbb E[h_i^2]
#   = n\,\mathrm{Var}(w)\,\mathbb E[h^2].$$
#
# * $\mathrm{Var}(w) = 1/n$, a std of $1/\sqrt{n}$, keeps $\mathbb E[z^2] = \mathbb E[h^2]$: **LeCun**
#   initialization (LeCun et al. 1998). Near 0, tanh is the identity (slope 1), so this is its choice too.
# * A ReLU zeroes the negative half of a symmetric input:
#   $\mathbb E[\mathrm{relu}(z)^2] = \tfrac12 \mathbb E[z^2]$. To make up for it the variance needs a
#   factor 2, a std of $\sqrt{2/n}$: **He** (or **Kaiming**) initialization (He et al. 2015).
# * The backward pass multiplies the gradient by $W^\top$, which sums over the layer's $m$ outputs, its
#   **fan-out**; the same argument asks for $\mathrm{Var}(w) = 1/m$ there. **Xavier** (or **Glorot**)
#   initialization (Glorot & Bengio 2010) takes the average, $\mathrm{Var}(w) = 2/(n + m)$; for a square
#   layer (100 → 100) it is LeCun's.
#
# The factor in std $= \text{gain}/\sqrt{n}$ is the **gain**: 1 for LeCun, $\sqrt 2$ for He. Two settings
# the course also meets: PyTorch's default for `nn.Linear` draws from $U(-1/\sqrt n, 1/\sqrt n)$, a std of
# $1/\sqrt{3n}$ (gain $1/\sqrt 3$), and the paper's $N(0, 0.1^2)$ is LeCun's std for a layer of 100
# inputs. In bnlab, `make_mlp(init_std="lecun" | "xavier" | "he", init_gain=...)` sets each layer's std
# from its own fan-in and fan-out.
#
# **A sanity check before any training: the initial loss.** A fresh network knows nothing about the ten
# digits, so it should give each class about the same probability.
#
# **Predict first.** What cross-entropy (in nats) do you expect from a fresh digits network, before the
# first step?

# %%
my_prediction = None  # write a number here before you run the next cells

# %% [markdown]
# We measure fresh 6 × 100 networks (six hidden layers of 100 units; ReLU and tanh) under four
# initializations, each for the 8 claim seeds (8 random draws of the initial weights), on 300 training images: the loss, and for every layer
# the RMS (root mean square, $\sqrt{\mathbb E[z^2]}$, the size the derivation keeps) of its
# pre-activations $z$ and of its weight gradient.

# %%
data = load_digits()
seeds = claim_seeds()
statistics = {(activation, label): init.layer_statistics(activation, init_std, seeds, data)
              for activation in ("relu", "tanh") for label, init_std in init.INITS.items()}
print(f"ln 10 = {math.log(10):.2f}\n")
print(f"{'initial loss, median of 8 seeds':>32} {'ReLU':>6} {'tanh':>6}")
for label in init.INITS:
    print(f"{label:>32} " + " ".join(f"{statistics[activation, label].losses.median:>6.2f}"
                                     for activation in ("relu", "tanh")))

# %%
fresh_loss = statistics["relu", "PyTorch default"].losses.median
compare_prediction(my_prediction, round(fresh_loss, 1), tolerance=0.1)

# %% [markdown]
# Every class at probability 1/10 gives a cross-entropy of $-\ln(1/10) = \ln 10$. The small
# initializations start there. He's networks start higher: their output layer got the gain $\sqrt 2$
# too, so their logits are spread out, and they start with confident guesses, most of them wrong. A loss at step 0 far above
# $\ln 10$ is worth a look before any training (a common fix scales the output layer's weights down);
# here it is mild and training removes it within a few steps, as we will see.
#
# **Predict first.** Under PyTorch's default initialization, what happens to the size of a ReLU network's
# pre-activations from layer 1 to layer 6: does it `"shrink"`, `"keep"` its size or `"grow"`?

# %%
my_prediction = None  # write "shrink", "keep" or "grow" here before you run the next cells

# %%
layer_statistics_figure(statistics, "Fresh 6 × 100 networks: He keeps a ReLU network's signal at one size, "
                        "PyTorch's default shrinks it")

# %%
shrinkage = {(activation, label): statistics[activation, label].shrinkage()
             for activation in ("relu", "tanh") for label in init.INITS}
gradient_layer1 = {label: np.median(statistics["relu", label].gradients[:, 0]) for label in init.INITS}
print(f"{'layer 6 / layer 1, pre-activation RMS':>38} {'ReLU':>6} {'tanh':>6}   layer-1 gradient RMS (ReLU)")
for label in init.INITS:
    print(f"{label:>38} {shrinkage['relu', label].median:>6.2f} {shrinkage['tanh', label].median:>6.2f}"
          f"   {gradient_layer1[label]:.0e}")
default_ratio = shrinkage["relu", "PyTorch default"].median
size_change = "shrink" if default_ratio < 1 / 2 else "grow" if default_ratio > 2 else "keep"
compare_prediction(my_prediction, size_change)

# %%
# Check: the claim of section 4 (fresh networks)
he, default = shrinkage["relu", "He"], shrinkage["relu", "PyTorch default"]
kept = (he.values > 0.5) & (he.values < 2) & (default.values < 1 / 5)
support = Support.of(kept)
record("he-init-keeps-signal-scale", holds=outcome_of(support), support=support,
       measured=f"layer-6 / layer-1 pre-activation RMS, 6 x 100 ReLU, {len(seeds)} seeds: He "
                f"{he.describe('{:.2f}')}, PyTorch default {default.describe('{:.2f}')}, N(0, 0.1²) "
                f"{shrinkage['relu', 'N(0, 0.1²)'].describe('{:.2f}')}")
assert support.at_least(0.75)
assert all(statistics[activation, label].losses.median < 2.5 for activation in ("relu", "tanh")
           for label in ("PyTorch default", "N(0, 0.1²)", "LeCun"))
assert statistics["relu", "He"].losses.median > math.log(10)
assert gradient_layer1["He"] > 50 * gradient_layer1["PyTorch default"]

# %% [markdown]
# What the figure shows (top row, ReLU):
# * **PyTorch's default** shrinks the signal at every layer: its variance factor is
#   $n \cdot \frac{1}{3n} \cdot \frac12 = \frac16$, a std factor of $1/\sqrt 6$ per layer, until only the
#   random biases are left (they set the floor the curve bends into). Its weight gradients are about a
#   hundred times smaller than He's, in every layer.
# * **N(0, 0.1²)** and **LeCun** (dotted, just above it: its first layer has 64 inputs, not 100) lose
#   the ReLU's factor $\frac12$ at every layer: the signal shrinks by $1/\sqrt 2$ per layer.
# * **He** keeps the size of the signal, forward and backward: the factor 2 and the ReLU's $\frac12$
#   cancel, as derived, and the weight gradients have about the same size in every hidden layer: none
#   vanishes.
#
# With tanh (bottom row) no gain keeps every layer exactly equal: tanh is the identity only near 0 and
# flattens larger inputs. With LeCun's gain the signal decays slowly from layer to layer; a gain above 1
# settles it at a size the gain sets (PyTorch's `nn.init.calculate_gain("tanh")` recommends 5/3).
# Drag the gain and see both at once: every redraw builds fresh networks for the 8 seeds and runs them
# forward.

# %%
gain_explorer = gain_panel(seeds, data.X_train[:init.PROBE_EXAMPLES])
gain_explorer

# %% [markdown]
# **Try it.** Find the gain at which the ReLU line is flat, and the one at which it doubles from layer to
# layer. Then find a gain that keeps the tanh network's last layer near an RMS of 1.
#
# **A short training run, and the size of each step.** The update-to-data ratio
# $\eta\,\lVert \partial L/\partial W\rVert / \lVert W\rVert$ says how much one SGD step changes a layer's
# weights, relative to the weights themselves. A common rule of thumb (from Karpathy's lectures) wants it
# near $10^{-3}$: much smaller and the layer hardly learns, much larger and it is unstable. We train the
# ReLU network under three initializations and the 8 seeds (SGD, η = 0.1, mini-batches of 60, 100 steps,
# all 24 networks in one batched computation). A probe measures the step's size on a fixed batch of 60
# at steps 0, 50 and 100, where the training loop also records the weight norms it is divided by; the
# figure shows each seed's median of the three.
#
# **Predict first.** Which network starts learning first: `"PyTorch default"`, `"N(0, 0.1²)"` or `"He"`?

# %%
my_prediction = None  # write one of the three names here before you run the next cells

# %%
init_runs = init.trained_inits()  # 24 networks, one batched computation
final_loss = {label: init_runs.final_losses(label) for label in init.TRAINED_INITS}
first_ratio = {label: np.median(init_runs.update_ratios(label)[:, 0]) for label in init.TRAINED_INITS}
ratio = {label: np.median(init_runs.update_ratios(label)) for label in init.TRAINED_INITS}


def order_of_magnitude(x):
    """'10^-3' for 0.0012: the power of ten nearest to x."""
    return f"10^{round(np.log10(x))}"


print(f"{'':>17}   {'loss after ' + str(init.TRAIN_STEPS) + ' steps':>20}   update-to-data ratio, about")
print(f"{'':>17}   {'(last 10 batches)':>20}   {'at step 0':>11}   {'over the run':>12}")
for label in init.TRAINED_INITS:
    print(f"{label:>17}   {final_loss[label].median:>20.1f}   {order_of_magnitude(first_ratio[label]):>11}"
          f"   {order_of_magnitude(ratio[label]):>12}")
compare_prediction(my_prediction, min(final_loss, key=lambda label: final_loss[label].median))

# %%
init_training_figure(init_runs, f"6 × 100 ReLU, η = {init.TRAIN_LR}: under PyTorch's default the steps are "
                     "too small to learn in 100 steps")

# %%
# Check: the claim of section 4 (training)
stalled, learned = final_loss["PyTorch default"], final_loss["He"]
support = Support.of((stalled.values > 2.2) & (learned.values < 0.5))
record("default-init-stalls-deep-relu", holds=outcome_of(support), support=support,
       measured=f"mean loss of the last 10 of {init.TRAIN_STEPS} steps, {len(seeds)} seeds: PyTorch default "
                f"{stalled.describe('{:.2f}')}, He {learned.describe('{:.2f}')}, N(0, 0.1²) "
                f"{final_loss['N(0, 0.1²)'].describe('{:.2f}')}; update-to-data ratio (median) default "
                f"{ratio['PyTorch default']:.0e}, He {ratio['He']:.0e}")
assert support.at_least(0.75)
assert ratio["PyTorch default"] < 1e-3 < ratio["N(0, 0.1²)"] and 1e-3 < ratio["He"]

# %% [markdown]
# Under PyTorch's default each step changes the weights by about $10^{-4}$ of their size, and after 100
# steps the loss has not left $\ln 10$, in every seed. The paper's N(0, 0.1²) takes steps near $10^{-3}$
# at first: it lingers near $\ln 10$ for a while, then learns, and its steps grow. He's steps start near
# $10^{-2}$: its high starting loss is gone within a few steps and it stays ahead. Nothing here has BN: the difference is
# the initialization alone.
#
# **Inside the run: each layer's distribution, step by step.** An RMS sums a layer up in one number.
# When a deep network does not train, practitioners look at the whole distribution: a histogram of each
# layer's activations and of its weight gradients, drawn every few hundred steps (TensorBoard's histogram
# and distribution views draw exactly this; Karpathy's lecture draws them layer by layer). Three things
# to look for:
# * a layer whose histogram is a narrow spike passes almost nothing on: its units give nearly the same
#   value for every image;
# * gradient histograms of very different widths from layer to layer mean layers that learn at very
#   different speeds;
# * a histogram that does not change from one record to the next belongs to a layer that does not learn.
#
# The probe that measured the step sizes also kept, at steps 0, 50 and 100, five percentiles of each
# hidden layer's pre-activations $z$ on its fixed batch of 60 images (all 100 units pooled: 6,000
# values per layer) and of the sizes $|\partial L/\partial W|$ of the layer's weight-gradient entries.
# The entries that are exactly 0 are left out of the second: a ReLU unit that is off for all 60 images
# passes no gradient back at all, and a log axis has no place for 0. In the figure each box is one layer
# at one step: the box spans the 25th to the 75th percentile, the whiskers the 5th to the 95th, the line
# inside is the median, each of them the median over the 8 seeds. A histogram in five numbers: enough to
# see where it sits, how wide it is and whether it moves.
#
# **Predict first.** Under He's initialization every layer starts with the same width. After 100 steps,
# is layer 6's distribution of $z$ `"narrower"`, `"as wide"` or `"wider"` than layer 1's?

# %%
my_prediction = None  # write "narrower", "as wide" or "wider" here before you run the next cells

# %%
layer_distributions_figure(init_runs, "Steps 0, 50 and 100: under PyTorch's default the deep layers sit at "
                           "the bias floor and nothing moves;<br>under He every layer starts at one width, "
                           "then training widens the deep layers")

# %%
# each layer's width, the 5th to the 95th percentile of its z: (seeds, records, layers)
widths = {label: init.spread(init_runs.preactivation_percentiles(label)) for label in init.TRAINED_INITS}
he_layer6_over_layer1 = np.median(widths["He"][:, -1, -1] / widths["He"][:, -1, 0])  # at step 100
width_change = ("wider" if he_layer6_over_layer1 > 1.25 else "narrower" if he_layer6_over_layer1 < 0.8
                else "as wide")
compare_prediction(my_prediction, width_change)

# %%
# Check: what the distributions show, in at least 7 of the 8 seeds
default_width, paper_width, he_width = (widths[label] for label in init.TRAINED_INITS)
default_gradient, he_gradient = (init_runs.gradient_percentiles(label)[..., 2]  # median |dL/dW|
                                 for label in ("PyTorch default", "He"))
default_moves = default_width[:, -1] / default_width[:, 0]            # step 100 / step 0, each layer
default_gradient_moves = default_gradient[:, -1] / default_gradient[:, 0]
he_over_default = np.median(he_gradient[:, 0] / default_gradient[:, 0], axis=1)  # at step 0
he_norms = init_runs.weight_norms("He")[..., :-1]                    # hidden layers: (seeds, records, 6)
he_norm_growth = (he_norms[:, -1] / he_norms[:, 0]).max(axis=1)
he_gain = he_width[:, :, 1:] / he_width[:, :, :-1]                   # layer l's width over layer l-1's
default_layer6_zeros = init_runs.zero_gradient_shares("PyTorch default")[:, 0, -1]
findings = {
    "default: layer 6 a fifth of layer 1's width": default_width[:, 0, -1] < default_width[:, 0, 0] / 5,
    "default: no layer's width moves by 10%": np.all(np.abs(default_moves - 1) < 0.1, axis=1),
    "default: gradients two orders below He's": (he_over_default > 50) & (he_over_default < 1000),
    "default: gradients keep their size": np.all((0.5 < default_gradient_moves) & (default_gradient_moves < 2),
                                                 axis=1),
    "default: most of layer 6's gradient is 0": default_layer6_zeros > 0.5,
    "He: one width at step 0 (within 2x)": he_width[:, 0].max(axis=1) < 2 * he_width[:, 0].min(axis=1),
    "He: layer 6 wider than layer 1 at step 100": he_width[:, -1, -1] > 1.25 * he_width[:, -1, 0],
    "He: layer 6 widens by a third or more": he_width[:, -1, -1] > 1.3 * he_width[:, 0, -1],
    "He: no hidden layer's weight norm grows by a twentieth": he_norm_growth < 1.05,
    "He: the layers amplify more than at step 0": np.median(he_gain[:, -1] / he_gain[:, 0], axis=1) > 1,
    "He: every layer's gradients shrink": np.all(he_gradient[:, -1] < 0.7 * he_gradient[:, 0], axis=1),
    "N(0, 0.1²): layer 6 ends wider than layer 1": paper_width[:, -1, -1] > paper_width[:, -1, 0],
}
for finding, held in findings.items():
    assert Support.of(held).at_least(7 / 8), (finding, Support.of(held))
assert 1.5 < he_layer6_over_layer1 < 2.5  # "about twice as wide"

# %% [markdown]
# What the figure shows:
# * **PyTorch's default** (left): the histograms narrow from layer to layer until, from layer 4 on, only
#   a thin band is left: the random biases, drawn from $U(-0.1, 0.1)$ for 100 inputs, nearly the same
#   for every image. Every box sits where it sat at step 0: in 100 steps nothing moved. The gradients
#   are about two orders of magnitude smaller than He's and keep their size. Most of layer 6's gradient
#   entries (not drawn) are exactly 0: a unit whose bias is negative is off for every image, so neither
#   its own weights nor the weights that read its output get a gradient.
# * **He** (right): at step 0 every layer has one width, as derived. Then the distributions move: by
#   step 100 layer 6's is about twice as wide as layer 1's. Not because the weights grew: no hidden
#   layer's weight norm (the training loop records them) grows by even a twentieth. What changed is their
#   direction: training turns each layer's weights towards the directions in which its inputs vary, so
#   the derivation's assumption (weights independent of their inputs) no longer holds, the layers
#   amplify the signal a little more than at step 0, and the gain compounds from layer to layer. The
#   gradients start large and shrink as the loss falls.
# * **N(0, 0.1²)** (middle) starts narrower with every layer, as at initialization. Once it learns, its
#   deep layers widen the most, and by step 100 they are wider than its first layer.
#
# **What this means for the rest of the course.** When a later notebook compares a network with BN to
# one without, the one without gets a principled initialization, He's for ReLU, LeCun's or Xavier's
# for tanh, and for the sigmoid Xavier's with a larger gain (notebook 02 explains why), and where a badly initialized network (PyTorch's default, or the paper's
# N(0, 0.1²) on ReLU) appears, it appears next to the well-initialized one, so you can tell which effect
# is BN's and which is the initialization's. Initialization sets the scale once, at step 0; training then
# moves the weights, and, as the He column shows, nothing keeps the scale where it started (notebook 02
# follows this drift unit by unit: internal covariate shift). Batch Normalization (notebook 04) will
# divide every unit by its own spread at every step.

# %% [markdown]
# ## 5. Exercises
#
# **Exercise 1: standardize with the training statistics.** Write `standardize(X_train, X_test)` that
# returns `(Z_train, Z_test)`: both arrays z-scored (per column) with the **training** mean and
# standard deviation. A model deployed on new data only knows what it saw in training, so the test
# set must not use its own statistics.

# %%
def standardize(X_train, X_test):
    """Z-score X_train (n, d) and X_test (k, d) with the mean and std of X_train's columns."""
    raise NotImplementedError  # replace this line with your code


check_standardize(standardize)

# %% [markdown]
# **Exercise 2: whiten.** Write `whiten(X)` returning the centered `X` (n, d) times $\Sigma^{-1/2}$,
# where $\Sigma = X_c^\top X_c / n$ is the covariance of the centered data $X_c$. Hint:
# `np.linalg.eigh(Sigma)` gives eigenvalues $\lambda$ and eigenvectors $V$, and
# $\Sigma^{-1/2} = V\,\mathrm{diag}(1/\sqrt{\lambda})\,V^\top$.

# %%
def whiten(X):
    """Center X (n, d) and give it identity covariance."""
    raise NotImplementedError  # replace this line with your code


check_whiten(whiten)

# %% [markdown]
# **Exercise 3: He's std.** Write `he_std(fan_in)` returning the standard deviation of He initialization
# for a ReLU layer with `fan_in` inputs (section 4's derivation, in one line).

# %%
def he_std(fan_in):
    """The weight std that keeps E[z^2] from one ReLU layer to the next."""
    raise NotImplementedError  # replace this line with your code


check_he_std(he_std)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("standardize")
# show_solution("whiten")
# show_solution("he_std")

# %% [markdown]
# ## Summary
# * The inputs fix the Hessian $H = X^\top X/n$ of a linear model's squared loss; its condition
#   number κ bounds how slowly gradient descent can converge at a stable learning rate.
# * An offset adds a steep direction ($\mu\mu^\top$), unequal scales and correlations stretch the bowl.
#   On digits: κ ≈ 5·10⁶ raw, ≈ 150 standardized, 1 whitened, and the step counts follow.
# * Min-max scaling fixes units but not offsets, and an outlier can squash it; z-scoring is the usual choice.
# * Full whitening is the ideal but costs on the order of $d^3$ per step, and a mini-batch smaller than
#   the layer gives a singular covariance (regularized, as Decorrelated BN does, it is noisy). Batch
#   Normalization standardizes each unit with mini-batch statistics instead.
# * Inside a network, $\mathbb E[z^2] = \text{fan-in} \cdot \mathrm{Var}(w) \cdot \mathbb E[h^2]$: a
#   weight std of gain / √fan-in keeps the signal's size, with gain 1 for linear and tanh layers (LeCun;
#   Xavier averages fan-in and fan-out for the backward pass) and √2 for ReLU (He/Kaiming). A fresh
#   10-class network should start near a loss of ln 10.
# * PyTorch's default init shrinks a deep ReLU network's signal at every layer; its SGD steps are then
#   so small (update-to-data ratio near $10^{-4}$) that a 6 × 100 network does not learn in 100 steps,
#   while He's learns from its first steps. The course's networks without BN are initialized this way.
# * Each layer's histograms over training show it at a glance: under the default the deep layers sit at
#   the bias floor and nothing moves; under He every layer starts at one width, and training moves the
#   distributions (the deep layers widen).
#
# **Next:** [02 · Covariate shift](02_covariate_shift.ipynb) asks what happens when the input
# distribution *moves*: covariate shift, and its internal cousin, with the networks initialized as in
# section 4. [00 · Start here](00_start_here.ipynb) has the map.
#
# ## References
# * Y. LeCun, L. Bottou, G. Orr and K.-R. Müller (1998). *Efficient BackProp.* In *Neural Networks:
#   Tricks of the Trade*. Sections 4.3 and 5 (normalizing inputs, the Hessian's eigenvalues).
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), sections 2 and 3.
# * A. Kessy, A. Lewin and K. Strimmer (2018). *Optimal Whitening and Decorrelation.* The American
#   Statistician 72(4).
# * L. Huang, D. Yang, B. Lang and J. Deng (2018). *Decorrelated Batch Normalization.* CVPR.
# * X. Glorot and Y. Bengio (2010). *Understanding the difficulty of training deep feedforward neural
#   networks.* AISTATS.
# * K. He, X. Zhang, S. Ren and J. Sun (2015). *Delving Deep into Rectifiers: Surpassing Human-Level
#   Performance on ImageNet Classification.* ICCV. [arXiv:1502.01852](https://arxiv.org/abs/1502.01852),
#   section 2.2.
# * A. Karpathy (2022). *Neural Networks: Zero to Hero*, lecture 4 ("Building makemore Part 3:
#   Activations & Gradients, BatchNorm"): the initial loss and the update-to-data ratio as diagnostics.
