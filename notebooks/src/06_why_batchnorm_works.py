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
# 1,347 training digits). One trained network is one draw: another seed (other initial weights, another
# order of the mini-batches) gives other numbers. So every claim below is measured over **8 networks per
# setting, trained from 8 seeds**, and stated as a statistic over them: in how many seeds it held, and
# the median with the range the seeds span. Figures show every seed (a dot each, or the median as a line
# with the range shaded); the sliders show the runs of one seed. All networks are trained once, at the
# start, and shared between sections.

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
from bnlab.claims import outcome_of, record
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
    noisy_accuracy_figure,
    normalization_accuracy_figure,
    normalization_panel,
    pitfalls_figure,
    weight_norm_figure,
)
from bnlab.seeding import claim_seeds
from bnlab.statistics import OverSeeds, Support, seed_range

SEED = bnlab.setup()
SEEDS = claim_seeds()  # the network seeds every claim is measured over
print(f"Course seed: {SEED}; claims measured over {len(SEEDS)} networks per setting ({seed_range(SEEDS)})")
data = wb.digits(SEED)

# %% [markdown]
# The budget: 11 settings × 8 seeds = 88 networks of 240 steps. The networks without normalization and
# with BN train together in batched ensembles (`bnlab.ensemble`), the others (noisy BN, LayerNorm,
# GroupNorm) one by one with the course's training loop; both side by side on the computer's cores. On a
# 2-core laptop this takes a few seconds.

# %%
runs = wb.train_over_seeds(wb.claim_runs(), SEEDS)  # Run -> one Trained (history, network) per seed

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
# the noise's average, $(1 + \ell/2)\,x$.) We train four networks, each under the 8 seeds: without BN,
# with BN, noisy BN, and the network without BN with the same noise after each linear layer, at noise
# levels 2 and 4.
#
# **Predict before you run.** At noise level 2, the mean of a unit's input jumps by about 1.3 at every
# step. Will noisy BN train better or worse than the clean network without BN?

# %%
accuracy = wb.noisy_accuracies(runs, SEEDS)  # noise level -> network -> test accuracy at the end, per seed
plain, bn = accuracy[0.0]["without BN"], accuracy[0.0]["with BN"]
noisy_bn, noisy_plain = (accuracy[wb.NOISE_LEVEL][label] for label in ("noisy BN", "without BN + noise"))
strong_bn, strong_plain = (accuracy[wb.STRONG_NOISE][label] for label in ("noisy BN", "without BN + noise"))
at_level = {label: [one.network for one in runs[wb.noisy_run(label, wb.NOISE_LEVEL)]] for label in wb.NOISY}
shift = wb.step_shifts(at_level, SEEDS, data)  # how far one SGD step moves the inputs of layer 3, per seed
unsteadier = wb.ratio(shift["noisy BN"], shift["without BN"])
failed = strong_plain.support(strong_plain.values < 0.2)  # diverged (accuracy 0) or learned nothing
noisy_bn_diverged = Support.of([one.history.diverged for level in wb.NOISE_LEVELS[1:]
                                for one in runs[wb.noisy_run("noisy BN", level)]])
print(f"test accuracy at the end of training (mean over steps 160-240), {len(SEEDS)} seeds:")
print(f"  noise level {wb.NOISE_LEVEL:g}: noisy BN above the same noise without BN in "
      f"{wb.above(noisy_bn, noisy_plain, 0.005)}, above the clean network without BN in "
      f"{wb.above(noisy_bn, plain)}")
print(f"  noise level {wb.STRONG_NOISE:g}: the same noise without BN failed (diverged, or ended below 20%) "
      f"in {failed}; noisy BN ended above 90% in {strong_bn.support(strong_bn.values > 0.9)}")
print(f"noisy BN diverged in {noisy_bn_diverged.held} of its {noisy_bn_diverged.total} runs")
print(f"one step moves the mean and spread of layer 3's inputs (level {wb.NOISE_LEVEL:g}) more than 20 "
      f"times as far with noisy BN as without BN in {unsteadier.support(unsteadier.values > 20)}")

