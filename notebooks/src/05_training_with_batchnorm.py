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
# 1. compare training with and without BN over learning rates spanning two decades, against a network
#    without BN that is initialized by a principled rule (LeCun, Xavier or He), and tell a run that
#    stalls (fails) from one that diverges;
# 2. derive BN's scale invariance, $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$, and its consequence for the
#    gradient ($\propto 1/a$); say which part of a good start BN provides and which part a principled
#    initialization provides without it;
# 3. predict, from the weights' scale and the activation's slope, whether the gradient vanishes or
#    explodes on its way down a network without BN, and what BN changes;
# 4. separate the two noises of a mini-batch, the gradient's and BN's own, and show why BN passes back
#    almost no gradient with batches of two;
# 5. describe how $\gamma$ and $\beta$ move during training, and what the learning rate does to them;
# 6. measure the singular values of the paper's layer-to-layer Jacobian, and explain which part of
#    "close to 1" BN guarantees (their mean square) and which it does not (their spread).

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
from bnlab.lessons.nb05_training_with_batchnorm import experiments as bt
from bnlab.lessons.nb05_training_with_batchnorm.checks import (
    check_bn_input_gradient,
    check_jacobian_singular_values,
    check_scale_hidden_weights,
    show_solution,
)
from bnlab.lessons.nb05_training_with_batchnorm.experiments import confirm, learning_rate_grids
from bnlab.lessons.nb05_training_with_batchnorm.figures import (
    batch_size_training_panel,
    gamma_beta_figure,
    init_scale_panel,
    jacobian_figure,
    learning_rate_panel,
    outcome_table,
    output_against_gamma_beta_figure,
    saturation_figure,
    seed_band_figure,
)
from bnlab.models import WITH_AND_WITHOUT_BN
from bnlab.statistics import OverSeeds, Support, seed_range

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
# **Is that a fair start for the network without BN?** [Notebook 01](01_input_normalization.ipynb)
# (section 4) derived the principled initializations: LeCun's $s = 1/\sqrt{n}$ for a layer of $n$ inputs,
# Xavier's $s = \sqrt{2/(n_\text{in} + n_\text{out})}$, both with gain 1, and He's $s = \sqrt{2/n}$ for ReLU
# (`make_mlp(init_std="lecun" | "xavier" | "he")`). For layers of 100 units,
# $1/\sqrt{100} = \sqrt{2/200} = 0.1$: the paper's $N(0, 0.1^2)$ *is* LeCun's and Xavier's initialization
# with gain 1 for the sigmoid network's hidden layers (the first layer, with 64 inputs, would get
# $1/\sqrt{64} = 0.125$ and $\sqrt{2/164} \approx 0.11$). Gain 1 assumes a slope of 1 at 0, as tanh has;
# the sigmoid's slope there is 1/4, so [notebook 02](02_covariate_shift.ipynb) (section 1) gave it
# Xavier's initialization with gain 4 (`init_std="xavier", init_gain=4`: $s = 0.4$ for the hidden layers)
# and found that most of BN's lead over the paper's network was the initialization's. So wherever this
# notebook compares the sigmoid network with and without BN, it also trains it without BN from Xavier's
# initialization with gain 4 ("Xavier init ×4"), and the ReLU network of section 2 from He's: the **fair
# baseline**, next to the paper's start.
#
# One run is one draw: another seed (other initial weights, another order of the mini-batches) can end
# several points higher or lower, and at a large learning rate or with tiny batches the spread is wide.
# So every setting in this notebook is trained under **8 seeds** (`bnlab.seeding.claim_seeds`; the split
# of the digits stays the course seed's), and what we report is a statistic over them: the median, the
# range from the lowest to the highest seed, or in how many of the 8 seeds something happened
# ("most seeds" below means at least 6 of the 8). That makes 56 settings × 8 seeds = 448 networks.
# `bnlab.ensemble.train_ensemble` trains networks of the same shape together, in one batched
# computation, which costs a fraction of training them one by one: the whole lot takes about 25
# seconds of CPU time (about 13 s on two cores), in the next cell. Each setting's runs come back as a
# `SeedRuns` (its 8 Histories and their statistics), which the later sections and the slider panels
# look up.
#
# **Predict before you run.** At learning rate $\eta = 1$, how many steps will each of the three networks
# need to reach 90% test accuracy?

# %%
experiments = bt.Experiments()         # 8 seeds, 200 steps per run, a record every 50 steps
experiments.train(bt.notebook_runs())  # every setting of sections 1-7, under every seed, in one batched call
seeds = experiments.seeds
PAPER = bt.NETWORKS["3×100 sigmoid"]   # depth 3, sigmoid
FAIR = bt.XAVIER_4                     # "without BN, Xavier init ×4": the sigmoid network's fair baseline
# η = 1, batches of 60: without BN from N(0, 0.1²) and from Xavier's init ×4, with BN from N(0, 0.1²)
base = {net: experiments.runs(bt.Run(**PAPER, **fields)) for net, fields in bt.COMPARED["3×100 sigmoid"].items()}
reach = {net: runs.steps_to(0.9) for net, runs in base.items()}  # the step each seed first reached 90%
lead = {net: OverSeeds(seeds, base["with BN"].final_accuracy.values - base[net].final_accuracy.values)
        for net in ("without BN", FAIR)}  # BN's lead after 200 steps, per seed
early_lead = OverSeeds(seeds, base["with BN"].accuracy_at(50).values - base[FAIR].accuracy_at(50).values)
print(f"{experiments.networks_trained} networks trained, each setting under {seed_range(seeds)}")

# %%
# Check: the findings of section 1, in every block of 8 seeds
confirm({
    "with BN: 90% test accuracy by step 50 in more than half of the seeds, by step 100 in every seed":
        reach["with BN"].support(reach["with BN"].values <= 50).held > len(seeds) / 2
        and reach["with BN"].support(reach["with BN"].values <= 100).everywhere,
    "without BN from N(0, 0.1²): 90% not reached within 200 steps in most seeds":
        reach["without BN"].support(np.isnan(reach["without BN"].values)).at_least(0.75),
    "without BN from Xavier's init ×4: 90% by step 100 in most seeds, by step 150 in every seed":
        reach[FAIR].support(reach[FAIR].values <= 100).at_least(0.75)
        and reach[FAIR].support(reach[FAIR].values <= 150).everywhere,
    "at step 50 BN is ahead of Xavier's init ×4 in most seeds, by more than 2 points (median)":
        early_lead.support(early_lead.values > 0).at_least(0.75) and early_lead.median > 0.02,
    "after 200 steps: BN ahead of N(0, 0.1²) in every seed, by more than 10 points (median); level with "
    "Xavier's init ×4 (within 2 points, median)":
        lead["without BN"].low > 0 and lead["without BN"].median > 0.1 and abs(lead[FAIR].median) < 0.02,
})

# %%
paper_reached = reach["without BN"].support(~np.isnan(reach["without BN"].values))
seed_band_figure(base, level=0.9,
                 title=f"3×100 sigmoid, η = 1, {len(seeds)} seeds: 90% test accuracy at step "
                       f"{reach['with BN'].median:g} with BN,<br>at step {reach[FAIR].median:g} without BN from "
                       f"Xavier ×4 (medians), from N(0, 0.1²) in {paper_reached}")

# %% [markdown]
# Same network, same mini-batches for each seed. With BN it passes 90% test accuracy by step 50 in more
# than half of the seeds (by step 100 in all). Without BN, from the paper's $N(0, 0.1^2)$, it has not got
# there by the end in most seeds (it ends below 90%, how far below depends on the seed: the shaded band
# runs from the lowest seed to the highest). From Xavier's initialization with gain 4 it gets there by
# step 100 in most seeds (by step 150 in all): BN is ahead at step 50 in most seeds, but after 200 steps
# the two end level.
# So on this network most of BN's lead over the paper's start is the initialization's, as notebook 02
# found at η = 0.5; what BN adds at η = 1 is speed in the first steps. Notebook 02 looked inside this
# network (the percentiles of a sigmoid's input, the paper's Figure 1). Here we change the training
# conditions instead, one at a time.

# %% [markdown]
# ## 2. Higher learning rates
#
# The first promise: with BN, you can raise the learning rate. We train the three networks of section 1
# at five learning rates over two decades: 0.1, 0.3, 1, 3 and 10, for the same **200 steps of 60
# examples**. We also train a deeper network, **6 hidden layers of 100 ReLU units**, because depth is where
# large steps become dangerous: each layer multiplies the scale of the signal, so a step that inflates every
# layer's weights a little inflates the output a lot. For ReLU, $N(0, 0.1^2)$ is *below* He's initialization
# ($\sqrt{2/100} \approx 0.14$): without BN the signal shrinks by about $0.1 \cdot \sqrt{100/2} \approx 0.7$
# at every layer, so we train the ReLU network without BN twice, from $N(0, 0.1^2)$ and from He's
# initialization, and compare BN with the better of the two. A run **diverges** when its loss becomes NaN
# or infinite; we then stop it and mark where. A run that ends below 50% test accuracy (chance is 10%) has
# **failed**.
#
# **Predict before you run.** Which learning rates will the sigmoid network survive without BN? And the
# ReLU network? Will BN survive η = 10? Record one guess: the ReLU network without BN, started from He's
# initialization, at η = 1: will it **"train"** (85% or more) or **"diverge"** in most seeds?

# %%
my_prediction = None  # write "train" or "diverge" here before you run the next cells

