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
# 2. explain why every mini-batch is a small, random shift of the inputs, predict its size (∝ 1/√m),
#    and say what BN does with it;
# 3. define internal covariate shift and measure it as the paper's Figure 1 does, with and without BN,
#    with a measure taken over all units rather than one picked unit;
# 4. connect saturated sigmoids to vanishing gradients, and separate what BN changes from what a good
#    initialization changes;
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
from bnlab.exercises import compare_prediction
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
from bnlab.seeding import claim_seeds
from bnlab.statistics import OverSeeds, seed_range

SEED = bnlab.setup()
SEEDS = claim_seeds()  # every claim about training is measured over these network seeds
PAPER, XAVIER, BN = cs.NETWORKS  # the three networks' labels
print(f"Course seed: {SEED}; network seeds: {seed_range(SEEDS)}")

# %% [markdown]
# ## Batch Normalization in one box
#
# This notebook and the next use Batch Normalization (BN) as a finished tool; notebook 04 builds it.
# What it computes, for one unit of a layer (one neuron's input $x$, before its activation function),
# on a mini-batch of $m$ examples $x_1, \dots, x_m$ during training:
# $$\mu_B = \frac1m\sum_{i=1}^m x_i, \qquad \sigma_B^2 = \frac1m\sum_{i=1}^m (x_i - \mu_B)^2, \qquad
# \hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \varepsilon}}, \qquad y_i = \gamma\,\hat x_i + \beta .$$
# * **Batch mean and variance.** Every unit has its own $\mu_B$ and $\sigma_B^2$, measured on the current
#   mini-batch, so over that batch each unit's $\hat x$ has mean 0 and variance 1 (the tiny $\varepsilon$
#   only keeps the division safe).
# * **$\gamma$ and $\beta$.** Each unit also has a learned scale $\gamma$ and shift $\beta$, trained by
#   gradient descent like the weights: the layer can still give its units any mean and spread, but now
#   two parameters per unit set them. $y$ then goes into the activation function (here a sigmoid).
# * **Eval mode.** At test time there may be no batch to average over, and a prediction should not depend
#   on the other examples. So BN keeps *running averages* of $\mu_B$ and $\sigma_B^2$ during training and,
#   in eval mode, normalizes with those: a fixed affine map per unit.
#
# Here BN sits between each Linear layer and its sigmoid. [Notebook 04](04_batchnorm_from_scratch.ipynb)
# builds it from scratch, forward and backward, and checks it against PyTorch's `BatchNorm1d`.

# %% [markdown]
# ## 1. Covariate shift: the test data are not the training data
#
# A classifier learns the rule $p(y \mid x)$ from examples $x$ drawn from some distribution $p(x)$.
# **Covariate shift** is the situation where $p(x)$ at test time differs from $p(x)$ in training while
# the rule stays the same (Shimodaira 2000): a scanner with greyer paper, a fainter pen, another
# hospital's camera. A 3 is still a 3; the pixels are not the same.
#
# The network we use in the whole notebook is the one in the paper's Figure 1: 64 inputs, three hidden
# layers of 100 sigmoid units, 10 outputs. We train three versions of it on the digits, with SGD
# (learning rate 0.5, batches of 60, 1,000 steps):
# * **paper init, no BN**: weights drawn from $N(0, 0.1^2)$, as in the paper's Figure 1;
# * **with BN**: the same initial weights, with BN before every sigmoid;
# * **Xavier init, no BN**: the fair baseline. Without BN, a network needs initial weights that keep the
#   signal's size from layer to layer, and Xavier (Glorot & Bengio 2010) chose
#   $\mathrm{std} = \mathrm{gain}\cdot\sqrt{2/(n_\text{in} + n_\text{out})}$ for that
#   ([notebook 01](01_input_normalization.ipynb), section 4), for a unit whose slope near 0 is 1 (tanh). A sigmoid's slope there is 1/4: each layer would pass back only a quarter
#   of the gradient. The gain that makes up for it is 4, just as He's $\sqrt 2$ makes up for a ReLU
#   zeroing half the signal. With gain 1, Xavier's std for the 100-wide layers is the paper's (printed
#   below): the paper's network is initialized for tanh, not for the sigmoid.
#
# Comparing BN only with the paper's network would credit BN with everything a better initialization
# also gives; the third network tells the two apart. All three see the same mini-batches. One run could be
# lucky, so we train each network under 8 seeds (8 initial weights and mini-batch orders): 24 networks.
# The same cell also trains the 48 networks section 4 needs (other learning rates); the networks of one
# architecture train together in one batched computation (`bnlab.ensemble`), and the whole takes about
# ten seconds. Every number below is a statistic over the 8 seeds: their median, and the lowest to
# highest value in brackets.

# %%
print("weight std of each layer (64→100, 100→100, 100→100, 100→10):")
for name, stds in {PAPER: cs.layer_stds(cs.PAPER_INIT_STD), "Xavier, gain 1": cs.layer_stds("xavier"),
                   XAVIER: cs.layer_stds("xavier", cs.SIGMOID_GAIN)}.items():
    print(f"{name:>20}: " + "  ".join(f"{std:.3g}" for std in stds))