plain_loss = wb.final_train_losses(runs[wb.base_run("none")], SEEDS)
assert unsteadier.median > 20 and shift["noisy BN"].median > 0.5  # far less stable ...
assert wb.above(noisy_bn, noisy_plain, 0.005).at_least(7 / 8) and wb.above(noisy_bn, plain).at_least(7 / 8)
assert wb.difference(noisy_bn, plain).median > 0.01 and noisy_bn_diverged.nowhere
assert failed.at_least(7 / 8) and strong_bn.support(strong_bn.values > 0.9).at_least(7 / 8)
for level in wb.NOISE_LEVELS[1:]:
    with_noise = accuracy[level]["noisy BN"]
    assert wb.difference(with_noise, plain).median > 0 and wb.difference(bn, with_noise).median < 0.025
    noisy_loss = wb.final_train_losses(runs[wb.noisy_run("noisy BN", level)], SEEDS)
    assert wb.ratio(noisy_loss, plain_loss).median < 0.6  # ... close to clean BN, and trains faster
beats_plain = wb.above(noisy_bn, plain)
strong_plain_diverged = wb.diverged(runs[wb.noisy_run("without BN + noise", wb.STRONG_NOISE)])
record("noisy-bn-still-helps", holds=outcome_of(beats_plain), support=beats_plain,
       measured=f"test accuracy at the end, level {wb.NOISE_LEVEL:g}: noisy BN "
                f"{noisy_bn.describe('{:.1%}')}, the same noise without BN {noisy_plain.describe('{:.1%}')}, "
                f"clean without BN {plain.describe('{:.1%}')}, clean BN {bn.describe('{:.1%}')}; level "
                f"{wb.STRONG_NOISE:g}: noisy BN {strong_bn.describe('{:.1%}')} (above clean without BN in "
                f"{wb.above(strong_bn, plain)}), the same noise without BN diverged in "
                f"{strong_plain_diverged}; one step moves layer 3's inputs {unsteadier.describe('{:.0f}')} "
                f"times as far as without BN")

# %%
noisy_accuracy_figure(runs, title=f"Noisy BN ends close to clean BN and above both networks without BN "
                                  f"(one dot per seed, {len(SEEDS)} seeds)")

# %% [markdown]
# Move the noise level to any value from 0 to 6 and let go: the four networks of one seed (the first of
# the 8) train at that level while you watch, in about a second. Left: the four networks at that level.
# Right: where each network ends, at every level trained so far (level 0 is the clean pair; levels 0,
# 2 and 4 come from the runs above).

# %%
noisy_panel = noise_panel(wb.noisy_grid(SEEDS[0]), seed=SEEDS[0])
noisy_panel

# %% [markdown]
# What the runs show, on digits:
# * The noise does what it should: one step moves the mean and spread of a noisy-BN unit's input
#   **tens of times more** than training moves them in the network without BN (in every seed or nearly
#   every one, printed above). By the internal-covariate-shift explanation, noisy BN should now be the
#   worst of the four.
# * It is not. At level 2, noisy BN ends close to clean BN (median within a couple of points), above the
#   same noise without BN, and above the clean network without BN, in every seed or nearly every one; its
#   training loss stays well below the clean plain network's. At level 4 the same noise wrecks the
#   network without BN (it diverges in most seeds and learns nothing in the others), while noisy BN
#   still ends above 90%, in most seeds above the clean network without BN (the claim line gives the
#   counts).
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
# (We divide by $\lVert G\rVert$ because BN changes the size of the gradients.) Both are measured every 40
# steps of training (`wb.gradient_shift`, on the weights each network had then), for the second and third
# hidden layers and the output layer, on a fresh random batch each time, for the networks without and with
# BN of all 8 seeds. Each seed gives one number per network: the median over training and the three layers.
#
# **Predict before you run.** Which network will show the smaller internal covariate shift by this measure?

