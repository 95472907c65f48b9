"""Solutions to exercises that have no counterpart elsewhere in bnlab (see checks.show_solution)."""
