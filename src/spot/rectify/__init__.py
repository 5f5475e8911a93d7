"""Rectified data: sample the policy, verify its answers, have an Oracle fix the wrong ones, filter, write."""