# %%
grids = learning_rate_grids(experiments)  # 2 networks x 5 learning rates x the compared networks (trained above)
sigmoid_grid, relu_grid = grids["3×100 sigmoid"], grids["6×100 ReLU"]
outcome_table({f"{network.split()[1]}, {net}": {lr: grid[lr][net] for lr in bt.LEARNING_RATES}
               for network, grid in grids.items() for net in grid[bt.BASE_LR]}, "η",
              title="Test accuracy after 200 steps: median (lowest to highest seed) over "
                    f"{seed_range(seeds)}")

# %% [markdown]
# Each cell of the table: the median test accuracy after 200 steps, the lowest and the highest seed in
# brackets (a run that diverged has no accuracy), and in how many of the 8 seeds the run diverged.

# %%
he_at_1 = relu_grid[1.0][bt.HE]
compare_prediction(my_prediction, "diverge" if he_at_1.diverged.at_least(0.75) else
                   "train" if he_at_1.trained(0.85).at_least(0.75) else "neither in most seeds")

# %%
def final(grid, lr, net):
    """The final test accuracy of a grid cell over the seeds (NaN for a run that diverged)."""
    return grid[lr][net].final_accuracy


# %%
# Check: the findings of section 2, in every block of 8 seeds
def output_growth(lr, names):
    """How many times the norm of the ReLU BN network's parameters ``names`` grew in 200 steps, per seed."""
    return OverSeeds(seeds, [bt.norm_growth(h, names) for h in relu_grid[lr]["with BN"].histories])


gamma_beta_names = [f"norm{k}.{p}" for k in range(1, 7) for p in ("weight", "bias")]
growth_at = {lr: {"output": output_growth(lr, ["output.weight"]), "γ, β": output_growth(lr, gamma_beta_names)}
             for lr in (3.0, 10.0)}
confirm({
    "3×100 sigmoid with BN: 85% or more at every η from 0.1 to 3 in every seed, at η = 10 in most":
        all(sigmoid_grid[lr]["with BN"].trained(0.85).everywhere for lr in (0.1, 0.3, 1.0, 3.0))
        and sigmoid_grid[10.0]["with BN"].trained(0.85).at_least(0.75),
    "3×100 sigmoid without BN from N(0, 0.1²): under 50% at η = 0.1 and 10 in every seed, and at η = 0.3 in "
    "most":
        all(final(sigmoid_grid, lr, "without BN").high < 0.5 for lr in (0.1, 10.0))
        and sigmoid_grid[0.3]["without BN"].trained(0.5).held <= 2,
    "3×100 sigmoid without BN from N(0, 0.1²) at η = 1: over 70% (median)":
        final(sigmoid_grid, 1.0, "without BN").median > 0.7,
    "3×100 sigmoid without BN from Xavier's init ×4: 80% or more at η = 0.1 to 1 in every seed, 85% or more "
    "at η = 3 in at least half of the seeds, under 50% at η = 10 in every seed":
        all(sigmoid_grid[lr][FAIR].trained(0.8).everywhere for lr in (0.1, 0.3, 1.0))
        and sigmoid_grid[3.0][FAIR].trained(0.85).at_least(0.5) and final(sigmoid_grid, 10.0, FAIR).high < 0.5,
    "3×100 sigmoid with BN ahead of Xavier's init ×4 at η = 0.1 in every seed, by more than 3 points (median)":
        (final(sigmoid_grid, 0.1, "with BN").values > final(sigmoid_grid, 0.1, FAIR).values).all()
        and final(sigmoid_grid, 0.1, "with BN").median - final(sigmoid_grid, 0.1, FAIR).median > 0.03,
    "6×100 ReLU with BN: 85% or more at every η from 0.1 to 3 in most seeds":
        all(relu_grid[lr]["with BN"].trained(0.85).at_least(0.75) for lr in (0.1, 0.3, 1.0, 3.0)),
    "6×100 ReLU with BN at η = 10: under 50% in every seed, without diverging":
        final(relu_grid, 10.0, "with BN").high < 0.5 and relu_grid[10.0]["with BN"].diverged.nowhere,
    "6×100 ReLU without BN: diverges at η = 10 in every seed, and at η = 3 in most":
        relu_grid[10.0]["without BN"].diverged.everywhere
        and relu_grid[3.0]["without BN"].diverged.at_least(0.75),
    "6×100 ReLU without BN at η = 1: diverges, or ends far behind (median under 75%, a diverged run "
    "counted as 0)":
        np.median(np.nan_to_num(final(relu_grid, 1.0, "without BN").values)) < 0.75,
    "6×100 ReLU without BN: 85% or more at η = 0.1 and 0.3 in most seeds":
        all(relu_grid[lr]["without BN"].trained(0.85).at_least(0.75) for lr in (0.1, 0.3)),
    "6×100 ReLU without BN, He init: 85% or more at η = 0.1 and 0.3 in more than half of the seeds, 90% "
    "within 100 steps in more than half, like with BN; diverges at η = 1 in most seeds, at 3 and 10 in every "
    "seed":
        all(relu_grid[lr][bt.HE].trained(0.85).at_least(0.6)
            and Support.of(relu_grid[lr][net].steps_to(0.9).values <= 100).at_least(0.6)
            for lr in (0.1, 0.3) for net in (bt.HE, "with BN"))
        and relu_grid[1.0][bt.HE].diverged.at_least(0.75)
        and all(relu_grid[lr][bt.HE].diverged.everywhere for lr in (3.0, 10.0)),
    "6×100 ReLU with BN, from η = 3 to 10: the output layer's weights grow over twice as much (median over "
    "the seeds), and γ, β, whose size hardly changes at η = 3 (under 1.2-fold in most seeds), grow over "
    "1.5-fold in most seeds":
        growth_at[10.0]["output"].median > 2 * growth_at[3.0]["output"].median
        and growth_at[3.0]["γ, β"].support(growth_at[3.0]["γ, β"].values < 1.2).at_least(0.75)
        and growth_at[10.0]["γ, β"].support(growth_at[10.0]["γ, β"].values > 1.5).at_least(0.75),
})
largest = {net: bt.largest_rate(relu_grid, net, 0.85) for net in relu_grid[bt.BASE_LR]}  # per seed
best_plain = np.fmax(largest["without BN"].values, largest[bt.HE].values)  # the better init, per seed
sigmoid_largest = {net: bt.largest_rate(sigmoid_grid, net, 0.85) for net in sigmoid_grid[bt.BASE_LR]}
fair_sigmoid = np.nan_to_num(sigmoid_largest[FAIR].values)  # 0 where it reached 85% at no η
# per seed: with BN tenfold the ReLU network's better init, threefold the sigmoid's fair one
higher = Support.of((largest["with BN"].values >= 10 * best_plain)
                    & (sigmoid_largest["with BN"].values >= 3 * fair_sigmoid))
record("bn-allows-higher-learning-rates", holds=outcome_of(higher), support=higher,
       measured="200 steps of 60, largest η (of 0.1 to 10) reaching 85%: 6×100 ReLU "
                f"{largest['with BN'].describe('{:g}')} with BN; without BN "
                f"{largest[bt.HE].describe('{:g}')} from He's init, "
                f"{largest['without BN'].describe('{:g}')} from N(0, 0.1²) (without BN, He init, it diverged "
                f"at η = 1 in {relu_grid[1.0][bt.HE].diverged}); 3×100 sigmoid "
                f"{sigmoid_largest['with BN'].describe('{:g}')} with BN, "
                f"{sigmoid_largest[FAIR].describe('{:g}')} without BN from Xavier's init ×4 (at η = 10 it "
                f"ends at {final(sigmoid_grid, 10.0, FAIR).describe('{:.0%}')}); with BN tenfold the ReLU "
                f"network's better init and threefold the sigmoid's fair one in {higher}")

# %% [markdown]
# The panel opens on the ReLU network at η = 3. Pick any learning rate from 0.001 to 10, and switch
# networks: when you let go of the slider, the compared networks train at that value, under the first 3
# of the 8 seeds, for the same 200 steps, and the curves grow as they train (about a second; a value
# already trained, such as the grid's, comes back at once). Left: the median over the seeds and the band
# from the lowest to the highest seed; an X where a seed diverged. Right: where each network ends after
# 200 steps, at every learning rate tried so far. Try η between 0.3 and 1 for the ReLU network: where does
# each network stop training?

# %%
lr_panel = learning_rate_panel(experiments, lr=3.0, network="6×100 ReLU")
lr_panel

