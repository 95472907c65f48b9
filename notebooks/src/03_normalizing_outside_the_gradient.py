# %% [markdown]
# # 03 · Normalizing outside the gradient
#
# Notebook 02 showed the inputs of hidden layers drifting during training. An obvious fix: let
# training run as usual, and now and then re-center (and re-scale) each layer's activations with
# statistics measured on the data. This notebook answers one question: **why can't we just
# normalize activations between gradient steps, outside the gradient?** Ioffe & Szegedy (2015,
# section 2) answer it with a short argument and one sentence of experience ("the model blows
# up"). Here the argument runs live.
#
# **Learning goals.** After this notebook you can
# 1. explain, with the paper's one-line algebra, why a bias $b$ grows without bound when the mean
#    $\mathrm{E}[x]$ is treated as a constant, while the loss does not change at all;
# 2. predict how fast $b$ drifts from the learning rate and the gradient, and show that with the mean
#    inside autograd $\partial L/\partial b = 0$, so $b$ never moves;
# 3. say why dividing by the standard deviation outside the gradient makes the weight norm run away
#    too, and what that does to the effective learning rate $\eta/\lVert W\rVert^2$;
# 4. recognize the same failure in a real network: the digits MLP with its BN statistics detached;
# 5. explain why this forces the normalization into the network as a differentiable layer, which is
#    what Batch Normalization is.

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
from bnlab.claims import PARTLY, outcome_of, record
from bnlab.data import load_digits
from bnlab.exercises import compare_prediction
from bnlab.figures import add_line, new_figure
from bnlab.lessons.nb03_normalizing_outside_the_gradient.checks import (
    check_bias_drift,
    check_center_in_graph,
    check_standardize_in_graph,
    show_solution,
)
from bnlab.lessons.nb03_normalizing_outside_the_gradient.experiments import (
    MLP_LRS,
    MLP_NETWORKS,
    ToyLayer,
    all_drift_sweeps,
    centering_over_seeds,
    detached_vs_inside,
    drift_sweeps,
    exact_drift_checks,
    gradient_split,
    normalization,
    rescaled_steps,
    teacher_directions,
    toy_problem,
    toy_start,
    train_toy,
)
from bnlab.lessons.nb03_normalizing_outside_the_gradient.figures import (
    accuracy_figure,
    drift_panel,
    norms_figure,
    summary_table,
    time_course_table,
)
from bnlab.models import make_mlp
from bnlab.seeding import claim_seeds
from bnlab.statistics import OverSeeds, Support, seed_range

SEED = bnlab.setup()
SEEDS = claim_seeds()  # the seeds every claim is measured over; the first one is the one-run illustration's
print(f"Course seed: {SEED}; claims measured over {seed_range(SEEDS)}")

# %% [markdown]
# ## 1. The paper's argument, and a layer that acts it out
#
# Take a layer that adds a learned bias $b$ to its input $u$, $x = u + b$, and normalizes the result
# by subtracting the mean over the training set: $\hat x = x - \mathrm{E}[x]$, with
# $\mathrm{E}[x] = \frac1N \sum_{i=1}^N x_i$. A loss $\ell$ is computed from $\hat x$.
#
# **Outside the gradient.** Suppose the gradient step ignores that $\mathrm{E}[x]$ depends on $b$ (the
# mean is recomputed between steps, but treated as a constant within one). Then
# $\partial \hat x_i / \partial b$ looks like $1$, and gradient descent moves $b$ by
# $$\Delta b = -\eta \sum_i \frac{\partial \ell}{\partial \hat x_i}.$$
# Now recompute the normalization with the new bias:
# $$u + (b + \Delta b) - \mathrm{E}[u + (b + \Delta b)] \;=\; u + b + \Delta b - \mathrm{E}[u + b] - \Delta b
# \;=\; u + b - \mathrm{E}[u + b].$$
# The update to $b$ and the change in the mean cancel exactly: $\hat x$ is what it was, so the loss is
# what it was, so the gradient is what it was, and **the next step moves $b$ by the same $\Delta b$
# again**. After $t$ steps $b = b_0 + t\,\Delta b$: it grows without bound while the loss stays fixed.
#
# **Inside the gradient.** If autograd sees the mean, $\partial \hat x_i/\partial b =
# 1 - \partial \mathrm{E}[x]/\partial b = 1 - 1 = 0$, so $\partial \ell/\partial b = 0$ and $b$ stays
# where it started (the gradient knows that $b$ cannot change $\hat x$).
#
# **The toy.** 200 examples with 5 inputs $z_i$ (whitened, so the arithmetic stays clean) reach the
# layer through fixed weights, $u_i = z_i \cdot W$: the layers below are frozen, and only $b$ learns,
# as in the paper's argument. The layer above wants $\hat x$ to match targets $y_i = 2\, z_i\cdot w^\star + 1 +
# \text{noise}$ under the squared loss $L = \frac1N\sum_i (\hat x_i - y_i)^2$. A centered $\hat x$ can
# never have mean 1, so the gradient keeps asking for a larger $b$. Each step uses the whole training
# set as its batch (so the batch mean *is* $\mathrm{E}[x]$, recomputed at every step); "outside" means
# the mean is detached from autograd, "inside" means it is not. Same data, same start, same SGD.
#
# **Predict before you run.** After 1,000 steps at $\eta = 0.1$: where is $b$ in each layer? And how
# much has the loss gone down, with the mean outside the gradient: **"a lot"**, **"a little"** or
# **"not at all"**?