LEARNING_RATES = (0.05, 0.5, 8.0)  # section 4 trains the three networks at these too
runs, grid = cs.figure1_and_grid(LEARNING_RATES)  # runs: at 0.5; grid: learning rate -> runs
final = {label: runs.over_seeds(label, lambda history: history.final_accuracy) for label in runs.histories}
for label, accuracies in final.items():
    print(f"{label:>20}: test accuracy after {cs.FIG1_STEPS:,} steps {accuracies.describe('{:.0%}')}")

# %%
# Check: every network trains (above 90% in every seed, none diverges)
assert all(accuracies.low > 0.9 for accuracies in final.values())
assert not any(history.diverged for histories in runs.histories.values() for history in histories)
assert np.isclose(cs.layer_stds("xavier")[1], cs.PAPER_INIT_STD)

# %% [markdown]
# **Predict before you run.** We now add 1 to every pixel of the test images (the scale runs from
# 0 for paper to 16 for ink: a faint grey background) and z-score them with the *training* mean and
# standard deviation, as a deployed model would. You would barely see the difference. How much
# accuracy will each network lose? Will the network with BN, which normalizes inside, be protected?

# %%
my_prediction = None  # write "yes" or "no" here (is the BN network protected?) before you run the next cells

# %%
raw = load_digits(standardized=False)
shifts = {"no shift": dict(), "grey paper (+1)": dict(brightness=1.0),
          "grey paper (+2)": dict(brightness=2.0), "faint ink (× 0.5)": dict(contrast=0.5)}
shifted_accuracy = cs.shifted_accuracies(runs, raw, shifts)  # shift -> network -> one accuracy per seed
print(f"{'test images':>18} " + " ".join(f"{label:>20}" for label in runs.histories))
for name, row in shifted_accuracy.items():
    cells = (accuracies.describe("{:.0%}").removeprefix("median ") for accuracies in row.values())
    print(f"{name:>18} " + " ".join(f"{cell:>20}" for cell in cells))
print("(median over the 8 seeds, lowest to highest)")
drop = {label: OverSeeds(SEEDS, 100 * (shifted_accuracy["no shift"][label].values
                                       - shifted_accuracy["grey paper (+1)"][label].values))
        for label in runs.histories}  # network -> points of test accuracy grey paper (+1) costs, per seed
protected = drop[BN].median < 10
print(f"grey paper (+1) costs {drop[BN].describe('{:.0f}')} points with BN: "
      f"{'protected' if protected else 'not protected'}")

# %%
compare_prediction(my_prediction, "yes" if protected else "no")

# %%
# Check: the shift costs every network dearly, BN included (the claim of section 1)
for label in runs.histories:
    clean, grey, grey2, faint = (shifted_accuracy[name][label].values for name in shifts)
    assert np.median(clean - grey) > 0.3 and np.median(clean - grey2) > 0.3  # a shift you can hardly see
    assert np.mean(clean - grey > 0.25) >= 0.75   # costs more than 25 points, in most seeds
    assert np.all(grey < faint) and np.median(clean - faint) > 0.02  # fainter ink hurts, less than grey paper
assert shifted_accuracy["grey paper (+1)"][BN].median < 0.6  # BN's normalization at test time: no help
support = drop[BN].support(drop[BN].values > 25)
record("bn-no-protection-from-test-shift", holds=outcome_of(support), support=support,
       measured=f"grey paper (+1) costs {drop[BN].describe('{:.0f}')} points of test accuracy with BN, "
                f"{drop[XAVIER].describe('{:.0f}')} without BN (Xavier init), "
                f"{drop[PAPER].describe('{:.0f}')} without BN (paper init) (more than 25: with BN in {support})")

# %% [markdown]
# Why does a grey background hurt so much more than faint ink? Fainter ink keeps every pixel inside the
# range it had in training. Grey paper lifts the border pixels, which are 0 in almost every training
# image: their training standard deviation is tiny, so after z-scoring a lift of 1 lands many standard
# deviations away from anything the network has seen.

# %%
train_std = raw.X_train.std(dim=0).numpy()
far_out = train_std < 1 / 3  # (64,) pixels for which +1 is more than 3 training standard deviations
print(f"{far_out.sum()} of the 64 pixels have a training standard deviation below 1/3: "
      f"for them, +1 is more than 3 standard deviations")
assert far_out.sum() >= 5

# %% [markdown]
# The two input distributions side by side (note the log scale: most pixels are paper), and one test
# image before and after:

# %%
shift_figure(raw, brightness=1.0,
             accuracies={label: seeds.median for label, seeds in shifted_accuracy["grey paper (+1)"].items()},
             seeds=len(SEEDS))

# %% [markdown]
# Batch Normalization does **not** protect against this kind of shift: at test time it normalizes with
# the running averages collected in training (the box above), a fixed affine map, so shifted inputs stay
# shifted. Here the table even shows the BN network losing more than the paper's network. Is BN to blame? The
# shift lands on the almost always blank pixels, and the weights from a pixel that is nearly constant in
# training get almost no gradient: they stay close to their random initial values. What the shift does
# to a unit then depends on how large those leftover random weights are next to the weights training
# built on the inked pixels. Measured on the first layer of every trained network:

