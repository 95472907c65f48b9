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
# 3. measure how smooth the loss is along the gradient (loss range, gradient predictiveness, gradient
#    change per unit of distance), and say which measure favours BN here and which does not;
# 4. separate what BN does from what a good initialization does, in every comparison;
# 5. follow scale invariance to its consequences during training: weight norms that grow at every step
#    and the effective learning rate $\eta/\lVert w\rVert^2$;
# 6. recognize the pitfalls of BN in practice (eval mode, tiny batches, non-i.i.d. batches, stale
#    statistics, batch dependence) and fix them, and choose between BatchNorm, LayerNorm and GroupNorm.
#
# Every experiment uses one network: 3 hidden layers of 100 ReLU units, SGD with learning rate η = 0.1 and
# batches of 60, for 240 steps (about 11 passes over the 1,347 training digits). The network **without BN
# comes in two versions**. With PyTorch's default initialization (weights of standard deviation
# $1/\sqrt{3\,n_{\text{in}}}$ for a layer of $n_{\text{in}}$ inputs), each ReLU layer passes on a smaller
# signal than it receives, so at the start the signal fades from layer to layer. With **He
# initialization** (standard deviation $\sqrt{2/n_{\text{in}}}$, the principled choice for ReLU that
# [notebook 01](01_input_normalization.ipynb) derived in section 4) it keeps its size. BN does not care:
# it rescales every layer's output anyway, so the BN network keeps PyTorch's default. A comparison with
# the default-initialized network alone would credit BN with what is partly the work of a good
# initialization, so every comparison below shows both networks without BN and says which effect is BN's
# and which is initialization's.
#
# One trained network is one draw: another seed (other initial weights, another order of the
# mini-batches) gives other numbers. So every claim below is measured over **8 networks per setting,
# trained from 8 seeds**, and stated as a statistic over them: in how many seeds it held, and the median
# with the range the seeds span. Figures show every seed (a dot each, or the median as a line with the
# range shaded); the sliders show the runs of one seed. All networks are trained once, at the start, and
# shared between sections.

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
from bnlab.exercises import compare_prediction
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
DEFAULT, HE = wb.DEFAULT_INIT, wb.HE_INIT  # the two networks without BN

# %% [markdown]
# First, the two initializations at work, before any training: the size (root mean square) of each
# hidden layer's pre-activations on the test digits, for the freshly initialized networks of the 8 seeds.

# %%
sizes = {label: np.array([wb.signal_sizes(wb.clean_run(label), seed, data.X_test) for seed in SEEDS])
         for label in (DEFAULT, HE)}  # label -> (seeds, layers)
for label, size in sizes.items():
    per_layer = np.median(size[:, 1:] / size[:, :-1], axis=0)  # layer k+1 / layer k, median over seeds
    print(f"{label}: from one hidden layer to the next the signal is multiplied by about "
          + " and ".join(f"{factor:.1f}" for factor in per_layer))

# %% [markdown]
# With PyTorch's default, each layer passes on about 0.4 to 0.5 of the signal it received: by the third
# layer about a fifth of it is left, and the gradients that flow back are small too. He initialization keeps it
# near 1 (within a layer's random fluctuation).
#
# The budget: 13 settings × 8 seeds = 104 networks of 240 steps. The networks of one kind (the same
# normalization and batch size) train together in a batched ensemble (`bnlab.ensemble`), the kinds side by
# side on the computer's cores. On a 2-core laptop this takes a few seconds.

# %%
runs = wb.train_over_seeds(wb.claim_runs(), SEEDS)  # Run -> one Trained (history, network) per seed
clean = {label: wb.late_accuracies(runs[wb.clean_run(label)], SEEDS) for label in wb.CLEAN}
he_gain, bn_gain = wb.difference(clean[HE], clean[DEFAULT]), wb.difference(clean["with BN"], clean[HE])
print(f"test accuracy at the end of training (mean over steps 160-240), {len(SEEDS)} seeds:")
print(f"  He init above default init (no BN) in {he_gain.support(he_gain.values > 0)}")
print(f"  BN above He init in {bn_gain.support(bn_gain.values > 0)}")

