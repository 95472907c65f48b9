# %% [markdown]
# # 07 · Batch Normalization in practice
#
# Notebooks 04 to 06 took BN apart on fully connected networks. Most networks that use BN are
# convolutional, and the people who train them ask practical questions: should BN go before or after
# the activation? Does it regularize, so that dropout can go? What happens to weight decay? How do I
# fine-tune with tiny batches? Does the paper's advice for training BN networks hold? Which normalization
# should I use at all? This notebook builds a small convolutional network on the 8×8 digits around the
# BN layer of notebook 04, and answers one question with runs: **how do I use BN well in a real network?**
#
# **Learning goals.** After this notebook you can
# 1. apply BN to convolutional feature maps (one mean and variance per channel), check a BN layer against
#    `nn.BatchNorm2d` in training and eval mode, and read what the learned $\gamma$ and $\beta$ do;
# 2. weigh the two places for BN, before or after the activation, with the paper's argument (the shape
#    of $Wu + b$) and with runs;
# 3. measure whether BN regularizes (train-test gap, batch size, ghost batches, dropout) instead of
#    taking it on trust;
# 4. fold BN into the preceding convolution for deployment, and check that nothing changes but speed;
# 5. say which parts of BN matter (centering, scaling, $\gamma$ and $\beta$, which layers);
# 6. explain why weight decay under BN sets the effective learning rate;
# 7. say which parts of the paper's recipe for training BN networks (higher learning rate, no dropout, less
#    L2, faster decay) pay off on a small network, and which of it is BN's;
# 8. fine-tune with tiny batches knowing what live and frozen statistics do, and avoid the usual bug;
# 9. choose between BN, LayerNorm and GroupNorm by architecture and batch size, from measurements.
#
# **How the runs are made.** Every claim here is measured over 8 seeds (8 initial weights and 8 orders
# of mini-batches), trained as one computation: network $k$ owns channels $[kC, (k+1)C)$ of every layer,
# and each convolution has `groups=8`, so no network ever sees another's channels, and a BN layer over all
# the channels is exactly each network's own per-channel BN. Unless a section says otherwise, a run is
# **150 SGD steps on batches of 60** (9,000 examples, about 7 passes over the 1,347 training digits),
# learning rate 0.1 with momentum 0.9, and the networks without BN get He initialization, the fair
# starting point for ReLU networks (notebook 06 showed what PyTorch's default costs them).
#
# **Predict first.** Each "Predict" prompt below has a cell where you write your guess before running the
# experiment; a cell after it compares your guess with what the runs show. The collapsed cells marked
# `# Check:` test the section's claims over the 8 seeds and record them in the course's claims ledger.

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
from torch import nn

import bnlab
from bnlab.claims import DOES_NOT_HOLD, HOLDS, PARTLY, record
from bnlab.compare import compare_all
from bnlab.lessons.nb07_batchnorm_in_practice import experiments as ex
from bnlab.lessons.nb07_batchnorm_in_practice import figures as fg
from bnlab.exercises import compare_prediction
from bnlab.lessons.nb07_batchnorm_in_practice.checks import check_batch_norm_layer_2d, check_fold_batch_norm, \
    show_solution
from bnlab.lessons.nb07_batchnorm_in_practice.stacked import digit_images
from bnlab.statistics import OverSeeds, Support

SEED = bnlab.setup()
images = digit_images(SEED)
print(f"Course seed: {SEED}")


# %% [markdown]
# ## 1. A small convolutional network, with your own BN layer
#
# The network: three 3×3 convolutions with 8, 16 and 16 channels (the second one with stride 2, so the
# maps go 8×8 → 8×8 → 4×4 → 4×4), a ReLU after each, then **global average pooling** (the mean of each
# channel over its positions) and a linear layer to the 10 classes. With BN, each convolution is followed
# by a BN layer, before the ReLU, and loses its bias: $\beta$ does its job (notebook 04, section 2).
#
# A BN layer for feature maps computes one mean and one variance per channel, over the batch *and* the
# positions (notebook 04, section 6). The complete layer (your `MyBatchNorm` of notebook 04, which
# exercise 1 extends to feature maps) is bnlab's `BatchNorm` (`bnlab/batchnorm.py`): Algorithm 1 in
# training mode, running statistics with PyTorch's convention (`momentum = 0.1` is the weight of the *new*
# batch) and the unbiased variance, Algorithm 2 in eval mode, for (N, C) and (N, C, H, W) inputs. Is it
# really the same as PyTorch's `nn.BatchNorm2d`?
# Not just on one batch: we train two copies of the network, one with each layer, from the same weights on
# the same batches, in float64.
#
# **Predict first.** After 5 SGD steps, will the two networks agree, in training mode and in eval mode,
# and in their running statistics? To how many digits?

# %%
my_prediction = None  # write "yes" or "no" (do they agree in everything?) before you run the next cells

# %%
layer_match = compare_all(ex.match_layers(steps=5, seed=SEED), floor=1e-12)

# %%
# Check: the two layers agree in everything
assert all(layer_match.values())

# %%
compare_prediction(my_prediction, "yes" if all(layer_match.values()) else "no")

# %% [markdown]
# They agree to float64 rounding in everything: the running statistics of all three layers, the
# training-mode output and its gradient, and the eval-mode output. So the two layers are interchangeable.
# PyTorch's computes in one fused kernel, about twice as fast here, so the runs below use it for plain
# BN; bnlab's layer (and its extension `PartialBatchNorm`, in the lesson's `layers.py`) does the variants
# PyTorch does not have: centering or scaling only, and ghost batches.
#
# Now the question every BN paper starts with: does BN make this network train faster? The network
# without BN is not handicapped: He initialization keeps the signal's scale through the ReLU layers.
#
# The cell after next trains every run of this notebook at once: 29 settings of 8 networks each, side by
# side, one setting per CPU core; each later section looks its runs up.
#
# **Predict first.** Which network is ahead after 50 steps, in most seeds? (After 150 steps?)

# %%
my_prediction = None  # write "with BN", "without BN" or "neither" before you run the next cells

