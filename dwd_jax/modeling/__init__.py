"""The network and what trains it: the model, its target maps and its losses."""
