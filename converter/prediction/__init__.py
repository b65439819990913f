"""Prediction: a verified graph on people's own pictures, joints in pixels and millimetres.

``from converter.prediction import PosePredictor`` is the library entry (docs/predict.md)."""

from .predictor import Camera, PersonPose, PosePredictor

__all__ = ["Camera", "PersonPose", "PosePredictor"]
