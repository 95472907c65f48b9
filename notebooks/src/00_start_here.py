# %% [markdown]
# # 00 · Start here
#
# Welcome to **bnlab**, a hands-on course on **Batch Normalization** (BN), the layer Ioffe and
# Szegedy introduced in 2015 and that sits in most deep networks since. You will not just read
# about it: you will rebuild it, break it, and measure what it does, on a laptop CPU.
#
# **In this notebook you will**
# 1. check that your Python environment has everything the course needs;
# 2. see the map of the course;
# 3. learn the two interactive tools the course uses everywhere: slider panels and checked exercises.

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
import bnlab
from bnlab.environment import check_environment
from bnlab.lessons.nb00_start_here.checks import check_mean, show_solution
from bnlab.lessons.nb00_start_here.figures import PARABOLA_STEPS, parabola_panel

SEED = bnlab.setup()
print(f"Course seed: {SEED} (set the BNLAB_SEED environment variable before starting Jupyter to change it)")

# %% [markdown]
# ## 1. Environment check
# Run the next cell. It compares what is installed with the versions the course was tested with
# and says in plain words what, if anything, is missing.

# %%
environment_ok = check_environment()

# %% [markdown]
# ## 2. The map
#
# Work through the notebooks in order; each one answers one question and ends with a summary.
#
# <!-- course-map:start -->
# | # | notebook | the question it answers |
# |---|---|---|
# | 00 | Start here | How do I use this course? (environment check, sliders, exercises) |
# | 01 | [Input normalization](01_input_normalization.ipynb) | Why do we center, scale and decorrelate inputs? |
# | 02 | [Covariate shift](02_covariate_shift.ipynb) | What is covariate shift, and what is *internal* covariate shift? |
# | 03 | [Normalizing outside the gradient](03_normalizing_outside_the_gradient.ipynb) | Why can't we normalize activations between gradient steps? |
# | 04 | [Batch norm from scratch](04_batchnorm_from_scratch.ipynb) | What exactly does BN compute, forward and backward, train and eval? |
# | 05 | [Training with BN](05_training_with_batchnorm.ipynb) | What does BN buy in practice? |
# | 06 | [Why BN works, and when it fails](06_why_batchnorm_works.ipynb) | Is internal covariate shift the real reason? |
# | 07 | [BN in practice](07_batchnorm_in_practice.ipynb) | How do I use BN well in a real network? |
# | 08 | [BN across processes](08_batchnorm_across_processes.ipynb) | What happens to BN when training is data-parallel? |
# <!-- course-map:end -->
#
# The [claims ledger](claims_ledger.md) closes the series: every claim about BN the course tests,
# with a verdict (holds here, holds with caveats, does not hold here) and the number of seeds it held
# for. No claim rests on one training run: each is measured over 8 networks trained from 8 **claim
# seeds** (8 draws of the initial weights and of the order of the mini-batches) and stated as a
# statistic over them, a median with its range or a count such as "in 7 of 8 seeds".
#
# Every number a notebook states is computed in a cell, and what the text relies on is **asserted**,
# mostly in a collapsed cell whose first line is `# Check: ...` (click it to read the asserts): if a
# future library version changed the result, the notebook would stop with an error instead of telling
# you something that is no longer true. A check cell that tests a claim about BN also prints a line
# such as `Claim ... [holds] 8 of 8 seeds`, which the ledger collects.

# %% [markdown]
# ## 3. Slider panels
#
# Many figures come with sliders. Drag one and the figure redraws at once; nothing else in the
# notebook changes. Try it below: gradient descent on the parabola $f(w) = w^2 / 2$, starting at
# $w = 3$. Each step moves $w \leftarrow w - \eta\, f'(w) = (1 - \eta)\, w$.
#
# **Predict before you drag:** for which learning rates $\eta$ does $w$ reach 0 without
# overshooting? For which does it bounce from side to side? For which does it fly off?
#
# (The panel needs a live kernel. On GitHub you see a still picture of its first state.)

# %%
demo_panel = parabola_panel()
demo_panel

# %% [markdown]
# What you should have seen: for $\eta < 1$ the steps approach 0 from one side; for
# $1 < \eta < 2$ they jump across the minimum but still shrink; for $\eta > 2$ each jump is
# longer than the last. Each step multiplies $w$ by $(1 - \eta)$, so the run converges exactly
# when $|1 - \eta| < 1$. The next cell checks that claim on the panel itself.

# %%
for lr, converges in [(0.5, True), (1.5, True), (2.5, False)]:
    demo_panel.set(lr=lr)
    final_w = demo_panel.figure.data[1].x[-1]
    assert (abs(final_w) < 0.1) == converges, (lr, final_w)
    print(f"η = {lr}: w after {PARABOLA_STEPS} steps = {final_w:+.4f}  ->  {'converges' if converges else 'diverges'}")
demo_panel.set(lr=0.3)

# %% [markdown]
# A panel that trains networks would take seconds per setting, which is too slow for a drag. So some
# of the course's panels precompute their settings, and a drag only looks up results; others train
# when you let go of the slider, in the background, and their curves grow as the networks learn (about
# a second). When a setting diverges, the figure says **diverged at step k**, as you saw above, instead of
# showing an error.
#
# ## 4. Exercises
#
# Exercises look like the cell below: a function with `raise NotImplementedError` for you to
# replace, and a `check_...` call that tells you what is right, what differs and what to try.
# Run the two cells as they are first, to see what an unfinished exercise looks like.
#
# **Warm-up exercise.** Write `mean(values)`, the average of a list of numbers.

# %%
def mean(values):
    """The average of a non-empty list of numbers."""
    raise NotImplementedError  # replace this line with your code


check_mean(mean)

# %% [markdown]
# Stuck? Each exercise has a solution, hidden until you ask for it. Uncomment the line below and run it.

# %%
# show_solution("mean")

# %% [markdown]
# ## Summary
# * `bnlab.setup()` in the first cell of each notebook seeds every random number from `BNLAB_SEED`,
#   so everybody who runs a notebook sees the same verdicts and counts (another kind of CPU can change
#   the last digits of a single run's numbers).
# * A "Predict first" prompt comes with a cell `my_prediction = None`: write your guess there before you
#   run on, and a later cell compares it with what the runs show.
# * Slider panels redraw one figure in place; a diverging setting is labelled as diverged.
# * Exercises come with a `check_...` function and a `show_solution(...)` for when you are stuck.
# * Each notebook runs in a kernel of its own, of about 0.45 GB. When you finish a notebook, shut its
#   kernel down (*Kernel > Shut Down Kernel*): Binder allows 2 GB in all, and with four or five
#   kernels open it stops one without warning.
#
# Next: [01 · Input normalization](01_input_normalization.ipynb).
#
# ## References
# * S. Ioffe and C. Szegedy (2015). *Batch Normalization: Accelerating Deep Network Training by
#   Reducing Internal Covariate Shift.* ICML. [arXiv:1502.03167](https://arxiv.org/abs/1502.03167)
