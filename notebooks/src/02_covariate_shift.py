# %% [markdown]
# # 02 · Covariate shift
#
# The title of the Batch Normalization paper promises to reduce *internal covariate shift*. This
# notebook takes the phrase apart: **what is covariate shift, is it the same thing whether the inputs
# change between training and test or between two mini-batches, and what makes it "internal"?**
#
# **Learning goals.** After this notebook you can
# 1. define covariate shift (the inputs' distribution changes, the rule from inputs to labels does not)
#    and measure what it does to a trained classifier;
# 2. explain why every mini-batch is a small, random shift of the inputs, and predict its size (∝ 1/√m);
# 3. define internal covariate shift and measure it as the paper's Figure 1 does, with and without BN,
#    with a measure taken over all units rather than one picked unit;
# 4. connect saturated sigmoids to vanishing gradients, and say what BN and the learning rate change;
# 5. state the paper's hypothesis (less internal covariate shift, faster training) and why it is still a
#    hypothesis at the end of this notebook.

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
from bnlab.data import load_digits
from bnlab.lessons.nb02_covariate_shift import experiments as cs
from bnlab.lessons.nb02_covariate_shift.checks import check_minibatch_statistics, check_saturated_fraction, show_solution
from bnlab.lessons.nb02_covariate_shift.figures import (
    MINIBATCH_PIXEL,
    drift_figure,
    figure_1,
    minibatch_panel,
    minibatch_pixel,
    saturation_panel,
    shift_figure,
)
from bnlab.models import WITH_AND_WITHOUT_BN, make_mlp
from bnlab.probes import accuracy

SEED = bnlab.setup()
print(f"Course seed: {SEED}")

# %% [markdown]
# ## 1. Covariate shift: the test data are not the training data
#
# A classifier learns the rule $p(y \mid x)$ from examples $x$ drawn from some distribution $p(x)$.
# **Covariate shift** is the situation where $p(x)$ at test time differs from $p(x)$ in training while
# the rule stays the same (Shimodaira 2000): a scanner with greyer paper, a fainter pen, another
# hospital's camera. A 3 is still a 3; the pixels are not the same.
#
# The network we use in the whole notebook is the one in the paper's Figure 1: 64 inputs, three hidden
# layers of 100 sigmoid units, 10 outputs, weights drawn from $N(0, 0.1^2)$. We train two copies on the
# digits with SGD (learning rate 0.5, batches of 60, 3,000 steps): one as it is, one with Batch
# Normalization before every sigmoid. Both start from the same weights and see the same mini-batches.
# This takes a few seconds.

# %%
histories, models = cs.train_pair()
for label, history in histories.items():
    print(f"{label:>10}: test accuracy {history.final_accuracy:.1%} after {history.steps[-1]:,} steps")
assert all(history.final_accuracy > 0.94 and not history.diverged for history in histories.values())

# %% [markdown]
# **Predict before you run.** We now add 1 to every pixel of the test images (the scale runs from
# 0 for paper to 16 for ink: a faint grey background) and z-score them with the *training* mean and
# standard deviation, as a deployed model would. You would barely see the difference. How much
# accuracy will each network lose? Will the network with BN, which normalizes inside, be protected?

# %%
raw = load_digits(standardized=False)
shifts = {"no shift": dict(), "grey paper (+1)": dict(brightness=1.0),
          "grey paper (+2)": dict(brightness=2.0), "faint ink (× 0.5)": dict(contrast=0.5)}
shifted_accuracy = {name: {label: accuracy(model, cs.shifted_test_inputs(raw, **shift), raw.y_test)
                           for label, model in models.items()} for name, shift in shifts.items()}
print(f"{'test images':>18} " + " ".join(f"{label:>11}" for label in models))
for name, row in shifted_accuracy.items():
    print(f"{name:>18} " + " ".join(f"{value:>11.1%}" for value in row.values()))