# %%
my_prediction = None  # write "a lot", "a little" or "not at all" here before you run the next cells

# %%
toy = toy_problem(seed=SEEDS[0])   # inputs z (200, 5) and targets y (200,) of the first claim seed
start = toy_start(SEEDS[0])        # the frozen weights W of the layer below, |W| = 1
centering = {"outside": ToyLayer(start, normalization(scale=False, inside=False), learn_weight=False),
             "inside": ToyLayer(start, normalization(scale=False, inside=True), learn_weight=False)}
toy_runs = {where: train_toy(layer, toy, steps=1000, lr=0.1) for where, layer in centering.items()}

# %%
toy_steps = np.array(toy_runs["outside"].steps)
b_outside, b_inside = (np.array(toy_runs[where].probes["b"]) for where in ("outside", "inside"))
bias_figure = new_figure(f"With E[x] outside the gradient, b climbs to {b_outside[-1]:.0f} in 1,000 steps; "
                         f"inside, it stays at {abs(b_inside[-1]):.0f}",
                         "full-batch gradient step (η = 0.1)", "bias b")
add_line(bias_figure, toy_steps, b_outside, "E[x] outside the gradient (detached)", 1)
add_line(bias_figure, toy_steps, b_inside, "E[x] inside the gradient (autograd)", 0, dash="dash")
bias_figure

# %% [markdown]
# The numbers behind the picture, with the loss printed to ten decimals:

# %%
loss_outside, loss_inside = (np.array(toy_runs[where].probes["loss"]) for where in ("outside", "inside"))
gradient_outside, gradient_inside = (np.array(toy_runs[where].probes["dL/db"])
                                     for where in ("outside", "inside"))
step_of_b = np.diff(b_outside) / np.diff(toy_steps)  # how far b moved per step, between records
at = [list(toy_steps).index(step) for step in (0, 100, 1000)]
print("b outside the gradient at steps 0 / 100 / 1,000: " + " / ".join(f"{b_outside[i]:.2f}" for i in at))
print(f"b moves by {step_of_b.mean():.6f} per step, the same at every step "
      f"(-η·dL/db = {-0.1 * gradient_outside[0]:.6f})")
print("loss outside at steps 0 / 100 / 1,000: " + " / ".join(f"{loss_outside[i]:.10f}" for i in at))
print("loss inside at steps 0 / 100 / 1,000:  " + " / ".join(f"{loss_inside[i]:.10f}" for i in at))
print(f"dL/db inside the gradient, largest over all steps: {np.abs(gradient_inside).max():.12f}; "
      f"b inside after 1,000 steps: {abs(b_inside[-1]):.12f}")

# %%
# Check: the paper's algebra, on this run
assert b_outside[-1] > 100 and np.ptp(step_of_b) < 1e-9 * step_of_b.mean()   # b grows linearly
assert np.allclose(step_of_b, -0.1 * gradient_outside[:-1], rtol=1e-9)        # by -η·dL/db each step
assert np.ptp(gradient_outside) < 1e-9 * abs(gradient_outside[0])               # the gradient never changes
assert np.ptp(loss_outside) < 1e-10 and np.ptp(loss_inside) < 1e-10             # nor does the loss
assert np.abs(loss_outside - loss_inside).max() < 1e-10
assert np.abs(gradient_inside).max() < 1e-12 and np.abs(b_inside).max() < 1e-12  # zero up to rounding
loss_fell = loss_outside[0] - loss_outside[-1]
compare_prediction(my_prediction, "not at all" if abs(loss_fell) < 1e-10 else "a little")

# %% [markdown]
# The loss agrees to all ten decimals at every step, in both layers: the 1,000 steps outside the
# gradient did nothing for the loss, they only moved $b$. Inside autograd the gradient is zero up to
# the computer's rounding (about $10^{-16}$; in exact arithmetic it is exactly 0).
#
# That was one draw of data and start. The algebra above holds for any, so it must hold for every seed:
# below, the two layers of every claim seed at once, one column of the computation per seed
# (`centering_over_seeds`: each seed's own data and frozen $W$, 1,000 steps at $\eta = 0.1$), checked
# statement by statement to float64 rounding.

# %%
over_seeds = {where: centering_over_seeds(SEEDS, inside=where == "inside") for where in ("outside", "inside")}
statements = exact_drift_checks(over_seeds["outside"], over_seeds["inside"], lr=0.1)  # statement -> (8,) bool
final_b = OverSeeds(SEEDS, over_seeds["outside"].bias[-1])
for statement, held in statements.items():
    print(f"{statement}: {Support.of(held)}")
print(f"b outside the gradient after 1,000 steps: {final_b.describe('{:.0f}')}")

# %%
# Check: the claim of section 1
held = np.all(list(statements.values()), axis=0) & (final_b.values > 100)  # (8,): every statement, per seed
assert held.all()
record("outside-gradient-bias-grows", holds=outcome_of(Support.of(held)), support=Support.of(held),
       measured=f"{seed_range(SEEDS)} (exact algebra, checked per seed): b after 1,000 steps at η = 0.1 "
                f"{final_b.describe('{:.0f}')}, the same -η·dL/db every step, loss constant to 10 decimals; "
                "inside the gradient b stays at 0")

