"""The simulated robot and scene.

``task`` samples tabletop layouts and judges success; ``scene`` builds the MuJoCo scene (MJCF);
``world`` (``SimWorld``) moves a robot profile's arm with a position controller within its own
limits, grasps kinematically, renders the cameras and reports ground truth. ``kinematic`` is a
camera-less stand-in for closing the IK and safety loop. docs/sim.md describes them.
"""