# %%
why = cs.first_layer_shift(runs, raw, far_out, brightness=1.0)  # network -> measure -> one value per seed
for label, measured in why.items():
    print(f"{label}: weights from the inked pixels, RMS {measured['inked weights'].describe('{:.2f}')} "
          f"(at initialization {cs.layer_stds(**cs.init_of(label))[0]:.2f});\n"
          f"    weights from the blank pixels moved by {measured['blank change'].describe('{:.0%}')} of their "
          f"initial size, and are {measured['blank weights'].describe('{:.2f}')} times the inked ones;\n"
          f"    grey paper moves a first-layer sigmoid input by {measured['moved'].describe('{:.1f}')} "
          f"training standard deviations")
harder = {label: int(np.sum(drop[BN].values > drop[label].values)) for label in (PAPER, XAVIER)}
print(f"grey paper (+1) costs the BN network more than the {PAPER} network in {harder[PAPER]} of "
      f"{len(SEEDS)} seeds, more than the {XAVIER} network in {harder[XAVIER]}")

# %%
# Check: what the paragraph below says
ratio = {label: why[label]["blank weights"].median for label in why}
moved = {label: why[label]["moved"].median for label in why}
assert ratio[PAPER] < ratio[BN] < ratio[XAVIER] and moved[PAPER] < moved[BN] < moved[XAVIER]
assert all(why[label]["blank change"].high < 0.5 for label in why)  # blank pixels' weights: barely trained
inked = {label: why[label]["inked weights"].median / cs.layer_stds(**cs.init_of(label))[0] for label in why}
assert inked[PAPER] > 1.4 and inked[BN] < 1.25 and inked[XAVIER] < 1.1  # how much training grew the others

# %% [markdown]
# The weights from the blank pixels moved only a fraction of their initial size: they are still mostly
# random. The network without BN that starts from the paper's small weights grows its weights on the
# inked pixels well beyond their start, so its leftover random weights are small next to them, and grey
# paper moves its first layer least. BN divides each unit by its spread, so its network does not need to
# grow its weights to make large sigmoid inputs, and barely does: its leftover random weights count for
# more, and the same shift moves its units further, measured in their own training spread. The Xavier
# network starts with weights four times larger, ends with the largest leftovers, and moves most.
#
# How much accuracy a move costs also depends on what the later layers make of it, so the final order is
# less tidy: with this split of the digits into training and test images the BN network loses more than
# the paper's network in most seeds (the count above), while with other splits (another course seed,
# `BNLAB_SEED`) the order can reverse. Losing more is not a property of BN; what is the same everywhere is
# that no network is protected. Two lessons from section 1: a model is fitted to the inputs it saw, so
# move them and its accuracy is no longer the accuracy you measured; and normalizing inside the network
# does not undo a shift of its inputs.

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
# batch means shrink? (And the spread of the batch variances?)

# %%
my_prediction = None  # write a number here (the factor for the batch means) before you drag or run on

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
sizes = [4, 8, 16, 32, 64]
mean_spread, variance_spread = cs.spread_across_batches(pixel, sizes)
mean_law, variance_law = cs.spread_laws(pixel, sizes)
inked = float(np.mean(raw.X_train[:, 8 * MINIBATCH_PIXEL[0] + MINIBATCH_PIXEL[1]].numpy() > 0))
print(f"pixel {MINIBATCH_PIXEL}: ink in {inked:.0%} of the training images, "
      f"σ = {pixel.std():.2f} (standardized)")
for i, m in enumerate(sizes):
    print(f"m = {m:>2}: batch means spread {mean_spread[i]:.3f} (σ/√m = {mean_law[i]:.3f}), "
          f"batch variances spread {variance_spread[i]:.3f} (law {variance_law[i]:.3f})")
shrink_8_to_32 = mean_spread[sizes.index(8)] / mean_spread[sizes.index(32)]
print(f"from m = 8 to m = 32 the spread of the batch means shrinks by a factor {shrink_8_to_32:.0f}")

# %%
compare_prediction(my_prediction, round(shrink_8_to_32), tolerance=0.3)

# %%
# Check: the 1/sqrt(m) laws
assert 0.6 < inked < 0.9
assert np.allclose(mean_spread, mean_law, rtol=0.1)
assert np.allclose(variance_spread[2:], variance_law[2:], rtol=0.15)  # the variance law needs m of 16 or more
assert 1.8 < mean_spread[0] / mean_spread[2] < 2.2 and 1.8 < variance_spread[2] / variance_spread[4] < 2.2
assert round(shrink_8_to_32) == 2

# %% [markdown]
# ### What BN does with this noise
#
# Put the same pixel through BN in training mode (the box at the top): each value is normalized with
# the mean and variance of *its own* mini-batch. Whatever batch it lands in, the normalized values have
# mean 0 and variance 1 over that batch: the batch-to-batch change of the first two moments, measured
# above, is gone. It has not disappeared from the network, though. It has moved into each example: the
# same image comes out as a slightly different $\hat x$ depending on which other images share its batch.
# Here is that jitter for one training image (one whose pixel is about one standard deviation above the
# mean), over 1,000 random batches that contain it:

# %%
example = int(np.argmin(np.abs(pixel - (pixel.mean() + pixel.std()))))
jitter = cs.normalized_jitter(pixel, sizes, example)
print(f"training image {example}: its pixel is {pixel[example]:.2f}, normalized with the whole training set "
      f"{(pixel[example] - pixel.mean()) / pixel.std():.2f}")