# %% [markdown]
# Both steps help in every seed (the figure of section 1 shows every seed's accuracy). Of what separates
# the default-initialized network from the BN network, part is the initialization: the fair baseline for
# BN is the He-initialized network, and every claim below is measured against it.
#
# ## 1. Noisy BN: make the inputs unstable on purpose
#
# If BN helps *because* it keeps each layer's input distribution steady, then a BN network whose layer
# inputs are made unsteady on purpose should lose its advantage. Santurkar et al. built exactly that
# network: right after every BN layer they perturb each activation of each example with random noise of
# non-zero mean and non-unit variance, and the noise's distribution changes at every step.
#
# Our version (`NoisyBatchNorm` of this notebook's lesson package: BN followed by the layer `StepNoise`)
# differs from theirs in one way on purpose: it draws its noise **once per unit and per step**, the same
# for every example of the batch, where Santurkar et al. draw it for every example separately. At every
# training step, each unit $j$ draws a scale $s_j$ and a shift $m_j$,
# $$s_j \sim \frac{U(1,\, 1 + \ell)}{1 + \ell/2}, \qquad m_j \sim U(-\ell, \ell),$$
# and passes on $s_j\,\mathrm{BN}(x)_j + m_j$. So the whole distribution of the unit's output moves from
# one step to the next, its mean by $m_j$ and its spread by the factor $s_j$: internal covariate shift
# itself, without the per-example jitter (a regularizer of its own). The scale has mean 1, so the noise
# moves the distribution without enlarging it on average (a scale of mean larger than 1 would amplify the
# signal at every layer, which by itself changes how a ReLU network trains); at test time the layer passes
# its input on unchanged, the noise's mean. The noise level $\ell$ sets how far the distribution jumps:

# %%
mean_jump, spread_jump = wb.noise_jumps(wb.NOISE_LEVEL)
print(f"noise level {wb.NOISE_LEVEL:g}: from one step to the next, a unit's mean jumps by {mean_jump:.2f} "
      f"and its spread changes by {spread_jump:.0%}, on average (for a unit of mean 0 and spread 1)")

# %% [markdown]
# We train, each under the 8 seeds: the three clean networks, noisy BN, and the He-initialized network
# without BN with the same noise after each linear layer (a control: what the noise does without BN), at
# noise levels 1 and 4.
#
# **Predict first.** At noise level 1, will noisy BN end *above* or *below* the clean He-initialized
# network without BN? Write your guess in the next cell.

# %%
my_prediction = None  # write "above" or "below" here before you run the next cells

# %%
accuracy = wb.noisy_accuracies(runs, SEEDS)  # noise level -> network -> test accuracy at the end, per seed
he_plain, bn = clean[HE], clean["with BN"]
noisy_bn, noisy_plain = (accuracy[wb.NOISE_LEVEL][label] for label in ("noisy BN", "He init + noise"))
strong_bn, strong_plain = (accuracy[wb.STRONG_NOISE][label] for label in ("noisy BN", "He init + noise"))
at_level = {label: [one.network for one in runs[wb.noisy_run(label, wb.NOISE_LEVEL)]]
            for label in (HE, "noisy BN")}
shift = wb.step_shifts(at_level, SEEDS, data)  # how far one SGD step moves the inputs of layer 3, per seed
unsteadier = wb.ratio(shift["noisy BN"], shift[HE])
beats_he = wb.above(noisy_bn, he_plain)
cost = {"noisy BN": wb.difference(bn, strong_bn), "He init + noise": wb.difference(he_plain, strong_plain)}
print(f"test accuracy at the end of training, {len(SEEDS)} seeds:")
print(f"  noise level {wb.NOISE_LEVEL:g}: noisy BN above the clean He network in {beats_he}, above the same "
      f"noise without BN in {wb.above(noisy_bn, noisy_plain)}")
print(f"  noise level {wb.STRONG_NOISE:g}: noisy BN below the clean He network in "
      f"{wb.above(he_plain, strong_bn)}; the noise cost BN fewer points than it cost the He network in "
      f"{wb.above(cost['He init + noise'], cost['noisy BN'])}")
print(f"one step moves the mean and spread of layer 3's inputs (level {wb.NOISE_LEVEL:g}) more than 10 "
      f"times as far with noisy BN as in the clean He network in {unsteadier.support(unsteadier.values > 10)}")

# %%
# Check: the claim of section 1
noisy_bn_diverged = Support.of([one.history.diverged for level in wb.NOISE_LEVELS[1:]
                                for one in runs[wb.noisy_run("noisy BN", level)]])
assert he_gain.median > 0.005 and bn_gain.median > 0.005
assert unsteadier.median > 10 and noisy_bn_diverged.nowhere
assert beats_he.at_least(7 / 8) and wb.above(noisy_bn, noisy_plain).at_least(6 / 8)
assert wb.difference(bn, noisy_bn).median < 0.01  # level 1: close to clean BN
assert wb.above(he_plain, strong_bn).at_least(7 / 8)  # level 4: below the clean He network ...
assert wb.above(cost["He init + noise"], cost["noisy BN"], 0.1).at_least(7 / 8)  # ... but the noise costs BN less
record("noisy-bn-still-helps", holds=outcome_of(beats_he), support=beats_he,
       measured=f"test accuracy at the end, mean-one noise of level {wb.NOISE_LEVEL:g}: noisy BN "
                f"{noisy_bn.describe('{:.1%}')}, the same noise without BN (He init) "
                f"{noisy_plain.describe('{:.1%}')}; clean: without BN, He init {he_plain.describe('{:.1%}')}, "
                f"default init {clean[DEFAULT].describe('{:.1%}')}, BN {bn.describe('{:.1%}')}; level "
                f"{wb.STRONG_NOISE:g}: noisy BN {strong_bn.describe('{:.1%}')}, the same noise without BN "
                f"{strong_plain.describe('{:.1%}')}; one step moves layer 3's inputs "
                f"{unsteadier.describe('{:.0f}')} times as far as in the clean He network")

