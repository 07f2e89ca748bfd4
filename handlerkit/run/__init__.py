"""The ways to run a handler, side by side: in-process, LitServe, Ray Serve, the real TorchServe.

`offline` serves in this process; `litserve`, `ray` and `torchserve/` serve behind TorchServe's
HTTP API; they share the model's own process, one child-process launcher and the command line.
"""