# %%
pair = {"without BN": wb.base_run("none"), "with BN": wb.base_run("torch_bn")}
probed = wb.probe_over_seeds(pair, runs, SEEDS, data)  # label -> per seed: probes at steps 40, 80, ..., 240
change = {label: wb.gradient_change_over_seeds(per_seed, SEEDS) for label, per_seed in probed.items()}
cosine = {label: wb.lowest_cosine_over_seeds(per_seed, SEEDS) for label, per_seed in probed.items()}
larger = wb.ratio(change["with BN"], change["without BN"])  # |G - G'| / |G|, with BN / without, per seed
hidden = {layer: wb.ratio(*(wb.gradient_change_over_seeds(probed[label], SEEDS, [layer])
                           for label in ("with BN", "without BN"))) for layer in ("linear2", "linear3")}
print(f"|G - G'| / |G| (median over training and the layers linear2, linear3, output), {len(SEEDS)} seeds:")
print(f"  larger with BN than without in {larger.support(larger.values > 1)}")
for layer, factor in hidden.items():
    print(f"  {layer} alone: more than twice as large with BN in {factor.support(factor.values > 2)}")
print(f"cos(G, G') (median over training, the lowest layer's): lower with BN in "
      f"{wb.above(cosine['without BN'], cosine['with BN'])}")

assert larger.median > 1.5 and larger.support(larger.values > 1).at_least(7 / 8)
assert all(factor.median > 2 for factor in hidden.values())
assert wb.above(cosine["without BN"], cosine["with BN"]).at_least(6 / 8)
assert cosine["without BN"].median > 0.98
reduced = larger.support(larger.values < 1)
record("ics-gradient-change-reduced", holds=outcome_of(reduced), support=reduced,
       measured=f"|G - G'|/|G| with BN / without BN (median over training and layers 2, 3, output): "
                f"{larger.describe('{:.1f}')}; lowest median cos(G, G') "
                f"{cosine['with BN'].describe('{:.3f}')} with BN, "
                f"{cosine['without BN'].describe('{:.3f}')} without")

# %%
ics_figure(probed, title=f"Internal covariate shift is LARGER with BN: the layer's gradient changes "
                         f"{larger.median:.1f} times as much (median of {len(SEEDS)} seeds)")

# %% [markdown]
# By Santurkar et al.'s measure, BN does **not** reduce internal covariate shift on digits: a BN layer's
# gradient changes several times as much when the layers below it move, in every seed or nearly every
# one, and its direction turns further (a lower cosine). Santurkar et al. found the same on their
# networks. So the paper's explanation fails twice: making the inputs less stable does not remove BN's
# benefit (section 1), and the benefit comes with *more* shift of this kind, not less.

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
# The probe (`wb.landscape_along_gradient`) measured all three at the same steps and batches as section 2.
# A landscape can be smooth at most steps and rough at a few, so each seed's series over training is
# summarized by its **median** (a typical step) and its **90th percentile** (the worst steps), and we
# compare BN with no BN seed by seed (with BN / without BN: below 1 means BN is smoother).
#
# **Predict before you run.** Will all three measures favour BN?

# %%
ratios = wb.landscape_ratios(probed, SEEDS)  # (measure, "median" or "90th percentile") -> BN / no BN
smoother = {summary: wb.smaller_with_bn(ratios, [("loss range", summary), ("gradient change", summary)])
            for summary in wb.SUMMARIES}
beta_smaller = wb.smaller_with_bn(ratios, [("beta", summary) for summary in wb.SUMMARIES])
print(f"with BN / without BN, {len(SEEDS)} seeds:")
print(f"  loss range and gradient change both smaller with BN: at a typical step (median) in "
      f"{smoother['median']}, at the worst steps (90th percentile) in {smoother['90th percentile']}")
