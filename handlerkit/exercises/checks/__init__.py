"""The checks of the series' exercises, one module per notebook, each check registered by name.
Sits on top of the handlers, offline and serve; `check` imports this package on first use.

Each check calls the learner's function on fresh inputs of its own (or recomputes the value the
learner was asked for) and says which part is right; the messages name the usual mistakes.
"""

from . import (  # noqa: F401  (importing a module registers its exercises)
    nb01_default_handler,
    nb02_basehandler,
    nb03_mnist_handler,
    nb04_torchserve,
    nb05_time,
    nb06_offline,
    nb07_engines,
    nb08_explanations,
    nb09_uploads,
)
from .nb09_uploads import status_quiz

__all__ = ["status_quiz"]
