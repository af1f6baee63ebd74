"""The CAVI loop (:mod:`.loop`: sweeps to convergence, restarts) and its checkpoints (:mod:`.checkpoint`).

It works on :class:`fastcavi.engine.Model`, ``State`` and ``Stats``; the fitted result is made above it,
in :mod:`fastcavi.result`.
"""
