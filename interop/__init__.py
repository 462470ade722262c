"""jinit.interop: parameter trees to and from PyTorch, TensorFlow/Keras and MXNet/Gluon.

Importing this package imports no framework: each one is imported on first use.
"""
