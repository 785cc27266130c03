"""asv benchmark suites of bogc-ref (not part of the installed package).

asv imports this folder as the package ``benchmarks``: every module here is imported
during discovery, so modules must be cheap and side-effect free to import. Suites are
the ``bench_*`` modules; the baselines users would otherwise write are the
``baseline_*`` modules; ``roofline.py`` and ``targets.py`` are scripts.
"""
