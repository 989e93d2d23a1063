"""Landmark schemes: how many points a face has, and how they swap under a horizontal flip.

Flip augmentation (paper section 5.3) needs each scheme's *mirror permutation*: after mirroring
the x coordinates, point ``i`` of the flipped face is point ``perm[i]`` of the mirrored array
(the left eye's outer corner becomes the right eye's outer corner).  A wrong permutation trains a
network that confuses left and right, so the permutations are validated (a permutation, and an
involution: flipping twice is the identity) and tested on a synthetic symmetric face.

Pure numpy; all points are 0-based pixel centres (see docs/CONVENTIONS.md), so a mirror maps
``x -> (W - 1) - x`` for an image ``W`` pixels wide.

Schemes
-------
``"300w-68"``
    The iBUG / 300-W 68-point markup (also COFW-68).  0-based indices, "left" = image left
    (the subject's right side in a frontal face)::

        0-16   jaw, image-left ear to image-right ear (8 = chin)
        17-21  image-left brow, outer to inner      22-26  image-right brow, inner to outer
        27-30  nose bridge, top to tip              31-35  nose base, image-left to image-right
        36-41  image-left eye: 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid
        42-47  image-right eye: 42 inner corner, 43-44 upper lid, 45 outer corner, 46-47 lower lid
        48-59  outer lip: 48 left corner, 49-53 upper lip, 54 right corner, 55-59 lower lip
        60-67  inner lip: 60 left corner, 61-63 upper, 64 right corner, 65-67 lower

``"300w-49"``
    The 49-point variant used for the paper's median-error table: the 68 points less the
    17 jaw points and the inner-mouth corners 60 and 64 (:data:`INDICES_49`).

``"aflw-19"``
    The 19-point AFLW layout of ``AFLWinfo_release.mat`` (Zhu et al., CVPR 2016; used by SAN,
    LAB, HRNet): AFLW's 21 points less the two ears.  AFLW names "left" from the viewer, i.e.
    image left, so point 0 sits on the image's left side in a frontal face::

        0  LeftBrowLeftCorner     1  LeftBrowCenter     2  LeftBrowRightCorner
        3  RightBrowLeftCorner    4  RightBrowCenter    5  RightBrowRightCorner
        6  LeftEyeLeftCorner      7  LeftEyeCenter      8  LeftEyeRightCorner
        9  RightEyeLeftCorner    10  RightEyeCenter    11  RightEyeRightCorner
       12  NoseLeft (nostril)    13  NoseCenter (tip)  14  NoseRight (nostril)
       15  MouthLeftCorner       16  MouthCenter       17  MouthRightCorner
       18  ChinCenter
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "LandmarkScheme",
    "SCHEMES",
    "INDICES_49",
    "FLIP_PERMUTATION_68",
    "FLIP_PERMUTATION_49",
    "FLIP_PERMUTATION_19",
    "MAP_68_TO_19",
    "get_scheme",
    "register_scheme",
    "mirror_points",
    "map_68_to_19",
    "map_scores_68_to_19",
]


def _pairs_to_permutation(n: int, pairs: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    """Build an involutive permutation of ``range(n)`` from swap pairs (others map to themselves)."""
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


# --- 68 points (iBUG 300-W) -------------------------------------------------------------------
_PAIRS_68 = (
    [(i, 16 - i) for i in range(8)]  # jaw 0..7 <-> 16..9, 8 (chin) fixed
    + [(17 + i, 26 - i) for i in range(5)]  # brows 17..21 <-> 26..22
    # nose bridge 27..30 fixed
    + [(31, 35), (32, 34)]  # nose base, 33 fixed
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52)]  # outer upper lip, 51 fixed
    + [(55, 59), (56, 58)]  # outer lower lip, 57 fixed
    + [(60, 64), (61, 63)]  # inner upper lip, 62 fixed
    + [(65, 67)]  # inner lower lip, 66 fixed
)
#: Mirror permutation of the 68-point scheme.
FLIP_PERMUTATION_68: Tuple[int, ...] = _pairs_to_permutation(68, _PAIRS_68)

#: The 49-point variant: 68 points less the jaw (0..16) and the inner-mouth corners 60 and 64.
INDICES_49: Tuple[int, ...] = tuple(i for i in range(17, 68) if i not in (60, 64))

_POS_IN_49 = {j: k for k, j in enumerate(INDICES_49)}
#: Mirror permutation of the 49-point scheme (the 68-point one restricted to :data:`INDICES_49`;
#: the subset is closed under the flip).
FLIP_PERMUTATION_49: Tuple[int, ...] = tuple(_POS_IN_49[FLIP_PERMUTATION_68[j]] for j in INDICES_49)

# --- 19 points (AFLW) -------------------------------------------------------------------------
#: Mirror permutation of the AFLW 19-point scheme (brows 0-2 <-> 5-3, eyes 6-8 <-> 11-9,
#: nostrils 12 <-> 14, mouth corners 15 <-> 17; nose tip, mouth centre and chin fixed).
FLIP_PERMUTATION_19: Tuple[int, ...] = _pairs_to_permutation(
    19, [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]
)

#: How each AFLW-19 point is computed from the 68 points: a tuple of 68-point indices whose
#: mean is the 19-point landmark.
MAP_68_TO_19: Tuple[Tuple[int, ...], ...] = (
    (17,),  # 0  left brow, left (outer) corner
    (19,),  # 1  left brow, centre
    (21,),  # 2  left brow, right (inner) corner
    (22,),  # 3  right brow, left (inner) corner
    (24,),  # 4  right brow, centre
    (26,),  # 5  right brow, right (outer) corner
    (36,),  # 6  left eye, left (outer) corner
    (36, 37, 38, 39, 40, 41),  # 7  left eye centre = mean of its 6 points
    (39,),  # 8  left eye, right (inner) corner
    (42,),  # 9  right eye, left (inner) corner
    (42, 43, 44, 45, 46, 47),  # 10 right eye centre = mean of its 6 points
    (45,),  # 11 right eye, right (outer) corner
    (31,),  # 12 left nostril (nose base, leftmost)
    (30,),  # 13 nose tip
    (35,),  # 14 right nostril (nose base, rightmost)
    (48,),  # 15 mouth left corner
    (62, 66),  # 16 mouth centre = midpoint of the inner lips' centres
    (54,),  # 17 mouth right corner
    (8,),  # 18 chin
)


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark layout: its size, mirror permutation and normalising eye corners.

    Construct one for your own markup; the constructor checks that ``flip_permutation`` is a
    permutation of ``range(num_landmarks)`` and an involution, because flip augmentation with a
    broken permutation silently teaches the network to swap sides.

    Attributes:
        name: identifier (``get_scheme`` looks it up in :data:`SCHEMES` once registered).
        num_landmarks: L, the number of points.
        flip_permutation: ``perm[i]`` is the index that point ``i`` takes after a horizontal flip.
        eye_corner_indices: the two outer eye corners for inter-ocular normalisation, or None
            where errors are normalised by the face box (AFLW).
        description: free text, shown to users.
    """

    name: str
    num_landmarks: int
    flip_permutation: Tuple[int, ...]
    eye_corner_indices: Optional[Tuple[int, int]] = None
    description: str = ""

    def __post_init__(self) -> None:
        L = int(self.num_landmarks)
        if L <= 0:
            raise ValueError(f"scheme {self.name!r}: num_landmarks must be positive, got {L}")
        perm = tuple(int(i) for i in self.flip_permutation)
        object.__setattr__(self, "num_landmarks", L)
        object.__setattr__(self, "flip_permutation", perm)
        if len(perm) != L:
            raise ValueError(
                f"scheme {self.name!r}: flip_permutation has {len(perm)} entries, expected {L}"
            )
        if sorted(perm) != list(range(L)):
            raise ValueError(
                f"scheme {self.name!r}: flip_permutation is not a permutation of 0..{L - 1}"
            )
        bad = [i for i in range(L) if perm[perm[i]] != i]
        if bad:
            raise ValueError(
                f"scheme {self.name!r}: flip_permutation is not an involution (flipping twice "
                f"must give the identity); broken at indices {bad[:10]}"
            )
        if self.eye_corner_indices is not None:
            eyes = tuple(int(i) for i in self.eye_corner_indices)
            if len(eyes) != 2 or not all(0 <= i < L for i in eyes) or eyes[0] == eyes[1]:
                raise ValueError(
                    f"scheme {self.name!r}: eye_corner_indices must be two distinct indices "
                    f"in 0..{L - 1}, got {self.eye_corner_indices!r}"
                )
            object.__setattr__(self, "eye_corner_indices", eyes)

    def mirror(self, points: np.ndarray, image_width: float) -> np.ndarray:
        """Landmarks of the horizontally flipped image (see :func:`mirror_points`)."""
        return mirror_points(points, image_width, self.flip_permutation)