# %%
every_run = ex.train_all(ex.every_setting())         # every setting of the notebook, 8 seeds each
pair = ex.train_all(ex.with_and_without_bn())          # looked up: with and without BN
with_bn, without_bn = pair["with BN"], pair["without BN"]
early = OverSeeds(with_bn.seeds, with_bn.at(50).values - without_bn.at(50).values)  # paired by seed
final = ex.paired(with_bn, without_bn)
print("test accuracy, BN minus no BN seed by seed: at step 50, median above +3 points; at step 150, "
      "median above -2 points and less than half of what it was at step 50")

# %%
# Check: section 1's claim, over the 8 seeds
assert early.median > 0.03 and -0.02 < final.median < early.median / 2
record("bn-speeds-up-conv-training", holds=early.median > 0.03, support=early.support(early.values > 0),
       measured=f"BN minus plain (He init), paired by seed: {early.describe('{:+.1%}')} at step 50, "
                f"{final.describe('{:+.1%}')} at step 150")

# %%
compare_prediction(my_prediction, "with BN")

# %%
fg.accuracy_curves(pair, title=f"BN is ahead early (median {with_bn.at(50).median:.0%} vs "
                               f"{without_bn.at(50).median:.0%} at step 50); by step 150 the gap has shrunk")

# %% [markdown]
# With BN the network is ahead early, by several points at step 50 (the median over the seeds); by the end
# of the budget the plain network has made up most of the difference. On a network this shallow, with a
# fair initialization, BN's head start is the main gain, not a higher ceiling.
#
# ### What γ and β learned
#
# Each channel of a BN layer has its own $\gamma$ and $\beta$. Before a ReLU they have a simple meaning:
# if $\hat x$ were standard normal, the share of the channel's positions where the ReLU lets the signal
# through would be $P(\gamma\hat x + \beta > 0) = \Phi(\beta/|\gamma|)$, with $\Phi$ the normal
# distribution function. $\beta/|\gamma|$ sets how sparse each channel is.
#
# **Predict first.** Will the trained channels all pass about half of their values, or will they spread
# out? Will $\Phi(\beta/|\gamma|)$ predict the measured share?

# %%
my_prediction = None  # write "about half" or "spread out" before you run the next cells

# %%
shares = ex.active_share(with_bn, images.X_test)     # every channel of every layer of the 8 networks
agreement = np.corrcoef(shares["predicted"], shares["measured"])[0, 1]
typical_error = np.median(np.abs(shares["predicted"] - shares["measured"]))
print(f"{len(shares['gamma'])} channels; Φ(β/|γ|) against the measured share of active ReLUs: correlation "
      f"above 0.6, typical error below 0.1; from the sparsest channel to the densest, more than 0.4")

# %%
# Check: what γ and β set, over every channel of the 8 networks
assert agreement > 0.6 and typical_error < 0.1
assert np.ptp(shares["measured"]) > 0.4      # the channels do spread out

# %%
compare_prediction(my_prediction, "spread out" if np.ptp(shares["measured"]) > 0.4 else "about half")

# %%
fg.active_share_figure(shares, title=f"γ and β set each channel's share of active ReLUs "
                                     f"(correlation {agreement:.2f} with Φ(β/|γ|))")

# %% [markdown]
# The channels do not all sit at one half: training spread them out (more than 0.4 between the sparsest
# and the densest channel), and $\Phi(\beta/|\gamma|)$ predicts where each one ended up, imperfectly, because
# $\hat x$ is not exactly normal (section 2 looks at its shape). This is how BN keeps its "representation
# power" (paper, section 3): the normalization fixes mean and variance, and $\gamma$, $\beta$ choose each
# channel's operating point on the nonlinearity.

# %% [markdown]
# ## 2. Before or after the activation?
#
# The paper puts BN right after the convolution, before the nonlinearity, and argues for it (section
# 3.2): the layer input $u$ "is likely the output of another nonlinearity, [so] the shape of its
# distribution is likely to change during training", whereas $Wu + b$ "is more likely to have a
# symmetric, non-sparse distribution, that is 'more Gaussian'" (one of the learners' questions behind
# this course quotes it). Practice varies:
# many people put BN after the ReLU, and argue that it works as well or better. We measure the argument
# first, then run both.
#
# The argument is about distributions, so we look at them in the trained networks without BN (no BN to
# shape them): for layers 2 and 3, the input $u$ (the ReLU outputs of the layer below) and
# $Wu + b$, channel by channel over the test images, with two numbers that are 0 for a normal
# distribution: the skewness (asymmetry) and the excess kurtosis (heavy tails).
#
# **Predict first.** Which is the more skewed? What share of $u$ is exactly zero?

# %%
my_prediction = None  # write "u", "Wu + b" or "neither" (the more skewed) before you run the next cells

# %%
shape = ex.distribution_shape(without_bn, images.X_test)     # (8,) each: a median over channels per seed
skew_ratio = OverSeeds(without_bn.seeds, shape["|skew| Wu+b"] / shape["|skew| u"])
print("median |skewness| over the channels, in every seed: u above 1.5, Wu + b less than half of u's")
print("excess kurtosis, in every seed: larger for u than for Wu + b")
print("share of exact zeros in u, in every seed: between 35% and 70%")

# %%
# Check: the shape of u and of Wu + b, in every seed
assert shape["|skew| u"].min() > 1.5 and np.all(skew_ratio.values < 0.5)
assert np.all(shape["kurtosis Wu+b"] < shape["kurtosis u"])
assert 0.35 < shape["zeros in u"].min() and shape["zeros in u"].max() < 0.7
record("wu-plus-b-more-gaussian", holds=skew_ratio.support(skew_ratio.values < 0.5).at_least(0.75),
       support=skew_ratio.support(skew_ratio.values < 0.5),
       measured=f"median |skewness| u {np.median(shape['|skew| u']):.1f}, Wu+b {np.median(shape['|skew| Wu+b']):.2f}; "
                f"excess kurtosis u {np.median(shape['kurtosis u']):.0f}, Wu+b {np.median(shape['kurtosis Wu+b']):.1f}; "
                f"{np.median(shape['zeros in u']):.0%} of u exactly 0")

# %%
compare_prediction(my_prediction, "u")

# %%
u_values, wu_values = ex.channel_values(without_bn, images.X_test)
fg.shape_figure(u_values, wu_values, title="A ReLU output is a spike at zero and a long tail; Wu + b, a sum "
                                           "over many of them, is far closer to a bell")

