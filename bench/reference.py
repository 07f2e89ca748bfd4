"""TorchServe's own handlers, built in this process as its worker builds them: the reference.

They live in `handlerkit.timing` (notebook 05 compares with them, from an installed package too);
the tests import them from here.
"""

from handlerkit.timing import quiet_torchserve, torchserve_mnist_class, ts_context, ts_initialize

__all__ = ["quiet_torchserve", "torchserve_mnist_class", "ts_context", "ts_initialize"]