for m, spread in zip(sizes, jitter):
    print(f"m = {m:>2}: its normalized value spreads by {spread:.3f} from batch to batch")

# %%
# Check: the jitter shrinks like 1/sqrt(m) once m is not tiny
assert 1.6 < jitter[sizes.index(16)] / jitter[sizes.index(64)] < 2.4
assert np.all(np.diff(jitter[1:]) < 0)

# %% [markdown]
# From $m = 16$ on, four times the batch halves the jitter, as it halved the spread of the batch means:
# BN turns the random shift *between* mini-batches into a random wobble of each example's normalized
# value, of the same $1/\sqrt m$ size. (Notebook 06 asks whether that noise matters for training.)
#
# ### Three kinds of shift, and what BN does to each
#
# | the shift | its cause | what BN does | measured in |
# |---|---|---|---|
# | training → test | the data changed (another scanner, greyer paper); systematic, more data does not remove it | nothing: in eval mode BN applies fixed running averages, so a shifted input stays shifted | section 1: every network, BN's included, loses most of its accuracy |
# | one mini-batch → the next | sampling: each batch is a small random sample; random, ∝ $1/\sqrt m$ | removes the batch-to-batch change of each unit's mean and variance, and turns it into a jitter of each example's normalized value, of the same size | this section |
# | a layer's input over training (*internal*) | the weights of the layers below change at every step | pins each unit's mean and standard deviation to $\beta$ and $|\gamma|$, which move only as gradient descent moves them | section 3 |
#
# In all three, BN acts on each unit's mean and variance and on nothing else: a bimodal batch stays
# bimodal (notebook 04 shows it). A batch whose *shape* differs from the next is not made alike by
# matching two numbers.

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
# layers normalize with the statistics of the images they see, as they do in training (section 3.2
# says why that matters). To avoid showing one lucky unit, we measure every unit's **drift**: for each
# percentile, its largest minus its smallest value over training, averaged over the three
# percentiles. Panels (b) to (d) show the first seed's networks, and in each the unit whose drift is
# the median of its network; panel (a) shows the test accuracy of all 8 seeds (median and range).
#
# **Predict before you run.** How many times wider will the distribution of a sigmoid input become
# during training without BN, from the paper's initial weights? From Xavier's? With BN?

# %%
my_prediction = None  # write a number here (how many times wider: paper init, no BN) before you run on

# %%
drifts = {label: np.stack([cs.percentile_drift(cs.probe_array(history, "percentiles"), history.steps)
                           for history in histories])
          for label, histories in runs.histories.items()}  # network -> (seeds, units)
typical = {label: cs.typical_unit(drift[0]) for label, drift in drifts.items()}  # in the first seed's network
median_drift = {label: OverSeeds(SEEDS, np.median(drift, axis=1)) for label, drift in drifts.items()}
figure_1(runs, typical, {label: drift.median for label, drift in median_drift.items()})

# %% [markdown]
# Over all 100 units of each network, in numbers, median (lowest to highest) over the 8 seeds (width:
# the 85th minus the 15th percentile, averaged over the units):

# %%
def widths(history):
    """The width of the units' distributions at each record, averaged over the units: (records,)."""
    percentiles = cs.probe_array(history, "percentiles")  # (records, 3, units)
    return (percentiles[:, 2] - percentiles[:, 0]).mean(axis=1)


start_width = {label: runs.over_seeds(label, lambda history: widths(history)[0]) for label in runs.histories}
growth = {label: runs.over_seeds(label, lambda history: widths(history)[-1] / widths(history)[0])
          for label in runs.histories}
for label in runs.histories:
    print(f"{label:>20}: drift of the median unit {median_drift[label].describe('{:.2f}')}; width at step 0 "
          f"{start_width[label].describe('{:.2g}')}, grows x {growth[label].describe('{:.2g}')}")

# %%
compare_prediction(my_prediction, int(round(growth[PAPER].median, -1)), tolerance=15)

# %%
# Check: the claim of section 3 (drift with BN against both networks without BN)
ratio = {label: OverSeeds(SEEDS, np.median(drifts[BN], axis=1) / np.median(drifts[label], axis=1))
         for label in (PAPER, XAVIER)}  # BN's drift over each network's, per seed
assert all(r.median < 0.4 and r.high < 0.5 for r in ratio.values())
for label in (PAPER, XAVIER):
    apart = np.percentile(drifts[BN], 90, axis=1) < np.percentile(drifts[label], 10, axis=1)  # per seed
    assert apart.all()  # not one lucky unit: the two networks' units barely overlap
assert growth[PAPER].low > 20 and growth[XAVIER].high < 3 and growth[BN].high < 2
support = ratio[XAVIER].support(ratio[XAVIER].values < 0.4)
record("ics-percentile-drift", holds=outcome_of(support), support=support,
       measured=f"drift of the median unit {median_drift[BN].describe('{:.2f}')} with BN, "
                f"{median_drift[XAVIER].describe('{:.2f}')} without BN (Xavier init), "
                f"{median_drift[PAPER].describe('{:.2f}')} without BN (paper init); with BN over Xavier "
                f"{ratio[XAVIER].describe('{:.2f}')} (below 0.4: {support})")

