"""Fengqiao's domain: the rules of grassroots case handling, pure Python.

Nothing here does I/O or knows about HTTP, databases or frameworks. The layers
above (``engine``, ``workflows``, ``projections``, ``api``) feed it data and store
what it decides.
"""