# %%
noisy_accuracy_figure(runs, title=f"Noisy BN (level {wb.NOISE_LEVEL:g}) ends above the fairly initialized "
                                  f"network without BN ({len(SEEDS)} seeds, a dot each)")

# %%
compare_prediction(my_prediction, "above" if beats_he.at_least(7 / 8) else "below")

# %% [markdown]
# Move the noise level to any value from 0 to 6 and let go: the four networks of one seed (the first of
# the 8) train at that level while you watch, in about a second. Left: the four networks at that level.
# Right: where each network ends, at every level trained so far (level 0 is the clean pair; levels 0,
# 1 and 4 come from the runs above; its axis is zoomed to where the networks end).

# %%
noisy_panel = noise_panel(wb.noisy_grid(SEEDS[0]), seed=SEEDS[0])
noisy_panel

# %% [markdown]
# What the runs show, on digits:
# * The noise does what it should: at level 1, one step moves the mean and spread of a noisy-BN unit's
#   input **tens of times more** than training moves them in the clean He network (more than 10 times in
#   every seed or nearly every one, printed above). By the internal-covariate-shift explanation, noisy BN
#   should have lost BN's advantage.
# * It has not. At level 1, noisy BN ends within a point of clean BN (median), and above the clean
#   He-initialized network without BN in every seed or nearly every one. Against the fair baseline too,
#   steady layer inputs are not what BN's advantage needs.
# * Stronger noise does cost it. At level 4, noisy BN ends below the clean He network in every seed or
#   nearly every one: unstable inputs are not free. But the same noise without BN costs the He network far
#   more points than it costs noisy BN, in every seed or nearly every one (printed above; the claim line
#   gives the medians): BN makes a network
#   much more tolerant of unstable layer inputs, which is not the same as keeping them stable.
# * Initialization's share: the He network beats the default-initialized one in every seed, and part of
#   what looked like BN's advantage over "no BN" is that. BN stays ahead of the He network too.
#
# This is the result Santurkar et al. report on CIFAR-10 (their noisy network trained about as well as
# clean BN), and at a moderate level it reproduces here, against a fairly initialized network. So
# whatever BN does for training, keeping the layer inputs' distributions steady is not necessary for it.
# [Notebook 05](05_training_with_batchnorm.ipynb) (section 6) asked how the distribution can be stable if
# γ and β keep changing: this experiment suggests that stability was never the point.

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
# hidden layers and the output layer, on a fresh random batch each time, for the three clean networks of
# all 8 seeds. Each seed gives one number per network: the median over training and the three layers.
#
# **Predict first.** Which network will show the smaller internal covariate shift by this measure: the
# one *with BN* or the He-initialized one *without BN*?

# %%
my_prediction = None  # write "with BN" or "without BN" here before you run the next cells

# %%
clean_runs = {label: wb.clean_run(label) for label in wb.CLEAN}
probed = wb.probe_over_seeds(clean_runs, runs, SEEDS, data)  # label -> per seed: probes at steps 40, ..., 240
change = {label: wb.gradient_change_over_seeds(per_seed, SEEDS) for label, per_seed in probed.items()}
cosine = {label: wb.lowest_cosine_over_seeds(per_seed, SEEDS) for label, per_seed in probed.items()}
larger = {label: wb.ratio(change["with BN"], change[label]) for label in (DEFAULT, HE)}  # BN / without
hidden = wb.ratio(*(wb.gradient_change_over_seeds(probed[label], SEEDS, ["linear2"])
                    for label in ("with BN", HE)))
print(f"|G - G'| / |G| (median over training and the layers linear2, linear3, output), {len(SEEDS)} seeds:")
for label, factor in larger.items():
    print(f"  larger with BN than {label} in {factor.support(factor.values > 1)}")
print(f"  linear2 alone: more than 1.5 times as large with BN as with He init in "
      f"{hidden.support(hidden.values > 1.5)}")
print(f"cos(G, G') (median over training, the lowest layer's): lower with BN than with He init in "
      f"{wb.above(cosine[HE], cosine['with BN'])}")

# %%
# Check: the claim of section 2
assert larger[DEFAULT].median > 2 and larger[DEFAULT].support(larger[DEFAULT].values > 1).at_least(7 / 8)
assert larger[HE].median > 1.3 and larger[HE].support(larger[HE].values > 1).at_least(7 / 8)
assert hidden.median > 1.5 and wb.above(cosine[HE], cosine["with BN"]).at_least(6 / 8)
assert cosine[HE].median > 0.95
reduced = larger[HE].support(larger[HE].values < 1)
record("ics-gradient-change-reduced", holds=outcome_of(reduced), support=reduced,
       measured=f"|G - G'|/|G| with BN / without BN (median over training and layers 2, 3, output): "
                f"{larger[HE].describe('{:.1f}')} against He init, {larger[DEFAULT].describe('{:.1f}')} "
                f"against default init; lowest median cos(G, G') {cosine['with BN'].describe('{:.3f}')} with "
                f"BN, {cosine[HE].describe('{:.3f}')} He init, {cosine[DEFAULT].describe('{:.3f}')} default")