# %% [markdown]
# Without BN, from the paper's small weights, the distribution starts as a narrow spike at 0 and widens
# about forty-fold during the first few hundred steps. The Xavier network starts wide (weights four
# times larger) and, like the BN network, widens by less than a factor of 2: the forty-fold widening is
# the paper's small initialization, not the absence of BN. The drift tells the networks apart: a unit's
# percentiles travel about three times as far in either network without BN as with BN.
#
# Why so steady with BN? In every batch, a BN unit's sigmoid input is $\gamma \hat x + \beta$ with $\hat x$
# of mean 0 and variance 1, so its mean is $\beta$ and its standard deviation $|\gamma|$, whatever the
# layers below do. Checked on every unit of layer 3, at every record of every seed:

# %%
def moment_gap(history):
    """The largest gap, over records and units of layer 3, between a unit's mean over the test images and
    its beta, or its standard deviation and its |gamma|."""
    moments = cs.probe_array(history, "moments")  # (records, 2, units): mean and standard deviation
    beta, gamma = np.array(history.beta["norm3"]), np.abs(np.array(history.gamma["norm3"]))  # (records, units)
    return max(np.abs(moments[:, 0] - beta).max(), np.abs(moments[:, 1] - gamma).max())


gap = runs.over_seeds(BN, moment_gap)
print(f"with BN, each unit's mean is its β and its standard deviation its |γ|, to within 0.01: "
      f"{gap.high < 0.01}")

# %% [markdown]
# So the drift that is left with BN is the drift of $\beta$ and $\gamma$, two parameters per unit that
# gradient descent moves on purpose, instead of every weight in the layers below. The drift of every unit
# of every seed's network:

# %%
drift_figure(drifts)

# %% [markdown]
# ### 3.2 How the measure changes the answer
#
# What you measure decides how large the drift looks. Three choices:
#
# * **Running or batch statistics.** The percentiles above use batch statistics, as the network sees its
#   inputs in training. In eval mode BN uses its *running* averages instead (the box at the top). At
#   step 0 these are placeholders (mean 0, variance 1), so the untrained BN network passes its tiny,
#   unnormalized inputs straight through; the averages catch up only after some tens of steps. That
#   start is an artefact of the bookkeeping, not a distribution the network ever trained on. (Without BN
#   the two are the same numbers.)
# * **Which percentiles.** With BN, a unit's median sits near $\beta$ and, for a bell-shaped $\hat x$, its
#   15th and 85th percentiles near $\beta \mp \gamma$. Both are learned: if $\gamma$ grows, the outer
#   percentiles move.
# * **Which steps.** Most of the movement happens in the first few hundred steps.

# %%
def drift_of(history, source, from_step=0, which=slice(None)):
    """Mean over units of the drift, from batch statistics or from BN's running statistics (eval mode)."""
    percentiles = cs.probe_array(history, "percentiles" if source == "batch" else "running percentiles")
    return float(cs.percentile_drift(percentiles[:, which], history.steps, from_step).mean())


measures = {"batch statistics, all steps": dict(source="batch"),
            "batch statistics, median only": dict(source="batch", which=[1]),
            "batch statistics, from step 500": dict(source="batch", from_step=500),
            "running statistics, all steps": dict(source="running"),
            "running statistics, from step 500": dict(source="running", from_step=500)}
table = {name: {label: runs.over_seeds(label, lambda history: drift_of(history, **measure)).median
                for label in runs.histories}
         for name, measure in measures.items()}  # the median over the seeds of each network's mean drift
print(f"{'mean drift over 100 units (median of 8 seeds)':>46} " + " ".join(f"{label:>19}" for label in runs.histories))
for name, row in table.items():
    print(f"{name:>46} " + " ".join(f"{row[label]:>19.2f}" for label in runs.histories))
gamma_growth = runs.over_seeds(BN, lambda h: h.gamma["norm3"][-1].mean() / h.gamma["norm3"][0].mean())
largest_beta = runs.over_seeds(BN, lambda h: np.abs(h.beta["norm3"][-1]).max())
print(f"\nlayer 3 with BN: mean γ grows x {gamma_growth.describe('{:.2f}')}, "
      f"largest |β| at the end {largest_beta.describe('{:.2f}')}")

# %%
# Check: what section 3.2 says
bn = {name: row[BN] for name, row in table.items()}
for label in (PAPER, XAVIER):
    plain = {name: row[label] for name, row in table.items()}
    assert bn["batch statistics, all steps"] < 0.4 * plain["batch statistics, all steps"]
    assert bn["batch statistics, from step 500"] < plain["batch statistics, from step 500"]
    assert plain["running statistics, all steps"] == plain["batch statistics, all steps"]
assert bn["batch statistics, from step 500"] < 0.5 * table["batch statistics, from step 500"][PAPER]
assert bn["batch statistics, median only"] < 0.35
assert bn["running statistics, all steps"] > 2 * bn["batch statistics, all steps"]
assert bn["running statistics, from step 500"] > bn["batch statistics, from step 500"]
assert gamma_growth.low > 1.3 and largest_beta.high < 0.3

