"""Embedded sample data (public face): photos, MNIST digits and ready-to-serve model folders.

The code lives in `handlerkit.course.samples`; notebooks and learners import it from here.
"""

from .course.samples import (
    DATA_DIR,
    DENSENET_DIR,
    DENSENET_URL_FILE,
    EFFICIENTNET_DIR,
    MNIST_DIR,
    PHOTO_NAMES,
    densenet_folder,
    digit,
    digit_label,
    digit_png,
    digit_rows,
    efficientnet_folder,
    encode,
    jpeg_declaring,
    mnist_data,
    photo,
    photo_bytes,
    photo_rows,
    photos,
    shipped,
    zeros_png,
)

__all__ = [
    "DATA_DIR",
    "DENSENET_DIR",
    "DENSENET_URL_FILE",
    "EFFICIENTNET_DIR",
    "MNIST_DIR",
    "PHOTO_NAMES",
    "densenet_folder",
    "digit",
    "digit_label",
    "digit_png",
    "digit_rows",
    "efficientnet_folder",
    "encode",
    "jpeg_declaring",
    "mnist_data",
    "photo",
    "photo_bytes",
    "photo_rows",
    "photos",
    "shipped",
    "zeros_png",
]