# %% [markdown]
# Every seed, every statement: only the size of the step, $-\eta\,\partial L/\partial b = 2\eta\,
# \overline{(y - \hat x)}$, depends on the draw (through the mean of its targets, about 1).
#
# ## 2. How fast does $b$ drift? The learning rate decides
#
# Since $\Delta b = -\eta \sum_i \partial\ell/\partial\hat x_i$ and $\hat x$ never changes, the drift per
# step is proportional to $\eta$. Below, the same layer is trained at 13 learning rates (300 steps
# each), and now the weights $W$ learn too: they change the *shape* of $\hat x$, never its mean, so they
# do not stop the drift.

# %%
centering_sweeps = drift_sweeps("centering only", seed=SEEDS[0])  # 13 learning rates, 0.01 to 0.32
sweep_outside, sweep_inside = centering_sweeps["outside"], centering_sweeps["inside"]
drift_per_step = np.diff(sweep_outside.bias, axis=0) / np.diff(sweep_outside.steps)[:, None]  # (records, η)
for k in (0, 4, 8, 12):
    print(f"η = {sweep_outside.lrs[k]:.3f}: b drifts {drift_per_step[0, k]:.4f} per step "
          f"(drift / η = {drift_per_step[0, k] / sweep_outside.lrs[k]:.4f}), "
          f"b = {sweep_outside.bias[-1, k]:6.1f} after 300 steps outside, "
          f"{abs(sweep_inside.bias[-1, k]):.0f} inside")
print(f"the loss falls from {sweep_outside.loss[0, 8]:.4f} to {sweep_outside.loss[-1, 8]:.4f} at η = 0.1 "
      "(W learns), identically outside and inside")

# %%
# Check: the drift is proportional to η, and only W changes the loss
per_lr = drift_per_step / sweep_outside.lrs
assert np.ptp(per_lr) < 1e-6 * per_lr.mean()                          # drift ∝ η, the same at every step
assert np.abs(sweep_outside.loss - sweep_inside.loss).max() < 1e-9     # b's drift does not touch the loss
assert sweep_outside.loss[-1, 8] < 0.5 * sweep_outside.loss[0, 8]      # ... which W does improve
assert np.abs(sweep_inside.bias).max() < 1e-10

# %% [markdown]
# **Predict, then drag.** If you halve $\eta$, what happens to the slope of $b$? And if the layer also
# divided by the standard deviation (second button), what would you expect $\lVert W\rVert$ to do
# outside the gradient? Section 3 explains what you see.

# %%
panel = drift_panel(all_drift_sweeps(SEEDS[0]), seed=SEEDS[0])
panel

# %% [markdown]
# ## 3. Scaling too: the weights run away
#
# Now the layer standardizes, $\hat x = (x - \mathrm{E}[x]) / \mathrm{sd}[x]$, and learns both $W$ and
# $b$. Multiplying $W$ and $b$ by any $c > 0$ multiplies $x$, its mean and its standard deviation by $c$:
# $\hat x$ does not change. The layer is **scale-invariant**. The target asks for $\hat x$ twice as
# spread out as a standardized variable can be; outside the gradient, the step does not know that
# $\mathrm{sd}[x]$ grows with $W$, so it stretches $W$, and the next normalization divides the stretch
# away. Step after step, $\lVert W\rVert$ grows. (The part of the step along $W$ is proportional to
# $1/\lVert W\rVert$, so $\lVert W\rVert\,\Delta\lVert W\rVert$ stays about constant: $\lVert W\rVert^2$ grows
# linearly and $\lVert W\rVert$ like $\sqrt t$.) The bias still drifts, but its steps are divided by
# $\mathrm{sd}[x] \propto \lVert W\rVert$, so it slows down as $W$ grows.
#
# We train the two layers for 300 steps, and then the layer above changes its mind (as layers above do
# all the time during training): the targets turn to a direction orthogonal to the first, and
# training continues for 300 more steps.
#
# **Predict before you run.** Outside the gradient, how large is $\lVert W\rVert$ after 300 steps? Which
# layer turns to the new direction faster: statistics **"inside"** or **"outside"** the gradient?

# %%
my_prediction = None  # write "inside" or "outside" here before you run the next cells

# %%
directions = teacher_directions(SEEDS[0])          # (2, 5): what the layer above wants, before and after
turned = toy_problem(direction=1, seed=SEEDS[0])   # the same inputs, targets along the second direction
scaling_runs = {}
for where in ("outside", "inside"):
    layer = ToyLayer(start, normalization(scale=True, inside=where == "inside"))  # W learns too
    before_turn = train_toy(layer, toy, steps=300, lr=0.1, direction=directions[0])
    after_turn = train_toy(layer, turned, steps=300, lr=0.1, record_every=5, direction=directions[1])
    scaling_runs[where] = before_turn, after_turn

