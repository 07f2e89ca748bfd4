"""The course around the library: sample data, training the MNIST model, copying the notebooks.

`handlerkit.samples` is the public face of `samples`; the exercises live in `handlerkit.exercises`.
"""