# %% [markdown]
# What the grid says, for a budget of 200 steps:
# * **From $N(0, 0.1^2)$, the sigmoid network without BN gets far within 200 steps only around η = 1**
#   (η = 3 works too in many seeds, but not all: see the table). That is a statement about *speed at a
#   fixed budget*, not about which learning rates it tolerates: at η = 0.1 and 0.3 it stays under 50% after
#   200 steps in (almost) every seed because it learns slowly (its first layers get a tiny gradient: each
#   sigmoid passes back at most 1/4, notebook 02 §4), not because it breaks.
# * **From Xavier's initialization with gain 4, the sigmoid network without BN trains from η = 0.1 to 3**
#   (at 3 in at least half of the seeds; in the others it stalls), and from η = 0.3 on it ends within a few
#   points of BN where it trains. At η = 0.1 BN is ahead in every seed: the same speed at a small budget.
#   At η = 10 it stalls from either start: the first large steps push the sigmoids into saturation
#   (notebook 02 §4 measured it at η = 8). With BN it reaches 85% or more at every learning rate from 0.1
#   to 3 in every seed, and at 10 in most. Against the fair start, BN adds the top of the range (η = 10) and
#   speed at the bottom.
# * **The ReLU network without BN, from He's initialization, is as fast as with BN where it trains**: at
#   η = 0.1 and 0.3 it reaches 90% within 100 steps in more than half of the seeds, like the BN network,
#   and ends about as high (in some seeds, depending on the block of seeds, it fails at η = 0.3). From
#   $N(0, 0.1^2)$ it is slower there: that gap is the initialization's, not BN's. But with either
#   initialization it trains only up to about η = 0.3: from He's initialization it diverges at η = 1 in
#   most seeds (in the first few steps: a larger start means larger activations), from $N(0, 0.1^2)$ at
#   η = 3 in most seeds. With BN it reaches 85% at every learning rate from 0.1 to 3 in most seeds: a window
#   ten times wider than the best initialization gives.
# * **BN has a limit too.** At η = 10 the ReLU network with BN does not diverge, but it fails in every
#   seed. What BN leaves unnormalized takes the blow: in 200 steps the output layer's weights grow more
#   than twice as much as at η = 3 (median over the seeds), and γ and β, whose size hardly changes at
#   η = 3, grow more than 1.5-fold, in most seeds
#   (the check above measures both). "Much higher learning rates" means a wider window, not no window.
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
# of 100 units, on 60 digits, in double precision, with the loss a fixed random projection of the output
# (exact algebra: one computation is enough):

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
# $N(0, 0.1^2)$), trained at η = 1 for 200 steps. $a = 1$ is LeCun's and Xavier's initialization with
# gain 1; Xavier's with the sigmoid's gain 4, section 1's fair baseline, gives the hidden layers $a = 4$
# (it also starts the first and the output layer a little larger). No principled recipe chooses 0.01, 0.1
# or 100. The question is therefore not "does BN beat a bad start?" but: **how much does the outcome depend
# on getting the scale right, with and without BN?**
#
# **Predict before you run.** Which scales will the network without BN survive? How does the gradient
# of the first hidden layer at initialization depend on $a$, with and without BN?

# %%
init_grid = experiments.grid("init_scale", bt.INIT_SCALES, **PAPER)  # trained above, 8 seeds each
# seed -> a -> net -> |dL/dW1| of the freshly initialized network
gradients = {seed: bt.initial_gradients(experiments, seed=seed, **PAPER) for seed in seeds}
first_gradient = gradients[seeds[0]]  # the table shows the first seed's networks
saturated = {a: bt.saturated_share(bt.Run(net="without BN", init_scale=a, **PAPER).build(seeds[0]),
                                   experiments.data.X_train, "sigmoid") for a in bt.INIT_SCALES}
print(f"At initialization, seed {seeds[0]}:")
print(f"{'a':>6} | {'|dL/dW1|':^25} | {'a·|dL/dW1|':^10} | {'saturated':^10}")
print(f"{'':>6} | {'without BN':>12} {'with BN':>12} | {'with BN':>10} | {'without BN':>10}")
for a in bt.INIT_SCALES:
    g = first_gradient[a]
    print(f"{a:>6g} | {g['without BN']:>12.2e} {g['with BN']:>12.2e} | {a * g['with BN']:>10.3f} | "
          f"{saturated[a]:>10.0%}")


# %%
# Check: the findings of section 3.2, in every block of 8 seeds
scaled_gradient = {seed: np.array([a * g[a]["with BN"] for a in (0.1, 1.0, 10.0, 100.0)])
                   for seed, g in gradients.items()}
gradient_spread = OverSeeds(seeds, [np.ptp(v) / v.mean() for v in scaled_gradient.values()])
confirm({
    "with BN, a·|dL/dW1| is the same for a = 0.1 to 100 within 2% (the gradient ∝ 1/a), for every seed":
        gradient_spread.high < 0.02,
    "... but not at a = 0.01, where a²σ² meets ε: |dL/dW1| under half of 1/a, for every seed":
        all(g[0.01]["with BN"] < 0.5 * g[1.0]["with BN"] / 0.01 for g in gradients.values()),
    "without BN, |dL/dW1| at a = 0.01 is under 1/100 of that at a = 1 (it vanishes), for every seed":
        all(g[0.01]["without BN"] < g[1.0]["without BN"] / 100 for g in gradients.values()),
    "with BN, after 200 steps: 85% or more at every a, in every seed":
        all(runs["with BN"].trained(0.85).everywhere for runs in init_grid.values()),
    "without BN: under 30% at a = 0.01 and 0.1 in every seed (chance is 10%)":
        all(final(init_grid, a, "without BN").high < 0.3 for a in (0.01, 0.1)),
    "without BN at a = 100: over half of the sigmoid inputs start saturated, and it ends under 80% in "
    "every seed":
        saturated[100.0] > 0.5 and final(init_grid, 100.0, "without BN").high < 0.8,
    "without BN at a = 1 (LeCun/Xavier) and a = 10: over 70% (median); the only scales of the sweep that "
    "train, on either side of Xavier's init ×4 (a = 4)":
        all(final(init_grid, a, "without BN").median > 0.7 for a in (1.0, 10.0)),
    "with BN: within 6 points of its own a = 1 result at every a (median)":
        all(final(init_grid, 1.0, "with BN").median - final(init_grid, a, "with BN").median < 0.06
            for a in bt.INIT_SCALES),
})
# robust: in a seed, BN trains at every scale while without BN only the principled neighbourhood trains
robust = Support.of([all(bt.trained(init_grid[a]["with BN"].histories[i], 0.85) for a in bt.INIT_SCALES)
                     and not any(bt.trained(init_grid[a]["without BN"].histories[i], 0.5) for a in (0.01, 0.1))
                     and gradient_spread.values[i] < 0.02 for i in range(len(seeds))])
record("bn-forgives-initialization", holds=outcome_of(robust), support=robust,
       measured="3×100 sigmoid, η = 1, 200 steps of 60, hidden weights a × N(0, 0.1²) (a = 1: LeCun/Xavier, "
       "gain 1), final test accuracy at a = " + ", ".join(f"{a:g}" for a in bt.INIT_SCALES) + ": with BN "
       + ", ".join(f"{final(init_grid, a, 'with BN').median:.0%}" for a in bt.INIT_SCALES) + ", without "
       + ", ".join(f"{final(init_grid, a, 'without BN').median:.0%}" for a in bt.INIT_SCALES)
       + " (medians); without BN from the fair Xavier init ×4 (a ≈ 4) "
       f"{final(sigmoid_grid, 1.0, FAIR).median:.0%}; a·|dL/dW1| with BN varies by "
       f"{gradient_spread.describe('{:.1%}')}; with BN 85% or more at every a (without BN under 50% at "
       f"a = 0.01 and 0.1) and that gradient within 2% in {robust}")

# %%
outcome_table({net: {a: init_grid[a][net] for a in bt.INIT_SCALES} for net in WITH_AND_WITHOUT_BN},
              "a", title=f"Initial weights × a, test accuracy after 200 steps: median (lowest to highest "
                         f"seed) over {seed_range(seeds)}")

# %% [markdown]
# Without BN the gradient that reaches the first layer collapses as the weights shrink (each layer passes
# back a share proportional to its weights), and with the smallest two scales the network never leaves
# chance. At $a = 100$ most sigmoids start saturated (slope below a tenth of its maximum) and it ends far
# behind in every seed. Only the neighbourhood of the principled scale trains without BN: $a = 1$
# (LeCun/Xavier, gain 1) and $a = 10$, on either side of $a = 4$, where Xavier's initialization with the
# sigmoid's gain puts the hidden layers (a sigmoid passes back at most 1/4, so a larger gain keeps more of
# the backward signal; section 4 makes this precise). From that start, section 1's fair baseline, the
# network without BN ends level with BN at η = 1.
# With BN, the forward pass is the same at every scale, and the gradient follows $1/a$ within 2%, until
# $\epsilon$ interferes at $a = 0.01$. Every scale trains, in every seed.
#
# So the fair reading of the paper's "be less careful about initialization": **a principled
# initialization gives the network without BN as good an outcome as BN's within 200 steps, but only if
# its scale is right; BN makes the outcome insensitive to that scale**, over four decades here. (At the
# sigmoid's principled scale BN is only faster in the first steps: section 1.)
# Drag the scale to any value from 0.01 to 100: both networks train at that scale, live.

# %%
init_panel = init_scale_panel(experiments)
init_panel

# %% [markdown]
# ### 3.3 What BN does not forgive: the size of the step
#
# The forward pass ignores $a$, but training does not. The step $\eta\,\partial L/\partial W$ shrinks like
# $1/a$ while the weights grow like $a$, so relative to the weights a step shrinks like $1/a^2$. How far
# did the hidden weights of the BN network travel in 200 steps, relative to where they started?

# %%
travel = {a: OverSeeds(seeds, [bt.relative_weight_change(bt.Run(init_scale=a, **PAPER).build(seed),
                                                         init_grid[a]["with BN"].network(i))
                               for i, seed in enumerate(seeds)])
          for a in bt.INIT_SCALES}
for a, change in travel.items():
    print(f"a = {a:>6g}: |W_end - W_start| / |W_start| = {change.median:.1g} (median over the seeds)")

# %%
# Check: the findings of section 3.3, in every block of 8 seeds
ratios = np.array([travel[small].values / travel[large].values  # (4 pairs of neighbouring scales, seeds)
                   for small, large in zip(bt.INIT_SCALES, bt.INIT_SCALES[1:])])