# %% [markdown]
# What reproduces over the 8 seeds: without BN a unit's percentiles travel well over 1 unit over the whole
# run, from either initialization; with BN about a third as far. Most of that travel happens early: after
# step 500 the BN network's units still move less than half as far as the paper's network's, but only a
# little less than the Xavier network's. A drift that stays within a fraction of a unit holds with BN only
# for the **median** percentile (about a quarter of a unit over the whole run). The 15th and 85th percentiles move further because γ grows by about 40%: BN does
# not freeze a layer's input distribution, it changes *who* moves it. Measured in eval mode from step 0,
# BN's drift more than doubles, purely because of the placeholder running statistics; and even later,
# running statistics add some drift of their own: their average is dominated by the last ten or so
# batches (each batch enters the average with weight 0.1, PyTorch's `momentum`;
# [notebook 04](04_batchnorm_from_scratch.ipynb), section 4), so it carries those batches' noise.

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
fresh = {label: cs.layer_gradient_norms(cs.figure1_network(label, SEEDS[0]), data) for label in cs.NETWORKS}
print(f"{'layer':>8} " + " ".join(f"{label:>19}" for label in cs.NETWORKS)
      + "   (norm of the weight gradient at initialization)")
for layer in fresh[PAPER]:
    print(f"{layer:>8} " + " ".join(f"{fresh[label][layer]:>19.2g}" for label in cs.NETWORKS))
shrink = cs.gradient_ratios(SEEDS, data)  # network -> output layer's gradient / first layer's, per seed
print(f"\noutput layer / first layer, {seed_range(SEEDS)}:")
for label, ratios in shrink.items():
    print(f"{label:>20}: {ratios.describe('{:.2g}')}")

# %%
# Check: the vanishing gradient at initialization
assert shrink[PAPER].low > 15 and shrink[BN].high < 5
assert shrink[XAVIER].median < shrink[PAPER].median / 3 and np.all(shrink[XAVIER].values < shrink[PAPER].values)

# %% [markdown]
# With the paper's initial weights and no BN, the first layer's gradient is a few dozen times smaller
# than the output layer's: the vanishing gradient, with not a single unit saturated (each sigmoid passes
# back at most 1/4, and the weights are small). Xavier's gain of 4 makes up for most of it: that much of
# the vanishing gradient is the initialization. BN divides each pre-activation by its batch standard
# deviation, which is small at initialization, and the backward pass multiplies by the same factor: every
# layer gets a gradient of similar size.
#
# Saturation comes with training, when weights grow. The larger the learning rate, the faster they
# grow. In section 1 we also trained the three networks for 1,000 steps at two other learning rates,
# under the same 8 seeds (recording every 100 steps; the runs at 0.5 are section 1's): the table below the
# panel sums them up. The panel trains live: let go of the slider at any η from 0.01
# to 20 and the three networks train for 300 steps under 3 of the seeds (about a second), drawing, for
# each network, the median over the seeds and their range. At η = 0.5 it shows the first 300 steps of
# section 1's runs.
#
# **Predict before you drag.** At the largest learning rate of the table (η = 8), which network ends with
# the most saturated sigmoids? Does BN prevent saturation altogether?

# %%
my_prediction = None  # write "paper", "Xavier" or "BN" here before you drag or run on

# %%
sat_panel = saturation_panel(lr=0.5, known=runs)
sat_panel

# %% [markdown]
# At the end of each run, layer by layer, over the 8 seeds:

# %%
saturation_table(grid)

# %%
SHORT = {PAPER: "paper", XAVIER: "Xavier", BN: "BN"}


def at_end(lr, label, key):
    """A probe entry ("saturated" or "slope") at the last record, per seed and layer: (seeds, 3)."""
    return np.stack([cs.probe_array(history, key)[-1] for history in grid[lr].histories[label]])


top_saturated = {label: np.median(at_end(8.0, label, "saturated").mean(axis=1))  # median over the seeds
                 for label in cs.NETWORKS}
most_saturated = max(top_saturated, key=top_saturated.get)
print(f"η = 8: the most saturated sigmoids at the end (median over the seeds): {most_saturated}")
compare_prediction(my_prediction, SHORT[most_saturated])

# %% [markdown]
# What these runs show, checked for every seed (✓: holds):

# %%
def final_accuracy(lr, label):
    """The test accuracy at the end of each seed's run at learning rate lr: OverSeeds."""
    return grid[lr].over_seeds(label, lambda history: history.final_accuracy)


