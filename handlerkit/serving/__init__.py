"""TorchServe's outer half, in Python: what every way of running a handler shares.

The model folder or `.mar` -> manifest rule (`model_folder`), HTTP -> worker input and reply ->
`Answer` (`frontend`), ts's wire format (`wire`), ts's own worker driven in-process (`worker`),
and the load-time problems named with their fix (`check`).
"""