print(f"  effective β-smoothness smaller with BN at typical and at worst steps in {beta_smaller}")

for what in ("loss range", "gradient change"):  # smoother along the path ...
    assert ratios[what, "median"].median < 0.6 and ratios[what, "90th percentile"].median < 0.8
assert ratios["beta", "median"].median > 1.2 and ratios["beta", "90th percentile"].median > 1  # not per unit
for summary, key in (("median", "median"), ("90th percentile", "worst-case")):
    record(f"bn-smooths-loss-landscape-{key}", holds=outcome_of(smoother[summary]), support=smoother[summary],
           measured=f"each seed's {summary} over training, BN / no BN: loss range "
                    f"{ratios['loss range', summary].describe('{:.2f}')}, gradient change "
                    f"{ratios['gradient change', summary].describe('{:.2f}')}")
record("bn-improves-beta-smoothness", holds=outcome_of(beta_smaller), support=beta_smaller,
       measured=f"effective β-smoothness, BN / no BN: {ratios['beta', 'median'].describe('{:.1f}')} (each "
                f"seed's median over training), {ratios['beta', '90th percentile'].describe('{:.1f}')} (90th "
                f"percentile)")

# %%
landscape_figure(probed, title=f"Along the gradient, BN's loss varies about "
                               f"{1 / ratios['loss range', 'median'].median:.0f}× less (median of "
                               f"{len(SEEDS)} seeds), but its β-smoothness is "
                               f"{ratios['beta', 'median'].median:.1f}× larger")

# %% [markdown]
# Read the figure: each line is the median over the 8 seeds, the shaded band their range. With BN the loss
# barely moves along the path and the gradient changes less, at typical steps (median) *and* at the worst
# ones (90th percentile), in every seed or nearly every one: by these two measures BN's landscape is
# smoother, as Santurkar et al. report.
#
# The third measure goes the other way. Part of BN's advantage is simply that its gradients are smaller:
# a step $s g$ along a small $g$ travels a short distance, so the loss and the gradient change less.
# Divide the gradient change by the distance travelled and the BN network is **rougher**, not smoother,
# at typical and at worst steps (in the median seed; few seeds or none are smoother by both, as printed
# above). So on digits, "BN makes the landscape smoother" holds for the change along the actual training
# steps, and not for the curvature per unit of distance. Which one matters for training? The next section
# shows why the two differ: under BN, the size of the weights sets the size of the step.

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
# three on the trained BN networks of section 1 (η = 0.1), every seed's, and on the same networks trained
# at η = 1.
#
# **Predict before you run.** At which learning rate will the weight norms grow more?

# %%
bn_networks = [one.network for one in runs[wb.base_run("torch_bn")]]
plain_networks = [one.network for one in runs[wb.base_run("none")]]
X60, y60 = data.X_train[:wb.PROBE_BATCH], data.y_train[:wb.PROBE_BATCH]
checks = [wb.scale_invariance(bn, plain, X60, y60) for bn, plain in zip(bn_networks, plain_networks)]
by_lr = {lr: runs[wb.learning_rate_run(lr)] for lr in (wb.LR, wb.HIGH_LR)}  # the BN network at η = 0.1 and 1
growth = {lr: wb.norm_growths(trained, SEEDS) for lr, trained in by_lr.items()}  # layer -> |W| end / start
orthogonal = np.array([check.bn_cosine < 1e-3 for check in checks])  # one True/False per seed
identity = np.array([check.mismatch < 0.05 for check in checks])
never_shrank = {lr: np.array([wb.never_shrinks(one.history) for one in trained])
                for lr, trained in by_lr.items()}
grew = np.all([per_layer.values > 1.1 for per_layer in growth[wb.HIGH_LR].values()], axis=0)
barely = np.all([per_layer.values < 1.02 for per_layer in growth[wb.LR].values()], axis=0)
far_from_orthogonal = Support.of([check.plain_cosine > 0.01 for check in checks])
print(f"{len(SEEDS)} seeds, the 100 rows w_j of linear2 and the gradients g_j on one batch:")
print(f"  |cos(w_j, g_j)| below 1e-3 for every row with BN in {Support.of(orthogonal)}; median above 0.01 "
      f"without BN in {far_from_orthogonal}")
