# %% [markdown]
# # 06 · Why Batch Normalization works, and when it fails
#
# The title of the paper gives its explanation: BN accelerates training *by reducing internal covariate
# shift*, the change of each layer's input distribution while the layers below it learn. Notebooks 02
# and 05 showed that BN does make training faster and more forgiving. They did not show that the
# *reason* is a smaller internal covariate shift. That is a hypothesis, and in 2018 Santurkar, Tsipras,
# Ilyas and Madry put it to the test. This last notebook repeats small versions of their experiments on
# our digits network and reports what they show here, including where a published claim does not
# reproduce. Then it runs the ways BN goes wrong in practice, and two normalizations that avoid them.
#
# **Learning goals.** After this notebook you can
# 1. describe the noisy-BN experiment and say what it implies for the internal-covariate-shift
#    explanation;
# 2. measure internal covariate shift the way Santurkar et al. define it, through the change of a layer's
#    gradient, and read the result;
# 3. measure how smooth the loss is along the gradient (loss range, gradient predictiveness, effective
#    β-smoothness), and say which measure favours BN here and which does not;
# 4. derive BN's scale invariance, the orthogonality of weights and gradients it implies, the growth of
#    the weight norm and the effective learning rate $\eta/\lVert w\rVert^2$;
# 5. recognize five pitfalls of BN in practice (eval mode, tiny batches, non-i.i.d. batches, stale
#    statistics, batch dependence) and fix them;
# 6. choose between BatchNorm, LayerNorm and GroupNorm when batches are small.
#
# Every experiment uses one network: 3 hidden layers of 100 ReLU units, PyTorch's default
# initialization, SGD with learning rate η = 0.1 and batches of 60, for 240 steps (about 11 passes over the
# 1,347 training digits). Runs are trained once and shared between sections and sliders.

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
import torch

import bnlab
from bnlab.batchnorm import BatchNorm
from bnlab.claims import record
from bnlab.lessons.nb06_why_batchnorm_works import experiments as wb
from bnlab.lessons.nb06_why_batchnorm_works.checks import (
    check_effective_learning_rate,
    check_recompute_statistics,
    show_solution,
)
from bnlab.lessons.nb06_why_batchnorm_works.figures import (
    ics_figure,
    landscape_figure,
    noise_panel,
    normalization_panel,
    pitfalls_figure,
    weight_norm_figure,
)

SEED = bnlab.setup()
print(f"Course seed: {SEED}")
data = wb.digits(SEED)

# %% [markdown]
# ## 1. Noisy BN: make the inputs unstable on purpose
#
# If BN helps *because* it keeps each layer's input distribution steady, then a BN network whose layer
# inputs are made unsteady on purpose should lose its advantage. Santurkar et al. built exactly that
# network: right after every BN layer they add noise whose distribution changes at every step.
#
# Our version (`NoisyBatchNorm` of this notebook's lesson package: BN followed by the layer `StepNoise`):
# at every training step, each unit $j$ draws a fresh scale $s_j \sim U(1, 1 + \ell)$ and shift $m_j \sim
# U(-\ell, \ell)$, and passes on $s_j\,\mathrm{BN}(x)_j + m_j$. The noise level $\ell$ sets how far the
# mean and the spread of every unit's input jump from one step to the next. (At test time the layer uses
# the noise's average, $(1 + \ell/2)\,x$.) We train four networks: without BN, with BN, noisy BN, and the
# network without BN with the same noise after each linear layer.
#
# **Predict before you run.** At noise level 2, the mean of a unit's input jumps by about 1.3 at every
# step. Will noisy BN train better or worse than the clean network without BN?

# %%
noisy = wb.noisy_grid(SEED)   # noise level -> network -> History (6 noisy runs + the 2 clean ones)
clean = noisy[0.0]
print(f"{'level':>5} | {'without BN':>10} {'with BN':>10} {'noisy BN':>10} {'no BN+noise':>12} "
      "| test accuracy at the end (training loss)")
for level, runs in noisy.items():
    cells = [f"NaN at {h.diverged_at}" if h.diverged else f"{wb.late_accuracy(h):.1%}" for h in runs.values()]
    losses = [h.train_loss[-1] for h in runs.values()]
    print(f"{level:>5g} | {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {cells[3]:>12} | "
          + " ".join(f"{loss:.3f}" for loss in losses))

batch = torch.arange(60)  # the first 60 training images: how far does one step move a unit's input?
shift = {label: wb.step_shift(wb.trained(wb.noisy_run(label, wb.NOISE_LEVEL), SEED)[1],
                              data.X_train[batch], data.y_train[batch], wb.LR)
         for label in wb.NOISY}