# %%
ics_figure(probed, title=f"Internal covariate shift is LARGER with BN: its layers' gradients change "
                         f"{larger[HE].median:.1f}× as much as with He init (median of {len(SEEDS)} seeds)")

# %%
compare_prediction(my_prediction, "without BN" if larger[HE].support(larger[HE].values > 1).at_least(7 / 8)
                   else "with BN")

# %% [markdown]
# By Santurkar et al.'s measure, BN does **not** reduce internal covariate shift on digits: a BN layer's
# gradient changes more when the layers below it move than in either network without BN, in every seed or
# nearly every one, and its direction turns further (a lower cosine). Initialization explains part of the
# size of the gap (against the default-initialized network the factor is about twice as large as against
# the He network: compare the two lines of the claim), not its sign. Santurkar et al. found the same on
# their networks. So the paper's explanation fails twice: making the inputs less stable does not remove
# BN's benefit (section 1), and the benefit comes with *more* shift of this kind, not less.

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
# * the **gradient change per unit of distance**:
#   $\max_s \lVert \nabla L(w) - \nabla L(w - s g)\rVert / \lVert s g\rVert$, an estimate of the
#   *smoothness constant* of optimization theory, the bound on how fast the gradient can change (Santurkar
#   et al. call it "effective β-smoothness"; that β has nothing to do with BN's shift parameter β).
#
# The probe (`wb.landscape_along_gradient`) measured all three at the same steps and batches as section 2.
# A landscape can be smooth at most steps and rough at a few, so each seed's series over training is
# summarized by its **median** (a typical step) and its **90th percentile** (the worst steps), and we
# compare BN with each network without BN seed by seed (with BN / without BN: below 1 means BN is
# smoother).
#
# **Predict first.** Will all three measures favour BN over the He-initialized network? Write "yes" or
# "no".

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
ratios = {label: wb.landscape_ratios(probed, SEEDS, label) for label in (DEFAULT, HE)}  # BN / without BN
smoother = {(label, summary): wb.smaller_with_bn(ratios[label], [("loss range", summary),
                                                                 ("gradient change", summary)])
            for label in ratios for summary in wb.SUMMARIES}
per_distance = {label: Support.of(np.all([ratios[label]["change per distance", summary].values < 0.8
                                          for summary in wb.SUMMARIES], axis=0)) for label in ratios}
print(f"with BN / without BN, {len(SEEDS)} seeds:")
for label in ratios:
    print(f"  against {label}: loss range and gradient change both smaller with BN at the worst steps (90th "
          f"percentile) in {smoother[label, '90th percentile']}; gradient change per distance smaller "
          f"with BN by a fifth or more at typical and at worst steps in {per_distance[label]}")

# %%
# Check: the claims of section 3
for label in ratios:  # smoother along the path: clearly at the worst steps ...
    for what in ("loss range", "gradient change"):
        assert ratios[label][what, "90th percentile"].median < 0.6
    assert smoother[label, "90th percentile"].at_least(7 / 8)
assert ratios[DEFAULT]["loss range", "median"].median < 0.6 and smoother[DEFAULT, "median"].at_least(7 / 8)
assert ratios[HE]["gradient change", "median"].median < 0.8 and smoother[HE, "median"].at_least(3 / 8)  # ... less so at typical ones
assert ratios[DEFAULT]["change per distance", "median"].median > 1.2  # ... not per unit of distance
assert ratios[HE]["change per distance", "median"].median > 0.8 and per_distance[HE].held <= 2
# At typical steps the count against He init moves with the block of seeds (7 of 8 in one, 3 of 8 in
# another): the claim there is "in every seed", and anything between none and all is "partly".
outcome = {"median": wb.every_seed_outcome(smoother[HE, "median"]),
           "90th percentile": outcome_of(smoother[HE, "90th percentile"])}
for summary, key in (("median", "median"), ("90th percentile", "worst-case")):
    record(f"bn-smooths-loss-landscape-{key}", holds=outcome[summary],
           support=smoother[HE, summary],
           measured=f"each seed's {summary} over training, BN / no BN with He init: loss range "
                    f"{ratios[HE]['loss range', summary].describe('{:.2f}')}, gradient change "
                    f"{ratios[HE]['gradient change', summary].describe('{:.2f}')} (against default init: "
                    f"{ratios[DEFAULT]['loss range', summary].describe('{:.2f}')}, "
                    f"{ratios[DEFAULT]['gradient change', summary].describe('{:.2f}')})")
