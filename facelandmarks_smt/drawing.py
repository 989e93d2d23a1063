"""Annotated pictures of landmarks that a reader can check: thin contour lines per facial part,
small dots on the points, and a zoomed inset of the face (in a full photo a face is often too
small to see whether a point sits on the eye corner).

Used by the command-line tool and the examples, so every picture the project shows is drawn the
same way. Lines are drawn with sub-pixel precision (cv2 ``shift``), antialiased.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

# Contours per scheme: (name, indices, closed). Colours are RGB.
_GROUPS_68 = (
    ("jaw", tuple(range(0, 17)), False),
    ("brow_left", tuple(range(17, 22)), False),
    ("brow_right", tuple(range(22, 27)), False),
    ("nose_bridge", tuple(range(27, 31)), False),
    ("nose_base", tuple(range(31, 36)), False),
    ("eye_left", tuple(range(36, 42)), True),
    ("eye_right", tuple(range(42, 48)), True),
    ("lips_outer", tuple(range(48, 60)), True),
    ("lips_inner", tuple(range(60, 68)), True),
)
_GROUPS_19 = (
    ("brow_left", (0, 1, 2), False),
    ("brow_right", (3, 4, 5), False),
    ("eye_left", (6, 7, 8), False),
    ("eye_right", (9, 10, 11), False),
    ("nose_base", (12, 13, 14), False),
    ("mouth", (15, 16, 17), False),
    ("jaw", (18,), False),
)
_COLOURS = {
    "jaw": (255, 200, 0), "brow_left": (255, 120, 40), "brow_right": (255, 120, 40),
    "nose_bridge": (60, 220, 255), "nose_base": (60, 220, 255), "eye_left": (60, 255, 90),
    "eye_right": (60, 255, 90), "lips_outer": (255, 60, 160), "lips_inner": (255, 60, 160),
    "mouth": (255, 60, 160),
}
_BOX_COLOUR = (0, 160, 255)
_SHIFT = 4  # cv2 fixed-point bits: 1/16 px precision
_ONE = 1 << _SHIFT


def landmark_groups(num_landmarks: int) -> tuple[tuple[str, tuple[int, ...], bool], ...]:
    """The contours drawn for a scheme of ``num_landmarks`` points: ``(name, indices, closed)``.

    68 (300-W) and 19 (AFLW) points have named parts; the 49-point scheme is the 68 less the jaw
    and inner-mouth corners; any other count is drawn as dots only.
    """
    if num_landmarks == 68:
        return _GROUPS_68
    if num_landmarks == 19:
        return _GROUPS_19
    if num_landmarks == 49:
        from .schemes import INDICES_49

        pos = {j: k for k, j in enumerate(INDICES_49)}
        return tuple((name, tuple(pos[i] for i in idx if i in pos), closed and all(i in pos for i in idx))
                     for name, idx, closed in _GROUPS_68 if any(i in pos for i in idx))
    return ()


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)


def _draw_face(canvas: np.ndarray, landmarks: np.ndarray, box, line: int, radius: float, draw_box: bool) -> None:
    """Draw one face on an RGB canvas in place (``radius``: dot radius in canvas pixels)."""
    pts = np.asarray(landmarks, np.float64)
    if draw_box and box is not None:
        b = _fixed(np.asarray(box, np.float64).reshape(2, 2))
        cv2.rectangle(canvas, tuple(int(v) for v in b[0]), tuple(int(v) for v in b[1]), _BOX_COLOUR, line,
                      cv2.LINE_AA, _SHIFT)
    groups = landmark_groups(len(pts))
    for name, idx, closed in groups:
        if len(idx) > 1:
            cv2.polylines(canvas, [_fixed(pts[list(idx)])], closed, _COLOURS.get(name, (255, 255, 255)), line,
                          cv2.LINE_AA, _SHIFT)
    colour_of = {i: _COLOURS.get(name, (255, 255, 255)) for name, idx, _ in groups for i in idx}
    r = max(1, int(round(radius * _ONE)))
    for i, p in enumerate(_fixed(pts)):
        # a dark rim makes the dot readable on bright skin, the fill shows the group
        cv2.circle(canvas, (int(p[0]), int(p[1])), r + _ONE // 2, (0, 0, 0), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, (int(p[0]), int(p[1])), r, colour_of.get(i, (255, 255, 255)), -1, cv2.LINE_AA, _SHIFT)


def _face_size(landmarks: np.ndarray) -> float:
    pts = np.asarray(landmarks, np.float64)
    span = pts.max(0) - pts.min(0)
    return float(max(1.0, np.sqrt(max(span[0], 1.0) * max(span[1], 1.0))))


def draw_landmarks(image: np.ndarray, faces: Iterable, inset: bool = True, draw_box: bool = True,
                   inset_fraction: float = 0.5) -> np.ndarray:
    """An RGB copy of ``image`` (HxWx3 uint8 RGB) with each face's landmarks drawn.

    ``faces``: `Face` objects (``landmarks`` and ``box``) or ``(L, 2)`` landmark arrays. With
    ``inset``, the largest face is also shown magnified in a corner (when it is small in the
    image), drawn at the magnified scale so its lines stay thin.
    """
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image must be HxWx3 uint8 RGB, got {getattr(image, 'shape', type(image).__name__)}")
    faces = [(np.asarray(getattr(f, "landmarks", f), np.float64), getattr(f, "box", None)) for f in faces]
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    line = 1 if max(h, w) < 1600 else 2
    for lm, box in faces:
        if lm.ndim != 2 or lm.shape[1] != 2:
            raise ValueError(f"landmarks must be (L, 2), got {lm.shape}")
        radius = float(np.clip(_face_size(lm) / 90.0, 1.0, 4.0))
        _draw_face(out, lm, box, line, radius, draw_box)
    if inset and faces:
        _add_inset(out, image, faces, inset_fraction)
    return out


def _add_inset(out: np.ndarray, image: np.ndarray, faces: Sequence, fraction: float) -> None:
    """Paste a magnified view of the largest face into the top-right (or top-left) corner."""
    h, w = image.shape[:2]
    lm, box = max(faces, key=lambda f: _face_size(f[0]))
    lo, hi = lm.min(0), lm.max(0)
    centre, half = (lo + hi) / 2, max(hi - lo) * 0.65 + 2
    side = int(min(h, w) * fraction)
    if side < 48 or 2 * half * 1.5 > side:  # the face is already big in the picture: no inset
        return
    x0, y0 = centre - half
    zoom = side / (2 * half)
    # the affine that maps the face region onto the inset; the picture is resampled, not the drawing
    m = np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]])
    patch = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    patch = np.ascontiguousarray(patch)
    pts = lm * zoom + m[:, 2]
    radius = float(np.clip(side / 160.0, 1.5, 4.0))
    _draw_face(patch, pts, None, 1, radius, False)
    cv2.rectangle(patch, (0, 0), (side - 1, side - 1), (255, 255, 255), 2)
    # put it in the corner that hides least of the faces
    corners = [(w - side, 0), (0, 0), (w - side, h - side), (0, h - side)]

    def hidden(corner) -> float:
        cx, cy = corner
        total = 0.0
        for f_lm, _ in faces:
            a, b = f_lm.min(0), f_lm.max(0)
            total += max(0.0, min(b[0], cx + side) - max(a[0], cx)) * max(0.0, min(b[1], cy + side) - max(a[1], cy))
        return total

    xs, ys = min(corners, key=hidden)
    out[ys:ys + side, xs:xs + side] = patch
    # outline where the inset comes from
    src = _fixed(np.array([[x0, y0], [x0 + 2 * half, y0 + 2 * half]]))
    cv2.rectangle(out, tuple(int(v) for v in src[0]), tuple(int(v) for v in src[1]), (255, 255, 255), 1,
                  cv2.LINE_AA, _SHIFT)