# %% [markdown]
# The argument's premise holds, and clearly: $u$, a ReLU's output, is about half exact zeros with a long
# right tail (a skewness of several units); $Wu + b$, a weighted sum over 72 or 144 such values, is much
# closer to symmetric (its skewness several times smaller) and has far lighter tails. Normalizing the mean and variance of a symmetric, bell-shaped
# quantity describes it well; for $u$, two moments say little (notebook 04, section 5).
#
# Does that make BN before the ReLU train better? Now the runs: the conv net with BN before and after the
# ReLU, and the same for an MLP with two hidden layers of 64 units (all 64 pixels in).
#
# **Predict first.** Will BN before the ReLU beat BN after it by more than a point (the median over the
# seeds), in either architecture?

# %%
my_prediction = None  # write "yes" or "no" before you run the next cells

# %%
placed = ex.train_all(ex.placements())
after_minus_before = {kind: ex.paired(placed[f"{kind}, BN after ReLU"], placed[f"{kind}, BN before ReLU"])
                      for kind in ("conv", "MLP")}
for kind, difference in after_minus_before.items():
    print(f"{kind}: test accuracy, BN after the ReLU minus BN before it, seed by seed: median above -1 point")

# %%
# Check: the placement, in both architectures
assert all(difference.median > -0.01 for difference in after_minus_before.values())
before_wins = Support.of(np.concatenate([d.values < 0 for d in after_minus_before.values()]))
record("bn-before-activation-better", holds=DOES_NOT_HOLD, support=before_wins,
       measured="after minus before, paired by seed: conv "
                + after_minus_before["conv"].describe("{:+.1%}") + ", MLP "
                + after_minus_before["MLP"].describe("{:+.1%}"))

# %%
compare_prediction(my_prediction, "no" if all(d.median > -0.01 for d in after_minus_before.values()) else "yes")

# %%
fg.seed_dots({label: trained.final().values for label, trained in placed.items()},
             title="Final test accuracy of every seed (bar: the median), with BN before or after the ReLU, "
                   "and without", y_title="test accuracy after 150 steps")

# %% [markdown]
# The distribution argument is right about the distributions, yet here it does not decide the
# placement: BN after the ReLU trained as well as BN before it, or better, in both networks. After the ReLU,
# BN hands the next layer an input with mean 0 and variance 1, centred like a well-prepared input
# (notebook 01), and the convolution that follows sums many such values into a near-Gaussian
# $Wu + b$ anyway. So both placements are defensible; the paper's is the one that folds into the
# convolution at inference (section 4) and the one most published architectures use.

# %% [markdown]
# ## 3. Does BN regularize?
#
# The paper (section 3.4): "a training example is seen in conjunction with other examples in the
# mini-batch, and the training network no longer produces deterministic values for a given training
# example", which "we found to be advantageous to the generalization of the network", so that dropout
# can be reduced or removed. If BN regularizes, it should shrink the **train-test gap**: the training
# accuracy (eval mode, over the whole training set) minus the test accuracy. We measure the gap three
# ways, each at a fixed number of examples seen (9,000), so that no run simply trains longer:
# * **batch size**: batches of 20 (450 steps) and 60, with and without BN: smaller batches make each
#   example's normalization noisier (and the gradient too);
# * **ghost batches**: batches of 60, but BN normalizes each sub-batch of 4 examples on its own (Hoffer et
#   al. 2017): BN's noise changes, the gradient's does not;
# * **dropout**: dropout 0.3 on the pooled features, with and without BN.
#
# After each experiment, a live panel lets you try any other value: let go of its slider and the networks
# train at that value while you watch (3 seeds and a smaller budget than the 8-seed runs, so that a run
# takes about a second; the panel's caption gives its budget).
#
# **Predict first.** With batches of 20 and of 60, will the gap be smaller with BN, larger, or about the
# same (within a few points)?

# %%
my_prediction = None  # write "smaller", "larger" or "about the same" before you run the next cells

# %%
by_batch = ex.train_all(ex.batch_sizes((20, 60)))
gap = {(net, size): by_batch[net, size].final("gap") for net, size in by_batch}
gap_difference = {size: ex.paired(by_batch["with BN", size], by_batch["without BN", size], "gap")
                  for size in (20, 60)}
small_batch_gain = ex.paired(by_batch["with BN", 20], by_batch["without BN", 20])
print("every train-test gap (median over the seeds) below 8 points")
print("gap with BN minus gap without, seed by seed: median between -2.5 and +2.5 points at both batch sizes")
print("batches of 20: test accuracy with BN minus without: median above +2 points")

# %%
# Check: the train-test gap with and without BN, at both batch sizes
assert all(gap[key].median < 0.08 for key in gap)        # every gap is small: a few points at most
assert all(abs(difference.median) < 0.025 for difference in gap_difference.values())
assert small_batch_gain.median > 0.02
smaller_gap = Support.of(np.concatenate([d.values < 0 for d in gap_difference.values()]))
record("bn-regularizes", holds=DOES_NOT_HOLD, support=smaller_gap,
       measured="train-test gap with BN minus without, paired: batches of 20 "
                + gap_difference[20].describe("{:+.1%}") + ", of 60 " + gap_difference[60].describe("{:+.1%}")
                + f"; gaps with BN {gap['with BN', 60].describe('{:.1%}')} at 60")

# %%
compare_prediction(my_prediction, "about the same")

# %% [markdown]
# Now any batch size, live: both networks see the same number of examples at every batch size (fewer for
# the smallest batches, which would otherwise need thousands of steps). Try 2, 23 and 512.

# %%
batch_panel = fg.batch_size_panel(ex.train_all(ex.live_batch_size(60)))
batch_panel

# %% [markdown]
# Now ghost batches: the same batches of 60, normalized in sub-batches.
#
# **Predict first.** Will ghost batches of 4 raise the test accuracy (by a point or more, the median over
# the seeds)?

# %%
my_prediction = None  # write "yes" or "no" before you run the next cells

# %%
ghosts = ex.train_all(ex.ghost_batches())
ghost_gap = {size: trained.final("gap") for size, trained in ghosts.items()}
four_vs_full = ex.paired(ghosts[4], ghosts[60])
print("test accuracy, ghost batches of 4 minus plain BN over 60, seed by seed: median below +1 point")