confirm({
    "each factor 10 in a: the weights travel at least 8 times less, in every seed": ratios.min() > 8,
    "at a = 100 they move by less than 0.3% of their size; at a = 0.01 they grow over a hundredfold":
        travel[100.0].high < 0.003 and travel[0.01].low > 100,
})

# %% [markdown]
# With $a = 0.01$ the first steps are enormous compared with the weights, which grow a hundredfold or more
# (and, as they grow, their gradient shrinks: BN "stabilizes the parameter growth", section 3.3). With
# $a = 100$ the hidden weights hardly move at all: they stay essentially the random weights they started
# as, and the network still reaches about 90% by learning the output layer and γ, β on top of them (an
# easy task helps). BN makes the *output* independent of the weights' scale; the *learning dynamics*
# still depend on it, through the effective learning rate $\eta/\lVert W\rVert^2$ of notebook 03.

# %% [markdown]
# ## 4. Saturating nonlinearities: sigmoid and tanh
#
# A learner asks: does BN really let sigmoid and tanh networks train, by keeping them out of
# saturation? Notebook 02 (§4) watched saturation in the 3-layer network; there every network trained
# well at moderate learning rates, and saturation stalled the networks without BN only at η = 8. Depth
# makes the question sharper, so we use **6 hidden layers of 100 units**, sigmoid or tanh, initial weights
# of standard deviation 0.1 or 1 ($a = 1$ or 10), trained at η = 0.3 (a rate at which the ReLU network
# without BN trains, section 2) for 200 steps. A standard deviation of 0.1 is
# LeCun's and Xavier's initialization (gain 1) for these layers: the principled start for tanh, and the
# one these recipes give a sigmoid too; 1 is ten times larger. The sigmoid network without BN also starts
# from its fair baseline, Xavier's initialization with gain 4 (std 0.4 for the hidden layers); with BN
# that start would differ from std 0.1 only in the output layer, so it is trained without BN only. Two
# numbers at initialization summarize the outcomes: the share of the hidden units' inputs at which the
# activation's slope is below a tenth of its maximum (**saturated**), and the size of the first hidden
# layer's weight gradient relative to the last's (**reach**).
#
# **Predict before you run.** Sigmoid and tanh have the same S shape ($\tanh x = 2\sigma(2x) - 1$). Will
# they fail in the same settings without BN?

# %%
saturation_runs = bt.saturation_runs(experiments)  # label -> "without BN" (, "with BN") -> SeedRuns (trained above)
FAIR_VARIANT = bt.FAIR_SATURATION_VARIANT          # "sigmoid, Xavier ×4", without BN only


def at_initialization(run):
    """(share of saturated inputs, reach) of the network of a setting under the first seed, untrained."""
    model = run.build(seeds[0])
    return (bt.saturated_share(model, experiments.data.X_train, run.activation),
            bt.gradient_reach(model, experiments.data))


at_start = {label: {net: at_initialization(runs.run) for net, runs in pair.items()}
            for label, pair in saturation_runs.items()}
print(f"At initialization, seed {seeds[0]}:")
print(f"{'6×100 network':>18} | {'saturated':^23} | {'reach':^21}")
print(f"{'':>18} | {'without BN':>11} {'with BN':>11} | {'without BN':>10} {'with BN':>10}")
for label, start in at_start.items():
    sat_plain, reach_plain = start["without BN"]
    sat_bn, reach_bn = (f"{start['with BN'][0]:>11.0%}", f"{start['with BN'][1]:>10.2g}") if "with BN" in start \
        else (f"{'–':>11}", f"{'–':>10}")
    print(f"{label:>18} | {sat_plain:>11.0%} {sat_bn} | {reach_plain:>10.2g} {reach_bn}")

# %%
# Check: the findings of section 4, in every block of 8 seeds
final_accuracy = {label: {net: runs.final_accuracy for net, runs in pair.items()}
                  for label, pair in saturation_runs.items()}
bn_lead = {label: OverSeeds(seeds, accuracy["with BN"].values - accuracy["without BN"].values)
           for label, accuracy in final_accuracy.items() if "with BN" in accuracy}
# BN (std 0.1; with BN the hidden layers' scale makes no difference) against the fair sigmoid start
fair_lead = OverSeeds(seeds, final_accuracy["sigmoid, std 0.1"]["with BN"].values
                      - final_accuracy[FAIR_VARIANT]["without BN"].values)
with_bn = {label: pair["with BN"] for label, pair in saturation_runs.items() if "with BN" in pair}
confirm({
    "with BN: 80% or more after 200 steps in all four settings, in every seed":
        all(runs.trained(0.8).everywhere for runs in with_bn.values()),
    "sigmoid, std 0.1 without BN: under 20% in every seed (vanishing gradient: reach under 0.01), "
    "under 1% of the inputs saturated": final_accuracy["sigmoid, std 0.1"]["without BN"].high < 0.2
        and at_start["sigmoid, std 0.1"]["without BN"][1] < 0.01
        and at_start["sigmoid, std 0.1"]["without BN"][0] < 0.01,
    "tanh, std 0.1 (LeCun/Xavier): with or without BN the same within 3 points (median)":
        abs(bn_lead["tanh, std 0.1"].median) < 0.03,
    "std 1: without BN more than 30% of the inputs start saturated, with BN under 10%":
        all(at_start[label]["without BN"][0] > 0.3 and at_start[label]["with BN"][0] < 0.1
            for label in ("sigmoid, std 1", "tanh, std 1")),
    "std 1: BN ahead in every seed, by more than 5 points for sigmoid and 15 for tanh (median)":
        bn_lead["sigmoid, std 1"].low > 0 and bn_lead["tanh, std 1"].low > 0
        and bn_lead["sigmoid, std 1"].median > 0.05 and bn_lead["tanh, std 1"].median > 0.15,
    "with BN every layer gets a gradient of similar size (reach between 0.5 and 2)":
        all(0.5 < start["with BN"][1] < 2 for start in at_start.values() if "with BN" in start),
    "sigmoid, Xavier ×4 without BN: over 85% (median), 75% or more in most seeds; under 30% of the inputs "
    "saturated":
        saturation_runs[FAIR_VARIANT]["without BN"].trained(0.75).at_least(0.75)
        and final_accuracy[FAIR_VARIANT]["without BN"].median > 0.85
        and at_start[FAIR_VARIANT]["without BN"][0] < 0.3,
    "sigmoid with BN ahead of Xavier ×4 without BN in most seeds, by more than 4 points (median)":
        fair_lead.support(fair_lead.values > 0).at_least(0.75) and fair_lead.median > 0.04,
})
trains_all = [all(bt.trained(runs.histories[i], 0.8) for runs in with_bn.values()) for i in range(len(seeds))]
# ... and without BN from the principled starts: the sigmoid's Xavier ×4, tanh's std 0.1 (LeCun/Xavier)
fair_trains = [bt.trained(saturation_runs[FAIR_VARIANT]["without BN"].histories[i], 0.75)
               and bt.trained(saturation_runs["tanh, std 0.1"]["without BN"].histories[i], 0.8)
               for i in range(len(seeds))]
# the claim says BN is what lets them train: where the principled starts train without BN too, it holds in part
in_part = Support.of(np.logical_and(trains_all, fair_trains))
if in_part.at_least(0.75):
    outcome, support = "partly", in_part
else:
    support = Support.of(trains_all)
    outcome = outcome_of(support)
record("bn-trains-saturating-nets", holds=outcome, support=support,
       measured="6×100, η = 0.3, 200 steps of 60 (std 0.1 = LeCun/Xavier, gain 1), final test accuracy without → "
                "with BN (median over the seeds): "
                + "; ".join(f"{label} {accuracy['without BN'].median:.0%} → {accuracy['with BN'].median:.0%}"
                            for label, accuracy in final_accuracy.items() if "with BN" in accuracy)
                + f"; without BN from the sigmoid's fair start (Xavier ×4) "
                f"{final_accuracy[FAIR_VARIANT]['without BN'].describe('{:.0%}')}, BN's lead over it "
                f"{OverSeeds(seeds, 100 * fair_lead.values).describe('{:.0f}')} points; 80% with BN in all four, "
                f"and without BN 75% from Xavier ×4 and 80% from tanh's std 0.1, in {in_part}")

# %%
worst_with_bn = min(runs.final_accuracy.low for runs in with_bn.values())
plain_sigmoid = {label: final_accuracy[label]["without BN"].median for label in ("sigmoid, std 0.1", FAIR_VARIANT)}
saturation_figure(saturation_runs, title=f"6×100 networks, η = 0.3, {len(seeds)} seeds: with BN every run "
                                         f"reaches {worst_with_bn:.0%};<br>the sigmoid network without BN "
                                         f"{plain_sigmoid['sigmoid, std 0.1']:.0%} from std 0.1, "
                                         f"{plain_sigmoid[FAIR_VARIANT]:.0%} from Xavier ×4")

# %% [markdown]
# The reach column holds a surprise: tanh with std 1, whose units are mostly saturated (a saturated unit
# passes back almost nothing), sends the first layer a gradient *larger* than the last layer's. How can
# saturation make a gradient grow? Follow the gradient down one layer. Going from layer $l+1$ back to
# layer $l$, it is multiplied by $W_{l+1}^\top$ and then, entry by entry, by the activation's slope
# $f'(z_l)$. A random matrix with entries of standard deviation $s$ multiplies the length of a vector by
# about $s\sqrt{n}$ ($n = 100$ units), and the slopes multiply it by about their root mean square. So the
# gradient's size changes at every layer by a factor
# $$g \approx s\,\sqrt{n}\;\mathrm{RMS}\big(f'(z)\big).$$
#
# **Predict first.** For tanh with $s = 1$: $s\sqrt n = 10$, and the slopes are mostly near 0. Will the
# gradient **"grow"** or **"shrink"** on its way down?

