"""Compiled kernels: @njit loops over arrays, no validation and no Python objects."""