# %%
# Check: ghost batches of 4 against plain BN
assert four_vs_full.median < 0.01                      # no gain from normalizing in fours here
record("ghost-batches-regularize", holds=DOES_NOT_HOLD, support=four_vs_full.support(four_vs_full.values > 0),
       measured="test accuracy, ghost batches of 4 minus plain BN (60), paired: " + four_vs_full.describe("{:+.1%}")
                + "; gap at 4 " + ghost_gap[4].describe("{:.1%}") + ", at 60 " + ghost_gap[60].describe("{:.1%}"))

# %%
compare_prediction(my_prediction, "no")

# %% [markdown]
# Any ghost batch size from 2 to 60, live (60 is ordinary BN; a size that does not divide 60, such as 16,
# leaves a smaller last sub-batch):

# %%
ghost_panel = fg.ghost_size_panel(ex.train_all(ex.live_ghost_size(60)))
ghost_panel

# %% [markdown]
# And dropout, with and without BN.
#
# **Predict first.** Will dropout 0.3 raise the test accuracy of the network with BN?

# %%
my_prediction = None  # write "yes" or "no" before you run the next cells

# %%
dropped = ex.train_all(ex.dropout_grid())
dropout_cost = {net: ex.paired(dropped[with_dropout], dropped[without_dropout])
                for net, (with_dropout, without_dropout) in {"with BN": ("BN and dropout", "BN"),
                                                             "without BN": ("dropout", "neither")}.items()}
print("test accuracy with dropout 0.3 minus without, seed by seed: median below 0, with BN and without")

# %%
# Check: dropout's cost, with BN and without
assert dropout_cost["with BN"].median < 0 and dropout_cost["without BN"].median < 0
record("bn-reduces-need-for-dropout", holds=HOLDS,
       support=dropout_cost["with BN"].support(dropout_cost["with BN"].values <= 0.005),
       measured="test accuracy with dropout 0.3 minus without, paired: with BN "
                + dropout_cost["with BN"].describe("{:+.1%}") + ", without BN "
                + dropout_cost["without BN"].describe("{:+.1%}"))

# %%
compare_prediction(my_prediction, "no")

# %% [markdown]
# Any dropout rate from 0 to 0.8, live:

# %%
dropout_panel = fg.dropout_panel(ex.train_all(ex.live_dropout(0.0)))
dropout_panel

# %% [markdown]
# What the three experiments say, for this network and budget:
# * **The gaps are small everywhere**, a few points: 9,000 examples of an easy task do not give a network
#   of about 3,700 weights much room to overfit. BN does not shrink the gap reliably: the seeds split.
#   Where BN gains test accuracy, it gains it on the training set too: it trains faster, it does not
#   generalize better.
# * **Ghost batches of 4** make BN's noise much larger, and do not raise the test accuracy (the median
#   change, seed by seed, stays below +1 point). The regularization that Hoffer et al. report for large-batch
#   training does not appear at this scale.
# * **Dropout** lowers the test accuracy with BN and without: this network is not overfitting, so there
#   is nothing for dropout to fix, and with BN you can leave it out at no cost, as the paper advises.
#
# So "BN regularizes" is not something to count on. It is a side effect of batch noise that shows on
# large networks trained long enough to overfit; here, the train-test gap is not where BN's benefit lies.

# %% [markdown]
# ## 4. Folding BN into the convolution
#
# In eval mode a BN layer is a fixed affine map per channel (notebook 04, section 4):
# $y = a_c z + (\beta_c - a_c\,\mu_c)$ with $a_c = \gamma_c/\sqrt{\sigma_c^2 + \epsilon}$, where $\mu_c$,
# $\sigma_c^2$ are the running statistics. If $z = W * x + b$ is a convolution, then
# $$y = (a_c W_c) * x + a_c (b_c - \mu_c) + \beta_c :$$
# one convolution with weights $a_c W_c$ and bias $a_c(b_c - \mu_c) + \beta_c$ computes both layers.
# Deployed networks do this: the BN layers disappear at inference. (It works because BN sits right
# after the convolution; BN after the ReLU does not fold into the convolution before it.)
#
# **Predict first.** Will the folded network give exactly the same logits? Will it be faster, for one
# pass over the 450 test images?

# %%
my_prediction = None  # write "yes" or "no" (faster?) before you run the next cells

# %%
folded = ex.folding(with_bn, images.X_test)            # each of the 8 networks, on its own (one thread)
relative = folded["largest difference"] / folded["logit scale"]
speed_up = OverSeeds(with_bn.seeds, folded["speed-up"])
print("folded vs with BN, eval mode, every seed: largest logit difference below 1e-5 of the largest logit "
      "(float32 rounding)")
print("one pass over the test images: the folded network is faster (median speed-up above 1.1)")

# %%
# Check: folding changes nothing but the speed
assert np.all(relative < 1e-5) and speed_up.median > 1.1
record("bn-folds-into-conv", holds=bool(np.all(relative < 1e-5)) and speed_up.median > 1.1,
       support=speed_up.support((relative < 1e-5) & (speed_up.values > 1)),
       measured=f"largest |logit difference| / largest |logit| {relative.max():.0e}; speed-up per pass "
                f"{speed_up.describe('{:.2f}×')}")

# %%
compare_prediction(my_prediction, "yes" if speed_up.median > 1.1 else "no")

# %% [markdown]
# The same outputs up to float32 rounding, and the folded network is faster: a BN layer in eval mode is
# one more pass over every feature map, and for a network this small it is a large share of the work.
# Exercise 2 asks you to write the folding yourself.

# %% [markdown]
# ## 5. Taking BN apart
#
# BN does three things: it subtracts the mean, divides by the standard deviation, and applies $\gamma$
# and $\beta$. Which of them matter? Each variant below is one run of 8 seeds (bnlab's
# `PartialBatchNorm` does the first two):
# * **centering only**: $y = \gamma(x - \mu_B) + \beta$;
# * **scaling only**: $y = \gamma x/\sqrt{\sigma_B^2 + \epsilon} + \beta$ (the convolution keeps its bias);
# * **no γ, β**: $\gamma = 1$ and $\beta = 0$, fixed;
# * **BN in layer 1 only** (the other convolutions keep their biases);
# * and **no BN** at all, for reference.
#
# **Predict first.** Which loses more against full BN: scaling only, or no $\gamma$, $\beta$?

# %%
my_prediction = None  # write "scaling only" or "no γ, β" before you run the next cells

