"""Joint kinematics: joint angles in, 3-D joint positions out, for every frame of a clip at once.

Body space: x forward, y up, z towards the body's right side; the origin is the middle of the hips.
World space: x to the right of the picture, y up, z towards the viewer (orthographic camera looking down -z).
Lengths are in body heights (a subject standing straight is 1 tall); angles are in degrees.

Channels (all optional, 0 is the neutral upright pose with arms hanging and facing right):
  yaw      turn about the vertical axis; +90 faces the viewer
  pitch    lean of the whole body about the hips (forward +; 180 is upside down)
  roll     sideways tilt of the whole body about its forward axis
  lift     height of the lowest body point above the ground (jumps); 0 keeps it on the ground
  dx       forward offset of the root along the clip's facing direction
  torso    bend of the torso forward at the hips;  head  nod of the head
  shoulder_l/r  arm swing forward (90 points the arm forward, 180 straight up)
  arm_out_l/r   arm raised sideways (90 horizontal to the side; negative crosses the midline)
  elbow_l/r     forearm bend, forwards and up
  hip_l/r, leg_out_l/r, knee_l/r   the same for the legs; a knee bends the shin backwards
  tail     extra upward swing of the tail
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDES = {"l": -1.0, "r": 1.0}

CHANNELS = (
    "yaw", "pitch", "roll", "lift", "dx", "torso", "head",
    "shoulder_l", "shoulder_r", "arm_out_l", "arm_out_r", "elbow_l", "elbow_r",
    "hip_l", "hip_r", "leg_out_l", "leg_out_r", "knee_l", "knee_r", "tail",
)


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and thicknesses, in body heights once ``normalised``."""

    head_radius: float
    neck: float
    torso_length: float
    torso_radius: float
    shoulder_width: float
    shoulder_drop: float
    hip_width: float
    upper_arm: float
    lower_arm: float
    arm_radius: float
    hand_radius: float
    upper_leg: float
    lower_leg: float
    leg_radius: float
    foot_length: float
    foot_radius: float

    @property
    def standing_height(self) -> float:
        return (self.upper_leg + self.lower_leg + self.foot_radius + self.torso_length + self.neck
                + 2 * self.head_radius)

    def normalised(self) -> "Proportions":
        k = 1.0 / self.standing_height
        return Proportions(**{name: value * k for name, value in self.__dict__.items()})


def _deg(a) -> np.ndarray:
    return np.deg2rad(np.asarray(a, dtype=np.float64))


def rot_yaw(deg) -> np.ndarray:
    """(F, 3, 3): forward x turns towards the viewer (+z) as the angle grows."""
    a = _deg(deg)
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, o, -s], -1), np.stack([o, i, o], -1), np.stack([s, o, c], -1)], -2)


def rot_pitch(deg) -> np.ndarray:
    """(F, 3, 3): up y leans towards forward x as the angle grows."""
    a = _deg(deg)
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, s, o], -1), np.stack([-s, c, o], -1), np.stack([o, o, i], -1)], -2)


def rot_roll(deg) -> np.ndarray:
    """(F, 3, 3): up y tilts towards the right side z as the angle grows."""
    a = _deg(deg)
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2)


def limb_direction(swing, out, side: float) -> np.ndarray:
    """(F, 3) unit vector of a limb hanging straight down, swung forward by ``swing`` and out by ``out``."""
    t, a = _deg(swing), _deg(out)
    return np.stack([np.cos(a) * np.sin(t), -np.cos(a) * np.cos(t), side * np.sin(a)], -1)


def apply(rotation: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rotate (F, 3) or (3,) vectors by (F, 3, 3) matrices."""
    return np.einsum("fij,fj->fi", rotation, np.broadcast_to(vectors, rotation.shape[:-1]))


@dataclass
class Pose:
    """World positions (F, 3) of every joint and the rotation frames (F, 3, 3) that decorations hang on.
    Travel (``dx``) is left to the renderer, which splits it between the body and a following camera."""

    points: dict[str, np.ndarray]
    root: np.ndarray
    torso: np.ndarray
    head: np.ndarray


def pose(body: Proportions, channels: dict[str, np.ndarray], base_yaw: float) -> Pose:
    """Forward kinematics for every frame; the body stands on y = 0 unless ``lift`` raises it."""
    get = channels.get
    frames = len(next(iter(channels.values())))
    zero = np.zeros(frames)

    def ch(name: str) -> np.ndarray:
        return np.asarray(get(name, zero), dtype=np.float64)

    root = rot_yaw(base_yaw + ch("yaw")) @ rot_pitch(ch("pitch")) @ rot_roll(ch("roll"))
    torso = root @ rot_pitch(ch("torso"))
    head = torso @ rot_pitch(ch("head"))
    origin = np.zeros((frames, 3))
    p: dict[str, np.ndarray] = {"hips": origin}
    p["neck"] = origin + apply(torso, np.array([0.0, body.torso_length, 0.0]))
    p["head"] = p["neck"] + apply(head, np.array([0.0, body.neck + body.head_radius, 0.0]))
    for name, side in SIDES.items():
        shoulder = origin + apply(torso, np.array([0.0, body.torso_length - body.shoulder_drop,
                                                   side * body.shoulder_width]))
        swing, out = ch(f"shoulder_{name}"), ch(f"arm_out_{name}")
        elbow = shoulder + apply(torso, body.upper_arm * limb_direction(swing, out, side))
        hand = elbow + apply(torso, body.lower_arm * limb_direction(swing + ch(f"elbow_{name}"), out, side))
        hip = origin + apply(root, np.array([0.0, 0.0, side * body.hip_width]))
        swing, out = ch(f"hip_{name}"), ch(f"leg_out_{name}")
        knee = hip + apply(root, body.upper_leg * limb_direction(swing, out, side))
        shin = swing - ch(f"knee_{name}")
        ankle = knee + apply(root, body.lower_leg * limb_direction(shin, out, side))
        toe = ankle + apply(root, body.foot_length * limb_direction(shin + 90.0, out, side))
        p.update({f"shoulder_{name}": shoulder, f"elbow_{name}": elbow, f"hand_{name}": hand,
                  f"hip_{name}": hip, f"knee_{name}": knee, f"ankle_{name}": ankle, f"toe_{name}": toe})

    # Ground contact: the lowest point of the body's surface rests on y = 0, then ``lift`` raises it.
    radius = {"hips": body.torso_radius, "neck": body.torso_radius, "head": body.head_radius}
    for name in SIDES:
        radius.update({f"hand_{name}": body.hand_radius, f"elbow_{name}": body.arm_radius,
                       f"knee_{name}": body.leg_radius, f"ankle_{name}": body.foot_radius,
                       f"toe_{name}": body.foot_radius})
    lowest = np.min([p[k][:, 1] - r for k, r in radius.items()], axis=0)
    shift = np.stack([zero, ch("lift") - lowest, zero], -1)
    points = {k: v + shift for k, v in p.items()}
    return Pose(points=points, root=root, torso=torso, head=head)
