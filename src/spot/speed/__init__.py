"""Speed and scale: batch layouts with less padding (layout.py), attended unit by unit (attention.py), and
DeepSpeed helpers (deepspeed.py).

Reference log-probs precomputed once and cached live in spot.refcache; the completion-only LM head in spot.logps.
"""
