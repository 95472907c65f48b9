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
from bnlab.claims import outcome_of, record
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
    saturation_table,
    seed_curves_figure,
    shift_figure,
)
from bnlab.models import WITH_AND_WITHOUT_BN, make_mlp
from bnlab.seeding import claim_seeds
from bnlab.statistics import OverSeeds, seed_range

SEED = bnlab.setup()
SEEDS = claim_seeds()  # every claim about training is measured over these network seeds
print(f"Course seed: {SEED}; network seeds: {seed_range(SEEDS)}")

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
# digits with SGD (learning rate 0.5, batches of 60, 1,000 steps): one as it is, one with Batch
# Normalization before every sigmoid. Both start from the same weights and see the same mini-batches.
# One such pair could be lucky, so we train a pair for each of 8 seeds (8 different initial weights and
# mini-batch orders): 16 networks, trained together in one batched computation (`bnlab.ensemble`). This
# takes a few seconds. Every number below is a statistic over the 8 seeds: their median, and the lowest
# to highest value in brackets.

# %%
runs = cs.train_seed_runs([cs.FIG1_LR])[cs.FIG1_LR]
final = {label: runs.over_seeds(label, lambda history: history.final_accuracy) for label in runs.histories}
for label, accuracies in final.items():
    print(f"{label:>10}: test accuracy after {cs.FIG1_STEPS:,} steps {accuracies.describe('{:.0%}')}")
assert all(accuracies.low > 0.9 for accuracies in final.values())
assert not any(history.diverged for histories in runs.histories.values() for history in histories)

# %% [markdown]
# **Predict before you run.** We now add 1 to every pixel of the test images (the scale runs from
# 0 for paper to 16 for ink: a faint grey background) and z-score them with the *training* mean and
# standard deviation, as a deployed model would. You would barely see the difference. How much
# accuracy will each network lose? Will the network with BN, which normalizes inside, be protected?

# %%
raw = load_digits(standardized=False)
shifts = {"no shift": dict(), "grey paper (+1)": dict(brightness=1.0),
          "grey paper (+2)": dict(brightness=2.0), "faint ink (× 0.5)": dict(contrast=0.5)}
shifted_accuracy = cs.shifted_accuracies(runs, raw, shifts)  # shift -> network -> one accuracy per seed
print(f"{'test images':>18} " + " ".join(f"{label:>16}" for label in runs.histories)
      + "   (median, lowest to highest)")
for name, row in shifted_accuracy.items():
    cells = (accuracies.describe("{:.0%}").removeprefix("median ") for accuracies in row.values())
    print(f"{name:>18} " + " ".join(f"{cell:>16}" for cell in cells))

drop = {}  # network -> the points of test accuracy grey paper (+1) costs, one value per seed
for label in runs.histories:
    clean, grey, grey2, faint = (shifted_accuracy[name][label].values for name in shifts)
    drop[label] = OverSeeds(SEEDS, 100 * (clean - grey))
    assert np.median(clean - grey) > 0.3 and np.median(clean - grey2) > 0.3  # a shift you can hardly see
    assert np.mean(clean - grey > 0.25) >= 0.75   # costs more than 25 points, in most seeds
    assert np.all(grey < faint) and np.median(clean - faint) > 0.02  # fainter ink hurts, less than grey paper
assert shifted_accuracy["grey paper (+1)"]["with BN"].median < 0.6  # BN's normalization at test time: no help
support = drop["with BN"].support(drop["with BN"].values > 25)
record("bn-no-protection-from-test-shift", holds=outcome_of(support), support=support,
       measured=f"grey paper (+1) costs {drop['with BN'].describe('{:.0f}')} points of test accuracy "
                f"with BN, {drop['without BN'].describe('{:.0f}')} without BN "
                f"(more than 25: with BN in {support})")

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
shift_figure(raw, brightness=1.0,
             accuracies={label: seeds.median for label, seeds in shifted_accuracy["grey paper (+1)"].items()},
             seeds=len(SEEDS))

