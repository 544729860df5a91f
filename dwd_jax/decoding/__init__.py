"""From the network's maps to boxes: connected components and the watershed decoder."""