for label in models:
    clean, grey, faint = (shifted_accuracy[name][label]
                          for name in ["no shift", "grey paper (+1)", "faint ink (× 0.5)"])
    assert grey < clean - 0.25              # a shift you can hardly see costs more than 25 points
    assert shifted_accuracy["grey paper (+2)"][label] < clean - 0.25
    assert grey < faint < clean + 0.01      # fainter ink hurts too, but less than grey paper
assert shifted_accuracy["grey paper (+1)"]["with BN"] < 0.7  # BN's test-time normalization does not undo it
clean, grey = shifted_accuracy["no shift"], shifted_accuracy["grey paper (+1)"]
record("bn-no-protection-from-test-shift", holds=grey["with BN"] < clean["with BN"] - 0.25,
       measured=f"grey paper (+1): {clean['with BN']:.0%} -> {grey['with BN']:.0%} with BN, "
                f"{clean['without BN']:.0%} -> {grey['without BN']:.0%} without BN")

# %% [markdown]
# Why does a grey background hurt so much more than faint ink? Fainter ink keeps every pixel inside the
# range it had in training. Grey paper lifts the border pixels, which are 0 in almost every training
# image: their training standard deviation is tiny, so after z-scoring a lift of 1 lands many standard
# deviations away from anything the network has seen.

# %%
train_std = raw.X_train.std(dim=0).numpy()
far_out = int(np.sum(1.0 > 3 * train_std))
print(f"{far_out} of the 64 pixels have a training standard deviation below 1/3: "
      f"for them, +1 is more than 3 standard deviations")
assert far_out >= 5

# %% [markdown]
# The two input distributions side by side (note the log scale: most pixels are paper), and one test
# image before and after:

# %%
shift_figure(raw, brightness=1.0, accuracies=shifted_accuracy["grey paper (+1)"])

# %% [markdown]
# Two lessons. A model is fitted to the inputs it saw: move them and its accuracy is no longer the
# accuracy you measured. And Batch Normalization does **not** protect against this kind of shift: at
# test time it normalizes with *running statistics* collected during training (notebook 04), a fixed
# affine map, so shifted test inputs stay shifted.

# %% [markdown]
# ## 2. Every mini-batch is a small covariate shift
#
# SGD never trains on the whole training set at once. Each step sees a random mini-batch of $m$
# examples, whose mean and variance differ from the whole set's by chance. From one step to the next,
# the inputs the weights are fitted to shift a little: covariate shift again, with a different cause.
# Between training and test the shift is **systematic** and more data does not remove it; between
# mini-batches it is **random**, zero on average, and it shrinks as the batch grows. For the mean of
# $m$ independent draws of a feature with standard deviation $\sigma$, the spread is $\sigma/\sqrt{m}$.
#
# The panel follows one pixel of the standardized digits (row 2, column 4, which has ink in about three
# images out of four), over 1,000 random mini-batches.
#
# **Predict before you drag.** Going from $m = 8$ to $m = 32$, by what factor does the spread of the
# batch means shrink? And the spread of the batch variances?

# %%
batch_panel = minibatch_panel()
batch_panel

# %% [markdown]
# Both spreads follow the $1/\sqrt{m}$ law: four times the batch, half the spread. The law for the
# variance, $\sqrt{(\mu_4 - \sigma^4)/m}$ with $\mu_4$ the fourth central moment, holds once $m$ is
# not tiny. At large $m$ the measured spread can dip slightly below the law, because the batches are
# drawn without replacement from only 1,347 images. Checked in code:

# %%
pixel = minibatch_pixel()
sizes = [4, 16, 64]
mean_spread, variance_spread = cs.spread_across_batches(pixel, sizes)
mean_law, variance_law = cs.spread_laws(pixel, sizes)
inked = float(np.mean(raw.X_train[:, 8 * MINIBATCH_PIXEL[0] + MINIBATCH_PIXEL[1]].numpy() > 0))
print(f"pixel {MINIBATCH_PIXEL}: ink in {inked:.0%} of the training images, "
      f"σ = {pixel.std():.2f} (standardized)")