print("one step moves the mean and spread of layer 3's inputs by (mean over units, level 2): "
      + ", ".join(f"{label} {value:.2g}" for label, value in shift.items()))

levels = [level for level in noisy if level > 0]
plain_loss = clean["without BN"].train_loss[-1]
assert shift["noisy BN"] > 20 * shift["without BN"] and shift["noisy BN"] > 0.5  # far less stable ...
for level in levels:
    runs = noisy[level]
    assert wb.late_accuracy(runs["noisy BN"]) > wb.late_accuracy(runs["without BN + noise"]) + 0.005
    assert runs["noisy BN"].train_loss[-1] < 0.6 * plain_loss             # ... and still trains faster
assert noisy[4.0]["without BN + noise"].diverged and not noisy[4.0]["noisy BN"].diverged
beats_clean_plain = all(wb.late_accuracy(noisy[level]["noisy BN"]) > wb.late_accuracy(clean["without BN"])
                        for level in levels)
assert beats_clean_plain
assert all(wb.late_accuracy(noisy[level]["noisy BN"]) > wb.late_accuracy(clean["with BN"]) - 0.025
           for level in levels)
at = noisy[wb.NOISE_LEVEL]
record("noisy-bn-still-helps", holds=beats_clean_plain,
       measured=f"level 2: noisy BN {wb.late_accuracy(at['noisy BN']):.1%} vs same noise without BN "
                f"{wb.late_accuracy(at['without BN + noise']):.1%}, clean without BN "
                f"{wb.late_accuracy(clean['without BN']):.1%}, clean BN "
                f"{wb.late_accuracy(clean['with BN']):.1%}; "
                f"step-to-step input shift {shift['noisy BN']:.2f} vs {shift['without BN']:.2g}")

# %% [markdown]
# Drag the noise level. Left: the four runs at that level. Right: where each network ends, at every
# level (level 0 is the clean pair).

# %%
noisy_panel = noise_panel(wb.noisy_grid(SEED))
noisy_panel

# %% [markdown]
# What the runs show, on digits:
# * The noise does what it should: one step moves the mean and spread of a noisy-BN unit's input
#   **tens of times more** than training moves them in the network without BN. By the
#   internal-covariate-shift explanation, noisy BN should now be the worst of the four.
# * It is not. Noisy BN ends within one or two points of clean BN, above the same noise without BN, and above
#   the clean network without BN, at every noise level; its training loss stays well below
#   the clean plain network's. Without BN, the same noise hurts more, and at level 4 the network
#   diverges (the table gives the step).
#
# This is the result Santurkar et al. report on CIFAR-10, and it reproduces here. So whatever
# BN does for training, keeping the layer inputs' distributions steady is not necessary for it. Seed 004
# asked how the distribution can be stable if γ and β keep changing: this experiment suggests that
# stability was never the point.

# %% [markdown]
# ## 2. Internal covariate shift, measured through the gradient
#
# Notebook 02 measured internal covariate shift as the drift of a unit's input percentiles. Santurkar et
# al. proposed a measure tied to what the shift is supposed to harm: the layer's *update*. Take layer $i$
# with weights $W_i$ and one batch. Let $G$ be the gradient of the loss with respect to $W_i$. Now let
# every layer *below* $i$ take its SGD step on that same batch, and compute the gradient with respect
# to the unchanged $W_i$ again: $G'$. If the layers below shift layer $i$'s input a lot, $G'$ differs from
# $G$: layer $i$'s step was computed for inputs that no longer exist. We report
# $$\frac{\lVert G - G'\rVert}{\lVert G\rVert} \quad\text{and}\quad
#   \cos(G, G') = \frac{G\cdot G'}{\lVert G\rVert\,\lVert G'\rVert}.$$
# (We divide by $\lVert G\rVert$ because BN changes the size of the gradients.) Both are recorded every 20
# steps during training (`wb.gradient_shift`), for the second and third hidden layers and the output layer,
# on a fresh random batch each time.
#
# **Predict before you run.** Which network will show the smaller internal covariate shift by this measure?

# %%
pair = wb.clean_pair(SEED)  # "without BN", "with BN": the runs of section 1, with the probes
layers = ("linear2", "linear3", "output")
ics = {label: {layer: wb.probe_series(h, f"ics {layer}")[1:] for layer in layers}  # (records, 2) each
       for label, h in pair.items()}
print(f"{'':>10} | median over training of |G - G'| / |G|     (cos G, G')")
for label, per_layer in ics.items():
    print(f"{label:>10} | " + "  ".join(f"{layer} {np.median(v[:, 0]):.3f} ({np.median(v[:, 1]):.4f})"
                                       for layer, v in per_layer.items()))