print(f"  one SGD step grows |w_j|² by η²|g_j|² (to within 5% of the largest growth) in "
      f"{Support.of(identity)}")
print(f"|W| of linear1-3 never shrank from record to record: at η = 0.1 in "
      f"{Support.of(never_shrank[wb.LR])}, at η = 1 in {Support.of(never_shrank[wb.HIGH_LR])}")
print(f"|W| grew by more than 10% in every layer at η = 1 in {Support.of(grew)}; by less than 2% in every "
      f"layer at η = 0.1 in {Support.of(barely)}")

invariant = Support.of(orthogonal & identity & never_shrank[wb.LR] & never_shrank[wb.HIGH_LR] & grew)
assert invariant.everywhere and far_from_orthogonal.everywhere
assert all(wb.above(growth[wb.HIGH_LR][layer], growth[wb.LR][layer], 0.1).everywhere
           for layer in growth[wb.LR])
assert all(wb.late_accuracies(trained, SEEDS).low > 0.9 for trained in by_lr.values())
bn_cosines = OverSeeds(SEEDS, [check.bn_cosine for check in checks])
plain_cosines = OverSeeds(SEEDS, [check.plain_cosine for check in checks])
record("bn-weights-scale-invariant", holds=outcome_of(invariant), support=invariant,
       measured=f"largest |cos(w_j, g_j)| over linear2's rows with BN: {bn_cosines.describe('{:.0e}')}; "
                f"without BN, each seed's median over rows: {plain_cosines.describe('{:.2f}')}; |W1| at the "
                f"end / at the start: {growth[wb.LR]['linear1'].describe('{:.3f}')} at η = 0.1, "
                f"{growth[wb.HIGH_LR]['linear1'].describe('{:.2f}')} at η = 1")

# %%
weight_norm_figure([one.history for one in by_lr[wb.HIGH_LR]], wb.HIGH_LR,
                   title=f"With BN at η = 1 the weights grow (layer 1 by "
                         f"{growth[wb.HIGH_LR]['linear1'].median - 1:.0%}, median of {len(SEEDS)} seeds) and "
                         f"the effective learning rate falls with them")

# %% [markdown]
# In every seed, the gradient is orthogonal to every BN-normalized row of weights (up to BN's $\epsilon$,
# which makes the invariance very slightly imperfect), and one SGD step grows $\lVert w_j\rVert^2$ by
# $\eta^2\lVert g_j\rVert^2$. Without BN the two are far from orthogonal. At η = 0.1 the growth is small
# (less than 2%): the effective learning rate hardly moves. At η = 1 every layer's norm grows by more than
# 10%, and the effective learning rate of the first layer falls with the square of that growth. A learning
# rate that is too large inflates the weights, which shrinks the effective learning rate: one reason BN
# tolerates large learning rates (notebook 05).
# It also explains section 3's puzzle: the smaller gradients of the BN network come with a built-in,
# shrinking step size, so the smoothness *along training's steps* and the smoothness *per unit of
# distance* are different things.

# %% [markdown]
# ## 5. Pitfalls
#
# BN is the one common layer whose output for an example depends on the other examples of its batch, and
# whose behaviour differs between training and evaluation. Each pitfall below follows from that. We use
# the trained BN networks of section 1 (all 8 seeds), and never change them: every experiment works on a
# copy.
#
# ### 5.1 Forgetting `model.eval()`
#
# In training mode, BN normalizes with the statistics of the batch it is given, so predictions depend on
# how you batch the test set. **Predict before you run:** what happens to the test accuracy if you forget
# `model.eval()` and predict the test images 8 or 2 at a time?

