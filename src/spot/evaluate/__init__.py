"""Evaluation: suites of (prompt, answer) items, scoring, and forgetting against the base model."""
