"""The benchmarks ``fengqiao bench`` runs (packaged with the CLI, so an installed
``fengqiao`` can run them), their seeded county and their ``fengqiao serve`` subprocess."""
