"""Layers: each maps (N, ...) forward and its gradient backward. See base.Layer."""

from cnn.layers.activations import LeakyReLU, ReLU, Softmax, softmax
from cnn.layers.base import Layer, WeightedLayer
from cnn.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnn.layers.block import Block
from cnn.layers.conv import Conv2D
from cnn.layers.dense import Dense, Flatten
from cnn.layers.dropout import Dropout
from cnn.layers.fused import BatchNormReLU2D
from cnn.layers.pooling import AvgPool2D, GlobalAvgPool, MaxPool2D
from cnn.layers.residual import ResidualBlock

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "BatchNormReLU2D",
    "Block",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "ResidualBlock",
    "Softmax",
    "WeightedLayer",
    "softmax",
]
