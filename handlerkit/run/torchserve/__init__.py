"""The real TorchServe (Java) on 127.0.0.1: archive a folder, start the server, talk to it, stop it.

`handlerkit.serve` is this room's public face (`TorchServe`, `archive`, `measure`, `ServeError`).
"""
