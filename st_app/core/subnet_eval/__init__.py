"""Evaluating sub-networks block by block: the operations a plan runs (:mod:`.ops`) and the
app's incremental evaluator that reuses the work of shared prefixes (:mod:`.incremental`).

The package itself imports nothing, so ``core.evaluate`` can use :mod:`.ops` without a cycle.
"""