# %%
first_out, first_in = scaling_runs["outside"][0], scaling_runs["inside"][0]
norm_figure = new_figure(f"Standardizing outside the gradient: |W| grows to "
                         f"{first_out.probes['|W|'][-1]:.1f} in 300 steps; inside it stays near "
                         f"{first_in.probes['|W|'][-1]:.1f}",
                         "full-batch gradient step (η = 0.1)", "weight norm |W|")
for i, where in enumerate(("outside", "inside")):
    before_turn, after_turn = scaling_runs[where]
    add_line(norm_figure, before_turn.steps + [300 + s for s in after_turn.steps[1:]],
             before_turn.probes["|W|"] + after_turn.probes["|W|"][1:], f"statistics {where} the gradient",
             1 - i, dash="dash" if where == "inside" else None)
norm_figure.add_vline(x=300, line_dash="dot", line_color="grey", annotation_text="the target turns")
norm_figure

# %%
squared_norm = np.array(first_out.probes["|W|"])[[0, 10, 20, 30]] ** 2   # records every 10 steps
print("outside: |W|² at steps 0 / 100 / 200 / 300: " + " / ".join(f"{v:.1f}" for v in squared_norm))
print("         |W|² added per 100 steps: " + " / ".join(f"{v:.1f}" for v in np.diff(squared_norm)))
print(f"         b after 300 steps: {first_out.probes['b'][-1]:.2f}")
print(f"inside:  |W| after 300 steps: {first_in.probes['|W|'][-1]:.2f}, "
      f"b: {abs(first_in.probes['b'][-1]):.2f}")

# %%
# Check: |W|² grows linearly outside the gradient
increments = np.diff(squared_norm)[1:]                       # after the first alignment
assert np.ptp(increments) < 0.05 * increments.mean()         # |W|² grows linearly
assert first_out.probes["|W|"][-1] > 5 * first_in.probes["|W|"][-1] and first_in.probes["|W|"][-1] < 2
assert first_out.probes["b"][-1] > 3 and np.abs(first_in.probes["b"]).max() < 1e-10

# %% [markdown]
# ### The effective learning rate
#
# Why should a large $\lVert W\rVert$ matter, if $\hat x$ ignores it? Because the gradient does not.
# For a scale-invariant layer, multiplying $W$ by $c$ divides the gradient by $c$, and a step of that
# gradient turns $W$'s *direction* by an angle proportional to $\eta/\lVert W\rVert^2$. Measured on the
# toy layer at its start, with $W$ and $b$ scaled by $c = 1, 2, 4, 8, 16$ (the output is identical in
# all five) and one step at $\eta = 0.01$:

# %%
measured = rescaled_steps(ToyLayer(start, normalization(scale=True, inside=False)), toy, lr=0.01,
                          factors=[1, 2, 4, 8, 16])
print(f"{'|W|':>5} {'|dL/dW|':>9} {'|W|·|dL/dW|':>12} {'turn (degrees)':>15} {'turn·|W|²/η':>12}")
for w, g, turn in zip(measured["|W|"], measured["|dL/dW|"], measured["rotation"]):
    print(f"{w:5.0f} {g:9.4f} {w * g:12.4f} {np.degrees(turn):15.5f} {turn * w**2 / 0.01:12.3f}")

# %%
# Check: the gradient falls like 1/|W| and the turn like η/|W|²
gradient_times_norm = measured["|W|"] * measured["|dL/dW|"]
turn_times_norm2 = measured["rotation"] * measured["|W|"] ** 2
assert np.ptp(gradient_times_norm) < 1e-3 * gradient_times_norm.mean()   # gradient ∝ 1/|W|
assert turn_times_norm2.max() < 1.1 * turn_times_norm2.min()             # turn ∝ η/|W|²

# %% [markdown]
# So the learning rate you set is not the one you get: the direction of $W$ learns at the effective
# rate $\eta/\lVert W\rVert^2$. Outside the gradient $\lVert W\rVert^2$ grows linearly, so the effective
# learning rate falls like $1/t$, whatever $\eta$ you chose (drag the panel's slider with "centering
# and scaling" on: the title's effective rate at step 300 hardly depends on $\eta$). The layer is
# slowly freezing. It shows as soon as the layer has something new to learn: after the target turns,

# %%
after_out, after_in = scaling_runs["outside"][1], scaling_runs["inside"][1]


def steps_until_aligned(history, cosine=0.9):
    """The first recorded step where cos(W, new direction) passes ``cosine`` (None: never)."""
    passed = np.flatnonzero(np.array(history.probes["cosine"]) > cosine)
    return int(history.steps[passed[0]]) if passed.size else None


aligned_in, aligned_out = steps_until_aligned(after_in), steps_until_aligned(after_out)
turn_figure = new_figure(f"After the target turns, the layer with statistics inside the gradient follows "
                         f"in {aligned_in} steps; outside, cos is {after_out.probes['cosine'][-1]:.2f} "
                         "after 300",
                         "gradient step after the target turned (η = 0.1)",
                         "cosine between W and the new target direction")
add_line(turn_figure, after_out.steps, after_out.probes["cosine"], "statistics outside the gradient", 1)
add_line(turn_figure, after_in.steps, after_in.probes["cosine"], "statistics inside the gradient", 0,
         dash="dash")
turn_figure.update_yaxes(range=[-0.1, 1.05])
turn_figure

