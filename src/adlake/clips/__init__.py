"""Cutting ads into clips: shot boundaries (PySceneDetect), then sentence- or shot-based segmentation."""
