"""The fault tests' rig (one pushed bundle, the state one uninterrupted run leaves) for the worker tests."""

from hub_assets_tests.faults.conftest import open_rig, reference_states, stores

__all__ = ["open_rig", "reference_states", "stores"]