# %%
my_prediction = None  # write "grow" or "shrink" here before you run the next cell

# %%
gains = {label: bt.backward_gains(pair["without BN"].run.build(seeds[0]), experiments.data)
         for label, pair in saturation_runs.items()}
print(f"Without BN, at initialization (seed {seeds[0]}): the factor g by which the gradient at the "
      "pre-activations changes from layer l+1 down to layer l, measured and predicted by s·√n·RMS(f')")
print(f"{'6×100 network':>18} | {'measured, layers 5 → 1':^33} | {'predicted':^33}")
for label, g in gains.items():
    print(f"{label:>18} | " + " ".join(f"{v:6.2f}" for v in g["gain"][:-1][::-1]) + " | "
          + " ".join(f"{v:6.2f}" for v in g["predicted"][:-1][::-1]))
tanh_gain = np.nanmedian(gains["tanh, std 1"]["gain"])
compare_prediction(my_prediction, "grow" if tanh_gain > 1 else "shrink")

# %%
# Check: the backward factor g, measured against its prediction, explains the five outcomes
median_gain = {label: np.nanmedian(g["gain"]) for label, g in gains.items()}
confirm({
    "g predicted from s·√n·RMS(f') is within 15% of the measured one, at every layer of all five networks":
        all(np.nanmax(np.abs(g["gain"] / g["predicted"] - 1)) < 0.15 for g in gains.values()),
    "sigmoid, std 0.1: g under 0.3 (vanishing); sigmoid, std 1: g within 10% of 1":
        median_gain["sigmoid, std 0.1"] < 0.3 and abs(median_gain["sigmoid, std 1"] - 1) < 0.1,
    "tanh, std 0.1: g between 0.7 and 1; tanh, std 1: g over 2 (exploding)":
        0.7 < median_gain["tanh, std 0.1"] < 1 and median_gain["tanh, std 1"] > 2,
    "sigmoid, Xavier ×4: g between 0.5 and 0.8, over twice that of sigmoid, std 0.1":
        0.5 < median_gain[FAIR_VARIANT] < 0.8 and median_gain[FAIR_VARIANT] > 2 * median_gain["sigmoid, std 0.1"],
})

# %% [markdown]
# One formula, five outcomes (the factor $g$ in the table, layer by layer):
# * **Sigmoid, std 0.1 (LeCun/Xavier): vanishing gradient, no saturation at all.** A sigmoid's slope is at
#   most 1/4, so $g \approx 0.1 \cdot 10 \cdot 0.24$: the gradient shrinks about fourfold per layer, the
#   first layer gets a tiny fraction of the last one's, and the network never leaves chance, in any seed.
#   LeCun's and Xavier's recipes with gain 1 assume a slope of 1 at 0 (tanh); for a sigmoid they are four
#   times too small. Tanh at the same std trains fine ($g$ just under 1): the trouble is not the S shape.
# * **Sigmoid, Xavier ×4: the fair start.** Gain 4 makes up for the slope of 1/4 at 0, but not for the
#   sigmoid's mean: its outputs are all positive (about 1/2 on average), so the next layer's inputs spread
#   much wider than for tanh, and many of them sit where the slope is well below 1/4. So $g$ comes out
#   near 0.6, not 1: the gradient still shrinks on its way down, but more than twice as much of it passes
#   each layer as at std 0.1, and the network trains (to about 90%, median). BN (at any scale) still ends a
#   few points higher within 200 steps, in most seeds.
# * **Sigmoid, std 1**: the slopes are smaller (many inputs saturated) but the weights ten times larger, and
#   $g$ comes out at 1 by coincidence: the gradient keeps its size, but most units sit in the flat tails
#   and the network ends behind, in every seed.
# * **Tanh, std 1: an exploding backward signal.** Most units are saturated, yet the root mean square of
#   the slopes stays near a quarter (the units that are not saturated pass back a lot), and times
#   $s\sqrt n = 10$ that gives $g$ above 2: the gradient more than doubles at every layer on its way down,
#   so the first layer's gradient is dozens of times the last one's. Saturation per unit and explosion
#   per layer are not in contradiction. With most units stuck and the first layers taking steps far too
#   large for them, the network ends far behind, in every seed.
# * **With BN**, the input of every nonlinearity has mean $\beta$ and standard deviation $\gamma$ over the
#   batch, 0 and 1 at the start: few inputs are saturated (the tails of a standard normal, about 6% for
#   tanh), and BN divides each layer's gradient by the spread it removed, which undoes the $s\sqrt n$:
#   every layer gets a gradient of similar size (reach about 1), whatever the weights.
#
# A common summary, "BN prevents the vanishing gradient, so sigmoid and tanh can be used", holds for the
# starts that are too small for the activation (the sigmoid at gain 1) or too large (std 1). Against the
# fair baselines it needs a caveat: from their principled starts (Xavier ×4 for the sigmoid, LeCun/Xavier
# for tanh) both networks train without BN too; BN then adds a few points for the deep sigmoid network
# within 200 steps, and nothing for tanh. What BN buys is independence from the start, as in section 3.
# It does not make saturation impossible either: γ and β are learned, and notebook 02 §4 showed the last
# layer saturating on purpose at η = 8.

# %% [markdown]
# ## 5. Batch size: two kinds of noise, and a batch of two
#
# A mini-batch of $m$ examples is a noisy sample of the training set, in two ways:
# * **the gradient** is an average over $m$ examples, so it scatters around the full-batch gradient
#   by about $1/\sqrt m$ (the same law as the batch means of notebook 02 §2);
# * **with BN, the forward pass itself** depends on the batch: an example is normalized with the mean
#   and variance of the $m$ examples it happens to share its batch with.
#
# We measure both at initialization (the first seed's networks), over 20 random batches of each size:
# the distance of the mini-batch gradient from the full-batch gradient (relative to the latter's length),
# and the root-mean-square difference between the first layer's pre-activations normalized with the
# batch's statistics and with the whole training set's. Then we train both networks with batches of 2,
# 4, 8 and 60, for the same 200 steps at η = 1, under the 8 seeds; without BN both from the paper's
# $N(0, 0.1^2)$ and from the fair start, Xavier's initialization with the sigmoid's gain 4. This is the course's one close look at batches of two;
# notebooks 04 and 06 point back here.

# %%
noise = bt.batch_noise(experiments, **PAPER)                          # name -> (4,), one value per m
sigmoid_networks = bt.COMPARED["3×100 sigmoid"]  # without BN (paper's start, fair start), with BN
batch_grid = experiments.grid("batch_size", bt.BATCH_SIZES, sigmoid_networks, **PAPER)  # trained above
plain_noise, bn_noise = noise["gradient, without BN"], noise["gradient, with BN"]
normalization_noise = noise["BN's batch statistics"]
print(f"{'m':>3} | {'gradient noise':^21} | {'BN batch noise':>14}")
print(f"{'':>3} | {'without BN':>10} {'with BN':>10} | {'':>14}")
for i, m in enumerate(bt.BATCH_SIZES):
    print(f"{m:>3} | {plain_noise[i]:>10.2g} {bn_noise[i]:>10.2g} | {normalization_noise[i]:>14.2f}")

# %%
# Check: the findings of section 5 about the noises and the batch sizes, in every block of 8 seeds
advantage = {m: OverSeeds(seeds, batch_grid[m]["with BN"].final_accuracy.values
                          - batch_grid[m]["without BN"].final_accuracy.values) for m in bt.BATCH_SIZES}
fair_lead = {m: OverSeeds(seeds, batch_grid[m]["with BN"].final_accuracy.values
                          - batch_grid[m][FAIR].final_accuracy.values) for m in bt.BATCH_SIZES}
law = np.sqrt(60 / 4)  # from m = 4 to m = 60 the 1/√m law predicts a factor √15
confirm({
    "without BN the gradient noise follows 1/√m (from m = 4 to 60 within 20%)":
        abs(plain_noise[1] / plain_noise[-1] / law - 1) < 0.2,
    "at m = 2 the gradient with BN is spiky: its noise more than 5 times that without BN":
        bn_noise[0] > 5 * plain_noise[0],
    "BN's batch noise shrinks as m grows, from over 0.8 at m = 2 to under 0.3 at m = 60":
        np.all(np.diff(normalization_noise) < 0)
        and normalization_noise[0] > 0.8 and normalization_noise[-1] < 0.3,
    "m = 2: with BN under 50% after 200 steps, in every seed": final(batch_grid, 2, "with BN").high < 0.5,
    "m = 2: BN's lead (median over the seeds) is less than half its lead at m = 4 or 8":
        advantage[2].median < 0.5 * min(advantage[4].median, advantage[8].median),
    "m = 4 and 8: BN ahead of the paper's start by more than 30 points (median)":
        min(advantage[4].median, advantage[8].median) > 0.3,
    "against the fair start (Xavier ×4): BN behind at m = 2 in every seed, at m = 4 in most seeds, at m = 8 "
    "behind in the median, and level at m = 60 (within 3 points, median)":
        fair_lead[2].high < 0 and fair_lead[4].support(fair_lead[4].values < 0).at_least(0.75)
        and fair_lead[8].median < 0 and abs(fair_lead[60].median) < 0.03,
})

