"""The benchmark: the worker against a naive integration, measured in one run."""
