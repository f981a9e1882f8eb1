"""Benchmarks (not tests): each prints its figures and the baseline it is compared with."""