# %%
parts = ex.train_all(ex.ablations())
versus_full = {label: ex.paired(trained, parts["full BN"]) for label, trained in parts.items() if label != "full BN"}
no_affine = versus_full["no γ, β"]
print("test accuracy minus full BN, seed by seed: scaling only, median below -1 point; no γ, β, median "
      "between -3 and +1.5 points")

# %%
# Check: BN's parts against full BN
assert versus_full["scaling only"].median < -0.01 and -0.03 < no_affine.median < 0.015
record("gamma-beta-needed", holds=PARTLY, support=no_affine.support(no_affine.values < 0),
       measured="test accuracy minus full BN, paired: " + "; ".join(
           f"{label} {difference.describe('{:+.1%}')}" for label, difference in versus_full.items()))

# %%
compare_prediction(my_prediction, min(("scaling only", "no γ, β"), key=lambda label: versus_full[label].median))

# %%
fg.seed_dots({label: trained.final().values for label, trained in parts.items()},
             title="Final test accuracy of every seed: each part of BN, and BN in one layer only",
             y_title="test accuracy after 150 steps")

# %% [markdown]
# Scaling alone is clearly behind full BN, by a few points (median). Centering alone and BN in the first
# layer only land in between, and vary from seed to seed. Without $\gamma$ and $\beta$ the network still
# trains, level with full BN or a little behind: with a ReLU after every BN, $\beta$ is what lets a
# channel be sparser or denser than half (section 1), and on this task that matters less than one might
# expect. So the paper's argument for $\gamma$ and $\beta$ (keep the layer's power to represent) is
# sound, but here it buys little accuracy. The parts work together: the division by $\sigma_B$ makes the layer immune to the scale of the
# weights (notebook 05, section 3), the subtraction of $\mu_B$ removes the drift of the mean, and
# $\gamma$, $\beta$ give back what the two took away.

# %% [markdown]
# ## 6. BN and weight decay
#
# Notebook 06 (section 4) showed that BN makes the loss blind to the scale of the weights before it:
# $L(aW) = L(W)$, so the gradient is orthogonal to $W$, and plain SGD can only make $\lVert W\rVert$ grow;
# what the direction of $W$ sees is an **effective learning rate** $\eta/\lVert W\rVert^2$, which falls
# as the weights grow. Add L2 weight decay, $W \leftarrow W - \eta(\nabla L + \lambda W)$: it cannot
# change what the network computes (the scale does not matter), but it shrinks $\lVert W\rVert$, until the
# shrinking and the gradient's growth balance. With BN, weight decay **sets the effective learning rate**
# instead of limiting the network (van Laarhoven 2017; Zhang et al. 2019).
#
# We train the BN network with weight decay $\lambda = 0.005$ on the convolutions' weights (not on
# $\gamma$, $\beta$) and follow the norm of the second convolution's weights.
#
# **Predict first.** Without weight decay, $\lVert W\rVert$ can only grow. With $\lambda = 0.005$, does it
# grow or shrink over the run?

# %%
my_prediction = None  # write "grow" or "shrink" before you run the next cells

# %%
decays = ex.train_all(ex.weight_decays())
norm_change = {decay: OverSeeds(trained.seeds, trained.weight_norms["conv2"][:, -1] / trained.weight_norms["conv2"][:, 0])
               for decay, trained in decays.items()}
late_change = {decay: OverSeeds(trained.seeds, trained.weight_norms["conv2"][:, 4] / trained.weight_norms["conv2"][:, 2])
               for decay, trained in decays.items()}   # from step 50 to step 100
effective = {decay: OverSeeds(trained.seeds, ex.effective_learning_rate(trained)[:, -1])
             for decay, trained in decays.items()}
decay_cost = ex.paired(decays[ex.WEIGHT_DECAY], decays[0.0])
print(f"in every seed: without weight decay |W| grows by more than 10%; with λ = {ex.WEIGHT_DECAY:g} it "
      "shrinks by more than 5%, and the effective learning rate ends above its start")
print(f"with λ = {ex.WEIGHT_DECAY:g}: |W| from step 50 to step 100 changes by less than 3% (median)")
print(f"test accuracy with λ = {ex.WEIGHT_DECAY:g} minus without, seed by seed: median below 0")

# %%
# Check: weight decay under BN, in every seed
assert np.all(norm_change[0.0].values > 1.1) and np.all(norm_change[ex.WEIGHT_DECAY].values < 0.95)
assert np.all(effective[ex.WEIGHT_DECAY].values > 1)
assert decays[ex.WEIGHT_DECAY].steps[[2, 4]].tolist() == [50, 100] and abs(late_change[ex.WEIGHT_DECAY].median - 1) < 0.03
assert decay_cost.median < 0
record("l2-sets-effective-learning-rate", holds=HOLDS,
       support=effective[ex.WEIGHT_DECAY].support(effective[ex.WEIGHT_DECAY].values > 1),
       measured=f"|W2| end/start: {norm_change[0.0].describe('{:.2f}')} without L2, "
                f"{norm_change[ex.WEIGHT_DECAY].describe('{:.2f}')} with λ = {ex.WEIGHT_DECAY:g} (step 50 to 100 "
                f"{late_change[ex.WEIGHT_DECAY].describe('{:.2f}')}); effective lr end/start "
                f"{effective[ex.WEIGHT_DECAY].describe('{:.1f}')}; test accuracy minus without L2 "
                + decay_cost.describe("{:+.1%}"))

# %%
compare_prediction(my_prediction, "shrink")

# %% [markdown]
# The panel trains the BN network live at any weight decay from `1e-4` to `0.05` (the run without weight
# decay stays dashed, for reference):

# %%
decay_panel = fg.weight_decay_panel({decay: ex.train_all(ex.live_weight_decay(decay))["with BN"]
                                     for decay in (ex.WEIGHT_DECAY, 0.0)})
decay_panel

# %% [markdown]
# Without weight decay the weights grow and the effective learning rate falls, as notebook 06 found.
# With it, the norm shrinks instead, pulled in by the decay and pushed out by the gradient; for a while
# (steps 50 to 100 here) the two nearly balance. And the effective learning rate *rises*: weight decay made the steps larger, not the network simpler. That is why tuning weight decay
# on a BN network behaves like tuning the learning rate, and why too much of it hurts: here it cost test
# accuracy (the median over the seeds), with a wide spread from seed to seed.
# The paper's recipe (section 4.2.1) reduces the L2 weight by 5 when it adds BN: the next section tries it.