relative = {label: np.median(np.concatenate([v[:, 0] for v in per_layer.values()]))
            for label, per_layer in ics.items()}
lowest_cos = {label: min(np.median(v[:, 1]) for v in per_layer.values()) for label, per_layer in ics.items()}
for layer in ("linear2", "linear3"):
    assert np.median(ics["with BN"][layer][:, 0]) > 2 * np.median(ics["without BN"][layer][:, 0])
    assert np.median(ics["with BN"][layer][:, 1]) < np.median(ics["without BN"][layer][:, 1])
assert relative["with BN"] > 1.5 * relative["without BN"] and lowest_cos["without BN"] > 0.98
record("ics-gradient-change-reduced", holds=relative["with BN"] < relative["without BN"],
       measured=f"median |G - G'|/|G| over layers 2, 3, output: {relative['with BN']:.2f} with BN, "
                f"{relative['without BN']:.2f} without; lowest median cosine {lowest_cos['with BN']:.3f} vs "
                f"{lowest_cos['without BN']:.3f}")

# %%
ics_figure(pair, title=f"Internal covariate shift is LARGER with BN: the layer's gradient changes by "
                       f"{relative['with BN']:.0%} vs {relative['without BN']:.0%} (median)")

# %% [markdown]
# By Santurkar et al.'s measure, BN does **not** reduce internal covariate shift on digits: a BN layer's
# gradient changes more than twice as much when the layers below it move, and its direction turns
# further (a lower cosine, printed above). Santurkar et al. found the same on their networks. So the
# paper's explanation fails twice: making the inputs less stable does not remove BN's benefit (section 1),
# and the benefit comes with *more* shift of this kind, not less.

# %% [markdown]
# ## 3. The loss landscape along the gradient
#
# Santurkar et al.'s alternative explanation: BN makes the loss **smoother**, so the gradient is a more
# reliable guide and larger steps are safe. They measured it along the direction training actually moves.
# At the weights $w$ of some training step, with $g = \nabla L(w)$ on a batch, take steps $s$ along
# $-g$ (here $s = 0.25\eta, 0.5\eta, \dots, 8\eta$) and record
# * the **loss range**: $\max_s L(w - s g) - \min_s L(w - s g)$ (how much the loss varies along the path);
# * the **gradient change** ("gradient predictiveness"):
#   $\max_s \lVert \nabla L(w) - \nabla L(w - s g)\rVert$;
# * the **effective β-smoothness**: $\max_s \lVert \nabla L(w) - \nabla L(w - s g)\rVert / \lVert s g\rVert$,
#   the gradient change per unit of distance travelled.
#
# The probe (`wb.landscape_along_gradient`) measured all three every 20 steps of the runs above. A
# landscape can be smooth at most steps and rough at a few, so we summarize each series over training by
# its **median** (a typical step) and its **90th percentile** (the worst steps).
#
# **Predict before you run.** Will all three measures favour BN?

# %%
summary = {}
print(f"{'':>10} | {'loss range':>17} | {'gradient change':>17} | {'β-smoothness':>17}")
print(f"{'':>10} | {'median':>8} {'90th':>8} | {'median':>8} {'90th':>8} | {'median':>8} {'90th':>8}")
for label, h in pair.items():
    summary[label] = {what: wb.worst_and_median(wb.probe_series(h, what))
                      for what in ("loss range", "gradient change", "beta")}
    print(f"{label:>10} | " + " | ".join(f"{median:>8.3f} {worst:>8.3f}"
                                         for worst, median in summary[label].values()))
bn, plain = summary["with BN"], summary["without BN"]
ratio = {what: (bn[what][1] / plain[what][1], bn[what][0] / plain[what][0]) for what in bn}  # (median, p90)
for what in ("loss range", "gradient change"):
    assert ratio[what][0] < 0.6 and ratio[what][1] < 0.75   # smoother with BN, typical and worst steps
assert ratio["beta"][0] > 1.3 and ratio["beta"][1] > 1.0    # ... but not per unit of step length
record("bn-smooths-loss-landscape-median",
       holds=ratio["loss range"][0] < 1 and ratio["gradient change"][0] < 1,
       measured=f"median over training, BN / no BN: loss range {ratio['loss range'][0]:.2f}, gradient change "
                f"{ratio['gradient change'][0]:.2f}")
record("bn-smooths-loss-landscape-worst-case",
       holds=ratio["loss range"][1] < 1 and ratio["gradient change"][1] < 1,
       measured=f"90th percentile over training, BN / no BN: loss range {ratio['loss range'][1]:.2f}, "
                f"gradient change {ratio['gradient change'][1]:.2f}")