# %%
outcome_table({net: {m: batch_grid[m][net] for m in bt.BATCH_SIZES} for net in sigmoid_networks},
              "m", title=f"Batch size m, η = 1, test accuracy after 200 steps: median (lowest to highest "
                         f"seed) over {seed_range(seeds)}")

# %% [markdown]
# Small batches are slow for every network (with the number of steps fixed, they also see fewer
# examples: at $m = 2$, only 400). From $m = 4$ on BN is far ahead of the paper's start, and at $m = 2$
# that advantage all but disappears. Against the fair start the picture turns round: the network without
# BN, well initialized, is ahead of BN at $m = 2$ in every seed, at $m = 4$ in most seeds and at $m = 8$
# by a few points (median), and the two are level at $m = 60$. Small batches cost BN more than they cost a network without it: BN's
# batch noise (the table above) comes on top of the gradient's. Section 5.1 shows what goes wrong at
# $m = 2$. Pick any batch size from 2 to 512 in the panel (the three networks train at that size, live):
# where does BN's lead over the paper's start appear, and from which $m$ on does the fair start stop being
# ahead of BN?

# %%
batch_panel = batch_size_training_panel(experiments)
batch_panel

# %% [markdown]
# ### 5.1 Why a batch of two stops BN: predict, then check
#
# With $m = 2$, a BN layer normalizes each unit's two pre-activations to $\hat x = -1$ and $+1$,
# whatever their values (notebook 04). Notebook 04's backward pass gives, for the input $x_i$ of a BN layer,
# with $g_i = \partial L/\partial y_i$ and $\sigma$ the batch's standard deviation:
# $$\frac{\partial L}{\partial x_i} = \frac{\gamma}{\sigma}\Big(g_i - \bar g - \hat x_i\,\overline{g \hat x}\Big).$$
#
# **Predict first.** At $m = 2$, how large is the gradient that reaches the layer below a BN layer,
# compared with $m = 4$: about the **"same"**, **"10x smaller"** or **"1000x smaller"**?

# %%
my_prediction = None  # write "same", "10x smaller" or "1000x smaller" here before you run the next cells

# %% [markdown]
# **Exercise 1: BN's backward pass for one unit.** Write `bn_input_gradient(x, g, gamma=1.0, eps=1e-5)`:
# `x` holds one unit's pre-activations over a batch and `g` the gradient of the loss with respect to
# the BN layer's outputs, both numpy arrays of shape `(m,)`; return $\partial L/\partial x$, shape `(m,)`,
# from the formula above (with $\sigma = \sqrt{\mathrm{var}(x) + \epsilon}$, the biased variance). The check
# compares it with autograd on batches of 4 and 8, then applies it to a batch of two. Before you run the
# check, work out by hand what the bracket is for $\hat x = (-1, +1)$.

# %%
def bn_input_gradient(x, g, gamma=1.0, eps=1e-5):
    """dL/dx (m,) of a BN layer for one unit, given its inputs x (m,) and g = dL/dy (m,)."""
    raise NotImplementedError  # replace this line with your code


check_bn_input_gradient(bn_input_gradient)

# %% [markdown]
# Now the real network: $|\partial L/\partial x|$ at the first BN layer's input, over 100 random batches
# of each size, at initialization (the first seed's network).

# %%
first_bn_gradient = {m: bt.first_bn_input_gradients(bt.Run(**PAPER).build(seeds[0]), experiments.data, m,
                                                    n_batches=100) for m in (2, 4, 8)}
print(f"{'m':>3} | {'median |dL/dx|':>14} | {'share below 1e-3':>16} | {'largest':>8}")
for m, gradient in first_bn_gradient.items():
    print(f"{m:>3} | {np.median(gradient):>14.0e} | {np.mean(gradient < 1e-3):>16.0%} | "
          f"{gradient.max():>8.0e}")
shrink = np.median(first_bn_gradient[4]) / np.median(first_bn_gradient[2])
compare_prediction(my_prediction, "1000x smaller" if shrink > 100 else "10x smaller" if shrink > 3 else "same")

# %%
# Check: at m = 2 BN passes almost no gradient back, apart from rare spikes
confirm({
    "at m = 2 the median |dL/dx| is under 1/100 of that at m = 4": shrink > 100,
    "at m = 2 more than 70% of the entries are below 1e-3": np.mean(first_bn_gradient[2] < 1e-3) > 0.7,
    "at m = 2 the largest entry is over 10 times the largest at m = 4 (near-ties)":
        first_bn_gradient[2].max() > 10 * first_bn_gradient[4].max(),
})

# %% [markdown]
# * **The mechanism.** With $\hat x = (-1, +1)$ and any $g$: $\bar g = (g_1 + g_2)/2$ and
#   $\overline{g\hat x} = (g_2 - g_1)/2$, so the bracket is $g_1 - \bar g + \overline{g\hat x} = 0$ for the
#   first example and $g_2 - \bar g - \overline{g\hat x} = 0$ for the second: **exactly zero**, for every
#   unit, whatever the loss wants. Only $\epsilon$ leaves a trace (it makes $|\hat x|$ a hair below 1), so
#   the median $|\partial L/\partial x|$ at $m = 2$ is about a thousand times smaller than at $m = 4$, and
#   the layers below a BN layer barely learn. That is the main reason BN fails at $m = 2$.
# * **The spikes.** When a unit's two values nearly tie, $\sigma$ is tiny, $\epsilon$ matters, and
#   $\gamma/\sigma$ is huge: the rare entries far larger than at $m = 4$. They are the large "gradient
#   noise" of BN at $m = 2$ in the first table: a symptom of near-ties, not the cause of the failure.
# * **BN's batch noise** is a second, BN-only noise: it shrinks as $m$ grows (first table). The paper
#   (section 3.4) credits it with a mild regularizing effect. This notebook does not measure that: [notebook
#   07 §3](07_batchnorm_in_practice.ipynb) does, on a conv net. On top of the vanishing gradient, the
#   running statistics that BN uses at
#   test time are averaged over pairs (notebook 04).
# * When only tiny batches fit in memory, alternatives that do not normalize over the batch (LayerNorm,
#   GroupNorm, [notebook 06](06_why_batchnorm_works.ipynb)) or batch renormalization (Ioffe 2017) are the usual answer.

# %% [markdown]
# ## 6. γ and β during training
#
# A learner asks: if γ and β change at every step, how is a layer's input distribution any
# more stable than without BN? Do γ and β settle early? What does the learning rate do to them?
#
# The runs of section 2 recorded γ and β of every BN layer every 50 steps. We take the sigmoid network
# with BN at three learning rates, 0.1, 1 and 10, and measure, for each seed, each layer and each of γ
# and β (100 units as one vector $\theta$):
# * the **total change**: the mean over units of $|\theta_{200} - \theta_0|$;
# * how much of it was **made by step 50** (a quarter of training): $\lVert\theta_{50} - \theta_0\rVert /
#   \lVert\theta_{200} - \theta_0\rVert$. A steady pace would give a quarter, "settling early" close to
#   all of it;
# * the **wobble**: the standard deviation of the record-to-record changes of a unit's parameter over the
#   second half of training.
#
# **Predict before you run.** How will the wobble change from η = 0.1 to η = 10: **"same"**, **"10x"**
# larger, or **"100x"** larger?

# %%
my_prediction = None  # write "same", "10x" or "100x" here before you run the next cells

# %%
GAMMA_BETA_LRS = (0.1, 1.0, 10.0)
bn_runs = {lr: sigmoid_grid[lr]["with BN"] for lr in GAMMA_BETA_LRS}
measures = {lr: [bt.gamma_beta_measures(h) for h in runs.histories] for lr, runs in bn_runs.items()}
# the share of the change made by step 50, averaged over layers, γ and β: one value per seed
settled = {lr: OverSeeds(seeds, [m["settled"].mean() for m in per_seed]) for lr, per_seed in measures.items()}
# the wobble at η = 10 over the wobble at η = 0.1, per layer, γ and β: one (3, 2) array per seed
growth = [high["wobble"] / low["wobble"] for low, high in zip(measures[0.1], measures[10.0])]
rising = Support.of([np.all(a["wobble"] < b["wobble"]) and np.all(b["wobble"] < c["wobble"])
                     for a, b, c in zip(measures[0.1], measures[1.0], measures[10.0])])
least_growth = OverSeeds(seeds, [g.min() for g in growth])
mean_growth = OverSeeds(seeds, [g.mean() for g in growth])  # the wobble's growth, averaged over layers
compare_prediction(my_prediction, "same" if mean_growth.median < 3 else "10x" if mean_growth.median < 30 else "100x")

# %%
# Check: the findings of section 6 about γ and β, in every block of 8 seeds
confirm({
    "the share of the change made by step 50 grows with η (median over the seeds)":
        settled[0.1].median < settled[1.0].median < settled[10.0].median,
    "at η = 0.1 γ and β drift at a steady pace (under 45% of their change by step 50, median); "
    "at η = 10 most of it comes early (over 55%)":
        settled[0.1].median < 0.45 and settled[10.0].median > 0.55,
    "the wobble grows from η = 0.1 to 1 to 10, in every layer, for γ and β, in most seeds":
        rising.at_least(0.75),
    "from η = 0.1 to 10 it grows more than 15-fold in every layer (median over the seeds)":
        least_growth.median > 15,
})
early = Support.of((settled[10.0].values > 0.5) & (settled[0.1].values < 0.5))
record("gamma-beta-settle-early", holds="partly" if early.at_least(0.75) else outcome_of(early),
       support=early,
       measured="share of γ and β's change made by step 50 (of 200): "
                + ", ".join(f"{settled[lr].describe('{:.0%}')} at η = {lr:g}" for lr in GAMMA_BETA_LRS)
                + f"; early at η = 10 and not at η = 0.1 in {early}")
