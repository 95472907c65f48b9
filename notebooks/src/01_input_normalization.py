# %% [markdown]
# # 01 · Input normalization
#
# Before Batch Normalization normalizes what happens *inside* a network, it helps to see why we
# normalize what goes *into* it. This notebook answers one question: **why do we center, scale
# and decorrelate inputs before training?**
#
# **Learning goals.** After this notebook you can
# 1. explain the loss surface of a linear model as a bowl whose shape is set by the inputs (the Hessian);
# 2. predict how scale, offset and correlation of the inputs slow gradient descent down, via the
#    condition number κ;
# 3. compare raw, centered, min-max, standardized (z-score) and whitened inputs on real data;
# 4. say why full whitening inside a network is costly, and singular on a mini-batch smaller than
#    the layer, which is why Batch Normalization normalizes each unit separately.

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
import time

import numpy as np
import torch

import bnlab
from bnlab.lessons.nb01_input_normalization import experiments as conditioning
from bnlab.lessons.nb01_input_normalization.checks import check_standardize, check_whiten, show_solution
from bnlab.lessons.nb01_input_normalization.figures import descent_comparison_panel, input_variants
from bnlab.data import load_digits, make_regression_2d
from bnlab.figures import add_line, new_figure
from bnlab.models import make_mlp
from bnlab.seeding import numpy_rng

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
# stretches the bowl. Standardizing removes the first two; whitening removes all three.
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
#   so the steep $\mu\mu^\top$ direction remains, and it converges no faster than centering.
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
assert spread_min_max < 0.05 < 0.2 < spread_z_score

# %% [markdown]
# ## 3. Why not whiten everything, everywhere?
#
# Whitening made the problem perfect. Batch Normalization does *not* whiten; it only standardizes each
# unit separately. Why settle for less? Two reasons, both shown below.
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


timings = {d: seconds_per_eigendecomposition(d) for d in [32, 64, 128, 256, 512, 1024]}
eigen_time = new_figure("The eigendecomposition that whitening needs grows like d³",
                        "number of features d", "time of one eigendecomposition (seconds)", log_x=True, log_y=True)
add_line(eigen_time, list(timings), list(timings.values()), "measured", 0, mode="lines+markers")
add_line(eigen_time, list(timings), [timings[1024] * (d / 1024) ** 3 for d in timings], "∝ d³", 7, dash="dot")
eigen_time

# %% [markdown]
# **Mini-batches make it singular.** A network normalizes with the statistics of the current
# mini-batch. With a batch of $m = 60$ examples and a layer of $d = 100$ units, the batch covariance
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
assert rank <= m - 1 < d

# %% [markdown]
# Whitening a layer is not impossible: adding a small multiple of the identity to the covariance
# makes it invertible, and Decorrelated Batch Normalization (Huang et al. 2018) whitens groups of units
# that way. But it costs an eigendecomposition per layer and step, and a covariance estimated from 60
# examples is noisy. Standardizing each unit needs only one mean and one variance per unit, which 60
# examples estimate well. That is the compromise Batch Normalization makes (Ioffe & Szegedy 2015,
# section 3): normalize each unit on its own, with the mini-batch's mean and variance.

# %% [markdown]
# ## 4. Exercises
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
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("standardize")
# show_solution("whiten")

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
#
# **Next:** [02 · Covariate shift](02_covariate_shift.ipynb) asks what happens when the input
# distribution *moves*: covariate shift, and its internal cousin. [00 · Start here](00_start_here.ipynb)
# has the map.
#
# ## References
# * Y. LeCun, L. Bottou, G. Orr and K.-R. Müller (1998). *Efficient BackProp.* In *Neural Networks:
#   Tricks of the Trade*. Sections 4.3 and 5 (normalizing inputs, the Hessian's eigenvalues).
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), sections 2 and 3.
# * A. Kessy, A. Lewin and K. Strimmer (2018). *Optimal Whitening and Decorrelation.* The American
#   Statistician 72(4).
# * L. Huang, D. Yang, B. Lang and J. Deng (2018). *Decorrelated Batch Normalization.* CVPR.
