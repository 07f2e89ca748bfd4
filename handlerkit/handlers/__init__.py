"""The handlers, one per file, from the general to the specific.

base -> vision -> image_classifier -> mnist -> uploads (the customized MNIST handler).
"""