# %%
pitfall = wb.pitfalls_over_seeds(bn_networks, SEEDS, data)  # way of evaluating -> test accuracy per seed
eval_accuracy = pitfall["eval mode"]
lost = {way: wb.difference(eval_accuracy, accuracy_) for way, accuracy_ in pitfall.items()}  # eval minus way
whole, by_8, by_2 = (pitfall[f"train mode, {m}"] for m in ("whole test set", "m = 8", "m = 2"))
print(f"{len(SEEDS)} trained BN networks, against eval mode (running statistics):")
print(f"  training mode, the whole test set as one batch: within 2 points in "
      f"{whole.support(abs(lost['train mode, whole test set'].values) < 0.02)}")
print(f"  training mode, batches of 8: more than 5 points lower in "
      f"{by_8.support(lost['train mode, m = 8'].values > 0.05)}")
print(f"  training mode, batches of 2: below 70% in {by_2.support(by_2.values < 0.7)}")
assert np.median(abs(lost["train mode, whole test set"].values)) < 0.02  # a large batch: almost no harm
assert lost["train mode, m = 8"].median > 0.05 and by_2.median < 0.7

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
one_class, shuffled = pitfall["one class per batch"], pitfall["train mode, m = 40 shuffled"]
print(f"training mode, batches of 40: sorted by class below 50% in "
      f"{one_class.support(one_class.values < 0.5)}; shuffled above 90% in "
      f"{shuffled.support(shuffled.values > 0.9)} (eval mode: the order is irrelevant)")
assert one_class.median < 0.5 < shuffled.median - 0.3

# %% [markdown]
# In a one-class batch, subtracting the batch mean subtracts what the examples have in common, which is
# precisely their class. The answer to seed 000's first question, in one experiment: the shift *between
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
# (**precise BN**, `wb.recompute_statistics`). We also ask whether precise BN helps the networks as trained.

# %%
stale, repaired = pitfall["stale statistics"], pitfall["recomputed (precise BN)"]
precise = pitfall["precise BN, as trained"]
repair_gap = abs(lost["recomputed (precise BN)"].values)  # points away from eval mode, per seed
precise_gap = abs(lost["precise BN, as trained"].values)
print(f"linear2 × 0.1: stale running statistics below 50% in {stale.support(stale.values < 0.5)}; "
      f"recomputed, within 2 points of eval mode in {repaired.support(repair_gap < 0.02)}")
print(f"the networks as trained: precise BN within 1.5 points of the running statistics in "
      f"{precise.support(precise_gap < 0.015)}")
assert stale.median < 0.5 and np.median(repair_gap) < 0.02 and np.median(precise_gap) < 0.015
improved = wb.above(precise, eval_accuracy, 0.005)
record("precise-bn-improves-accuracy", holds=outcome_of(improved), support=improved,
       measured=f"test accuracy with running averages {eval_accuracy.describe('{:.1%}')}, with precise BN "
                f"{precise.describe('{:.1%}')}; after rescaling linear2: {stale.describe('{:.0%}')} stale, "
                f"{repaired.describe('{:.1%}')} recomputed")

# %% [markdown]
# Stale statistics can wreck a network that is otherwise fine, and recomputing them repairs it fully. This
# is what to do after anything that changes weights without updating the statistics: averaging weights of
# several checkpoints, pruning, or fine-tuning with BN frozen in eval mode. On the networks *as trained*,
# though, precise BN changes the test accuracy by less than a point and a half in every seed or nearly
# every one (the claim line gives the accuracies): the running averages of 240 small steps were nearly up
# to date. The clear gains reported for large-scale training do not show up here.
#
# ### 5.5 The same example, different companions
#
# **Predict before you run:** put one test image in 20 training-mode batches of 8 with random companions.
# Will the network always give it the same logits? The same class? We ask the 8 BN networks, and the
# LayerNorm and GroupNorm networks of section 6 (trained with batches of 2), 10 test images each.