record("gamma-beta-fluctuate-with-learning-rate", holds=outcome_of(rising), support=rising,
       measured="γ and β wobble more at η = 10 than at η = 0.1 by a factor "
                f"{mean_growth.describe('{:.0f}')} (mean over layers), "
                f"rising with η in every layer in {rising}")

# %% [markdown]
# Eight units of the last BN layer of the first seed's runs (the units whose total change of γ at η = 1
# ranks at the 5th, 17th, ..., 89th percentile: typical units, not picked by hand). Each panel has its
# own vertical scale: at η = 0.1 the changes are far smaller than at η = 10.

# %%
first_runs = {lr: runs.first for lr, runs in bn_runs.items()}
last_gamma = bt.gamma_beta(first_runs[1.0], "norm3")[0]
ranked = np.argsort(np.abs(last_gamma[-1] - last_gamma[0]))
units = [int(ranked[int(q * 99)]) for q in np.linspace(0.05, 0.89, 8)]
gamma_growth = growth[0][2, 0]  # the first seed, layer 3, γ
gamma_beta_figure(first_runs, "norm3", units,
                  title=f"γ and β of 8 units of layer 3 (seed {seeds[0]}): γ's wobble grows "
                        f"{gamma_growth:.0f}-fold from η = 0.1 to η = 10")

# %% [markdown]
# So, to these questions:
# * **Do they settle early?** Not at small learning rates: at η = 0.1, γ and β drift at a steady pace for
#   the whole run (less than half of their change is made in the first quarter). The larger the learning
#   rate, the more of the change happens at the start. The network itself settles much earlier than its
#   γ and β: at η = 1 it passed 90% test accuracy by step 50 in more than half of the seeds.
# * **What does the learning rate do?** It sets how far they move and how much they wobble: the
#   wobble grows with every increase of η, by a factor of several tens from η = 0.1 to η = 10. A small
#   learning rate gives slowly drifting γ and β, a large one jittery γ and β.
# * **Why is the distribution still more stable?** Because γ and β alone set the mean and the spread of
#   a BN layer's output: two numbers per unit, each moved by its own gradient (the weights below can
#   still change its shape). Without BN, every weight of every layer below moves the mean and the
#   spread. We check it on the last BN layer's output (the sigmoid inputs, over the test images) at the
#   end of training: for a typical unit, the median sits within a tenth or so of γ of β (in every
#   seed), and the band from the 15th to the 85th percentile is about 2γ wide (in most seeds), as for a normally distributed
#   $\hat x$ ($\beta \mp 1.04\gamma$). The figure shows every unit of that layer in the first seed at
#   the end of training, at η = 1 and η = 10.

# %%
follow = {lr: [bt.final_output_versus_gamma_beta(runs.network(i), experiments.data.X_test, 3)
               for i in range(len(seeds))] for lr, runs in bn_runs.items() if lr in (1.0, 10.0)}
offset = {lr: OverSeeds(seeds, [np.median(m["median offset"]) for m in per_seed])  # a typical unit, per seed
          for lr, per_seed in follow.items()}
width = {lr: OverSeeds(seeds, [np.median(m["band width"]) for m in per_seed])
         for lr, per_seed in follow.items()}
beta_travel = OverSeeds(seeds, [np.ptp(beta[:, bt.typical_unit(np.abs(beta[-1] - beta[0]))])
                                for beta in (bt.gamma_beta(h, "norm3")[1] for h in bn_runs[10.0].histories)])

# %%
# Check: a BN layer's output follows its γ and β, in every block of 8 seeds
confirm({
    "at η = 1 and 10, at the end: a typical unit's BN output has its median within 0.15·γ of β "
    "(median over the seeds), within 0.25·γ in every seed":
        all(offset[lr].median < 0.15 and offset[lr].high < 0.25 for lr in follow),
    "... and its 15-85th percentile band 0.8 to 1.3 times 2γ wide (median over the seeds, and in most seeds)":
        all(0.8 < width[lr].median < 1.3
            and width[lr].support((width[lr].values > 0.8) & (width[lr].values < 1.3)).at_least(0.75)
            for lr in follow),
    "at η = 10, β of a typical unit travels more than 1 during training, in every seed":
        beta_travel.low > 1,
})

# %%
layer_3 = {lr: bt.output_against_gamma_beta(bn_runs[lr].network(0), experiments.data.X_test, 3) for lr in (1.0, 10.0)}
output_against_gamma_beta_figure(layer_3, title=f"Layer 3 with BN after 200 steps (seed {seeds[0]}): each "
                                                "unit's output sits at its β and spreads over about 2γ")

# %% [markdown]
# ## 7. Do the layer Jacobians have singular values near 1?
#
# Section 3.3 of the paper closes with a remark: "Batch Normalization may lead the
# layer Jacobians to have singular values close to 1, which is known to be beneficial for training"
# (Saxe et al. 2013). When all singular values of each layer's Jacobian are 1, a gradient passes back
# through the layers with its size unchanged, neither vanishing nor exploding. The paper's argument is
# about the map from one layer's normalized values to the next's, $\hat x_l \to \hat x_{l+1}$, for
# Gaussian, uncorrelated normalized inputs. Let us measure exactly that map.
#
# **What we measure.** BN makes an example's output depend on its batch companions, so we fix BN's mean
# and variance to those of the whole training set (eval mode with those statistics): each example then
# goes through a fixed function. From $\hat x_l$, the layer applies $y_l = \gamma_l \hat x_l + \beta_l$,
# the sigmoid, the next Linear layer and the next normalization, so
# $$J = \frac{\partial \hat x_{l+1}}{\partial \hat x_l} = \mathrm{diag}\Big(\frac{1}{s_{l+1}}\Big)\, W_{l+1}\,
# \mathrm{diag}\big(\sigma'(y_l)\,\gamma_l\big),$$
# with $s_{l+1}$ the training set's standard deviation of each pre-activation of layer $l+1$. Without BN
# we take the same map between the pre-activations, $J = W_{l+1}\,\mathrm{diag}(\sigma'(z_l))$. We take the
# singular values at 10 test images, for the layer pairs 1 → 2 and 2 → 3 of the paper's network, at
# initialization and after the 200 steps of section 1 (η = 1), for each of the 8 seeds. As a reference,
# the singular values of random 100×100 matrices with entries from $N(0, 1/100)$.
#
# **Predict first.** With BN at initialization, what share of the singular values will lie within a
# factor 2 of 1? Write a whole percentage.

# %%
my_prediction = None  # write a percentage such as 90 here before you run the next cells

# %%
singular_values = bt.jacobians_over_seeds(experiments, n_examples=10, **PAPER)  # label -> one array per seed
jacobians = {label: [bt.spread_summary(values) for values in per_seed] for label, per_seed in singular_values.items()}
random_values = bt.random_matrix_singular_values(seed=SEED)
random_matrix = bt.spread_summary(random_values)
statistic = {label: {name: OverSeeds(seeds, [s[name] for s in per_seed]) for name in per_seed[0]}
             for label, per_seed in jacobians.items()}
print(f"Singular values of the layer-to-layer Jacobian, medians over {seed_range(seeds)}:")
print(f"{'':>36} {'10/50/90th percentile':>22} {'within 2x of 1':>15} {'RMS':>5}")
rows = {f"{label.replace('with BN', 'with BN, x̂ → x̂').replace('without BN', 'without BN, z → z')}":
        {name: value.median for name, value in s.items()} for label, s in statistic.items()}
rows["random 100×100 matrix, N(0, 1/100)"] = random_matrix
for label, s in rows.items():
    print(f"{label:>36} {s['p10']:>10.2f} / {s['median']:.2f} / {s['p90']:.2f} {s['near']:>14.0%} "
          f"{s['rms']:>5.1f}")
bn_start = statistic["with BN, at initialization"]
compare_prediction(my_prediction, int(round(100 * bn_start["near"].median, -1)), tolerance=10, unit="%")

# %%
# Check: the findings of section 7, in every block of 8 seeds
bn_end, plain_start = statistic["with BN, after training"], statistic["without BN, at initialization"]
like_random = Support.of([abs(s["rms"] - 1.1) < 0.15 and abs(s["p10"] - random_matrix["p10"]) < 0.05
                          and abs(s["median"] - random_matrix["median"]) < 0.1 and s["near"] < 0.7
                          for s in jacobians["with BN, at initialization"]])