record("bn-improves-beta-smoothness", holds=ratio["beta"][0] < 1 and ratio["beta"][1] < 1,
       measured=f"effective β-smoothness with BN {bn['beta'][1]:.1f} vs {plain['beta'][1]:.1f} without "
                f"(median), "
                f"{bn['beta'][0]:.1f} vs {plain['beta'][0]:.1f} (90th percentile)")

# %%
landscape_figure(pair, title=f"Along the gradient, BN's loss varies {1 / ratio['loss range'][0]:.0f}× less "
                             f"(median), but its β-smoothness is {ratio['beta'][0]:.1f}× larger")

# %% [markdown]
# Read the bands: at each training step, the shaded band spans the values over the step sizes. With BN the
# loss barely moves along the path and the gradient changes less, at typical steps (median) *and* at the
# worst ones (90th percentile): by these two measures BN's landscape is smoother, as Santurkar et al.
# report.
#
# The third measure goes the other way. Part of BN's advantage is simply that its gradients are smaller:
# a step $s g$ along a small $g$ travels a short distance, so the loss and the gradient change less.
# Divide the gradient change by the distance travelled and the BN network is **rougher**, not smoother,
# at typical and at worst steps. So on digits, "BN makes the landscape smoother" holds for the change
# along the actual training steps, and not for the curvature per unit of distance. Which one matters for
# training? The next section shows why the two differ: under BN, the size of the weights sets the size
# of the step.

# %% [markdown]
# ## 4. Scale invariance and the effective learning rate
#
# Notebook 05 showed $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$. It holds for each unit separately: scale the
# row $w_j$ of weights that feed unit $j$ by $a > 0$, and the unit's normalized value does not change
# (its bias is subtracted with the batch mean). So the loss satisfies $L(a w_j) = L(w_j)$ for every $a$.
# Differentiate with respect to $a$ at $a = 1$:
# $$0 = \frac{d}{da} L(a w_j)\Big|_{a=1} = w_j \cdot \nabla_{w_j} L:$$
# **the gradient is orthogonal to the weights.** Two consequences follow for plain SGD,
# $w_j \leftarrow w_j - \eta g_j$:
# $$\lVert w_j - \eta g_j\rVert^2 = \lVert w_j\rVert^2 - 2\eta\, w_j\cdot g_j + \eta^2 \lVert g_j\rVert^2
#   = \lVert w_j\rVert^2 + \eta^2\lVert g_j\rVert^2,$$
# so **every row's norm grows at every step**, and faster at larger η. And since the gradient at $a w_j$ is
# $\frac1a$ times the gradient at $w_j$ (notebook 05), a step changes the *direction* of $w_j$, the only
# thing the loss sees, by about $\eta \lVert g_j\rVert / \lVert w_j \rVert$, where $\lVert g_j\rVert$ itself
# scales as $1/\lVert w_j\rVert$. Written for the direction $\hat w_j = w_j / \lVert w_j\rVert$, SGD on $w_j$
# is SGD on $\hat w_j$ with the **effective learning rate**
# $$\eta_{\text{eff}} = \frac{\eta}{\lVert w_j\rVert^2}.$$
# As the norm grows, the effective learning rate falls on its own: BN tunes its step size. We check all
# three on the BN network of section 1 (η = 0.1), and on the same network trained at η = 1.
#
# **Predict before you run.** At which learning rate will the weight norms grow more?

# %%
runs_by_lr = wb.learning_rate_pair(SEED)                   # lr -> History of the BN network
bn_model, plain_model = (wb.trained(wb.base_run(norm), SEED)[1] for norm in ("torch_bn", "none"))
X60, y60 = data.X_train[batch], data.y_train[batch]
cosines = {label: np.abs(wb.gradient_weight_cosine(model, X60, y60, "linear2"))
           for label, model in (("with BN", bn_model), ("without BN", plain_model))}
growth, predicted = wb.norm_growth_identity(bn_model, X60, y60, "linear2", wb.LR)
print(f"|cos(w_j, dL/dw_j)| over the 100 rows of linear2: largest {cosines['with BN'].max():.0e} with BN, "
      f"median {np.median(cosines['without BN']):.2f} without")
mismatch = np.abs(growth - predicted).max() / predicted.max()
print(f"one SGD step: |w_j|² grows by η²|g_j|², to within {mismatch:.0%} of the largest growth (BN's ε)")
norm_growth = {lr: {layer: wb.weight_norm_series(h, layer)[-1] / wb.weight_norm_series(h, layer)[0]
                    for layer in ("linear1", "linear2", "linear3")} for lr, h in runs_by_lr.items()}