for i, m in enumerate(sizes):
    print(f"m = {m:>2}: batch means spread {mean_spread[i]:.3f} (σ/√m = {mean_law[i]:.3f}), "
          f"batch variances spread {variance_spread[i]:.3f} (law {variance_law[i]:.3f})")
assert 0.6 < inked < 0.9
assert np.allclose(mean_spread, mean_law, rtol=0.1)
assert np.allclose(variance_spread[1:], variance_law[1:], rtol=0.15)  # the variance law needs m of 16 or more
assert 1.8 < mean_spread[0] / mean_spread[1] < 2.2 and 1.8 < variance_spread[1] / variance_spread[2] < 2.2

# %% [markdown]
# This pixel is far from Gaussian (ink or no ink), and a small batch can differ from the next in its
# *shape*, not only in its mean and variance. Batch Normalization, which normalizes every unit with the
# mean and variance of the current batch, makes those two numbers match and nothing else: a bimodal
# batch stays bimodal (notebook 04 shows it). So the two kinds of covariate shift are the same idea, the
# distribution a model is fitted to is not the one it meets next, but BN only acts on the second, and
# only on its first two moments.

# %% [markdown]
# ## 3. Internal covariate shift: the paper's Figure 1 on digits
#
# Look at the network from the point of view of its third hidden layer. Its inputs are the outputs of
# layers 1 and 2, and every SGD step changes their weights. So even with a fixed training set, the
# distribution of what layer 3 receives keeps moving during training: a covariate shift *inside* the
# network, at every step. Ioffe and Szegedy call this **internal covariate shift**, and their Figure 1
# shows it: the 15th, 50th and 85th percentiles of one sigmoid's input over training, without BN
# (wandering) and with BN (steady).
#
# Here is the same measurement on our two networks. Every 100 steps we recorded, for each of the 100
# units of the last hidden layer, the percentiles of its sigmoid input over the 450 test images; BN
# layers normalize with the statistics of the images they see, as they do in training (3.2 says why
# that matters). To avoid showing one lucky unit, we measure every unit's **drift**: for each
# percentile, its largest minus its smallest value over training, averaged over the three
# percentiles. The figure shows the unit whose drift is the median of its network.
#
# **Predict before you run.** How much wider will the distribution of a sigmoid input become during
# training without BN? With BN?

# %%
drifts = {label: cs.percentile_drift(cs.probe_array(history, "percentiles"), history.steps)
          for label, history in histories.items()}
typical = {label: cs.typical_unit(drift) for label, drift in drifts.items()}
figure_1(histories, typical, {label: float(np.median(drift)) for label, drift in drifts.items()})

# %% [markdown]
# Without BN the distribution starts as a narrow spike at 0 (small weights, inputs near zero) and
# widens and moves for the first thousand steps. With BN it has mean 0 and variance 1 from the first
# step, and changes slowly. Over all 100 units, in numbers (width: the 85th minus the 15th percentile):

# %%
def width(history):
    """Mean over units of the 85th minus the 15th percentile, at every record: (R,)."""
    percentiles = cs.probe_array(history, "percentiles")
    return (percentiles[:, 2] - percentiles[:, 0]).mean(axis=1)


for label, history in histories.items():
    w = width(history)
    print(f"{label:>10}: drift median {np.median(drifts[label]):.2f} (mean {drifts[label].mean():.2f}, "
          f"smallest {drifts[label].min():.2f}, largest {drifts[label].max():.2f}); "
          f"width {w[0]:.2f} -> {w[-1]:.2f} (x {w[-1] / w[0]:.1f})")
without, with_bn = drifts["without BN"], drifts["with BN"]
assert np.median(with_bn) < 0.4 * np.median(without)
assert np.percentile(with_bn, 90) < np.percentile(without, 10)  # not one lucky unit: they barely overlap
assert width(histories["without BN"])[-1] / width(histories["without BN"])[0] > 20
assert width(histories["with BN"])[-1] / width(histories["with BN"])[0] < 2
record("ics-percentile-drift", holds=np.median(with_bn) < 0.4 * np.median(without),
       measured=f"median drift over 100 units {np.median(without):.2f} without BN, "
                f"{np.median(with_bn):.2f} with BN")