record("bn-improves-beta-smoothness", holds=outcome_of(per_distance[HE]), support=per_distance[HE],
       measured=f"gradient change per unit of distance (effective smoothness constant), BN / no BN with He "
                f"init: {ratios[HE]['change per distance', 'median'].describe('{:.1f}')} (each seed's median "
                f"over training), {ratios[HE]['change per distance', '90th percentile'].describe('{:.1f}')} "
                f"(90th percentile); against default init "
                f"{ratios[DEFAULT]['change per distance', 'median'].describe('{:.1f}')} (median)")

# %%
landscape_figure(probed, title=f"Along the gradient, BN's loss varies about "
                               f"{1 / ratios[HE]['loss range', '90th percentile'].median:.0f}× less than "
                               f"with He init at the worst steps; per unit of distance it is no smoother")

# %%
compare_prediction(my_prediction, "no" if per_distance[HE].held <= 2 else "yes")

# %% [markdown]
# Read the figure: each line is the median over the 8 seeds, the shaded band their range. With BN the loss
# barely moves along the path and the gradient changes less, most clearly at the worst steps (90th
# percentile, in every seed or nearly every one), against either network without BN: by these two
# measures BN's landscape is smoother, as Santurkar et al. report. At typical steps the picture depends on
# the initialization: against the default-initialized network BN is smoother in every seed or nearly every
# one, against the He network only in some seeds (how many varies with the course seed; the claim line
# gives the count and both ratios). He initialization closes much of the gap at typical steps; BN's
# advantage at the worst steps stays.
#
# The third measure goes the other way. Part of BN's advantage is simply that its gradients are smaller:
# a step $s g$ along a small $g$ travels a short distance, so the loss and the gradient change less.
# Divide the gradient change by the distance travelled and the BN network is **not smoother**: rougher
# than the default-initialized network, and not clearly smoother than the He network (by a fifth or more in
# few seeds or none, printed above; the claim line gives the ratios, near 1).
# So on digits, "BN makes the landscape smoother" holds for the change along the actual training steps,
# and not for the smoothness constant per unit of distance. Which one matters for training? The next
# section shows why the two differ: under BN, the size of the weights sets the size of the step.

# %% [markdown]
# ## 4. Scale invariance during training: growing weights, a falling effective learning rate
#
# Notebook 05 (section 3.1) showed that BN makes a layer scale invariant, $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$,
# and that the gradient at the scaled weights is $\frac1a$ times the gradient at $W$; notebook 03 met the
# effective learning rate $\eta/\lVert W\rVert^2$ on a toy layer. New here: what SGD does to the weights
# because of it, during training. The invariance holds for each unit's row $w_j$ of weights, so
# $L(a w_j) = L(w_j)$ for every $a > 0$; differentiating with respect to $a$ at $a = 1$ gives
# $$0 = \frac{d}{da} L(a w_j)\Big|_{a=1} = w_j \cdot \nabla_{w_j} L:$$
# **the gradient is orthogonal to the weights.** For plain SGD, $w_j \leftarrow w_j - \eta g_j$, then
# $$\lVert w_j - \eta g_j\rVert^2 = \lVert w_j\rVert^2 - 2\eta\, w_j\cdot g_j + \eta^2 \lVert g_j\rVert^2
#   = \lVert w_j\rVert^2 + \eta^2\lVert g_j\rVert^2,$$
# so **every row's norm grows at every step**, and faster at larger η. A step changes the *direction* of
# $w_j$, the only thing the loss sees, by about $\eta \lVert g_j\rVert / \lVert w_j \rVert$, where
# $\lVert g_j\rVert$ itself scales as $1/\lVert w_j\rVert$: SGD on $w_j$ is SGD on the direction
# $\hat w_j = w_j / \lVert w_j\rVert$ with the **effective learning rate**
# $$\eta_{\text{eff}} = \frac{\eta}{\lVert w_j\rVert^2},$$
# which falls on its own as the norm grows: BN tunes its step size. We check all three on the trained BN
# networks of section 1 (η = 0.1), every seed's, and on the same networks trained at η = 1.
#
# **Predict first.** At which learning rate, 0.1 or 1, will the weight norms grow more?

# %%
my_prediction = None  # write 0.1 or 1 here before you run the next cells

# %%
bn_networks = [one.network for one in runs[wb.clean_run("with BN")]]
he_networks = [one.network for one in runs[wb.clean_run(HE)]]
X60, y60 = data.X_train[:wb.PROBE_BATCH], data.y_train[:wb.PROBE_BATCH]
checks = [wb.scale_invariance(bn, plain, X60, y60) for bn, plain in zip(bn_networks, he_networks)]
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
      f"without BN (He init) in {far_from_orthogonal}")
print(f"  one SGD step grows |w_j|² by η²|g_j|² (to within 5% of the largest growth) in "
      f"{Support.of(identity)}")