confirm({
    "with BN at initialization the RMS singular value is within 0.15 of 1.1, and the 10th percentile and the "
    "median are within 0.05 and 0.1 of a random matrix's, with under 70% within 2x of 1, in every seed":
        like_random.everywhere,
    "the random matrix: RMS within 0.05 of 1, about 0.15 / 0.8 / 1.6 at the 10/50/90th percentiles":
        abs(random_matrix["rms"] - 1) < 0.05 and abs(random_matrix["p10"] - 0.15) < 0.03
        and abs(random_matrix["median"] - 0.8) < 0.05 and abs(random_matrix["p90"] - 1.6) < 0.1,
    "without BN (LeCun/Xavier init) the RMS singular value is under 0.3 in every seed: the gradient shrinks":
        plain_start["rms"].high < 0.3,
    "training moves the BN network's singular values away from 1 (their median falls), in every seed":
        all(end["median"] < start["median"] for start, end in
            zip(jacobians["with BN, at initialization"], jacobians["with BN, after training"])),
})
near = Support.of(bn_start["near"].values > 0.9)  # the claim as stated: nearly all within 2x of 1
record("jacobian-singular-values-near-one",
       holds="holds" if near.at_least(0.75) else ("partly" if like_random.at_least(0.75) else "does not hold"),
       support=near if near.at_least(0.75) else like_random,
       measured="the paper's x̂_l → x̂_(l+1) Jacobian (3×100 sigmoid + BN, 10 test images, layer pairs 1→2 and "
                f"2→3): RMS singular value {bn_start['rms'].describe('{:.2f}')} at initialization (pinned near 1), "
                f"10/50/90th percentiles {bn_start['p10'].median:.2f} / {bn_start['median'].median:.2f} / "
                f"{bn_start['p90'].median:.2f} (a random 100×100 N(0, 1/n) matrix: {random_matrix['p10']:.2f} / "
                f"{random_matrix['median']:.2f} / {random_matrix['p90']:.2f}); share within 2x of 1 "
                f"{bn_start['near'].describe('{:.0%}')}; after 200 steps the median singular value is "
                f"{bn_end['median'].describe('{:.2f}')}; without BN (z → z, LeCun/Xavier init) RMS "
                f"{plain_start['rms'].describe('{:.2f}')}; RMS pinned but spread like a random matrix in "
                f"{like_random}")

# %%
pooled = {"with BN: x̂ → x̂": np.concatenate(singular_values["with BN, at initialization"]),
          "without BN: z → z": np.concatenate(singular_values["without BN, at initialization"]),
          "random 100×100 matrix, N(0, 1/100)": random_values}
jacobian_figure(pooled, title=f"At initialization, {len(seeds)} seeds: with BN the RMS singular value is "
                              f"{bn_start['rms'].median:.1f}, but only {bn_start['near'].median:.0%} lie "
                              "within 2x of 1: the spread of a random matrix")

# %% [markdown]
# What the measurement shows, on this network and data, in every seed:
# * **BN pins the size of the Jacobian: its RMS singular value is about 1.1.** The reason is the division
#   by $s_{l+1}$. Row $i$ of $J$ is row $i$ of $W_{l+1}$, times the slopes, divided by $s_{l+1,i}$, the
#   spread of unit $i$'s pre-activation. That spread is made of the same numbers: its variance is
#   $\sum_j W_{ij}^2 \mathrm{Var}(\sigma(y_j))$, and $\mathrm{Var}(\sigma(y_j)) \approx \sigma'(y_j)^2\gamma_j^2$
#   (the sigmoid is nearly linear over the spread of $y_j$). So every row of $J$ has length about 1,
#   $\lVert J\rVert_F^2 \approx n$, and the mean square singular value $\lVert J\rVert_F^2/n$ is about 1,
#   whatever the weights' scale (a little above 1, because the sigmoid bends). Without BN nothing divides:
#   with LeCun's/Xavier's weights the RMS is about a quarter, the sigmoid's slope (section 4's vanishing
#   gradient).
# * **BN does not make the singular values close to 1.** Their spread is that of a random square matrix
#   with the same RMS: a random 100×100 matrix with $N(0, 1/100)$ entries has RMS 1 and singular values
#   from near 0 to 2 (the quarter-circle law), about 0.15 / 0.81 / 1.6 at the 10th, 50th and 90th
#   percentiles; the BN Jacobian's are almost the same, with a longer top. BN normalizes each row's length;
#   it does nothing to the directions of $W$, and a square matrix with random directions always has some
#   nearly dependent rows, hence singular values near 0. Only about 60% lie within a factor 2 of 1.
# * **After training** the singular values move *away* from 1 (their median falls, in every seed).
#
# So "close to 1" holds for the Jacobian's overall size, which BN does control, and does not hold for
# its singular values one by one: near-isometry would need orthogonal weights (Saxe et al.; Pennington
# et al. 2017), which BN does not provide. Later theory found that very deep BN networks at
# initialization even have gradients that *explode* with depth (Yang et al. 2019).

# %% [markdown]
# ## 8. Exercises
#
# (Exercise 1, BN's backward pass for a batch of two, is in section 5.1.)
#
# **Exercise 2: scale the hidden weights.** Write `scale_hidden_weights(model, a)` for a `make_mlp`
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
# **Exercise 3: the singular values of a Jacobian.** Write `jacobian_singular_values(block, x)`: `block`
# maps one example, a tensor of shape `(d_in,)`, to a tensor of shape `(d_out,)`; `x` holds `n` examples,
# shape `(n, d_in)`. Return the singular values of the block's Jacobian at each example, shape
# `(n, min(d_in, d_out))`. Hint: `torch.autograd.functional.jacobian(block, x[i])` gives the
# `(d_out, d_in)` Jacobian, and `torch.linalg.svdvals` its singular values. The check gives your function
# section 7's map for a small tanh layer ($\hat x_l$ → γ, β → tanh → Linear → BN in eval mode, standard
# deviation $s$ → $\hat x_{l+1}$) and compares your values with the closed form
# $\mathrm{diag}(1/s)\,W\,\mathrm{diag}(\tanh'(y)\,\gamma)$.

# %%
def jacobian_singular_values(block, x):
    """Singular values (n, min(d_in, d_out)) of the Jacobian of `block` at each row of x (n, d_in)."""
    raise NotImplementedError  # replace this line with your code


check_jacobian_singular_values(jacobian_singular_values)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("bn_input_gradient")
# show_solution("scale_hidden_weights")
# show_solution("jacobian_singular_values")

# %% [markdown]
# ## Summary
# Every finding below held in each of the 8 seeds, or in most of them where it says so (statistics in the
# tables and figures above; the claims ledger lists each claim's count).
# * **Speed.** On the paper's 3×100 sigmoid network at η = 1, BN reached 90% test accuracy by step 50 in
#   more than half of the seeds and by step 100 in all. Without BN, from $N(0, 0.1^2)$ (LeCun's and
#   Xavier's scale with gain 1), the same network had not reached it after 200 steps in most seeds; from
#   the sigmoid-aware Xavier initialization with gain 4 it reached it by step 100 in most seeds (by step
#   150 in all). BN was ahead of that fair start at step 50 in most seeds, and level with it after 200
#   steps: most of BN's lead over the paper's start is the initialization's.
# * **Learning rates** (200 steps of 60). The sigmoid network without BN trained from η = 0.1 to 3 from
#   Xavier's initialization with gain 4 (at 3 in at least half of the seeds), and got far only around
#   η = 1 from $N(0, 0.1^2)$ (a matter of speed: smaller rates are slow, not broken); with BN it trained at
#   every rate up to 10 (at 10 in most seeds). The 6×100 ReLU network without BN, from He's initialization, was as fast as with BN at
#   η = 0.1 and 0.3, but diverged from η = 1 on; from the too-small $N(0, 0.1^2)$ it was slower and
#   diverged from η = 3 in most seeds. With BN it trained up to 3: a window ten times wider than the best
#   initialization gives (three times wider for the sigmoid network). At 10 it failed too, with the
#   unnormalized output layer and γ, β growing fast. BN widens the window; it does not remove it.
# * **Initialization.** $\mathrm{BN}(aWu) = \mathrm{BN}(Wu)$ and
#   $\partial L/\partial(aW) = \frac1a\,\partial L/\partial W$, checked to four digits (up to ε, which
#   matters for tiny weights). A principled initialization gives the network without BN a good start
#   (from Xavier's with gain 4, $a \approx 4$, it ended level with BN), but only near the right scale: the
#   two smallest scales stayed at chance and the largest fell behind. With BN every scale from 0.01 to 100
#   trained, in every seed: BN makes training robust to the scale that a principled initialization
#   otherwise has to get right. It does not make the learning dynamics independent of it: the step
#   relative to the weights shrinks like $1/a^2$.
# * **Saturating nonlinearities.** The factor $s\sqrt n\,\mathrm{RMS}(f')$ by which the gradient changes
#   per layer predicted every outcome without BN: the sigmoid at gain 1 vanishes (about a quarter per
#   layer), at Xavier's gain 4 it still shrinks but far less and the network trains, tanh at LeCun's/
#   Xavier's scale keeps its size and trains as well as with BN, and tanh with weights ten times larger
#   explodes (more than doubling per layer) while most of its units are saturated. With BN all four
#   trained, a few points above the sigmoid's fair start: BN is not what makes saturating networks
#   trainable, a principled start does that too; BN makes them trainable from any start.
# * **Batch size.** Mini-batches add gradient noise (∝ $1/\sqrt m$) and, with BN, noise in the forward
#   pass. With batches of 2, $\hat x = \pm 1$ and BN's backward formula gives exactly 0: a BN layer passes
#   almost no gradient to the layer below, apart from spikes at near-ties, and BN's advantage over the
#   paper's start all but disappears. Against the fair start BN is behind at small batches (2, 4, and
#   in the median at 8) and level at 60. (BN's noise as a regularizer is measured in notebook 07, not here.)
# * **γ and β** never stop moving; larger learning rates move them more and make them wobble far more.
#   They are the only handle on a BN layer's output distribution, and the distribution follows them.
# * **Jacobians.** BN pins the RMS singular value of the paper's $\hat x \to \hat x$ Jacobian near 1,
#   but its singular values spread like those of a random square matrix: the paper's "close to 1" holds
#   for the Jacobian's size, not for its singular values one by one.
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