# %% [markdown]
# How much the shift costs varies from one seed's network to the next (the brackets), but for nearly all
# of them it is a large loss. Two lessons. A model is fitted to the inputs it saw: move them and its
# accuracy is no longer the accuracy you measured. And Batch Normalization does **not** protect against
# this kind of shift: at
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
# Here is the same measurement on our networks. Every 50 steps we recorded, for each of the 100
# units of the last hidden layer, the percentiles of its sigmoid input over the 450 test images; BN
# layers normalize with the statistics of the images they see, as they do in training (3.2 says why
# that matters). To avoid showing one lucky unit, we measure every unit's **drift**: for each
# percentile, its largest minus its smallest value over training, averaged over the three
# percentiles. Panels (b) and (c) show one pair, the first seed's, and in it the unit whose drift is
# the median of its network; panel (a) shows the test accuracy of all 8 pairs (median and range).
#
# **Predict before you run.** How much wider will the distribution of a sigmoid input become during
# training without BN? With BN?

# %%
drifts = {label: np.stack([cs.percentile_drift(cs.probe_array(history, "percentiles"), history.steps)
                           for history in histories])
          for label, histories in runs.histories.items()}  # network -> (seeds, units)
typical = {label: cs.typical_unit(drift[0]) for label, drift in drifts.items()}  # in the first seed's network
median_drift = {label: OverSeeds(SEEDS, np.median(drift, axis=1)) for label, drift in drifts.items()}
figure_1(runs, typical, {label: drift.median for label, drift in median_drift.items()})

# %% [markdown]
# Without BN the distribution starts as a narrow spike at 0 (small weights, inputs near zero) and
# widens and moves during the first few hundred steps. With BN it has mean 0 and variance 1 from the
# first step, and changes slowly. Over all 100 units of each network, in numbers, median (lowest to
# highest) over the 8 seeds (width: the 85th minus the 15th percentile, averaged over the units):

# %%
def width_growth(history):
    """How many times wider a unit's distribution is at the end than at step 0, averaged over units."""
    percentiles = cs.probe_array(history, "percentiles")
    width = (percentiles[:, 2] - percentiles[:, 0]).mean(axis=1)  # (records,)
    return width[-1] / width[0]


growth = {label: runs.over_seeds(label, width_growth) for label in runs.histories}
for label in runs.histories:
    print(f"{label:>10}: drift of the median unit {median_drift[label].describe('{:.2f}')}; "
          f"width grows x {growth[label].describe('{:.2g}')}")
without, with_bn = drifts["without BN"], drifts["with BN"]  # (seeds, units) each
ratio = OverSeeds(SEEDS, np.median(with_bn, axis=1) / np.median(without, axis=1))
assert ratio.median < 0.4 and ratio.high < 0.5
apart = np.percentile(with_bn, 90, axis=1) < np.percentile(without, 10, axis=1)  # per seed
assert apart.all()  # not one lucky unit: the two networks' units barely overlap
assert growth["without BN"].low > 20 and growth["with BN"].high < 2
support = ratio.support(ratio.values < 0.4)
record("ics-percentile-drift", holds=outcome_of(support), support=support,
       measured=f"drift of the median unit {median_drift['without BN'].describe('{:.2f}')} without BN, "
                f"{median_drift['with BN'].describe('{:.2f}')} with BN; ratio {ratio.describe('{:.2f}')}")

# %% [markdown]
# The drift of every unit of every seed's network, for both kinds of network:

# %%
drift_figure(drifts)

# %% [markdown]
# ### 3.2 How the measure changes the answer
#
# When this course was planned, a first run of this experiment was summed up as "the percentiles drift
# by 1 to 3 units without BN and stay within about 0.2 with BN". What you measure decides whether that
# holds. Three choices:
#
# * **Running or batch statistics.** `bnlab.training.train` (and `bnlab.ensemble`, which trains our
#   networks as `train` would) records the percentiles in eval mode, where BN uses its *running*
#   averages. At step 0 these are placeholders (mean 0, variance 1), so the
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
table = {name: {label: runs.over_seeds(label, lambda history: drift_of(history, **measure)).median
                for label in runs.histories}
         for name, measure in measures.items()}  # the median over the seeds of each network's mean drift