# %%
networks = {"BatchNorm": bn_networks,
            **{label: [one.network for one in runs[wb.normalization_run(label, wb.TINY_BATCH)]]
               for label in ("LayerNorm", "GroupNorm")}}
dependence = wb.dependence_over_seeds(networks, SEEDS, data.X_test)  # label -> per seed: companions' effect
moved = Support.of([d.smallest > 0.1 and d.reclassified > 0 for d in dependence["BatchNorm"]])
unmoved = {label: Support.of([d.largest < 1e-4 and d.reclassified == 0 for d in dependence[label]])
           for label in ("LayerNorm", "GroupNorm")}
print(f"BatchNorm: every image's logits changed by more than 0.1 across batches, and some image was given "
      f"more than one class, in {moved}")
for label, support in unmoved.items():
    print(f"{label}: no image's logits changed by 1e-4 or more, no image changed class, in {support}")
assert moved.at_least(7 / 8) and all(support.everywhere for support in unmoved.values())
companions_matter = Support.of([bn.smallest > 0.1 and all(d[k].largest < 1e-4 for d in
                                                       (dependence["LayerNorm"], dependence["GroupNorm"]))
                                for k, bn in enumerate(dependence["BatchNorm"])])
record("bn-output-depends-on-batch", holds=outcome_of(companions_matter), support=companions_matter,
       measured=f"10 test images, 20 batches of 8 each: the smallest change of an image's BN logits "
                f"{OverSeeds(SEEDS, [d.smallest for d in dependence['BatchNorm']]).describe('{:.1f}')}; "
                f"LayerNorm and GroupNorm logits changed by < 1e-4 in {unmoved['LayerNorm']} and "
                f"{unmoved['GroupNorm']}")

# %% [markdown]
# Under BN every image's logits move with its companions (that is the regularizing noise of seed 003, and
# at test time, a bug). LayerNorm and GroupNorm normalize each example by its *own* statistics, over its
# units, so its companions cannot matter: the changes are zero up to rounding.
#
# All of it in one picture, the same trained networks evaluated seven ways (median of the 8 seeds, the
# range as an error bar):

# %%
wrong_ways = ("eval mode", "train mode, whole test set", "train mode, m = 8", "train mode, m = 2",
              "one class per batch", "stale statistics", "recomputed (precise BN)")
pitfalls_figure({way: pitfall[way] for way in wrong_ways}, eval_accuracy.median,
                title=f"{len(SEEDS)} trained BN networks ({eval_accuracy.median:.0%} in eval mode, median), "
                      f"evaluated the wrong ways")

# %% [markdown]
# ## 6. Alternatives: LayerNorm and GroupNorm
#
# **LayerNorm** (Ba et al. 2016) normalizes each example over its own units: mean and variance over the 100
# units of a layer, then a per-unit $\gamma$ and $\beta$ as in BN. **GroupNorm** (Wu & He 2018) does the same
# within groups of units (here 10 groups of 10). Neither looks at the other examples, so neither cares
# about the batch size, needs running statistics, or behaves differently in eval mode. We train the network
# with each normalization, and without, with batches of 2 under the 8 seeds, and compare with the networks
# of section 1 (batches of 60); 240 steps each, η = 0.1.
#
# **Predict before you run.** Which normalization will suffer most at batch size 2?

# %%
tiny = {label: wb.late_accuracies(runs[wb.normalization_run(label, wb.TINY_BATCH)], SEEDS)
        for label in wb.NORMALIZATIONS}
full = {label: wb.late_accuracies(runs[wb.normalization_run(label, wb.BATCH_SIZE)], SEEDS)
        for label in ("no normalization", "BatchNorm")}