# %%
effective_out = 0.1 / first_out.probes["|W|"][-1] ** 2
effective_in = 0.1 / first_in.probes["|W|"][-1] ** 2
print(f"effective learning rate η/|W|² when the target turns: {effective_out:.5f} outside, "
      f"{effective_in:.4f} inside")
print(f"steps until cos(W, new direction) > 0.9: {aligned_in} inside, "
      f"{'more than 300' if aligned_out is None else aligned_out} outside")
print(f"loss 300 steps after the turn: {after_out.probes['loss'][-1]:.3f} outside, "
      f"{after_in.probes['loss'][-1]:.3f} inside")

# %%
# Check: the layer outside the gradient is the slow one
assert effective_out < effective_in / 20
assert aligned_in is not None and aligned_in <= 50 and aligned_out is None
assert after_out.probes["loss"][-1] > after_in.probes["loss"][-1] + 0.3
compare_prediction(my_prediction, "inside" if aligned_out is None else "outside")

# %% [markdown]
# Nothing in this toy becomes infinite or NaN: the norm grows like $\sqrt t$ forever and the layer
# learns ever more slowly. (If the target wanted a *narrower* $\hat x$, the same mechanism would shrink
# $\lVert W\rVert$ toward 0 instead, and the effective learning rate would explode.)
#
# ## 4. The same failure in a real network
#
# The digits MLP (64-100-100-100-10, sigmoid) with a normalization before each sigmoid: bnlab's
# `BatchNorm` with its batch mean and variance **detached** from autograd (`norm="bnlab_bn_detached"`:
# the statistics are recomputed on every mini-batch but treated as constants), against the same layer
# with its statistics **inside** autograd (`norm="bnlab_bn"`, true Batch Normalization). The Linear
# layers keep their biases. Same initialization (PyTorch's default), same mini-batches of 60, plain SGD for
# 500 steps, at an ordinary learning rate (0.5) and a high one (2). Both networks normalize, so this is
# not a comparison with a network without BN, and no fairly initialized network without BN is needed;
# since a normalized unit ignores the scale of its incoming weights (section 3), the initialization's
# scale only sets where the norms start. Every setting trains under each of the 8 claim
# seeds (its initial weights and its order of mini-batches): 32 networks, trained together in batched
# computations (`bnlab.ensemble`, one group per kind of normalization, side by side on the CPU cores).
# Every 50 steps we also measure the test accuracy when each normalization uses the test set's own
# statistics instead of its running averages.
#
# **Predict before you run.** Which parameters will grow in the detached network: the **"biases"**, the
# **"weights"**, **"both"** or **"neither"**? Will it still learn?

# %%
my_prediction = None  # write "biases", "weights", "both" or "neither" here before you run the next cells

# %%
digits = load_digits()
mlp = detached_vs_inside(digits, SEEDS)   # (network, η) -> its readings over the 8 seeds (500 steps)

# %%
norms_figure(mlp)

# %%
accuracy_figure(mlp, 2.0)

# %% [markdown]
# The numbers behind the figures, for both learning rates, as the median over the seeds and the range
# from the lowest to the highest seed:

# %%
summary_table(mlp)

# %%
# Check: the claims of section 4, seed by seed
bias_still = {}  # η -> per seed: did BN's hidden biases stay where they started (to float32 rounding)?
for lr in MLP_LRS:
    outside, inside = mlp["statistics outside", lr], mlp["BN (inside)", lr]
    bias_still[lr] = np.ptp(inside.bias_norm, axis=1) < 1e-4
    heavier = outside.final("weight").values > 1.5 * inside.final("weight").values
    slower = outside.effective_lr < inside.effective_lr / 2
    print(f"η = {lr:g}: with BN the hidden biases never move: {Support.of(bias_still[lr])}")
    print(f"        with statistics outside the hidden weights end over 1.5× as large as with BN: "
          f"{Support.of(heavier)}, the effective rate η/|w_j|² under half of BN's: {Support.of(slower)}")
    assert bias_still[lr].all() and heavier.all() and slower.all()
    assert outside.late_accuracy().median < inside.late_accuracy().median - 0.01  # accuracy suffers
assert mlp["statistics outside", 0.5].growth("bias").median > 1.5        # the biases drift ...
outside_2, inside_2 = mlp["statistics outside", 2.0], mlp["BN (inside)", 2.0]
assert outside_2.growth("bias").median > 5                              # ... faster at a higher rate
accuracy_2, own_2 = outside_2.late_accuracy(), outside_2.late_accuracy(own_statistics=True)
assert accuracy_2.median < 0.5 < 0.9 < inside_2.late_accuracy().low      # collapses at η = 2
assert np.median(own_2.values - accuracy_2.values) > 0.03                 # partly the running averages,
assert own_2.median < inside_2.late_accuracy(own_statistics=True).median - 0.1  # partly the training
runaway = Support.of((outside_2.final("weight").values > 1.5 * inside_2.final("weight").values)
                     & (accuracy_2.values < inside_2.late_accuracy().values))  # per seed, at η = 2