# %% [markdown]
# ## 7. The paper's recipe for BN networks
#
# Adding BN was only half of what the paper did to train faster. Its section 4.2.1 also changed the
# training: "increase learning rate", "remove dropout", "reduce the L2 weight regularization" (by 5),
# "accelerate the learning rate decay" (6 times faster), and three changes with no counterpart here
# (remove local response normalization, shuffle the training examples more thoroughly, reduce the
# photometric distortions). Do the four that apply pay off on the digits, and is it BN that makes them pay?
#
# The experiment runs on the MLP of section 2 (two hidden layers of 64 units, BN before each ReLU): it
# needs 64 networks, and eight MLPs cost about what one conv net does. Each run is 150 steps of batches
# of 60, over the 8 seeds:
# * the BN network with the **no-BN settings**, what one would use for a network without BN: a lower
#   learning rate, dropout on the last hidden layer, L2 weight decay, and a learning rate that decays
#   exponentially to half its start over the run;
# * each change of the recipe alone: the learning rate ×5 (the paper's "BN-x5"), no dropout, L2 ÷5, and
#   the decay 6× faster (the same exponential at 6 times the rate: the learning rate ends at 1/64 of its
#   start);
# * all four changes together;
# * and, to tell which effect is BN's, the same MLP **without BN** (He init) with the no-BN settings and
#   with all four.
#
# **Predict first.** Which single change helps the BN network most?

# %%
my_prediction = None  # write "learning rate ×5", "no dropout", "L2 ÷5" or "decay 6× faster" before you run on

# %%
recipe = ex.train_all(ex.recipe())
for label, trained in recipe.items():
    print(f"{label:>28}: {ex.describe_training(trained.setting)}")
rows = ex.recipe_table(recipe)
change = {row["label"]: row["change"] for row in rows if row["change"] is not None}  # minus the no-BN settings
bn_minus_plain = ex.paired(recipe[ex.ALL_FOUR], recipe[f"without BN, {ex.ALL_FOUR}"])
print("\ntest accuracy of the BN network minus with the no-BN settings, seed by seed (median):")
print("  learning rate ×5 above +0.5 points; decay 6× faster alone below -3 points;")
print("  no dropout and L2 ÷5 within 1.5 points of 0; all four together above 0, and below the learning rate "
      "×5 alone")
print("all four: the MLP with BN minus the MLP without BN, seed by seed: median within 1.5 points of 0")

# %%
# Check: the recipe's parts, over the 8 seeds
assert change["learning rate ×5"].median > 0.005 and change["decay 6× faster"].median < -0.03
assert abs(change["no dropout"].median) < 0.015 and abs(change["L2 ÷5"].median) < 0.015
assert 0 < change[ex.ALL_FOUR].median < change["learning rate ×5"].median and abs(bn_minus_plain.median) < 0.015
every_part_helps = all(change[label].median > 0.005 for label in ex.RECIPE)
record("bn-recipe-improves-training", holds=HOLDS if every_part_helps else PARTLY,
       support=change[ex.ALL_FOUR].support(change[ex.ALL_FOUR].values > 0),
       measured="MLP with BN, 150 steps, test accuracy minus with the no-BN settings, paired: "
                + "; ".join(f"{label} {change[label].describe('{:+.1%}')}" for label in [*ex.RECIPE, ex.ALL_FOUR])
                + f"; all four, BN minus no BN (He) {bn_minus_plain.describe('{:+.1%}')}")

# %%
compare_prediction(my_prediction, max(ex.RECIPE, key=lambda label: change[label].median))

# %%
fg.recipe_table_figure(rows, title="The paper's recipe on the MLP, 150 steps: each change alone and all four")

# %% [markdown]
# What holds here, seed by seed:
# * The **higher learning rate** is the change that pays, by a point or two.
# * **No dropout** and **less L2** change little either way: on a network that does not overfit (section 3)
#   there is little for them to do, and little to lose by dropping them.
# * The **faster decay alone hurts**, by several points: it shrinks a learning rate that was low already,
#   and the network runs out of steps. The paper sped up the decay *because* its BN network learned
#   faster at a higher learning rate; the two changes go together.
# * **All four together** beat the no-BN settings, but by less than the higher learning rate alone
#   (the table): dropout and L2 do little, so the difference is the faster decay's.
# * **The MLP without BN, trained with the same four changes, does as well as the MLP with BN** (within
#   a point or so): a shallow network with He initialization takes the higher learning rate too, so here
#   the recipe is good advice for training in general, not something BN makes possible. On the paper's
#   deep Inception network the higher learning rates came with BN (notebook 05, section 2, measures BN's
#   tolerance of high learning rates on the digits).

# %% [markdown]
# ## 8. Fine-tuning with tiny batches
#
# A common situation: a trained network, a new task with only a few labelled examples, and memory for
# small batches only. Our new task: the digits from "another scanner", moved one pixel right and down and
# at 60% of the contrast, with 10 labelled images per class. We fine-tune the 8 networks of section 1 for
# 100 steps with batches of **4** (learning rate 0.003), three ways:
# * **live** statistics: BN in training mode, as in training: each batch of 4 is normalized with its own
#   statistics, and the running statistics follow those tiny batches;
# * **frozen** statistics: BN in eval mode while training: the running statistics of the original task
#   normalize everything and never change (the usual advice for tiny batches);
# * **recalibrated, then frozen**: the running statistics first recomputed on the new task's 100 images
#   (one pass, no training; Li et al. 2016 call it AdaBN), then frozen.
#
# **Predict first.** Which one ends best? What does recalibrating alone, without any training, give?

# %%
my_prediction = None  # write "live", "frozen" or "recalibrated, then frozen" before you run the next cells