per_example = OverSeeds(SEEDS, np.minimum(tiny["LayerNorm"].values, tiny["GroupNorm"].values))
ahead = wb.difference(per_example, tiny["BatchNorm"])  # the worse of LayerNorm and GroupNorm, minus BN
print(f"batches of {wb.TINY_BATCH}, {len(SEEDS)} seeds: BatchNorm below 50% in "
      f"{tiny['BatchNorm'].support(tiny['BatchNorm'].values < 0.5)}; LayerNorm and GroupNorm both more than "
      f"30 points above it in {ahead.support(ahead.values > 0.3)}")
print(f"batches of {wb.BATCH_SIZE}: BatchNorm above no normalization in "
      f"{wb.above(full['BatchNorm'], full['no normalization'])}")
assert tiny["BatchNorm"].median < 0.5 and ahead.median > 0.3
assert ahead.support(ahead.values > 0.2).at_least(7 / 8)
assert per_example.median > 0.65 and tiny["no normalization"].median > 0.6
assert all(value.median > 0.9 for value in full.values())
assert wb.above(full["BatchNorm"], full["no normalization"]).at_least(7 / 8)
independent = ahead.support(ahead.values > 0.3)
record("layernorm-groupnorm-batch-independent", holds=outcome_of(independent), support=independent,
       measured=f"batches of 2: BN {tiny['BatchNorm'].describe('{:.0%}')}, LayerNorm "
                f"{tiny['LayerNorm'].describe('{:.0%}')}, GroupNorm {tiny['GroupNorm'].describe('{:.0%}')}, "
                f"none {tiny['no normalization'].describe('{:.0%}')}; batches of 60: BN "
                f"{full['BatchNorm'].describe('{:.0%}')}, none {full['no normalization'].describe('{:.0%}')}")

# %%
normalization_accuracy_figure(runs, title=f"With batches of {wb.TINY_BATCH}, BatchNorm fails where LayerNorm "
                                          f"and GroupNorm train (one dot per seed, {len(SEEDS)} seeds)")

# %% [markdown]
# The panel trains one seed's four networks (the first of the 8) at any batch size from 2 to 512 when
# you let go of the slider; batch sizes 2, 8 and 60 come from the runs above.

# %%
alternatives_panel = normalization_panel(wb.batch_size_grid(SEEDS[0]), seed=SEEDS[0])
alternatives_panel

# %% [markdown]
# Slide the batch size down to 2. BatchNorm collapses (section 5.2: every unit becomes ±1, and the
# running statistics of two-example batches are poor estimates); LayerNorm and GroupNorm lose only what
# every network loses from tiny batches (the run without normalization drops too, since 240 steps of 2
# examples is less than half a pass over the data). At 60, BN beats no normalization in every seed or
# nearly every one, and in the panel's run LayerNorm and GroupNorm come close to it. Rules of thumb that
# follow: BN when batches are large and i.i.d.; LayerNorm or GroupNorm when they are small, when examples
# must be processed one at a time, or when training and test must behave the same (LayerNorm is the
# default of Transformers and recurrent networks for these reasons).

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
# Each point holds over the 8 seeds of every setting (in every seed or nearly every one; the claim lines
# give the counts).
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
#   all follow from BN's use of batch statistics. Precise BN gave little or no gain on the networks as
#   trained.
# * **Alternatives.** LayerNorm and GroupNorm trained well with batches of 2, where BN failed, and do not
#   depend on the batch at all.
#
# Where this leaves the question of the course: BN works, on digits as on ImageNet, and the paper's
# explanation for it does not survive the tests above. The leading explanations today involve the
# conditioning of the optimization (smoothness along the path, the self-tuning effective learning rate)
# rather than the stability of distributions, and they are still being argued over.
#
# **Next:** [07 · BN in practice](07_batchnorm_in_practice.ipynb) puts the practitioner's questions to
# runs: convolutional networks, BN before or after the activation, regularization, folding BN away.
#
# Every claim tested in this course, with the statistics over seeds behind its verdict, is collected in
# the [claims ledger](claims_ledger.md). The map of the series is in [00 · Start here](00_start_here.ipynb).
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
