"""tinygen: make a trained network fit a microcontroller and run it there."""

__version__ = "0.1.0"