for lr, per_layer in norm_growth.items():
    print(f"η = {lr:g}: |W| grew by " + ", ".join(f"{layer} {g - 1:.1%}" for layer, g in per_layer.items())
          + f"; effective learning rate now {1 / per_layer['linear1'] ** 2:.0%} of its start (linear1)")
    for layer in ("linear1", "linear2", "linear3"):
        norms = wb.weight_norm_series(runs_by_lr[lr], layer)
        assert np.all(np.diff(norms) > -1e-6 * norms[:-1])    # never shrinks, record to record
assert cosines["with BN"].max() < 1e-3 and np.median(cosines["without BN"]) > 0.01
assert mismatch < 0.25 and np.all(growth > -0.25 * predicted.max())
assert all(norm_growth[wb.HIGH_LR][layer] > 1.1 and norm_growth[wb.HIGH_LR][layer] > norm_growth[wb.LR][layer]
           for layer in ("linear1", "linear2", "linear3"))
assert all(wb.late_accuracy(h) > 0.9 for h in runs_by_lr.values())
record("bn-weights-scale-invariant",
       holds=bool(cosines["with BN"].max() < 1e-3 and norm_growth[wb.HIGH_LR]["linear1"] > 1.1),
       measured=f"|cos(w, g)| ≤ {cosines['with BN'].max():.0e} with BN "
                f"({np.median(cosines['without BN']):.2f} without); "
                f"|W1| grew {norm_growth[wb.LR]['linear1'] - 1:.1%} at η = 0.1, "
                f"{norm_growth[wb.HIGH_LR]['linear1'] - 1:.0%} at η = 1 (effective lr × "
                f"{1 / norm_growth[wb.HIGH_LR]['linear1'] ** 2:.2f})")

# %%
weight_norm_figure(runs_by_lr[wb.HIGH_LR], wb.HIGH_LR,
                   title=f"With BN at η = 1 the weights grow "
                         f"({norm_growth[wb.HIGH_LR]['linear1'] - 1:.0%} for layer 1) and the effective "
                         "learning rate falls with them")

# %% [markdown]
# The gradient is orthogonal to every BN-normalized row of weights (up to BN's $\epsilon$, which makes the
# invariance very slightly imperfect), and one SGD step grows $\lVert w_j\rVert^2$ by
# $\eta^2\lVert g_j\rVert^2$. Without BN the two are far from
# orthogonal. At η = 0.1 the growth is small (the printed percentages): the effective learning rate
# hardly moves. At η = 1 every layer's norm grows by more than 10%, more than at η = 0.1, and the
# effective learning rate of the first layer falls with the square of that growth. A learning rate that
# is too large inflates the weights, which shrinks the effective learning rate: one reason BN tolerates
# large learning rates (notebook 05).
# It also explains section 3's puzzle: the smaller gradients of the BN network come with a built-in,
# shrinking step size, so the smoothness *along training's steps* and the smoothness *per unit of
# distance* are different things.

# %% [markdown]
# ## 5. Pitfalls, each one run
#
# BN is the one common layer whose output for an example depends on the other examples of its batch, and
# whose behaviour differs between training and evaluation. Each pitfall below follows from that. We use
# the trained BN network of section 1 (eval-mode test accuracy below), and never change it: every
# experiment works on a copy.
#
# ### 5.1 Forgetting `model.eval()`
#
# In training mode, BN normalizes with the statistics of the batch it is given, so predictions depend on
# how you batch the test set. **Predict before you run:** what happens to the test accuracy if you forget
# `model.eval()` and predict the test images 8 or 2 at a time?

# %%
X_test, y_test = data.X_test, data.y_test
eval_accuracy = wb.eval_mode_accuracy(bn_model, X_test, y_test)
forgot = {m: wb.train_mode_accuracy(bn_model, X_test, y_test, m) for m in (len(X_test), 8, 2)}
print(f"eval mode (running statistics): {eval_accuracy:.1%}")
for m, accuracy in forgot.items():
    print(f"training mode, batches of {m:>3}: {accuracy:.1%}")
assert abs(forgot[len(X_test)] - eval_accuracy) < 0.02  # a large, representative batch: almost no harm
assert forgot[8] < eval_accuracy - 0.05 and forgot[2] < 0.7

# %% [markdown]
# With the whole test set as one batch, its statistics are close to the training population's and little
# goes wrong. With small batches, the test accuracy drops, and at 2 it is far below. (In training mode
# every forward pass also overwrites the running statistics, so forgetting `eval()` also damages the
# model you save.)
#
# ### 5.2 Batches of one and two
#
# **Predict before you run:** what does training-mode BN make of a batch of one example? Of two?

# %%
layer = BatchNorm(3).train()
try:
    layer(torch.randn(1, 3))