early_2 = outside_2.share_by("weight", 50)   # share of |W|'s growth made by step 50, per seed
flat_2 = Support.of(np.abs(outside_2.late_rate("weight").values) < 0.05)  # |W| moved < 5% per 100 steps late
record("outside-gradient-model-blows-up", holds=PARTLY if runaway.at_least(0.75) else outcome_of(runaway),
       support=runaway,
       measured=f"η = 2, {seed_range(SEEDS)}, 500 steps: hidden |W| end/start "
                f"{outside_2.growth('weight').describe('{:.2g}')} vs "
                f"{inside_2.growth('weight').describe('{:.2g}')} with BN, share of the growth made by step 50 "
                f"{early_2.describe('{:.0%}')}, then flat in {flat_2}; test accuracy "
                f"{accuracy_2.describe('{:.0%}')} vs {inside_2.late_accuracy().describe('{:.0%}')}: "
                "norms that jump and then freeze, finite loss")
grew = {kind: all(mlp["statistics outside", lr].growth(kind).low > 1.2 for lr in MLP_LRS)
        for kind in ("bias", "weight")}
compare_prediction(my_prediction, {(True, True): "both", (True, False): "biases", (False, True): "weights",
                                   (False, False): "neither"}[grew["bias"], grew["weight"]])

# %% [markdown]
# Outside the gradient both kinds of parameters grow, in every seed, while with BN the biases never move.
# But look at *when* they grow. At $\eta = 2$ the norms jump in the first 50 steps and then, in most
# seeds, stay about where the jump left them; at $\eta = 0.5$ they grow all through training, less and
# less quickly. With BN the weights grow too, a little, at every step: [notebook 06](06_why_batchnorm_works.ipynb) (section 4) shows why
# (the gradient of a normalized unit's weights is orthogonal to them, so every step adds to their norm).
# What drives the detached network's growth, and what stops it?
#
# ### Where the drift comes from, and why it stops
#
# Take unit $j$ of a layer, $x_{ij} = w_j\cdot u_i + b_j$ for the examples $i$ of a mini-batch, normalized
# to $\hat x_{ij}$ with the batch's mean and $\sigma_j = \sqrt{\sigma_B^2 + \varepsilon}$, then
# $y_{ij} = \gamma_j \hat x_{ij} + \beta_j$. Write $g_i = \partial L/\partial y_{ij}$. With the statistics
# outside the gradient, $\partial \hat x_{ij}/\partial b_j = 1/\sigma_j$, so
# $$\frac{\partial L}{\partial b_j} = \frac{\gamma_j}{\sigma_j}\sum_i g_i
#   = \frac{\gamma_j}{\sigma_j}\,\frac{\partial L}{\partial \beta_j}:$$
# **every step moves $b_j$ by $\gamma_j/\sigma_j$ times the step it gives $\beta_j$.** Whenever the loss asks
# for a different mean of the unit's output, the request goes to $\beta_j$, which can grant it, and
# (scaled) to $b_j$, whose effect the next normalization erases. The rows $w_j$ get two such extra
# terms compared with the gradient inside autograd:
# $$\frac{\gamma_j}{\sigma_j}\Big(\frac{\partial L}{\partial \beta_j}\,\bar u
#   + \frac{1}{m}\frac{\partial L}{\partial \gamma_j}\sum_i \hat x_{ij}\,u_i\Big):$$
# one along the mean input $\bar u$ (sigmoid outputs are all positive, so part of $w_j$ acts like a second
# bias), and one that stretches or shrinks the unit's spread whenever $\gamma_j$ is asked to. Checked on one
# mini-batch of the first seed's detached network, with autograd:

# %%
split = gradient_split(make_mlp(norm="bnlab_bn_detached", seed=SEEDS[0]), digits.X_train[:60],
                       digits.y_train[:60])
print("statistics outside: dL/db_j = (γ_j/σ_j)·dL/dβ_j for all 300 hidden units, to float32 rounding: "
      f"{split.bias_error < 1e-4}")
print("the extra gradient of the last hidden layer's rows w_j is the formula's, to float32 rounding: "
      f"{split.weight_error < 1e-4}")
print("γ_j/σ_j at the start is large, median over the units between 5 and 10: "
      f"{5 < np.median(split.gain) < 10} (fresh pre-activations spread little)")

# %%
# Check: the gradient split is exact
assert split.bias_error < 1e-4 and split.weight_error < 1e-4 and split.inside_bias < 1e-6

# %% [markdown]
# So $b$ travels as far as $\beta$ does, multiplied by $\gamma_j/\sigma_j$, which starts large (a fresh
# unit's pre-activations spread little: $\sigma_j$ is small). The time course, medians over the seeds:

# %%
time_course_table(mlp)

# %%
# Check: the time course described below
outside_05 = mlp["statistics outside", 0.5]
jumped = outside_2.share_by("weight", 50).median > 0.7              # η = 2: most of the growth by step 50
froze = np.median(outside_2.late_rate("weight").values) < 0.02       # ... then no more growth
beta_stopped = outside_2.beta_at(500).median < 1.5 * outside_2.beta_at(50).median
still_growing = Support.of((outside_05.late_rate("weight").values > 0.02)
                           & (outside_05.late_rate("bias").values > 0.02))   # η = 0.5: growth goes on