# %%
contrast = 0.6
task = ex.shifted_digits(images, per_class=10, seed=SEED, contrast=contrast)
print(f"the new task: {len(task.y_train)} labelled images, moved one pixel, at {contrast:.0%} of the contrast")
untouched = OverSeeds(with_bn.seeds, ex.accuracy(with_bn.stacked(), task.X_test, task.y_test))
recalibrated_only = OverSeeds(with_bn.seeds, ex.accuracy(ex.recalibrated(with_bn, task), task.X_test, task.y_test))
tuned = ex.fine_tune_all(with_bn, task, steps=100, lr=0.003)      # live, frozen, recalibrated: side by side
frozen_minus_live = ex.paired(tuned["frozen"], tuned["live"])
print("new task, every seed: below 50% before fine-tuning, and with recalibrated statistics alone")
print("fine-tuned with live statistics: median above 70%; both frozen variants minus live, seed by seed: "
      "median below 0")

# %%
# Check: fine-tuning with live and frozen statistics, over the 8 seeds
assert np.all(untouched.values < 0.5) and np.all(recalibrated_only.values < 0.5)
assert tuned["live"].final().median > 0.7
assert all(ex.paired(tuned[s], tuned["live"]).median < 0 for s in ex.FINE_TUNING[1:])
record("freeze-bn-when-fine-tuning-small-batches", holds=DOES_NOT_HOLD,
       support=frozen_minus_live.support(frozen_minus_live.values > 0),
       measured="new-task test accuracy: " + "; ".join(f"{s} {t.final().describe('{:.0%}')}" for s, t in tuned.items())
                + f"; no fine-tuning {untouched.describe('{:.0%}')}, recalibrated only "
                + recalibrated_only.describe("{:.0%}"))

# %%
compare_prediction(my_prediction, "live")

# %%
fg.seed_dots({"no fine-tuning": untouched.values, "recalibrated only": recalibrated_only.values,
              **{f"{statistics} statistics": trained.final().values for statistics, trained in tuned.items()}},
             title="Fine-tuning with batches of 4 on a shifted task: live statistics win here",
             y_title="test accuracy on the new task")

# %% [markdown]
# Here the advice to freeze fails: the new task's inputs have other statistics, and frozen statistics
# keep describing the old ones, in every layer; recalibrating them first does not rescue them, because the
# weights move during fine-tuning and the frozen statistics go stale again. Live statistics follow both the data and
# the weights, and batches of 4 are enough here because a convolutional BN averages over positions too
# ($4 \times 64$ values per channel in the first layer). The advice to freeze is right when the new data
# look like the old and the batches are too small to estimate anything (a BN in a fully connected layer,
# batches of 2): then frozen statistics are better estimates than any tiny batch. So: **freeze the
# statistics when they still describe the data; if the input distribution moved, recalibrate or keep them
# live.**
#
# **The common bug.** Many people "freeze" BN by switching off the gradients of $\gamma$ and $\beta$. That
# freezes the parameters, not the statistics: they are buffers, updated by every forward pass in training
# mode.

# %%
network = with_bn.member(0).train()
for norm in network.normalization_layers:
    norm.weight.requires_grad_(False), norm.bias.requires_grad_(False)      # "freezing" BN, or so it seems
before = network.normalization_layers[0].running_mean.clone()
network(task.X_train[:4])                                                  # one forward pass, batch of 4
moved = not torch.equal(network.normalization_layers[0].running_mean, before)
print(f"after one forward pass in training mode, with γ and β frozen: running statistics changed: {moved}")

# %%
# Check: the bug is real
assert moved

# %% [markdown]
# To freeze the statistics, put the BN layers in eval mode, after every `model.train()` call (which sets
# them back to training mode):
# ```python
# model.train()
# for module in model.modules():
#     if isinstance(module, nn.modules.batchnorm._BatchNorm):
#         module.eval()
# ```

# %% [markdown]
# ## 9. Which normalization should I use?
#
# BN is not the only normalization. LayerNorm (Ba et al. 2016) normalizes each example over all its
# channels and positions, GroupNorm (Wu & He 2018) over groups of channels (here, 4 channels per group):
# neither depends on the batch (notebook 06, section 6). We train the conv net and the MLP with each, at
# batches of 60 and of 4, for the same 150 steps (so the runs with batches of 4 see 600 examples).
#
# **Predict first.** With batches of 4, will GroupNorm beat BN in the conv net, as it does in an MLP?

# %%
my_prediction = None  # write "yes" or "no" before you run the next cells

# %%
grid = ex.train_all(ex.normalization_grid())
table = ex.summary_table(grid)
small = {kind: ex.paired(grid[kind, ex.SMALL_BATCH, "GroupNorm"], grid[kind, ex.SMALL_BATCH, "BN"])
         for kind in ("conv", "mlp")}
print("batches of 4, GroupNorm minus BN, seed by seed: conv net, median below -10 points; MLP, median above 0")
print("batches of 60: BN's median within 2 points of the best of its row, in both networks")

# %%
# Check: the normalizations by architecture and batch size, over the 8 seeds
assert small["conv"].median < -0.1 < 0 < small["mlp"].median
assert all("BN" in table[kind, 60]["best"] for kind in ("conv", "mlp"))
gn_wins = Support.of(np.concatenate([d.values > 0 for d in small.values()]))
record("groupnorm-for-small-batches", holds=PARTLY, support=gn_wins,
       measured="batches of 4, GroupNorm minus BN, paired: conv net " + small["conv"].describe("{:+.0%}")
                + ", MLP " + small["mlp"].describe("{:+.0%}"))

# %%
compare_prediction(my_prediction, "no")

# %%
fg.normalization_table_figure(table, title="Median test accuracy over 8 seeds (bold: within 2 points of "
                                           "the best of its row)")

# %% [markdown]
# The table, computed from the runs above (bold marks the best of each row, within two points):
# * **Batches of 60:** BN is the best or close to it in both networks; LayerNorm and GroupNorm train too.
# * **Batches of 4, MLP:** BN's statistics over 4 values per unit are too noisy; GroupNorm, which does
#   not look at the batch, does better.
# * **Batches of 4, conv net:** BN still wins. Its statistics run over the batch *and* the positions: 256
#   values per channel in the first layer. "BN needs large batches" is really "BN needs many values per
#   channel".
#
# So: **BN for convolutional networks with batches of a reasonable size; GroupNorm (or LayerNorm) when the
# batch holds too few values per channel, as in fully connected layers with tiny batches; and with batch
# statistics you do not trust, fine-tuning included, the eval-mode rules of section 8.**