print(f"|W| of linear1-3 never shrank from record to record: at η = 0.1 in "
      f"{Support.of(never_shrank[wb.LR])}, at η = 1 in {Support.of(never_shrank[wb.HIGH_LR])}")
print(f"|W| grew by more than 10% in every layer at η = 1 in {Support.of(grew)}; by less than 2% in every "
      f"layer at η = 0.1 in {Support.of(barely)}")

# %%
# Check: the claim of section 4
invariant = Support.of(orthogonal & identity & never_shrank[wb.LR] & never_shrank[wb.HIGH_LR] & grew)
assert invariant.everywhere and far_from_orthogonal.everywhere
assert all(wb.above(growth[wb.HIGH_LR][layer], growth[wb.LR][layer], 0.1).everywhere
           for layer in growth[wb.LR])
assert all(wb.late_accuracies(trained, SEEDS).low > 0.9 for trained in by_lr.values())
bn_cosines = OverSeeds(SEEDS, [check.bn_cosine for check in checks])
plain_cosines = OverSeeds(SEEDS, [check.plain_cosine for check in checks])
record("bn-weights-scale-invariant", holds=outcome_of(invariant), support=invariant,
       measured=f"largest |cos(w_j, g_j)| over linear2's rows with BN: {bn_cosines.describe('{:.0e}')}; "
                f"without BN (He init), each seed's median over rows: {plain_cosines.describe('{:.2f}')}; "
                f"|W1| at the end / at the start: {growth[wb.LR]['linear1'].describe('{:.3f}')} at η = 0.1, "
                f"{growth[wb.HIGH_LR]['linear1'].describe('{:.2f}')} at η = 1")

# %%
weight_norm_figure([one.history for one in by_lr[wb.HIGH_LR]], wb.HIGH_LR,
                   title=f"With BN at η = 1 the weights grow (layer 1 by "
                         f"{growth[wb.HIGH_LR]['linear1'].median - 1:.0%}, median of {len(SEEDS)} seeds) and "
                         f"the effective learning rate falls with them")

# %%
compare_prediction(my_prediction, 1 if Support.of(grew).everywhere else 0.1, tolerance=0)

# %% [markdown]
# In every seed, the gradient is orthogonal to every BN-normalized row of weights (up to BN's $\epsilon$,
# which makes the invariance very slightly imperfect), and one SGD step grows $\lVert w_j\rVert^2$ by
# $\eta^2\lVert g_j\rVert^2$. Without BN the two are far from orthogonal, whatever the initialization. At
# η = 0.1 the growth is small (less than 2%): the effective learning rate hardly moves. At η = 1 every
# layer's norm grows by more than 10%, and the effective learning rate of the first layer falls with the
# square of that growth. A learning rate that is too large inflates the weights, which shrinks the
# effective learning rate: one reason BN tolerates large learning rates ([notebook 05](05_training_with_batchnorm.ipynb),
# section 2). No initialization of a network without BN does this: its step size stays what η makes it.
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
# ### 5.1 Forgetting `model.eval()`, and batches of two: what they cost a trained network
#
# Notebook 04 (section 4, "Forgetting eval mode") showed the mechanism: in training mode BN normalizes
# with the statistics of the batch it is given, so a prediction depends on how the test set is batched; a
# batch of one cannot be normalized at all, and in a batch of two every unit becomes $\pm1$. Notebook 05
# (section 5) showed what $\pm1$ does to training: the gradient that reaches the layer below is
# essentially zero. New here is the bill, over the 8 trained networks: the test accuracy in training mode
# with the whole test set as one batch, in batches of 8 and of 2, against eval mode.

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

# %%
# Check: forgotten eval()
assert np.median(abs(lost["train mode, whole test set"].values)) < 0.02  # a large batch: almost no harm
assert lost["train mode, m = 8"].median > 0.05 and by_2.median < 0.7

# %% [markdown]
# With the whole test set as one batch, its statistics are close to the training population's and little
# goes wrong. With small batches the test accuracy drops, and at 2 it is far below: each unit then says
# only which of the two examples was larger. (In training mode every forward pass also moves the
# running statistics towards the test batches' statistics, as notebook 04 showed, so forgetting `eval()`
# also damages the model you save.)
#
# ### 5.2 A batch that is not i.i.d.
#
# BN assumes each batch is a fair sample of the data. Stream the test images sorted by label, 40 at a
# time, so that almost every batch holds a single class, and predict in training mode (as you would if you
# forgot `eval()`, or if a data loader did not shuffle during training).

# %%
one_class, shuffled = pitfall["one class per batch"], pitfall["train mode, m = 40 shuffled"]
print(f"training mode, batches of 40: sorted by class below 50% in "
      f"{one_class.support(one_class.values < 0.5)}; shuffled above 90% in "
      f"{shuffled.support(shuffled.values > 0.9)} (eval mode: the order is irrelevant)")