except ValueError as error:
    print(f"batch of 1 in training mode -> ValueError: {error}")
pair_of_examples = torch.tensor([[0.3, -2.0, 5.0], [1.1, 4.0, 5.5]])
normalized_pair = wb.normalize_pair(pair_of_examples)
print("batch of 2:\n", normalized_pair.numpy().round(4))
assert torch.allclose(normalized_pair.abs(), torch.ones(2, 3))

# %% [markdown]
# A batch of one has no variance: bnlab's BN refuses it with a clear error (PyTorch's does too). A batch
# of two is worse because it runs: each unit's two values become exactly $-1$ and $+1$, whatever they were.
# The output says only which of the two examples was larger. Training with $m = 2$ is section 6's first
# slider position.
#
# ### 5.3 A batch that is not i.i.d.
#
# BN assumes each batch is a fair sample of the data. Stream the test images sorted by label, 40 at a
# time, so that almost every batch holds a single class, and predict in training mode (as you would if you
# forgot `eval()`, or if a data loader did not shuffle during training).

# %%
order = wb.one_class_batches(y_test)
sorted_accuracy = wb.train_mode_accuracy(bn_model, X_test[order], y_test[order], 40)
shuffled_accuracy = wb.train_mode_accuracy(bn_model, X_test, y_test, 40)
print(f"training mode, batches of 40: shuffled {shuffled_accuracy:.1%}, sorted by class "
      f"{sorted_accuracy:.1%}; eval mode {eval_accuracy:.1%} either way")
assert sorted_accuracy < 0.5 < shuffled_accuracy - 0.3

# %% [markdown]
# In a one-class batch, subtracting the batch mean subtracts what the examples have in common, which is
# precisely their class. The answer to seed 000's first question, in one run: the shift *between
# mini-batches* that BN sees is not the shift between training and test data, and BN is only as good as
# the assumption that every batch looks like the whole.
#
# ### 5.4 Stale running statistics, and precise BN
#
# The running statistics are averages collected while the weights were changing. If the weights change
# after they were collected, eval mode normalizes with the wrong numbers. A clean way to see it: multiply
# the weights (and bias) of `linear2` by 0.1. In training mode BN cannot tell (scale invariance, section 4);
# in eval mode the running statistics still describe the old scale. The fix is to recompute them at the
# current weights: one pass over the training data in training mode, averaging the batch statistics
# (**precise BN**, `wb.recompute_statistics`). We also ask whether precise BN helps the network as trained.

# %%
shrunk = wb.scale_layer(bn_model, "linear2", 0.1)
shrunk_accuracy = wb.eval_mode_accuracy(shrunk, X_test, y_test)
repaired_accuracy = wb.eval_mode_accuracy(wb.recompute_statistics(shrunk, data.X_train), X_test, y_test)
precise_accuracy = wb.eval_mode_accuracy(wb.recompute_statistics(bn_model, data.X_train), X_test, y_test)
print(f"linear2 × 0.1, stale running statistics: {shrunk_accuracy:.1%}; recomputed: {repaired_accuracy:.1%}")
print(f"the network as trained: running statistics {eval_accuracy:.1%}, precise BN {precise_accuracy:.1%}")
assert shrunk_accuracy < 0.5 and abs(repaired_accuracy - eval_accuracy) < 0.02
assert abs(precise_accuracy - eval_accuracy) < 0.015
record("precise-bn-improves-accuracy", holds=precise_accuracy > eval_accuracy + 0.005,
       measured=f"test accuracy {eval_accuracy:.1%} with running averages, {precise_accuracy:.1%} with "
                f"precise BN; after rescaling linear2: {shrunk_accuracy:.1%} stale, "
                f"{repaired_accuracy:.1%} recomputed")

# %% [markdown]
# Stale statistics can wreck a network that is otherwise fine, and recomputing them repairs it fully. This
# is what to do after anything that changes weights without updating the statistics: averaging weights of
# several checkpoints, pruning, or fine-tuning with BN frozen in eval mode. On the network *as trained*,
# though, precise BN changes the test accuracy by less than a point and a half (the
# [claims ledger](claims_ledger.md) lists the change for each seed): the running averages of 240 small
# steps were nearly up to date. The clear gains reported for large-scale training do not show up here.
#
# ### 5.5 The same example, different companions
#
# **Predict before you run:** put one test image in 20 training-mode batches of 8 with random companions.
# Will the network always give it the same logits? The same class?

# %%
spreads = {}
for label, norm in (("BatchNorm", "torch_bn"), ("LayerNorm", "layernorm"), ("GroupNorm", "groupnorm")):
    model = wb.trained(wb.base_run(norm), SEED)[1]
    spreads[label] = [wb.companion_spread(model, X_test[i], X_test[20:], 8, seed=SEED) for i in range(10)]