def mirror_points(
    points: np.ndarray, image_width: float, flip_permutation: Sequence[int]
) -> np.ndarray:
    """Mirror ``(..., L, 2)`` landmarks for an image flipped left-right, ``image_width`` px wide.

    x becomes ``(W - 1) - x`` (0-based pixel centres: pixel 0 swaps with pixel W-1), then the
    points are reordered with the permutation so that index i names the same facial part again.
    """
    pts = np.asarray(points)
    perm = np.asarray(flip_permutation, dtype=np.int64)
    if pts.ndim < 2 or pts.shape[-1] != 2 or pts.shape[-2] != len(perm):
        raise ValueError(f"expected points of shape (..., {len(perm)}, 2), got {pts.shape}")
    out = pts[..., perm, :].copy()
    out[..., 0] = (image_width - 1) - out[..., 0]
    return out


SCHEMES: Dict[str, LandmarkScheme] = {}


def register_scheme(scheme: LandmarkScheme, overwrite: bool = False) -> LandmarkScheme:
    """Add a user scheme to :data:`SCHEMES` so configs can name it."""
    if not isinstance(scheme, LandmarkScheme):
        raise TypeError(f"expected a LandmarkScheme, got {type(scheme).__name__}")
    if scheme.name in SCHEMES and not overwrite:
        raise ValueError(f"scheme {scheme.name!r} is already registered (pass overwrite=True)")
    SCHEMES[scheme.name] = scheme
    return scheme