# %%
# Check: non-i.i.d. batches
assert one_class.median < 0.5 < shuffled.median - 0.3

# %% [markdown]
# In a one-class batch, subtracting the batch mean subtracts what the examples have in common, which is
# precisely their class. The answer to a question of [notebook 02](02_covariate_shift.ipynb) (section 2),
# in one experiment: the shift *between
# mini-batches* that BN sees is not the shift between training and test data, and BN is only as good as
# the assumption that every batch looks like the whole.
#
# ### 5.3 Stale running statistics, and precise BN
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

# %%
# Check: the claim of section 5.3
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
# ### 5.4 The same example, different companions
#
# Notebook 04 showed one network's prediction changing with the other examples of its batch. New here:
# the normalizations of section 6 against it. **Predict first:** put one test image in training-mode
# batches of 8 with random companions. Will the BN network always give it the same logits? Write "yes"
# or "no". We ask the 8 BN networks, and the LayerNorm and GroupNorm networks of section 6 (which normalize
# each example over its own units; trained with batches of 2), 10 test images each.

# %%
my_prediction = None  # write "yes" or "no" here before you run the next cells

# %%
networks = {"BatchNorm": bn_networks,
            **{label: [one.network for one in runs[wb.normalization_run(label, wb.TINY_BATCH)]]
               for label in ("LayerNorm", "GroupNorm")}}
dependence = wb.dependence_over_seeds(networks, SEEDS, data.X_test)  # label -> per seed: companions' effect
moved = Support.of([d.smallest > 0.1 and d.reclassified > 0 for d in dependence["BatchNorm"]])
unmoved = {label: Support.of([d.largest < 1e-4 and d.reclassified == 0 for d in dependence[label]])
           for label in ("LayerNorm", "GroupNorm")}
print(f"{wb.COMPANION_BATCHES} batches of 8 per image. BatchNorm: every image's logits changed by more than "
      f"0.1 across batches, and some image was given more than one class, in {moved}")
for label, support in unmoved.items():
    print(f"{label}: no image's logits changed by 1e-4 or more, no image changed class, in {support}")

# %%
# Check: the claim of section 5.4
assert moved.at_least(7 / 8) and all(support.everywhere for support in unmoved.values())
companions_matter = Support.of([bn.smallest > 0.1 and all(d[k].largest < 1e-4 for d in
                                                       (dependence["LayerNorm"], dependence["GroupNorm"]))
                                for k, bn in enumerate(dependence["BatchNorm"])])
record("bn-output-depends-on-batch", holds=outcome_of(companions_matter), support=companions_matter,
       measured=f"10 test images, {wb.COMPANION_BATCHES} batches of 8 each: the smallest change of an image's "
                f"BN logits {OverSeeds(SEEDS, [d.smallest for d in dependence['BatchNorm']]).describe('{:.1f}')}"
                f"; LayerNorm and GroupNorm logits changed by < 1e-4 in {unmoved['LayerNorm']} and "
                f"{unmoved['GroupNorm']}")

# %%
compare_prediction(my_prediction, "no" if moved.at_least(7 / 8) else "yes")

# %% [markdown]
# Under BN every image's logits move with its companions (in training, that is the noise the paper
# credits with a regularizing effect, which [notebook 07](07_batchnorm_in_practice.ipynb) measures; at test
# time, a bug). LayerNorm and GroupNorm normalize each example by its *own* statistics, over its
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
# with each normalization, and without (under both initializations), with batches of 2 under the 8 seeds,
# and compare with the networks of section 1 (batches of 60); 240 steps each, η = 0.1.
#
# **Predict first.** Which normalization will suffer most at batch size 2? Write "BatchNorm", "LayerNorm"
# or "GroupNorm".

# %%
my_prediction = None  # write "BatchNorm", "LayerNorm" or "GroupNorm" here before you run the next cells

# %%
tiny = {label: wb.late_accuracies(runs[wb.normalization_run(label, wb.TINY_BATCH)], SEEDS)
        for label in [*wb.NORMALIZATIONS, wb.PLAIN_DEFAULT]}
full = {label: wb.late_accuracies(runs[wb.normalization_run(label, wb.BATCH_SIZE)], SEEDS)
        for label in ("no normalization, He init", "BatchNorm")}
per_example = OverSeeds(SEEDS, np.minimum(tiny["LayerNorm"].values, tiny["GroupNorm"].values))
ahead = wb.difference(per_example, tiny["BatchNorm"])  # the worse of LayerNorm and GroupNorm, minus BN
worst = min(tiny, key=lambda label: tiny[label].median)
print(f"batches of {wb.TINY_BATCH}, {len(SEEDS)} seeds: BatchNorm below 50% in "
      f"{tiny['BatchNorm'].support(tiny['BatchNorm'].values < 0.5)}; LayerNorm and GroupNorm both more than "
      f"30 points above it in {ahead.support(ahead.values > 0.3)}")