for label, values in spreads.items():
    print(f"{label:>9}: largest change of an image's logits across batches {max(v[0] for v in values):.2g}; "
          f"images given more than one class: {sum(v[1] > 1 for v in values)} of 10")
bn_change = min(v[0] for v in spreads["BatchNorm"])
assert bn_change > 0.1
assert all(v[0] < 1e-4 and v[1] == 1 for label in ("LayerNorm", "GroupNorm") for v in spreads[label])
record("bn-output-depends-on-batch", holds=bn_change > 0.1,
       measured=f"10 test images, 20 batches of 8 each: BN logits move by ≥ {bn_change:.2f}; LayerNorm and "
                f"GroupNorm by < 1e-4")

# %% [markdown]
# Under BN every image's logits move with its companions (that is the regularizing noise of seed 003, and
# at test time, a bug). LayerNorm and GroupNorm normalize each example by its *own* statistics, over its
# units, so its companions cannot matter: the changes are zero up to rounding.
#
# All of it in one picture, the same trained network evaluated six ways:

# %%
pitfalls_figure({"eval mode": eval_accuracy, "train mode, m = 450": forgot[len(X_test)],
                 "train mode, m = 8": forgot[8], "train mode, m = 2": forgot[2],
                 "one class per batch": sorted_accuracy, "stale statistics": shrunk_accuracy,
                 "recomputed (precise BN)": repaired_accuracy}, eval_accuracy,
                title=f"One trained BN network ({eval_accuracy:.0%} in eval mode), evaluated the wrong ways")

# %% [markdown]
# ## 6. Alternatives: LayerNorm and GroupNorm
#
# **LayerNorm** (Ba et al. 2016) normalizes each example over its own units: mean and variance over the 100
# units of a layer, then a per-unit $\gamma$ and $\beta$ as in BN. **GroupNorm** (Wu & He 2018) does the same
# within groups of units (here 10 groups of 10). Neither looks at the other examples, so neither cares
# about the batch size, needs running statistics, or behaves differently in eval mode. We train the network
# with each normalization, and without, at batch sizes 2, 8 and 60 (240 steps each, η = 0.1).
#
# **Predict before you run.** Which normalization will suffer most at batch size 2?

# %%
by_batch = wb.batch_size_grid(SEED)   # batch size -> normalization -> History
print(f"{'m':>4} | " + " ".join(f"{label:>16}" for label in wb.NORMALIZATIONS))
for m, runs in by_batch.items():
    print(f"{m:>4} | " + " ".join(f"{wb.late_accuracy(h):>16.1%}" for h in runs.values()))
tiny = {label: wb.late_accuracy(h) for label, h in by_batch[2].items()}
full = {label: wb.late_accuracy(h) for label, h in by_batch[60].items()}
assert tiny["BatchNorm"] < 0.5 and min(tiny["LayerNorm"], tiny["GroupNorm"]) > tiny["BatchNorm"] + 0.3
assert min(tiny["LayerNorm"], tiny["GroupNorm"]) > 0.65 and tiny["no normalization"] > 0.6
assert all(value > 0.92 for value in full.values()) and full["BatchNorm"] >= full["no normalization"]
record("layernorm-groupnorm-batch-independent",
       holds=min(tiny["LayerNorm"], tiny["GroupNorm"]) > tiny["BatchNorm"] + 0.3,
       measured=f"batches of 2: BN {tiny['BatchNorm']:.0%}, LayerNorm {tiny['LayerNorm']:.0%}, GroupNorm "
                f"{tiny['GroupNorm']:.0%}, none {tiny['no normalization']:.0%}; batches of 60: BN "
                f"{full['BatchNorm']:.0%}, LayerNorm {full['LayerNorm']:.0%}, "
                f"GroupNorm {full['GroupNorm']:.0%}")

# %%
alternatives_panel = normalization_panel(wb.batch_size_grid(SEED))
alternatives_panel

# %% [markdown]
# Slide the batch size down to 2. BatchNorm collapses (section 5.2: every unit becomes ±1, and the
# running statistics of two-example batches are poor estimates); LayerNorm and GroupNorm lose only what
# every network loses from tiny batches (the run without normalization drops too, since 240 steps of 2
# examples is less than half a pass over the data). At 60, BN is at least as good as no normalization and
# close to the other two. Rules of thumb that follow: BN when batches are large and i.i.d.; LayerNorm or
# GroupNorm when they are small, when examples must be processed one at a time, or when training and test
# must behave the same (LayerNorm is the default of Transformers and recurrent networks for these reasons).

