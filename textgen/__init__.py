"""textgen: train and honestly compare text generators."""

__version__ = "0.1.0"