beta_top = grid[8.0].over_seeds(BN, lambda history: history.beta["norm3"][-1].mean())
first_layer = {lr: at_end(lr, XAVIER, "saturated")[:, 0] for lr in (0.05, 0.5)}
checks = {
    "η = 0.05: paper init below 60% test accuracy (median), Xavier init above 90% and BN above 95% "
    "in every seed":
        final_accuracy(0.05, PAPER).median < 0.6 and final_accuracy(0.05, XAVIER).low > 0.9
        and final_accuracy(0.05, BN).low > 0.95,
    "η = 0.5: every network above 90% in every seed":
        all(final_accuracy(0.5, label).low > 0.9 for label in cs.NETWORKS),
    "η = 8: Xavier init at chance (below 20%) in every seed, BN above 90% in every seed":
        final_accuracy(8.0, XAVIER).high < 0.2 and final_accuracy(8.0, BN).low > 0.9,
    "η = 0.05 and 0.5: paper init and BN under 5% of any layer's sigmoid inputs saturated, in every seed":
        all(at_end(lr, label, "saturated").max() < 0.05 for lr in (0.05, 0.5) for label in (PAPER, BN)),
    "η = 0.05 and 0.5: Xavier init 15% to 40% of layer 1's sigmoid inputs saturated, in every seed":
        all(0.15 < shares.min() and shares.max() < 0.4 for shares in first_layer.values()),
    "η = 8: both networks without BN more than half of their sigmoid inputs saturated (median), 1.5 times "
    "BN's or more":
        all(top_saturated[label] > max(0.5, 1.5 * top_saturated[BN]) for label in (PAPER, XAVIER)),
    "η = 8: the sigmoids' mean slope lower without BN than with BN, in every seed, for both initializations":
        all(np.all(at_end(8.0, label, "slope").mean(axis=1) < at_end(8.0, BN, "slope").mean(axis=1))
            for label in (PAPER, XAVIER)),
    "with BN: layers 1 and 2 under 15% saturated at every η, in every seed":
        all(at_end(lr, BN, "saturated")[:, :2].max() < 0.15 for lr in grid),
    "η = 8 with BN: layer 3 more than 30% saturated, its mean β below -2 (medians)":
        np.median(at_end(8.0, BN, "saturated")[:, 2]) > 0.3 and beta_top.median < -2,
}
for statement, holds in checks.items():
    print(f"{'✓' if holds else '✗'} {statement}")

# %%
# Check: every statement above holds
assert all(checks.values())
assert most_saturated == XAVIER

# %% [markdown]
# Saturation is not just a number: it stalls learning. At η = 8 both networks without BN saturate within
# their first 100 steps, then stay near chance while the gradient trickles through their flat sigmoids:
# the Xavier network for all 1,000 steps, the paper's network for as long as luck decides. So here is
# every seed's run, not only their median:

# %%
seed_curves_figure(grid[8.0])

# %%
top = grid[8.0]
saturated_at_100 = {label: top.over_seeds(
    label, lambda history: cs.probe_array(history, "saturated")[history.steps.index(100)].mean())
    for label in (PAPER, XAVIER)}
to_half = {label: top.over_seeds(label, lambda history: cs.steps_to(history, 0.5)) for label in top.histories}
checks = {
    "η = 8 with BN: 50% test accuracy by step 100, in every seed": to_half[BN].high <= 100,
    "η = 8, both networks without BN: more than 30% of the sigmoid inputs saturated at step 100 (median)":
        all(shares.median > 0.3 for shares in saturated_at_100.values()),
    "η = 8, paper init: at least twice as many steps to 50% as with BN, in every seed":
        bool(np.all(to_half[PAPER].values >= 2 * to_half[BN].values)),
    "η = 8, Xavier init: never reaches 50%, in every seed": bool(np.all(np.isinf(to_half[XAVIER].values))),
}
for statement, holds in checks.items():
    print(f"{'✓' if holds else '✗'} {statement}")

# %%
# Check: every statement above holds
assert all(checks.values())

# %% [markdown]
# What the runs say about a question learners often ask ("does BN let sigmoid networks train?"), separating
# what is BN's doing from what is the initialization's:
# * **Small learning rates: mostly initialization.** At η = 0.05 nothing saturates in the paper's
#   network, and yet it learns slowly (far behind after 1,000 steps, in every seed): its problem is the
#   small gradient of the first layers. Xavier's gain of 4 fixes most of that without BN, at a price: from
#   the start it saturates about a quarter of the first layer's sigmoids, since z-scored pixels times its
#   larger weights land far from 0. BN gets there too, and further, with nothing saturated.
# * **Large learning rates: BN.** At η = 8 both networks without BN saturate: more than half of their
#   sigmoid inputs by the end, and the mean slope (the share of the gradient that gets through a sigmoid;
#   the table gives it as a fraction of its largest value, 1/4) falls well below its value with BN. Larger
#   initial weights make it worse, not better: the Xavier network saturates its upper two layers almost
#   completely and stays at chance in every seed. The BN network trains in every
#   seed. Tolerating a large learning rate is what BN adds that initialization does not.
# * BN keeps layers 1 and 2 out of saturation at every learning rate, but not layer 3: β and γ are
#   learned, and at η = 8 layer 3's β moves far below zero, which switches most of its units off for
#   most images, deep in the flat part of the sigmoid. BN does not forbid saturation; with BN it happens
#   only where gradient descent puts it, through β and γ.
# * At η = 8 the paper's network is a lottery. In some seeds it climbs out after a few hundred steps and
#   ends level with the BN network; in others it is still near chance at step 1,000 (the figure's title
#   counts them, and the count changes with the seeds). Saturation slows learning; on an easy task it
#   does not always stop it, but when it lets go is luck.

# %% [markdown]
# ## 5. The hypothesis, and why it is still one
#
# The BN network moved its layer inputs less (section 3) **and** learned faster. Here is how fast, from
# the runs of section 1 (8 seeds): the first record at which each network reached 90% test accuracy, and
# its accuracy at step 50. The runs were recorded every 50 steps, so "50" means "by step 50".

