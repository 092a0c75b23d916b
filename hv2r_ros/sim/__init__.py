"""The simulated robot and scene."""
