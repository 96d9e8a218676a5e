"""Tables and plots: the Pareto table, the overlap study, their JSON/CSV/Markdown/PNG."""
