"""From a page (any size, file or array) to its detections: the one inference path."""
