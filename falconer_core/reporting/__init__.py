"""What runs show people: artifacts (plan markdown, tables, the F1 plot), the cost comparison
of the proxy against the annotator, and the results the flows return."""

from falconer_core.reporting.artifacts import costs_table, f1_plot, plan_markdown, sample_table, scores_table
from falconer_core.reporting.costs import CostRow, compare_costs
from falconer_core.reporting.results import (
    EvaluationResult,
    ExecutionResult,
    IncubationResult,
    MineResult,
    execution_result,
    mining_costs,
)

__all__ = [
    "CostRow",
    "EvaluationResult",
    "ExecutionResult",
    "IncubationResult",
    "MineResult",
    "compare_costs",
    "execution_result",
    "costs_table",
    "f1_plot",
    "mining_costs",
    "plan_markdown",
    "sample_table",
    "scores_table",
]
