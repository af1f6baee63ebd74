"""Model mathematics: priors, posterior updates from sufficient statistics, KL terms.

Nothing here touches data rows: every function takes the sufficient statistics
that one pass of a kernel in :mod:`fastcavi._kernels` accumulated.
"""