register_scheme(
    LandmarkScheme(
        name="300w-68",
        num_landmarks=68,
        flip_permutation=FLIP_PERMUTATION_68,
        eye_corner_indices=(36, 45),
        description="iBUG 300-W 68-point markup (300-W, COFW-68, Menpo frontal); "
        "normalised by the outer eye corners 36 and 45.",
    )
)
register_scheme(
    LandmarkScheme(
        name="300w-49",
        num_landmarks=49,
        flip_permutation=FLIP_PERMUTATION_49,
        eye_corner_indices=(_POS_IN_49[36], _POS_IN_49[45]),
        description="300-W 68 points less the jaw (0-16) and inner-mouth corners 60, 64.",
    )
)
register_scheme(
    LandmarkScheme(
        name="aflw-19",
        num_landmarks=19,
        flip_permutation=FLIP_PERMUTATION_19,
        eye_corner_indices=None,
        description="AFLW 19 points (AFLWinfo_release.mat: AFLW's 21 less the ears); "
        "errors normalised by the face box size sqrt(w*h).",
    )
)

_ALIASES = {
    "68": "300w-68",
    "300w": "300w-68",
    "ibug-68": "300w-68",
    "cofw-68": "300w-68",
    "49": "300w-49",
    "19": "aflw-19",
    "aflw": "aflw-19",
}


def get_scheme(name_or_L: Union[str, int, LandmarkScheme]) -> LandmarkScheme:
    """Look a scheme up by name (``"300w-68"``, ``"aflw-19"``, aliases ``"68"``, ``"aflw"`` ...),
    by its number of points (68, 49, 19), or pass a :class:`LandmarkScheme` through unchanged."""
    if isinstance(name_or_L, LandmarkScheme):
        return name_or_L
    if isinstance(name_or_L, (int, np.integer)) and not isinstance(name_or_L, bool):
        by_size = [s for s in SCHEMES.values() if s.num_landmarks == int(name_or_L)]
        if not by_size:
            raise ValueError(
                f"no landmark scheme with {int(name_or_L)} points; known sizes: "
                f"{sorted({s.num_landmarks for s in SCHEMES.values()})}. Build a LandmarkScheme "
                "with your own flip_permutation and register_scheme() it."
            )
        return by_size[0]  # built-ins are registered first, so 68 -> 300w-68, 19 -> aflw-19
    if isinstance(name_or_L, str):
        key = name_or_L.strip().lower()
        key = _ALIASES.get(key, key)
        for name, scheme in SCHEMES.items():
            if name.lower() == key:
                return scheme
        raise ValueError(f"unknown landmark scheme {name_or_L!r}; known: {sorted(SCHEMES)}")
    raise TypeError(f"expected a scheme name, a number of points or a LandmarkScheme, got {name_or_L!r}")


