"""Prediction: a verified graph on people's own pictures, joints in pixels and millimetres."""
