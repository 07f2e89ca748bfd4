"""The benchmark harness: handlerkit against TorchServe, what tracing costs, served latency.

Outside the package on purpose: `python -m bench` (or `make bench`) runs it from the checkout.
"""
