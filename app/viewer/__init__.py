"""The PyQt6 scanner viewer. Never runs decoding or inference on the GUI thread."""