# %% [markdown]
# ## 10. Exercises
#
# **Exercise 1: your BN layer, for feature maps.** Notebook 04's exercise 3 built `MyBatchNorm` for (N, C)
# inputs: in **training mode** it normalizes with the batch's mean and biased variance and updates
# `running_mean` and `running_var` with PyTorch's convention; in **eval mode** it normalizes with the
# running statistics and changes nothing. A convolutional network feeds it feature maps (N, C, H, W), and
# there a channel has one mean and one variance over N, H **and** W (notebook 04, section 6): m = N·H·W
# values, also in the $m/(m-1)$ of the stored variance. Paste your `forward` from notebook 04 below and
# extend it so that it takes both layouts: reduce over every dimension but dimension 1 and reshape the
# statistics to (1, C, 1, 1) to broadcast against a map (or see a map as N·H·W rows of C values). The check
# compares your layer with `nn.BatchNorm1d` on (N, C) inputs and `nn.BatchNorm2d` on feature maps, over
# three training batches, two momentums and eval mode.

# %%
class MyBatchNorm(nn.Module):
    """Batch Normalization for (N, C) and (N, C, H, W) inputs, with running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        raise NotImplementedError  # replace this line with your code


check_batch_norm_layer_2d(MyBatchNorm)

# %% [markdown]
# **Exercise 2: fold BN into the convolution.** Write `fold_batch_norm(weight, bias, gamma, beta,
# running_mean, running_var, eps)`: given a convolution's `weight` (C_out, C_in, k, k) and `bias` (C_out,)
# and an eval-mode BN layer after it (its parameters and running statistics, each (C_out,)), return the
# `(weight, bias)` of one convolution that computes both (section 4's formula).

# %%
def fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """(weight, bias) of one convolution equal to conv(weight, bias) followed by eval-mode BN."""
    raise NotImplementedError  # replace this line with your code


check_fold_batch_norm(fold_batch_norm)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("batch_norm_layer_2d")
# show_solution("fold_batch_norm")

# %% [markdown]
# ## Summary
# * **Conv nets:** BN for feature maps is notebook 04's layer with statistics per channel over the batch
#   and the positions; bnlab's layer and `nn.BatchNorm2d` agree to float64 rounding in training and eval
#   mode after training steps. On our 3-layer conv net BN gave a clear head start over a He-initialized
#   plain network, most of which the plain network made up by the end of the budget. $\gamma$ and $\beta$
#   set each channel's share of active ReLUs, roughly $\Phi(\beta/|\gamma|)$.
# * **Before or after the ReLU:** $Wu + b$ is far more symmetric than $u$, as the paper argues, yet BN
#   after the ReLU trained at least as well here. BN before the ReLU is the placement that folds into the
#   convolution.
# * **Regularization:** the train-test gap was a few points with or without BN, and BN did not shrink it;
#   ghost batches of 4 did not raise the test accuracy; dropout lowered it, with BN and without. BN's gain
#   here is speed, not generalization. The live panels train any batch size, ghost batch size and dropout
#   rate.
# * **Deployment:** folding BN into the convolution gives the same logits to float32 rounding, and a
#   faster network.
# * **Parts:** scaling alone fell clearly short of full BN; without $\gamma$ and $\beta$ the network
#   stayed within a few points of it; one BN layer gave part of the benefit.
# * **Weight decay:** with BN it does not constrain the network; it shrinks the weights and raises the
#   effective learning rate.
# * **The paper's recipe:** of its four changes, the higher learning rate paid; no dropout and less L2
#   changed little; the faster decay alone hurt, and belongs with the higher learning rate. Together they
#   helped, and the MLP without BN, trained the same way, did as well: on a shallow, He-initialized
#   network the recipe is not BN's.
# * **Fine-tuning with batches of 4:** on a shifted task, live statistics beat frozen ones; freezing is
#   for data the statistics still describe. Freezing $\gamma$ and $\beta$ does not freeze the statistics.
# * **Which normalization:** BN for conv nets, even with batches of 4 (many values per channel);
#   GroupNorm or LayerNorm for fully connected layers with tiny batches.
#
# **Next:** [08 · BN across processes](08_batchnorm_across_processes.ipynb) trains with BN on several
# processes at once, where each one sees only part of the batch. The map of the series is in [00 · Start here](00_start_here.ipynb), and
# every claim tested in the course is in the [claims ledger](claims_ledger.md).
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167): section 3.2
#   (convolutional BN, the placement), section 3.4 (regularization) and section 4.2.1 (the recipe for BN
#   networks).
# * K. He, X. Zhang, S. Ren and J. Sun (2015). *Delving Deep into Rectifiers.* ICCV.
#   [arXiv:1502.01852](https://arxiv.org/abs/1502.01852) (He initialization).
# * E. Hoffer, I. Hubara and D. Soudry (2017). *Train longer, generalize better: closing the generalization
#   gap in large batch training of neural networks.* NeurIPS. [arXiv:1705.08741](https://arxiv.org/abs/1705.08741)
#   (ghost batch normalization).
# * T. van Laarhoven (2017). *L2 Regularization versus Batch and Weight Normalization.*
#   [arXiv:1706.05350](https://arxiv.org/abs/1706.05350).
# * G. Zhang, C. Wang, B. Xu and R. Grosse (2019). *Three Mechanisms of Weight Decay Regularization.* ICLR.
#   [arXiv:1810.12281](https://arxiv.org/abs/1810.12281).
# * Y. Li, N. Wang, J. Shi, J. Liu and X. Hou (2016). *Revisiting Batch Normalization For Practical Domain
#   Adaptation.* [arXiv:1603.04779](https://arxiv.org/abs/1603.04779) (AdaBN: recomputed statistics).
# * Y. Wu and J. Johnson (2021). *Rethinking "Batch" in BatchNorm.*
#   [arXiv:2105.07576](https://arxiv.org/abs/2105.07576) (frozen statistics, precise BN, batch sizes).
# * Y. Wu and K. He (2018). *Group Normalization.* ECCV. [arXiv:1803.08494](https://arxiv.org/abs/1803.08494).
# * J. L. Ba, J. R. Kiros and G. E. Hinton (2016). *Layer Normalization.*
#   [arXiv:1607.06450](https://arxiv.org/abs/1607.06450).
# * PyTorch documentation, [`torch.nn.BatchNorm2d`](https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html)
#   and the `torch.ao.quantization` helpers that fuse convolution and BN for deployment.