print(f"batches of {wb.BATCH_SIZE}: BatchNorm above no normalization (He init) in "
      f"{wb.above(full['BatchNorm'], full['no normalization, He init'])}")

# %%
# Check: the claim of section 6
assert tiny["BatchNorm"].median < 0.5 and ahead.median > 0.3 and worst == "BatchNorm"
assert ahead.support(ahead.values > 0.2).at_least(7 / 8)
assert per_example.median > 0.65 and min(tiny[label].median for label in tiny if label != "BatchNorm") > 0.55
assert all(value.median > 0.9 for value in full.values())
assert wb.above(full["BatchNorm"], full["no normalization, He init"]).at_least(7 / 8)
independent = ahead.support(ahead.values > 0.3)
record("layernorm-groupnorm-batch-independent", holds=outcome_of(independent), support=independent,
       measured=f"batches of 2: BN {tiny['BatchNorm'].describe('{:.0%}')}, LayerNorm "
                f"{tiny['LayerNorm'].describe('{:.0%}')}, GroupNorm {tiny['GroupNorm'].describe('{:.0%}')}, "
                f"none {tiny['no normalization, He init'].describe('{:.0%}')} (He init), "
                f"{tiny[wb.PLAIN_DEFAULT].describe('{:.0%}')} (default init); batches of 60: BN "
                f"{full['BatchNorm'].describe('{:.0%}')}, none (He init) "
                f"{full['no normalization, He init'].describe('{:.0%}')}")

# %%
normalization_accuracy_figure(runs, title=f"With batches of {wb.TINY_BATCH}, BatchNorm fails where LayerNorm "
                                          f"and GroupNorm train (one dot per seed, {len(SEEDS)} seeds)")

# %%
compare_prediction(my_prediction, worst)

# %% [markdown]
# The panel trains one seed's four networks (the first of the 8) at any batch size from 2 to 512 when
# you let go of the slider; batch sizes 2 and 60 come from the runs above. The network without
# normalization is the He-initialized one.

# %%
alternatives_panel = normalization_panel(wb.batch_size_grid(SEEDS[0]), seed=SEEDS[0])
alternatives_panel

# %% [markdown]
# Slide the batch size down to 2. BatchNorm collapses: every unit of a two-example batch becomes ±1, which
# passes essentially no gradient to the layer below ([notebook 05](05_training_with_batchnorm.ipynb),
# section 5), and the running statistics
# of two-example batches are poor estimates. New here: LayerNorm and GroupNorm lose only what every
# network loses from tiny batches (the networks without normalization drop too, since 240 steps of 2
# examples is less than half a pass over the data; with batches this noisy, He initialization's larger
# gradients do not help). At 60, BN beats the He-initialized network without normalization in every seed
# or nearly every one, and in the panel's run LayerNorm and GroupNorm come close to it. Rules of thumb that
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
# give the counts), against a network without BN that is fairly initialized (He) as well as one with
# PyTorch's default.
# * **Initialization first.** Part of what BN seemed to win over "no BN" was initialization: the
#   He-initialized network beat the default-initialized one in every seed. BN still beat the He network.
# * **Noisy BN.** Mean-one noise after each BN layer that makes every unit's input jump at every step,
#   far more than training moves the inputs of the network without BN, did not remove BN's advantage at a
#   moderate level: noisy BN still ended above the He network. Stronger noise cost it some accuracy, and
#   cost the network without BN far more. Stable layer inputs are not what BN's benefit needs.
# * **Internal covariate shift, measured through the gradient,** was *larger* with BN than without,
#   under either initialization.
# * **Smoothness.** Along training's own steps, BN's loss and gradient changed less, clearly at the worst
#   steps. Per unit of distance (the gradient change per distance, Santurkar et al.'s "effective
#   β-smoothness"), BN's landscape was not smoother.
# * **Scale invariance during training.** The gradient is orthogonal to every BN-normalized weight vector,
#   so SGD grows the weights, and the effective learning rate $\eta/\lVert w\rVert^2$ falls, the more the
#   larger η.
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
# * K. He, X. Zhang, S. Ren and J. Sun (2015). *Delving Deep into Rectifiers: Surpassing Human-Level
#   Performance on ImageNet Classification.* ICCV. [arXiv:1502.01852](https://arxiv.org/abs/1502.01852)
#   (He initialization).
# * T. van Laarhoven (2017). *L2 Regularization versus Batch and Weight Normalization.*
#   [arXiv:1706.05350](https://arxiv.org/abs/1706.05350) (the effective learning rate).
# * S. Arora, Z. Li and K. Lyu (2019). *Theoretical Analysis of Auto Rate-Tuning by Batch Normalization.*
#   ICLR. [arXiv:1812.03981](https://arxiv.org/abs/1812.03981).
# * Y. Wu and J. Johnson (2021). *Rethinking "Batch" in BatchNorm.*
#   [arXiv:2105.07576](https://arxiv.org/abs/2105.07576) (precise BN and other pitfalls).