print(f"{'mean drift over 100 units (median of 8 seeds), measured with':>62} {'without BN':>11} "
      f"{'with BN':>8}")
for name, row in table.items():
    print(f"{name:>62} {row['without BN']:>11.2f} {row['with BN']:>8.2f}")
gamma_growth = runs.over_seeds("with BN", lambda h: h.gamma["norm3"][-1].mean() / h.gamma["norm3"][0].mean())
largest_beta = runs.over_seeds("with BN", lambda h: np.abs(h.beta["norm3"][-1]).max())
print(f"\nlayer 3 with BN: mean γ grows x {gamma_growth.describe('{:.2f}')}, "
      f"largest |β| at the end {largest_beta.describe('{:.2f}')}")

bn, plain = ({name: row[label] for name, row in table.items()} for label in ["with BN", "without BN"])
assert bn["batch statistics, all steps"] < 0.4 * plain["batch statistics, all steps"]
assert bn["batch statistics, from step 500"] < 0.5 * plain["batch statistics, from step 500"]
assert bn["batch statistics, median only"] < 0.35
assert bn["running statistics, all steps"] > 2 * bn["batch statistics, all steps"]
assert bn["running statistics, from step 500"] > bn["batch statistics, from step 500"]
assert gamma_growth.low > 1.3 and largest_beta.high < 0.3

# %% [markdown]
# What reproduces over the 8 seeds: without BN a unit's percentiles travel well over 1 unit and the
# distribution widens dozens of times over; with BN they travel about a third as far (less than half as
# far even after step 500) and the width changes by less than a factor of 2. "Within about 0.2" comes
# close only for the **median** percentile (about a quarter of a unit over the whole run). The 15th and
# 85th percentiles move further because γ grows by about 40%: BN does not freeze a layer's input
# distribution. It changes *who* moves it: two parameters per unit that gradient descent sets on
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
# weights, for freshly initialized networks (the first seed's, then the ratio for all 8 seeds).

# %%
data = load_digits()
fresh = {label: cs.layer_gradient_norms(make_mlp(norm=norm, seed=SEEDS[0], **cs.FIG1_NETWORK), data)
         for label, norm in WITH_AND_WITHOUT_BN.items()}
print(f"{'layer':>8} {'without BN':>11} {'with BN':>9}   (norm of the weight gradient at initialization)")
for layer in fresh["without BN"]:
    print(f"{layer:>8} {fresh['without BN'][layer]:>11.2g} {fresh['with BN'][layer]:>9.2g}")
shrink = cs.gradient_ratios(SEEDS, data)  # network -> output layer's gradient / first layer's, per seed
print(f"output layer / first layer, {seed_range(SEEDS)}: {shrink['without BN'].describe('{:.0f}')} "
      f"without BN, {shrink['with BN'].describe('{:.1f}')} with BN")
assert shrink["without BN"].low > 15 and shrink["with BN"].high < 5

# %% [markdown]
# Without BN, the first layer's gradient is a few dozen times smaller than the output layer's: the
# vanishing gradient, with not a single unit saturated (each sigmoid passes back at most 1/4, and the
# weights are small). BN divides each pre-activation by its batch standard deviation, which is small at
# initialization, and the backward pass multiplies by the same factor: every layer gets a gradient of
# similar size.
#
# Saturation comes with training, when weights grow. The larger the learning rate, the faster they
# grow. We trained both networks for 1,000 steps at four learning rates, under the same 8 seeds (the
# runs at 0.5 are those above; the other 48 networks train together, recording every 100 steps): the
# table below the panel sums them up. The panel trains live: let go of the slider at any η from 0.01 to
# 20 and both networks train for 400 steps under 4 of the seeds (about 1.5 s), drawing, for each
# network, the median over the seeds and their range.
#
# **Predict before you drag.** At the largest learning rate, which network has more saturated
# sigmoids? Does BN prevent saturation altogether?