gradual = Support.of(outside_05.share_by("weight", 50).values < 0.6)
beta_travels = outside_05.beta_at(500).median > 1.5 * outside_05.beta_at(50).median
gain_fell = outside_2.gain_fall().median > 10 and outside_05.gain_fall().median > 3
print(f"η = 2: most of |W|'s growth by step 50, then none (medians over the seeds): {jumped and froze}; "
      f"β stays where the jump put it: {beta_stopped}")
print(f"η = 0.5: under 60% of |W|'s growth by step 50: {gradual}; |W| and |b| still grew by over 2% "
      f"per 100 steps at the end: {still_growing}; β keeps travelling: {beta_travels}")
print(f"|γ_j|/σ_j fell over tenfold at η = 2 and over threefold at η = 0.5 (medians): {gain_fell}")
assert jumped and froze and beta_stopped and gain_fell and beta_travels
assert still_growing.everywhere and gradual.everywhere

# %% [markdown]
# What happened, reading the tables and the figures:
# * **The biases follow $\beta$, scaled by $\gamma/\sigma$.** With BN the Linear biases never move (to
#   float32 rounding), in every seed: inside autograd their gradient is zero, exactly as in the toy. With
#   detached statistics each step drags them along with $\beta$.
# * **At $\eta = 2$: a jump, then a freeze.** The first large steps send $\beta$ far out, and the biases
#   and weights with it. The weights' growth raises every unit's $\sigma_j$, so $\gamma_j/\sigma_j$ falls
#   more than tenfold (median): the same request then moves $b_j$ far less, and the weights' steps shrink
#   relative to their size (the effective learning rate $\eta/\lVert w_j\rVert^2$ of section 3). After the
#   jump $\beta$ itself hardly moves, and neither do $b$ and $W$. Nothing runs to infinity; in most seeds
#   (the claim line counts them) the network is stuck, with a high training loss.
# * **At $\eta = 0.5$: slow and steady.** The network learns, $\beta$ keeps travelling as it fits the data,
#   and the biases and weights keep growing with it, every seed still a few percent per 100 steps at the
#   end, ever more slowly as $\gamma_j/\sigma_j$ falls.
# * **Accuracy suffers.** At $\eta = 0.5$ the detached network is a little worse than BN (a few points).
#   At $\eta = 2$ its test accuracy collapses and jumps from record to record, differently in every seed:
#   the band in the figure is wide. Part of that is the test-time normalization: the parameters move so
#   fast, in directions each mini-batch normalization cancels, that the running averages used at test time
#   cannot keep up. Normalized with the test set's own statistics the same network does better in most
#   seeds, but still far worse than BN: the training itself went wrong as well.
#
# On digits, "the model blows up" shows as norms that jump and then freeze the network (or, at a moderate
# rate, creep up for as long as it trains), a collapsing effective learning rate and degraded accuracy,
# not as NaN: no run here produced an infinite or NaN value (the [ledger](claims_ledger.md)'s verdict is therefore "holds with
# caveats"). The toy of section 1 drifts forever because nothing in it can grant the request; in the
# network, $\beta$ grants it, and the drift lasts as long as $\beta$ is still moving.

# %% [markdown]
# ## 5. Exercises
#
# **Exercise 1: predict the drift.** Write `bias_drift(x_hat, y, lr)`: the change of $b$ in one gradient
# step when $\mathrm{E}[x]$ is treated as a constant, for the loss $L = \frac1N\sum_i(\hat x_i - y_i)^2$.
# `x_hat` and `y` are numpy arrays of shape (N,). The check compares your formula with the drift it
# measures on a fresh toy layer, for three learning rates and targets. (Section 2 found that drift /
# η is the same number at every η: your formula should say which number.)

# %%
def bias_drift(x_hat, y, lr):
    """Δb of one step with the mean outside the gradient; x_hat, y: (N,) arrays."""
    raise NotImplementedError  # replace this line with your code


check_bias_drift(bias_drift)

# %% [markdown]
# **Exercise 2: put the mean inside the gradient.** Write `center(x)` for a torch tensor `x` of shape
# (N, C): subtract each column's mean over the batch, so that autograd sees the mean. The check plugs
# your function into the toy layer of section 1, verifies that $\partial L/\partial b = 0$, and trains
# it for 100 steps to verify that $b$ does not move.

# %%
def center(x):
    """x (N, C) minus its per-column batch mean, with the mean inside autograd."""
    raise NotImplementedError  # replace this line with your code


check_center_in_graph(center)

# %% [markdown]
# **Exercise 3: standardize inside the gradient.** Write `standardize(x, eps=1e-5)`: center each
# column and divide it by $\sqrt{\mathrm{var} + \varepsilon}$, with the variance over the batch divided
# by $N$ (as Batch Normalization does), both statistics inside autograd. The check verifies
# $\partial L/\partial b = 0$ and that the gradient has no component along $W$
# ($W\cdot\partial L/\partial W = 0$, which is what keeps $\lVert W\rVert$ from running away).

# %%
def standardize(x, eps=1e-5):
    """x (N, C) standardized per column over the batch, both statistics inside autograd."""
    raise NotImplementedError  # replace this line with your code


check_standardize_in_graph(standardize)

# %% [markdown]
# Solutions, when you want them (uncomment a line and run the cell):

