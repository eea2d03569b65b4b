"""A convolutional network library written with NumPy alone.

Memory layout: every image tensor in this package is channels-last,
(N, H, W, C). A convolution's patches are then contiguous in the channel
axis, so im2col is a handful of strided slices and one matrix product with
no transposes. CIFAR-10 stores images as (N, 3, 32, 32); `cnn.data` converts
them once, when loading.
"""

__version__ = "0.1.0"