# %% [markdown]
# ## 7. Exercises
#
# **Exercise 1: the effective learning rate.** Write `effective_learning_rate(lr, weight)`: `weight` is a
# Linear layer's weight of shape `(units, inputs)`, each row the weights of one unit that BN normalizes.
# Return the effective learning rate $\eta / \lVert w_j\rVert^2$ of each unit, shape `(units,)`.

# %%
def effective_learning_rate(lr, weight):
    """lr / |w_j|^2 for each row w_j of weight (units, inputs)."""
    raise NotImplementedError  # replace this line with your code


check_effective_learning_rate(effective_learning_rate)

# %% [markdown]
# **Exercise 2: precise BN.** Write `recompute_statistics(model, X)`: replace the running statistics of
# every `nn.BatchNorm1d` layer of `model` by the statistics of the examples `X` (shape `(n, d)`) at the
# current weights, without changing any weight, and return the model ready for evaluation. Hints: a BN
# layer updates its running statistics only in training mode; `layer.reset_running_stats()` forgets the
# old ones; `layer.momentum = None` makes the update a plain average; feed X in batches of about 100
# inside `torch.no_grad()`.

# %%
def recompute_statistics(model, X):
    """Running statistics of every BN layer recomputed from X (n, d); returns the model in eval mode."""
    raise NotImplementedError  # replace this line with your code


check_recompute_statistics(recompute_statistics)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("effective_learning_rate")
# show_solution("recompute_statistics")

# %% [markdown]
# ## Summary
# * **Noisy BN.** Noise that makes every unit's input jump at every step, added after each BN layer, did
#   not remove BN's advantage: noisy BN trained better than the same noise without BN and than the clean
#   network without BN. Stable layer inputs are not what BN's benefit needs.
# * **Internal covariate shift, measured through the gradient,** was *larger* with BN (more than twice
#   as large for the hidden layers).
# * **Smoothness.** Along training's own steps, BN's loss and gradient changed far less, at typical and
#   at the worst steps. Per unit of distance (effective β-smoothness), BN's landscape was rougher.
# * **Scale invariance.** The gradient is orthogonal to every BN-normalized weight vector, so SGD grows the
#   weights, and the effective learning rate $\eta/\lVert w\rVert^2$ falls, the more the larger η.
# * **Pitfalls.** Forgetting `eval()`, batches of 1 or 2, batches that are not i.i.d., stale running
#   statistics (fixed by recomputing them, precise BN) and an output that depends on the batch companions:
#   all follow from BN's use of batch statistics. Precise BN gave little or no gain on the network as
#   trained.
# * **Alternatives.** LayerNorm and GroupNorm trained well with batches of 2, where BN failed, and do not
#   depend on the batch at all.
#
# Where this leaves the question of the course: BN works, on digits as on ImageNet, and the paper's
# explanation for it does not survive the tests above. The leading explanations today involve the
# conditioning of the optimization (smoothness along the path, the self-tuning effective learning rate)
# rather than the stability of distributions, and they are still being argued over.
#
# Every claim tested in this course, with what each seed measured, is collected in the
# [claims ledger](claims_ledger.md). The map of the series is in [00 · Start here](00_start_here.ipynb).
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167).
# * S. Santurkar, D. Tsipras, A. Ilyas and A. Madry (2018). *How Does Batch Normalization Help
#   Optimization?* NeurIPS. [arXiv:1805.11604](https://arxiv.org/abs/1805.11604), sections 2 and 3.
# * J. L. Ba, J. R. Kiros and G. E. Hinton (2016). *Layer Normalization.*
#   [arXiv:1607.06450](https://arxiv.org/abs/1607.06450).
# * Y. Wu and K. He (2018). *Group Normalization.* ECCV. [arXiv:1803.08494](https://arxiv.org/abs/1803.08494).
# * N. Bjorck, C. P. Gomes, B. Selman and K. Q. Weinberger (2018). *Understanding Batch Normalization.*
#   NeurIPS. [arXiv:1806.02375](https://arxiv.org/abs/1806.02375).
# * T. van Laarhoven (2017). *L2 Regularization versus Batch and Weight Normalization.*
#   [arXiv:1706.05350](https://arxiv.org/abs/1706.05350) (the effective learning rate).
# * S. Arora, Z. Li and K. Lyu (2019). *Theoretical Analysis of Auto Rate-Tuning by Batch Normalization.*
#   ICLR. [arXiv:1812.03981](https://arxiv.org/abs/1812.03981).
# * Y. Wu and J. Johnson (2021). *Rethinking "Batch" in BatchNorm.*
#   [arXiv:2105.07576](https://arxiv.org/abs/2105.07576) (precise BN and other pitfalls).