# %% [markdown]
# The drift of every unit, for both networks:

# %%
drift_figure(drifts)

# %% [markdown]
# ### 3.2 How the measure changes the answer
#
# When this course was planned, a first run of this experiment was summed up as "the percentiles drift
# by 1 to 3 units without BN and stay within about 0.2 with BN". What you measure decides whether that
# holds. Three choices:
#
# * **Running or batch statistics.** `bnlab.training.train` records the percentiles in eval mode, where
#   BN uses its *running* averages. At step 0 these are placeholders (mean 0, variance 1), so the
#   untrained BN network passes its tiny, unnormalized inputs straight through; the averages catch up
#   only after some tens of steps. That start is an artefact of the bookkeeping, not a distribution the
#   network ever trained on.
# * **Which percentiles.** With BN, a unit's sigmoid input is $\gamma \hat x + \beta$, with $\hat x$
#   of mean 0 and variance 1 in every batch. Its median sits near $\beta$ and, for a bell-shaped
#   $\hat x$, its 15th and 85th percentiles near $\beta \mp \gamma$. Both are learned: if $\gamma$
#   grows, the outer percentiles move.
# * **Which steps.** Most of the movement happens in the first few hundred steps.

# %%
def drift_of(history, source, from_step=0, which=slice(None)):
    """Mean over units of the drift, from the batch-statistics probe or the eval-mode record."""
    percentiles = (cs.probe_array(history, "percentiles") if source == "batch"
                   else history.percentile_array(cs.LAST_SIGMOID))
    return float(cs.percentile_drift(percentiles[:, which], history.steps, from_step).mean())


measures = {"batch statistics, all steps": dict(source="batch"),
            "batch statistics, median only": dict(source="batch", which=[1]),
            "batch statistics, from step 500": dict(source="batch", from_step=500),
            "running statistics, all steps": dict(source="running"),
            "running statistics, from step 500": dict(source="running", from_step=500)}
table = {name: {label: drift_of(history, **measure) for label, history in histories.items()}
         for name, measure in measures.items()}
print(f"{'mean drift over 100 units, measured with':>42} {'without BN':>11} {'with BN':>8}")
for name, row in table.items():
    print(f"{name:>42} {row['without BN']:>11.2f} {row['with BN']:>8.2f}")
gamma = np.stack(histories["with BN"].gamma["norm3"])
beta = np.stack(histories["with BN"].beta["norm3"])
print(f"\nlayer 3 with BN: mean γ {gamma[0].mean():.2f} -> {gamma[-1].mean():.2f}, "
      f"largest |β| at the end {np.abs(beta[-1]).max():.2f}")

bn, plain = ({name: row[label] for name, row in table.items()} for label in ["with BN", "without BN"])
assert bn["batch statistics, all steps"] < 0.4 * plain["batch statistics, all steps"]
assert bn["batch statistics, from step 500"] < 0.5 * plain["batch statistics, from step 500"]
assert bn["batch statistics, median only"] < 0.35
assert bn["running statistics, all steps"] > 2 * bn["batch statistics, all steps"]
assert bn["running statistics, from step 500"] > bn["batch statistics, from step 500"]
assert gamma[-1].mean() > 1.3 * gamma[0].mean() and np.abs(beta[-1]).max() < 0.3

# %% [markdown]
# What reproduces, for every seed we tried: without BN a unit's percentiles travel about 2 units and
# the distribution widens dozens of times over; with BN they travel about a third as far (less than
# half as far even after step 500) and the width changes by less than a factor of 2. "Within about
# 0.2" comes close only for the **median** percentile (about a quarter of a unit over the whole run).
# The 15th and 85th percentiles move further because γ grows by half: BN does not freeze a layer's
# input distribution. It changes *who* moves it: two parameters per unit that gradient descent sets on
# purpose, instead of every weight in the layers below. Measured in eval mode from step 0, BN's drift
# more than doubles, purely because of the placeholder running statistics; and even later, running
# statistics add some drift of their own: their average is dominated by the last ten or so batches
# (PyTorch's momentum 0.1), so it carries those batches' noise.