# %%
# show_solution("bias_drift")
# show_solution("center_in_graph")
# show_solution("standardize_in_graph")

# %% [markdown]
# ## 6. Why the normalization has to be part of the network
#
# Everything above has one cause: the gradient step did not know about the normalization, so it kept
# pushing in directions the normalization then undid. The paper's remedy is to make sure that, for
# **any** parameter values, the network produces normalized activations, and to let the gradient of the
# loss account for the normalization. That means the normalization must be a layer of the model,
# differentiated like any other. Then:
# * the bias before it gets a zero gradient (so it can be dropped; Batch Normalization's own $\beta$
#   takes over its job), and the weights' gradient is orthogonal to them;
# * the backward pass must differentiate through the mean and the variance. Over the whole training set
#   that is far too expensive at every step, and whitening would need the derivative of
#   $\mathrm{Cov}^{-1/2}$; so Batch Normalization standardizes each unit with the statistics of the
#   current **mini-batch** (notebook 01 showed why not whiten).
#
# One check on a single mini-batch of the two digits networks as initialized: the gradient of the loss
# with respect to the Linear biases.

# %%
batch = slice(0, 60)
for label, norm in MLP_NETWORKS.items():
    model = make_mlp(norm=norm)
    loss = torch.nn.functional.cross_entropy(model(digits.X_train[batch]), digits.y_train[batch])
    bias_gradients = torch.autograd.grad(loss, [model.linear1.bias, model.linear2.bias, model.linear3.bias])
    largest = max(g.abs().max().item() for g in bias_gradients)
    shown = "below 1e-6" if largest < 1e-6 else f"{largest:.4f}"
    print(f"{label:>19}: largest |dL/db| over the hidden Linear biases: {shown}")
    assert largest < 1e-6 if norm == "bnlab_bn" else largest > 1e-3

# %% [markdown]
# Inside autograd the bias gradients vanish (up to float32 rounding); with detached statistics they do
# not, and they are what made the biases drift in section 4.
#
# ## Summary
# * With $\hat x = x - \mathrm{E}[x]$ computed outside the gradient, a step on $b$ is cancelled by the
#   next normalization: $\hat x$, the loss and the gradient stay exactly the same, so $b$ moves by the
#   same $\Delta b = -\eta\sum_i \partial\ell/\partial\hat x_i$ every step. On the toy, for every seed:
#   $b$ climbed by about 0.2 per step at $\eta = 0.1$ (proportional to $\eta$) while the loss did not
#   change in ten decimals.
# * Inside autograd, $\partial\hat x_i/\partial b = 1 - 1 = 0$: $\partial L/\partial b = 0$ and $b$ stays put.
# * Dividing by the standard deviation outside the gradient makes $\lVert W\rVert$ run away too
#   ($\lVert W\rVert^2$ grows linearly). The layer is scale-invariant, so its gradient falls like
#   $1/\lVert W\rVert$ and its direction learns at the effective rate $\eta/\lVert W\rVert^2$: the layer
#   slowly freezes and can no longer follow a target that moves.
# * In the digits MLP with detached BN statistics, in every one of 8 seeds, the biases and weights grow
#   and the effective learning rate falls. The mechanism is exact: every step moves a unit's bias by
#   $\gamma/\sigma$ times what it moves $\beta$. At $\eta = 2$ the norms jump in the first 50 steps and
#   then, in most seeds, freeze, with the network stuck; at $\eta = 0.5$ they keep creeping up. The
#   test-time running statistics cannot keep up, and accuracy suffers (at $\eta = 2$ it collapses). With BN
#   inside autograd the biases do not move; the weights still grow a little at every step, for a reason
#   notebook 06 (section 4) explains.
# * Hence Batch Normalization: the normalization is a layer of the network, differentiated through its
#   mini-batch mean and variance.
#
# **Next:** [04 · Batch norm from scratch](04_batchnorm_from_scratch.ipynb) builds that layer from scratch:
# Algorithm 1 forward, its backward pass checked against autograd, and what happens at test time. [00 ·
# Start here](00_start_here.ipynb) has the map.
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), section 2
#   (the argument of section 1 of this notebook) and section 3.
# * T. Salimans and D. P. Kingma (2016). *Weight Normalization: A Simple Reparameterization to
#   Accelerate Training of Deep Neural Networks.* NeurIPS.
#   [arXiv:1602.07868](https://arxiv.org/abs/1602.07868), section 2.1 (the gradient of a scale-invariant
#   weight is orthogonal to it and scales like $1/\lVert w\rVert$).
# * T. van Laarhoven (2017). *L2 Regularization versus Batch and Weight Normalization.*
#   [arXiv:1706.05350](https://arxiv.org/abs/1706.05350) (the effective learning rate
#   $\eta/\lVert w\rVert^2$).
# * E. Hoffer, R. Banner, I. Golan and D. Soudry (2018). *Norm matters: efficient and accurate
#   normalization schemes in deep networks.* NeurIPS. [arXiv:1803.01814](https://arxiv.org/abs/1803.01814).
# * S. Arora, Z. Li and K. Lyu (2019). *Theoretical Analysis of Auto Rate-Tuning by Batch
#   Normalization.* ICLR. [arXiv:1812.03981](https://arxiv.org/abs/1812.03981).
