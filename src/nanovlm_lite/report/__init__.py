"""Aggregate a study's per-point results into one table and draw its Pareto front."""