# %% [markdown]
# ## 4. Saturation and vanishing gradients
#
# A sigmoid's slope is $\sigma'(x) = \sigma(x)(1 - \sigma(x))$, at most $1/4$ (at $x = 0$). Backpropagation
# multiplies the gradient by this slope at every sigmoid it passes through. We call an input
# **saturated** when the slope there has fallen below a tenth of its maximum: $|x| > 3.64$.
# Gradients vanish in a sigmoid network in two ways:
# * even unsaturated, each layer passes back at most 1/4 of the gradient, times its weights; with
#   small weights the first layers get almost nothing;
# * saturated units pass back almost nothing at all.
#
# The first is visible before any training: the gradient of the loss with respect to each layer's
# weights, for freshly initialized networks.

# %%
data = load_digits()
fresh = {label: cs.layer_gradient_norms(make_mlp(norm=norm, **cs.FIG1_NETWORK), data)
         for label, norm in WITH_AND_WITHOUT_BN.items()}
print(f"{'layer':>8} {'without BN':>11} {'with BN':>9}   (norm of the weight gradient at initialization)")
for layer in fresh["without BN"]:
    print(f"{layer:>8} {fresh['without BN'][layer]:>11.4f} {fresh['with BN'][layer]:>9.4f}")
shrink = {label: norms["output"] / norms["linear1"] for label, norms in fresh.items()}
print(f"output layer / first layer: {shrink['without BN']:.0f} without BN, {shrink['with BN']:.1f} with BN")
assert shrink["without BN"] > 15 and shrink["with BN"] < 4

# %% [markdown]
# Without BN, the first layer's gradient is a few dozen times smaller than the output layer's: the
# vanishing gradient, with not a single unit saturated (each sigmoid passes back at most 1/4, and the
# weights are small). BN divides each pre-activation by its batch standard deviation, which is small at
# initialization, and the backward pass multiplies by the same factor: every layer gets a gradient of
# similar size.
#
# Saturation comes with training, when weights grow. The larger the learning rate, the faster they
# grow. We trained both networks for 1,000 steps at four learning rates (the run at 0.5 is the first
# 1,000 steps of the one above); the panel looks the runs up.
#
# **Predict before you drag.** At the largest learning rate, which network has more saturated
# sigmoids? Does BN prevent saturation altogether?

# %%
LEARNING_RATES = (0.05, 0.5, 2.0, 8.0)
grid = cs.learning_rate_grid(LEARNING_RATES, steps=1000, reuse=histories)

# %%
sat_panel = saturation_panel(grid, lr=0.5)
sat_panel

# %% [markdown]
# At the end of each run, layer by layer:

# %%
def last(history, key):
    """A probe entry at the last record, per layer: (3,)."""
    return cs.probe_array(history, key)[-1]


print(f"{'η':>5} {'':>10} {'accuracy':>9} {'saturated: layer 1, 2, 3':>26} {'mean slope':>11}")
for lr, runs in grid.items():
    for label, history in runs.items():
        saturated = "  ".join(f"{share:>6.1%}" for share in last(history, "saturated"))
        print(f"{lr:>5g} {label:>10} {history.final_accuracy:>9.1%} {saturated:>26} "
              f"{last(history, 'slope').mean():>11.2f}")
top_without, top_with = grid[8.0]["without BN"], grid[8.0]["with BN"]
gamma_top, beta_top = (np.stack(values["norm3"])[-1] for values in (top_with.gamma, top_with.beta))
print(f"\nη = 8 with BN, layer 3 at the end: mean β {beta_top.mean():.1f}, mean γ {gamma_top.mean():.1f}")

