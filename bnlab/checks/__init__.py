"""Exercise checks: ``check_<exercise>(your_function)`` returns a friendly verdict.

A verdict says what is right, what differs and gives a hint. It is never a traceback: if
your function raises, the verdict says so in words. A verdict is truthy when you passed,
so tests can ``assert check_standardize(solution)``.

Each exercise has a solution you can reveal on request: ``show_solution("standardize")``.
One module per notebook holds its checks; this package gathers them.
"""

from .batchnorm import check_batch_norm_backward, check_batch_norm_forward
from .bn_training import check_jacobian_singular_values, check_scale_hidden_weights
from .core import SOLUTIONS, Verdict, show_solution
from .covariate_shift import check_minibatch_statistics, check_saturated_fraction
from .input_normalization import check_standardize, check_whiten
from .outside_gradient import check_bias_drift, check_center_in_graph, check_standardize_in_graph
from .warmup import check_mean
from .why_bn import check_effective_learning_rate, check_recompute_statistics

__all__ = ["SOLUTIONS", "Verdict", "show_solution", "check_mean", "check_standardize", "check_whiten",
           "check_bias_drift", "check_center_in_graph", "check_standardize_in_graph",
           "check_minibatch_statistics", "check_saturated_fraction",
           "check_batch_norm_forward", "check_batch_norm_backward",
           "check_scale_hidden_weights", "check_jacobian_singular_values",
           "check_effective_learning_rate", "check_recompute_statistics"]