# %%
reach = {label: runs.over_seeds(label, lambda history: cs.steps_to(history, 0.9)) for label in runs.histories}
at_50 = {label: runs.over_seeds(label, lambda history: history.test_accuracy[history.steps.index(50)])
         for label in runs.histories}
for label in runs.histories:
    print(f"{label:>20}: 90% test accuracy by step {reach[label].describe('{:.0f}')}; "
          f"at step 50 {at_50[label].describe('{:.0%}')}")
earlier = {label: int(np.sum(reach[BN].values < reach[label].values)) for label in (PAPER, XAVIER)}
print(f"BN reaches 90% at an earlier record than the {PAPER} network in {earlier[PAPER]} of {len(SEEDS)} "
      f"seeds, than the {XAVIER} network in {earlier[XAVIER]}")

# %%
# Check: the claim of section 5, against the fair baseline
assert np.all(np.isfinite(reach[PAPER].values)) and np.all(np.isfinite(reach[XAVIER].values))
assert reach[PAPER].low >= 3 * reach[BN].high  # the paper's network: several times slower in every seed
assert reach[BN].high <= reach[XAVIER].low  # BN reaches 90% no later than the Xavier network, in every seed
ahead = OverSeeds(SEEDS, at_50[BN].values - at_50[XAVIER].values)  # points ahead at step 50, per seed
support = ahead.support(ahead.values > 0)
assert support.at_least(0.75)
record("bn-trains-faster", holds=outcome_of(support), support=support,
       measured=f"first record at 90% test accuracy: step {reach[BN].describe('{:.0f}')} with BN, "
                f"{reach[XAVIER].describe('{:.0f}')} without BN (Xavier init), "
                f"{reach[PAPER].describe('{:.0f}')} without BN (paper init); accuracy at step 50 "
                f"{at_50[BN].describe('{:.0%}')} with BN, {at_50[XAVIER].describe('{:.0%}')} Xavier init "
                f"(BN ahead of Xavier init at step 50: {support})")

# %% [markdown]
# Against the paper's network BN looks several times faster; most of that is the initialization: the
# Xavier network reaches 90% several times sooner than the paper's network. BN still reaches 90% no later
# than the Xavier network in every seed, and at step 50 it is ahead in most seeds (the claim above counts
# them): a real gain, but smaller than the comparison with the paper's network suggested.
#
# > **Hypothesis (Ioffe & Szegedy 2015): reducing internal covariate shift is what speeds training up.**
# > Each layer would no longer chase a moving input distribution (a "moving goal"), so it
# > could learn faster and with larger steps.
#
# This notebook does **not** prove it. We saw several things happen together with BN: smaller drift,
# faster training, gradients of similar size in every layer at initialization, and most units kept out of
# saturation at large learning rates. Any of these could be the reason, and the drift could even be a side
# effect rather than a cause. The Xavier network is a first hint: its units drift about as far as the
# paper's network's (section 3), yet it trains several times faster. **Notebook 06 tests the
# hypothesis**: it adds internal covariate shift back on purpose (noise after each BN layer) and asks
# whether training slows down, and it looks at what BN does to the loss surface instead.

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
# * **Batch Normalization** normalizes each unit with its mini-batch's mean and variance in training,
#   with running averages in eval mode, then scales and shifts it by the learned γ and β.
# * **Covariate shift**: the inputs' distribution changes, the input-to-label rule does not. On digits, a
#   grey background you can hardly see (+1 on a 0-16 scale) cost every network more than 25 points of
#   accuracy in nearly every seed; BN, which normalizes with fixed running statistics at test time, does
#   not undo it. How much a network loses depends on the random weights training left untouched, not on BN.
# * **Between mini-batches** the same idea appears at random: each batch's mean and variance differ from
#   the training set's by about $\sigma/\sqrt{m}$. BN removes that change of each unit's mean and variance
#   and turns it into a jitter of each example's normalized value, of the same size.
# * **Internal covariate shift**: a layer's input distribution moves because the layers below learn. On
#   the paper's Figure 1 network, a unit's percentiles drift about three times less with BN than without,
#   from the paper's initial weights or from Xavier's (measured over all 100 units, in every one of 8
#   seeds). BN pins each unit's mean and standard deviation to β and |γ|; those still move.
# * **Saturation and initialization**: the paper's small weights starve the first layers of gradient,
#   which a sigmoid-aware Xavier initialization mostly fixes; at large learning rates the networks without
#   BN saturate (the larger the initial weights, the sooner), while BN keeps the first layers unsaturated
#   and trains in every seed. Against the fairly initialized network BN still trains faster, by less.
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
#   networks.* AISTATS (saturating sigmoids, vanishing gradients, and the Xavier initialization).
# * K. He, X. Zhang, S. Ren and J. Sun (2015). *Delving Deep into Rectifiers.* ICCV.
#   [arXiv:1502.01852](https://arxiv.org/abs/1502.01852) (an initialization's gain for its activation).
# * S. Santurkar, D. Tsipras, A. Ilyas and A. Madry (2018). *How Does Batch Normalization Help
#   Optimization?* NeurIPS. [arXiv:1805.11604](https://arxiv.org/abs/1805.11604) (the test of the
#   hypothesis, notebook 06).