def map_68_to_19(points68: np.ndarray) -> np.ndarray:
    """Convert 68-point (iBUG) landmarks to the AFLW 19-point layout, for ``(..., 68, 2)`` arrays.

    Used to evaluate a 300-W-trained model on AFLW (paper Table 5).  Each output point is the
    mean of the 68-point indices in :data:`MAP_68_TO_19`:

    ====  ===========================  ==========================
    19pt  AFLW name                    from 68 points (0-based)
    ====  ===========================  ==========================
    0     LeftBrowLeftCorner           17
    1     LeftBrowCenter               19
    2     LeftBrowRightCorner          21
    3     RightBrowLeftCorner          22
    4     RightBrowCenter              24
    5     RightBrowRightCorner         26
    6     LeftEyeLeftCorner            36
    7     LeftEyeCenter                mean(36..41)
    8     LeftEyeRightCorner           39
    9     RightEyeLeftCorner           42
    10    RightEyeCenter               mean(42..47)
    11    RightEyeRightCorner          45
    12    NoseLeft (nostril)           31
    13    NoseCenter (tip)             30
    14    NoseRight (nostril)          35
    15    MouthLeftCorner              48
    16    MouthCenter                  mean(62, 66)
    17    MouthRightCorner             54
    18    ChinCenter                   8
    ====  ===========================  ==========================

    The definitions differ slightly between markups (AFLW's nostrils and brow centres were
    clicked by eye), so cross-dataset errors carry a small systematic offset.
    """
    pts = np.asarray(points68)
    if pts.ndim < 2 or pts.shape[-2:] != (68, 2):
        raise ValueError(f"expected points of shape (..., 68, 2), got {pts.shape}")
    out_dtype = pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float64
    out = np.empty(pts.shape[:-2] + (19, 2), dtype=out_dtype)
    for k, idx in enumerate(MAP_68_TO_19):
        out[..., k, :] = pts[..., list(idx), :].mean(axis=-2)
    return out


def map_scores_68_to_19(scores68: np.ndarray) -> np.ndarray:
    """Per-landmark confidences ``(..., 68)`` in the AFLW 19-point layout: each 19-point score is
    the mean score of the 68-point indices its landmark is computed from (:data:`MAP_68_TO_19`)."""
    sc = np.asarray(scores68)
    if sc.ndim < 1 or sc.shape[-1] != 68:
        raise ValueError(f"expected scores of shape (..., 68), got {sc.shape}")
    out_dtype = sc.dtype if np.issubdtype(sc.dtype, np.floating) else np.float64
    return np.stack([sc[..., list(idx)].mean(axis=-1) for idx in MAP_68_TO_19], axis=-1).astype(out_dtype)


class SchemeConversion(NamedTuple):
    """How a model's landmarks become another scheme's: ``points`` maps ``(..., L, 2)`` arrays,
    ``scores`` maps ``(..., L)`` per-landmark scores."""

    name: str
    num_landmarks: int
    points: Callable[[np.ndarray], np.ndarray]
    scores: Callable[[np.ndarray], np.ndarray]


def _select_49_points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points)[..., list(INDICES_49), :]


def _select_49_scores(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores)[..., list(INDICES_49)]


def scheme_conversion(num_landmarks: int, scheme: Union[str, int, LandmarkScheme, None],
                      native: Optional[str] = None) -> Optional[SchemeConversion]:
    """The one scheme conversion of the library (`Detector(scheme=...)` and ``detect --scheme``):
    None when ``scheme`` is None, the model's own ``native`` scheme or one of the same size;
    68 points also give ``300w-49`` (a subset) and ``aflw-19`` (`map_68_to_19`). Raises
    ``ValueError`` for an unknown scheme or one that cannot be derived."""
    if scheme is None:
        return None
    target = get_scheme(scheme)
    if target.name == native or target.num_landmarks == num_landmarks:
        return None
    if num_landmarks == 68 and target.num_landmarks == 49:
        return SchemeConversion(target.name, 49, _select_49_points, _select_49_scores)
    if num_landmarks == 68 and target.num_landmarks == 19:
        return SchemeConversion(target.name, 19, map_68_to_19, map_scores_68_to_19)
    raise ValueError(f"scheme {target.name!r} ({target.num_landmarks} points) cannot be given by this model, which "
                     f"predicts {num_landmarks} landmarks" + (f" ({native!r})" if native else "")
                     + "; a 68-point model can also give '300w-49' and 'aflw-19'")