assert last(top_without, "saturated").mean() > max(0.5, 1.5 * last(top_with, "saturated").mean())
assert last(top_without, "slope").mean() < last(top_with, "slope").mean()
assert last(top_with, "saturated")[2] > 0.3
assert all(last(runs["with BN"], "saturated")[:2].max() < 0.15 for runs in grid.values())  # layers 1 and 2
assert all(grid[lr]["without BN"].final_accuracy > 0.9 for lr in (0.5, 2.0))
assert top_without.final_accuracy > 0.75                            # η = 8: slowed, not stopped
assert all(runs["with BN"].final_accuracy > 0.9 for runs in grid.values())
assert beta_top.mean() < -2
for lr in (0.05, 0.5):
    assert max(last(h, "saturated").max() for h in grid[lr].values()) < 0.05
assert grid[0.05]["without BN"].final_accuracy < 0.75 < 0.9 < grid[0.05]["with BN"].final_accuracy

# %% [markdown]
# Saturation is not just a number: it stalls learning. At η = 8 the network without BN saturates
# within its first 100 steps, then stays near chance for a long time while the gradient trickles
# through its flat sigmoids:

# %%
def steps_to(history, level):
    """First recorded step with test accuracy >= level (None if never)."""
    reached = np.flatnonzero(np.array(history.test_accuracy) >= level)
    return history.steps[reached[0]] if reached.size else None


for label, history in grid[8.0].items():
    saturated_at_100 = cs.probe_array(history, "saturated")[history.steps.index(100)].mean()
    print(f"η = 8 {label:>10}: {saturated_at_100:.0%} of sigmoid inputs saturated at step 100, "
          f"50% test accuracy reached at step {steps_to(history, 0.5)}")
assert cs.probe_array(top_without, "saturated")[top_without.steps.index(100)].mean() > 0.3
assert steps_to(top_without, 0.5) >= 2 * steps_to(top_with, 0.5)

# %% [markdown]
# What the runs say about the question in seed 001 ("does BN let sigmoid networks train?"):
# * At small learning rates nothing saturates, and yet the network without BN learns slowly (at
#   η = 0.05 it is far behind after 1,000 steps): its problem is the small gradient of the first layers,
#   not saturation. BN fixes that from the first step.
# * At large learning rates the network without BN saturates: at η = 8 more than half of its sigmoid
#   inputs by the end, and the mean slope, the share of the gradient that gets through a sigmoid, falls well
#   below its value with BN. Saturating early, it needs several times as many steps as the BN network
#   to reach even 50% accuracy.
# * BN keeps layers 1 and 2 out of saturation at every learning rate, but not layer 3: β and γ are
#   learned, and at η = 8 layer 3's β moves far below zero, which switches most of its units off for
#   most images, deep in the flat part of the sigmoid. BN does not forbid saturation; with BN it happens
#   only where gradient descent puts it, through β and γ.
# * On digits, the network without BN does climb out at η = 8: above 75% after 1,000 steps, and for
#   some seeds level with the BN network by then, only much later (the cell above). Saturation slows
#   learning; on an easy task it does not stop it.

# %% [markdown]
# ## 5. The hypothesis, and why it is still one
#
# The BN network moved its layer inputs less (section 3) **and** learned faster: here is the time to 90%
# test accuracy, from the runs of section 1.

# %%
reach = {label: steps_to(history, 0.9) for label, history in histories.items()}
print(f"steps to 90% test accuracy: {reach['without BN']} without BN, {reach['with BN']} with BN")
assert reach["with BN"] is not None and reach["without BN"] is not None
assert reach["without BN"] >= 3 * reach["with BN"]
record("bn-trains-faster", holds=reach["without BN"] >= 3 * reach["with BN"],
       measured=f"steps to 90% test accuracy: {reach['without BN']} without BN, {reach['with BN']} with BN")

# %% [markdown]
# > **Hypothesis (Ioffe & Szegedy 2015): reducing internal covariate shift is what speeds training up.**
# > Each layer would no longer chase a moving input distribution (the "moving goal" of seed 001), so it
# > could learn faster and with larger steps.
#
# This notebook does **not** prove it. We saw two things happen together: smaller drift and faster
# training. BN also changed the size of the gradients at initialization (section 4) and kept most units
# out of saturation. Any of these could be the reason, and the drift could even be a side effect rather
# than a cause. **Notebook 06 tests the hypothesis**: it adds internal covariate shift back on purpose
# (noise after each BN layer) and asks whether training slows down, and it looks at what BN does to the
# loss surface instead.