# %%
LEARNING_RATES = (0.05, 0.5, 2.0, 8.0)
grid = cs.learning_rate_grid(LEARNING_RATES, steps=cs.FIG1_STEPS, reuse=runs)

# %%
sat_panel = saturation_panel(lr=0.5)
sat_panel

# %% [markdown]
# At the end of each run, layer by layer, over the 8 seeds:

# %%
saturation_table(grid)

# %% [markdown]
# What these runs show, checked for every seed (✓: holds):

# %%
def at_end(lr, label, key):
    """A probe entry ("saturated" or "slope") at the last record, per seed and layer: (seeds, 3)."""
    return np.stack([cs.probe_array(history, key)[-1] for history in grid[lr].histories[label]])


def final_accuracy(lr, label):
    """The test accuracy at the end of each seed's run at learning rate lr: OverSeeds."""
    return grid[lr].over_seeds(label, lambda history: history.final_accuracy)


top_saturated = {label: np.median(at_end(8.0, label, "saturated").mean(axis=1))  # median over seeds
                 for label in WITH_AND_WITHOUT_BN}
beta_top = grid[8.0].over_seeds("with BN", lambda history: history.beta["norm3"][-1].mean())
checks = {
    "η = 0.05 and 0.5: under 5% of any layer's sigmoid inputs saturated, in every network":
        all(at_end(lr, label, "saturated").max() < 0.05 for lr in (0.05, 0.5)
            for label in WITH_AND_WITHOUT_BN),
    "η = 0.05: without BN below 75% test accuracy (median), with BN above 90% in every seed":
        final_accuracy(0.05, "without BN").median < 0.75 and final_accuracy(0.05, "with BN").low > 0.9,
    "η = 0.5 and 2: both networks above 90% in every seed":
        all(final_accuracy(lr, label).low > 0.9 for lr in (0.5, 2.0) for label in WITH_AND_WITHOUT_BN),
    "η = 8 without BN: more than half of the sigmoid inputs saturated (median), 1.5 times BN's or more":
        top_saturated["without BN"] > max(0.5, 1.5 * top_saturated["with BN"]),
    "η = 8: the sigmoids' mean slope lower without BN than with BN, in every seed":
        bool(np.all(at_end(8.0, "without BN", "slope").mean(axis=1)
                    < at_end(8.0, "with BN", "slope").mean(axis=1))),
    "with BN: layers 1 and 2 under 15% saturated at every η, in every seed":
        all(at_end(lr, "with BN", "saturated")[:, :2].max() < 0.15 for lr in grid),
    "η = 8 with BN: layer 3 more than 30% saturated, its mean β below -2 (medians)":
        np.median(at_end(8.0, "with BN", "saturated")[:, 2]) > 0.3 and beta_top.median < -2,
    "with BN: above 90% test accuracy at every η (median over the seeds)":
        all(final_accuracy(lr, "with BN").median > 0.9 for lr in grid),
}
for statement, holds in checks.items():
    print(f"{'✓' if holds else '✗'} {statement}")
assert all(checks.values())

# %% [markdown]
# Saturation is not just a number: it stalls learning. At η = 8 the network without BN saturates
# within its first 100 steps, then stays near chance while the gradient trickles through its flat
# sigmoids. For how long is a matter of luck, so here is every seed's run, not only their median:

# %%
seed_curves_figure(grid[8.0])

# %%
top = grid[8.0]
saturated_at_100 = top.over_seeds(
    "without BN", lambda history: cs.probe_array(history, "saturated")[history.steps.index(100)].mean())
