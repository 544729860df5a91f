"""Scoring detections: the COCO/VOC protocol, split and folder evaluation, robustness."""