# %% [markdown]
# ## 6. Exercises
#
# **Exercise 1: statistics of mini-batches.** Write `minibatch_statistics(feature, batch_size)` that cuts
# the (already shuffled) 1-D array `feature` into consecutive mini-batches of `batch_size` values, drops
# an incomplete last batch, and returns `(means, variances)`: one mean and one variance per batch, with
# the variance as BN computes it (dividing by $m$). The check then compares the spread of your batch means
# with $\sigma/\sqrt{m}$.

# %%
def minibatch_statistics(feature, batch_size):
    """Means and variances, each (len(feature) // batch_size,), of consecutive full mini-batches."""
    raise NotImplementedError  # replace this line with your code


check_minibatch_statistics(minibatch_statistics)

# %% [markdown]
# **Exercise 2: count saturated sigmoids.** Write `saturated_fraction(preactivations)` returning the
# fraction of entries of the array (any shape, e.g. images × units) where the sigmoid's slope
# $\sigma'(x) = \sigma(x)(1 - \sigma(x))$ is below a tenth of its maximum $1/4$.

# %%
def saturated_fraction(preactivations):
    """Share of the entries of `preactivations` at which a sigmoid is saturated."""
    raise NotImplementedError  # replace this line with your code


check_saturated_fraction(saturated_fraction)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("minibatch_statistics")
# show_solution("saturated_fraction")

# %% [markdown]
# ## Summary
# * **Covariate shift**: the inputs' distribution changes, the input-to-label rule does not. On digits, a
#   grey background you can hardly see (+1 on a 0-16 scale) cost both networks more than 25 points of
#   accuracy; BN, which normalizes with fixed running statistics at test time, does not undo it.
# * **Between mini-batches** the same idea appears at random: each batch's mean and variance differ from
#   the training set's by about $\sigma/\sqrt{m}$. Train/test shift is systematic and does not shrink with
#   more data.
# * **Internal covariate shift**: a layer's input distribution moves because the layers below learn. On
#   the paper's Figure 1 network, a unit's percentiles drift about three times less with BN (measured over
#   all 100 units with the statistics the network trains on), and the distribution's width stays within a
#   factor 2 instead of growing fifty-fold. BN does not freeze it: the learned γ and β still move it.
# * **Saturation**: at large learning rates the sigmoids without BN saturate and pass back little gradient;
#   BN keeps the first layers unsaturated, lets the last one saturate through γ, and, before any of that,
#   evens out the gradient across layers at initialization.
# * The paper's explanation, **less internal covariate shift → faster training**, is a hypothesis.
#   Notebook 06 puts it to the test.
#
# **Next:** [03 · Normalizing outside the gradient](03_normalizing_outside_the_gradient.ipynb) asks
# why the normalization must be part of the network rather than a correction applied between gradient
# steps.
#
# ## References
# * H. Shimodaira (2000). *Improving predictive inference under covariate shift by weighting the
#   log-likelihood function.* Journal of Statistical Planning and Inference 90(2), 227–244.
# * J. Quiñonero-Candela, M. Sugiyama, A. Schwaighofer and N. D. Lawrence, eds. (2009). *Dataset Shift in
#   Machine Learning.* MIT Press.
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), sections 1, 2
#   and 4.1 (Figure 1).
# * X. Glorot and Y. Bengio (2010). *Understanding the difficulty of training deep feedforward neural
#   networks.* AISTATS (saturating sigmoids and vanishing gradients).
# * S. Santurkar, D. Tsipras, A. Ilyas and A. Madry (2018). *How Does Batch Normalization Help
#   Optimization?* NeurIPS. [arXiv:1805.11604](https://arxiv.org/abs/1805.11604) (the test of the
#   hypothesis, notebook 06).