to_half = {label: top.over_seeds(label, lambda history: cs.steps_to(history, 0.5)) for label in top.histories}
checks = {
    "η = 8 with BN: 50% test accuracy by step 100, in every seed": to_half["with BN"].high <= 100,
    "η = 8 without BN: more than 30% of the sigmoid inputs saturated at step 100 (median)":
        saturated_at_100.median > 0.3,
    "η = 8 without BN: at least twice as many steps to 50% as with BN, in every seed":
        bool(np.all(to_half["without BN"].values >= 2 * to_half["with BN"].values)),
}
for statement, holds in checks.items():
    print(f"{'✓' if holds else '✗'} {statement}")
assert all(checks.values())

# %% [markdown]
# What the runs say about the question in seed 001 ("does BN let sigmoid networks train?"):
# * At small learning rates nothing saturates, and yet the network without BN learns slowly (at
#   η = 0.05 it is far behind after 1,000 steps, in every seed): its problem is the small gradient of
#   the first layers, not saturation. BN fixes that from the first step.
# * At large learning rates the network without BN saturates: at η = 8 more than half of its sigmoid
#   inputs by the end (median over the seeds), and the mean slope, the share of the gradient that gets
#   through a sigmoid, falls well below its value with BN. Saturating early, it needs several times as
#   many steps as the BN network to reach even 50% accuracy, in every seed.
# * BN keeps layers 1 and 2 out of saturation at every learning rate, but not layer 3: β and γ are
#   learned, and at η = 8 layer 3's β moves far below zero, which switches most of its units off for
#   most images, deep in the flat part of the sigmoid. BN does not forbid saturation; with BN it happens
#   only where gradient descent puts it, through β and γ.
# * At η = 8 the network without BN is a lottery. In some seeds it climbs out after a few hundred steps
#   and ends level with the BN network; in others it is still near chance at step 1,000 (the figure's
#   title counts them, and the count changes with the seeds). Saturation slows learning; on an easy task
#   it does not always stop it, but when it lets go is luck.

# %% [markdown]
# ## 5. The hypothesis, and why it is still one
#
# The BN network moved its layer inputs less (section 3) **and** learned faster: here is the time to 90%
# test accuracy, from the runs of section 1 (8 seeds). The runs were recorded every 50 steps, so "50" for
# the BN network means "by step 50": the ratio below is, if anything, too small.

# %%
reach = {label: runs.over_seeds(label, lambda history: cs.steps_to(history, 0.9)) for label in runs.histories}
slower = OverSeeds(SEEDS, reach["without BN"].values / reach["with BN"].values)
print(f"steps to 90% test accuracy: {reach['without BN'].describe('{:.0f}')} without BN, "
      f"{reach['with BN'].describe('{:.0f}')} with BN")
print(f"without BN / with BN: {slower.describe('{:.0f}')}")
assert np.all(np.isfinite(slower.values))  # both networks reach 90% in every seed
support = slower.support(slower.values >= 3)
assert slower.median >= 3 and support.at_least(0.75)
record("bn-trains-faster", holds=outcome_of(support), support=support,
       measured=f"steps to 90% test accuracy {reach['without BN'].describe('{:.0f}')} without BN, "
                f"{reach['with BN'].describe('{:.0f}')} with BN (3 times as many or more: {support})")

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
#   accuracy in nearly every seed; BN, which normalizes with fixed running statistics at test time, does
#   not undo it.
# * **Between mini-batches** the same idea appears at random: each batch's mean and variance differ from
#   the training set's by about $\sigma/\sqrt{m}$. Train/test shift is systematic and does not shrink with
#   more data.
# * **Internal covariate shift**: a layer's input distribution moves because the layers below learn. On
#   the paper's Figure 1 network, a unit's percentiles drift about three times less with BN (measured over
#   all 100 units with the statistics the network trains on, in every one of 8 seeds), and the
#   distribution's width stays within a factor 2 instead of growing forty-fold. BN does not freeze it:
#   the learned γ and β still move it.
# * **Saturation**: at large learning rates the sigmoids without BN saturate and pass back little gradient
#   (when a saturated network recovers is luck: a distribution over seeds, not a number); BN keeps the
#   first layers unsaturated, lets the last one saturate through β and γ, and, before any of that, evens
#   out the gradient across layers at initialization.
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
