"""The digit playground (public face): draw or upload a digit, watch every stage answer.

The widget lives in `handlerkit.show.widgets`, with the rest of the drawing room.
"""

from .show.widgets import DigitPlayground

__all__ = ["DigitPlayground"]
