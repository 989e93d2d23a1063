"""Large-pose face synthesis with a 3D morphable model (the 300W-LP idea, Zhu et al., CVPR 2016).

300-W's training faces are nearly all within +-45 degrees of yaw, so a model trained on them has
never seen a profile. This module turns a labelled face into new head poses:

1. `PoseSynthesizer.fit` fits the Surrey Face Model (eos) to the face's 68 points: pose, identity
   shape and expression. The fit residual (mean distance between the 50 mapped model vertices and
   the labels, as a fraction of the landmark box) says whether the face is worth using.
2. `PoseSynthesizer.render` rotates the head about its own vertical (yaw) and horizontal (pitch)
   axes and re-renders the *whole image*: one triangulation (Delaunay, in the source image) covers
   the visible face vertices and a grid of anchor points over the rest of the image. Face vertices
   move with the rotated mesh; anchors move with the head near the face (hair, ears, neck) and stay
   put far from it (background), with a smooth fall-off, so nothing is duplicated or torn. The
   triangles are painted far to near (painter's algorithm) into one backward map, and the image is
   resampled once with `cv2.remap`.
3. Every label is lifted onto that triangulation (barycentric coordinates in the source) and moved
   with it, so labels follow their pixels exactly; at zero rotation they come back unchanged. Jaw
   points follow the 300-W convention on a turned face: on the side turning away they slide onto
   the visible silhouette (the outermost visible surface point along the jaw point's horizontal
   level of the fitted 3D face), not onto the hidden 3D jaw.

`synthesize_folder` runs this over a dataset and writes ``.jpg`` + ``.pts`` that every reader
loads (``python -m facelandmarks_smt.training synthesize-poses``). Needs ``eos-py`` (the
``[synthesis]`` extra) and eos's Surrey Face Model files (``--eos-model DIR``; the model is for
non-commercial use, and so is anything trained on data it helped make).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay

EOS_FILES = ("sfm_shape_3448.bin", "expression_blendshapes_3448.bin", "ibug_to_sfm.txt",
             "sfm_3448_edge_topology.json", "sfm_model_contours.json")
EOS_DIR_ENV = "FACELANDMARKS_SMT_EOS_MODEL"

# 0-based 68-point indices of the jaw line, split by the subject's side (300-W / iBUG order).
JAW_RIGHT = tuple(range(0, 8))   # points 1-8
JAW_LEFT = tuple(range(9, 17))   # points 10-17
JAW_POINTS = JAW_RIGHT + JAW_LEFT


def _import_eos():
    try:
        import eos  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised by the bad-input test with a fake import
        raise ImportError("pose synthesis needs eos-py: pip install 'facelandmarks_smt[synthesis]' "
                          "(or pip install eos-py==1.5.0)") from e
    return eos


def find_eos_model_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder with eos's Surrey Face Model files: ``path``, else ``$FACELANDMARKS_SMT_EOS_MODEL``."""
    p = path if path is not None else os.environ.get(EOS_DIR_ENV)
    if p is None:
        raise FileNotFoundError(f"no eos model folder given: pass --eos-model DIR (or set {EOS_DIR_ENV}) "
                                f"pointing at a folder with {', '.join(EOS_FILES)} (eos's share/ folder)")
    p = Path(p)
    missing = [f for f in EOS_FILES if not (p / f).is_file()]
    if missing:
        raise FileNotFoundError(f"eos model folder {p} lacks {', '.join(missing)}")
    return p


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix about a unit ``axis`` (Rodrigues)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    t = math.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


@dataclass
class FaceFit:
    """A fitted 3D face in one image.

    Attributes:
        model_vertices: ``(N, 3)`` mesh vertices in model coordinates (shape + expression applied).
        modelview: ``4x4`` model -> eye (camera) matrix; ``projection``: ``4x4`` orthographic.
        image_size: ``(width, height)`` of the image the fit is in.
        triangles: ``(T, 3)`` vertex indices of the mesh.
        mapped: ``{landmark index: vertex index}`` for the points eos's mapper knows (50 of 68).
        residual: mean distance between the mapped vertices' projections and the labels, as a
            fraction of the landmark box's longer side.
        yaw_pitch_roll: the fitted head pose in degrees (eos's convention).
    """

    model_vertices: np.ndarray
    modelview: np.ndarray
    projection: np.ndarray
    image_size: tuple[int, int]
    triangles: np.ndarray
    mapped: dict[int, int]
    residual: float
    yaw_pitch_roll: tuple[float, float, float]

    def eye(self, model_points: np.ndarray, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
        """Model points in eye space, after turning the head by ``yaw``/``pitch`` degrees about its
        own vertical/horizontal axes through the head's rotation centre (`rotation_centre`)."""
        r = self.modelview[:3, :3]
        t = self.modelview[:3, 3]
        c = self.rotation_centre
        turn = _rotation([0.0, 1.0, 0.0], yaw) @ _rotation([1.0, 0.0, 0.0], pitch)
        m = (np.asarray(model_points, np.float64) - c) @ turn.T + c
        return m @ r.T + t

    @property
    def rotation_centre(self) -> np.ndarray:
        """The head turns about a point behind the face: the mesh centre in x/y, a quarter of the
        mesh's depth in front of its back (roughly the ears' depth, where a neck's axis lies)."""
        v = self.model_vertices
        z = v[:, 2].min() + 0.25 * (v[:, 2].max() - v[:, 2].min())
        return np.array([v[:, 0].mean(), v[:, 1].mean(), z])

    def project(self, eye_points: np.ndarray) -> np.ndarray:
        """Eye-space points -> ``(N, 3)``: image x, y (pixels) and depth (larger is nearer)."""
        e = np.asarray(eye_points, np.float64)
        w, h = self.image_size
        p = self.projection
        x = (p[0, 0] * e[:, 0] + p[0, 3] + 1.0) * 0.5 * w
        y = h - (p[1, 1] * e[:, 1] + p[1, 3] + 1.0) * 0.5 * h
        return np.stack([x, y, e[:, 2] * p[0, 0] * 0.5 * w], axis=1)

    def unproject(self, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Inverse of `project` for image points with a given depth (same units as `project`)."""
        w, h = self.image_size
        p = self.projection
        xy = np.asarray(xy, np.float64)
        ex = (2.0 * xy[:, 0] / w - 1.0 - p[0, 3]) / p[0, 0]
        ey = (2.0 * (h - xy[:, 1]) / h - 1.0 - p[1, 3]) / p[1, 1]
        ez = np.asarray(depth, np.float64) / (p[0, 0] * 0.5 * w)
        return np.stack([ex, ey, ez], axis=1)

    def model_of_eye(self, eye_points: np.ndarray) -> np.ndarray:
        r = self.modelview[:3, :3]
        t = self.modelview[:3, 3]
        return (np.asarray(eye_points, np.float64) - t) @ np.linalg.inv(r).T


class PoseSynthesizer:
    """Fits eos's Surrey Face Model to 68-point faces and renders them under new head poses."""

    def __init__(self, eos_model_dir: str | os.PathLike | None = None, *, fit_iterations: int = 5,
                 anchor_spacing: float = 0.12, falloff: float = 0.8, vertex_spacing: float = 3.0):
        """
        Args:
            eos_model_dir: folder with the files in `EOS_FILES` (see `find_eos_model_dir`).
            fit_iterations: eos's pose/shape/expression alternations.
            anchor_spacing: grid step of the background anchors, as a fraction of the face size.
            falloff: how far from the face (fraction of its size) anchors still follow the head.
            vertex_spacing: minimum distance in pixels between face vertices kept for the warp.
        """
        eos = _import_eos()
        d = find_eos_model_dir(eos_model_dir)
        self._eos = eos
        shape = eos.morphablemodel.load_model(str(d / "sfm_shape_3448.bin"))
        blend = eos.morphablemodel.load_blendshapes(str(d / "expression_blendshapes_3448.bin"))
        self._model = eos.morphablemodel.MorphableModel(
            shape.get_shape_model(), blend, color_model=eos.morphablemodel.PcaModel(),
            vertex_definitions=None, texture_coordinates=shape.get_texture_coordinates())
        self._mapper = eos.core.LandmarkMapper(str(d / "ibug_to_sfm.txt"))
        self._edges = eos.morphablemodel.load_edge_topology(str(d / "sfm_3448_edge_topology.json"))
        self._contour_landmarks = eos.fitting.ContourLandmarks.load(str(d / "ibug_to_sfm.txt"))
        self._model_contour = eos.fitting.ModelContour.load(str(d / "sfm_model_contours.json"))
        self.mapped: dict[int, int] = {}
        for i in range(68):
            v = self._mapper.convert(str(i + 1))
            if v is not None:
                self.mapped[i] = int(v)
        self.fit_iterations = int(fit_iterations)
        self.anchor_spacing = float(anchor_spacing)
        self.falloff = float(falloff)
        self.vertex_spacing = float(vertex_spacing)

    # ------------------------------------------------------------------ fitting
    def fit(self, landmarks: np.ndarray, image_size: tuple[int, int]) -> FaceFit:
        """Fit pose, shape and expression to ``(68, 2)`` 0-based points of a ``(width, height)`` image."""
        pts = np.asarray(landmarks, np.float64)
        if pts.shape != (68, 2):
            raise ValueError(f"pose synthesis needs the 68 iBUG points as a (68, 2) array, got shape {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("pose synthesis needs all 68 points (found NaN/inf)")
        w, h = int(image_size[0]), int(image_size[1])
        if w < 2 or h < 2:
            raise ValueError(f"image size must be at least 2x2, got {image_size}")
        eos = self._eos
        lms = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(pts)]
        mesh, pose, _, _ = eos.fitting.fit_shape_and_pose(
            self._model, lms, self._mapper, w, h, self._edges, self._contour_landmarks,
            self._model_contour, num_iterations=self.fit_iterations)
        fit = FaceFit(model_vertices=np.asarray(mesh.vertices, np.float64),
                      modelview=np.asarray(pose.get_modelview(), np.float64),
                      projection=np.asarray(pose.get_projection(), np.float64),
                      image_size=(w, h), triangles=np.asarray(mesh.tvi, np.int64),
                      mapped=dict(self.mapped), residual=float("nan"),
                      yaw_pitch_roll=tuple(float(a) for a in pose.get_yaw_pitch_roll()))
        proj = fit.project(fit.eye(fit.model_vertices[list(self.mapped.values())]))[:, :2]
        err = np.linalg.norm(proj - pts[list(self.mapped.keys())], axis=1).mean()
        fit.residual = float(err / max(np.ptp(pts, axis=0).max(), 1e-6))
        return fit

    # ------------------------------------------------------------------ rendering
    def _visible_vertices(self, fit: FaceFit, proj: np.ndarray) -> np.ndarray:
        """Vertices of front-facing triangles that no nearer triangle hides (a z-buffer of triangle ids)."""
        w, h = fit.image_size
        tri = fit.triangles
        a, b, c = proj[tri[:, 0], :2], proj[tri[:, 1], :2], proj[tri[:, 2], :2]
        cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        # eos meshes are counter-clockwise seen from the front; image y points down, so front-facing
        # triangles have negative signed area here.
        front = cross < 0
        order = np.argsort(proj[tri, 2].mean(axis=1))  # far -> near
        ids = np.full((h, w), -1, np.int32)
        for t in order:
            if front[t]:
                cv2.fillConvexPoly(ids, np.round(proj[tri[t], :2]).astype(np.int32), int(t))
        depth_of = proj[tri, 2].mean(axis=1)
        vis = np.zeros(len(proj), bool)
        xy = np.round(proj[:, :2]).astype(np.int64)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        has_front = np.zeros(len(proj), bool)
        has_front[tri[front].ravel()] = True
        idx = np.nonzero(inside & has_front)[0]
        hit = ids[xy[idx, 1], xy[idx, 0]]
        # visible if the nearest triangle at its pixel is not clearly in front of it
        scale = max(np.ptp(proj[:, 2]), 1e-6)
        ok = (hit < 0) | (depth_of[np.maximum(hit, 0)] <= proj[idx, 2] + 0.03 * scale)
        vis[idx[ok]] = True
        return vis

    def render(self, image: np.ndarray, landmarks: np.ndarray, fit: FaceFit, yaw: float,
               pitch: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The image and its 68 labels with the head turned by ``yaw`` and ``pitch`` degrees.

        Positive ``yaw`` turns the head about its own vertical axis in eos's yaw direction. Returns
        ``(HxWx3 uint8, (68, 2) float32 0-based points)``; image size is unchanged.
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if (w, h) != tuple(fit.image_size):
            raise ValueError(f"image is {w}x{h} but the fit was made for {fit.image_size[0]}x{fit.image_size[1]}")
        pts = np.asarray(landmarks, np.float64)
        if pts.shape != (68, 2):
            raise ValueError(f"landmarks must have shape (68, 2), got {pts.shape}")

        v_model = fit.model_vertices
        src = fit.project(fit.eye(v_model))
        dst = fit.project(fit.eye(v_model, yaw, pitch))
        vis = self._visible_vertices(fit, src)
        face_idx = np.nonzero(vis)[0]
        # thin the face vertices to one per vertex_spacing cell (keeps the warp cheap)
        cell = np.floor(src[face_idx, :2] / self.vertex_spacing).astype(np.int64)
        _, first = np.unique(cell[:, 0] * 1_000_003 + cell[:, 1], return_index=True)
        face_idx = face_idx[np.sort(first)]

        face_src = src[face_idx]
        face_dst = dst[face_idx]
        lo, hi = face_src[:, :2].min(axis=0), face_src[:, :2].max(axis=0)
        size = float(max(hi - lo))
        centre = (lo + hi) / 2

        # anchors: a grid over the image outside the face, plus the image border
        step = max(4.0, self.anchor_spacing * size)
        gx = np.arange(-0.5, w - 0.5 + step, step)
        gy = np.arange(-0.5, h - 0.5 + step, step)
        gx[-1], gy[-1] = w - 0.5, h - 0.5
        grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        hull = cv2.convexHull(face_src[:, :2].astype(np.float32))
        dist = np.array([-cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in grid])
        keep = dist > 0.35 * step
        border = np.zeros(len(grid), bool)
        border[(grid[:, 0] <= -0.5) | (grid[:, 0] >= w - 0.5) | (grid[:, 1] <= -0.5) | (grid[:, 1] >= h - 0.5)] = True
        anchors = grid[keep]
        adist = dist[keep]
        aborder = border[keep]
        # anchor depth: that of the nearest face vertex (hair and ears sit about as deep as the
        # face's outline); anchors follow the head fully at the face, not at all `falloff` away.
        near = np.argmin(((anchors[:, None, :] - face_src[None, :, :2]) ** 2).sum(-1), axis=1)
        a_depth = face_src[near, 2]
        a_eye = fit.unproject(anchors, a_depth)
        a_model = fit.model_of_eye(a_eye)
        a_turn = fit.project(fit.eye(a_model, yaw, pitch))
        wgt = np.exp(-(adist / (self.falloff * size)) ** 2)
        wgt[aborder] = 0.0
        a_dst = anchors + wgt[:, None] * (a_turn[:, :2] - anchors)

        src_xy = np.concatenate([face_src[:, :2], anchors])
        dst_xy = np.concatenate([face_dst[:, :2], a_dst])
        # painting depth: anchors always behind the face, farther from it = farther back
        back = float(min(face_dst[:, 2].min(), face_src[:, 2].min())) - 1.0
        depth = np.concatenate([face_dst[:, 2], back - adist])

        tri = Delaunay(src_xy)
        mapx, mapy = _paint_backward_map(src_xy, dst_xy, depth, tri.simplices, (w, h))
        out = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

        # labels: lifted onto the triangulation and moved with it
        new_pts = _move_points(pts, dst_xy, tri)
        new_pts = self._jaw_silhouette(new_pts, pts, fit, src, dst, vis, yaw, pitch)
        return out, new_pts.astype(np.float32)

    def _jaw_silhouette(self, new_pts: np.ndarray, pts: np.ndarray, fit: FaceFit, src: np.ndarray,
                        dst: np.ndarray, vis: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
        """Jaw points on the side turning away slide to the visible silhouette: along the jaw
        point's horizontal level of the 3D face, the surface point that projects outermost."""
        if yaw == 0.0:
            return new_pts
        out = new_pts.copy()
        v = fit.model_vertices
        vis_idx = np.nonzero(vis)[0]
        # the head's horizontal axis in the turned image (model +x projected)
        o = fit.project(fit.eye(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), yaw, pitch))[:, :2]
        axis_x = (o[1] - o[0]) / max(np.linalg.norm(o[1] - o[0]), 1e-9)
        height = np.ptp(v[:, 1])
        band = 0.03 * height
        front_z = v[:, 2].min() + 0.5 * np.ptp(v[:, 2])
        src_axis = _src_axis(fit)
        for i in JAW_POINTS:
            d2 = ((src[vis_idx, :2] - pts[i]) ** 2).sum(1)
            j = vis_idx[np.argmin(d2)]  # nearest visible vertex: the jaw point's level and side
            mx, my = v[j, 0], v[j, 1]
            side = 1.0 if mx >= 0 else -1.0
            out_dir = side * axis_x
            src_out_dir = side * src_axis
            cand = vis_idx[(np.abs(v[vis_idx, 1] - my) < band) & (v[vis_idx, 0] * side >= 0)
                           & (v[vis_idx, 2] > front_z)]
            if cand.size == 0:
                continue
            # only points inside the labelled outline in the source may overtake it
            inner = (src[cand, :2] - pts[i]) @ src_out_dir < 0
            cand = cand[inner]
            if cand.size == 0:
                continue
            reach = dst[cand, :2] @ out_dir
            k = int(np.argmax(reach))
            if reach[k] > out[i] @ out_dir:
                out[i] = dst[cand[k], :2]
        return out


def _src_axis(fit: FaceFit) -> np.ndarray:
    o = fit.project(fit.eye(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])))[:, :2]
    return (o[1] - o[0]) / max(np.linalg.norm(o[1] - o[0]), 1e-9)


def _affines(src_tri: np.ndarray, dst_tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle, the 2x3 affine mapping its three target corners onto its source corners;
    ``ok`` is False where the target triangle is degenerate."""
    a = np.concatenate([dst_tri, np.ones(dst_tri.shape[:2] + (1,))], axis=2)  # (T, 3, 3)
    ok = np.abs(np.linalg.det(a)) > 1e-9
    a[~ok] = np.eye(3)
    m = np.linalg.solve(a, src_tri)  # (T, 3, 2)
    return np.transpose(m, (0, 2, 1)), ok


def _paint_backward_map(src_xy: np.ndarray, dst_xy: np.ndarray, depth: np.ndarray, tri: np.ndarray,
                        size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each target pixel, the source position it samples: triangles painted far to near,
    skipping those turned over by the warp (their front faces away)."""
    w, h = size
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mapx, mapy = gx.copy(), gy.copy()
    s0 = _signed_area(src_xy[tri])
    d0 = _signed_area(dst_xy[tri])
    mats, ok = _affines(src_xy[tri], dst_xy[tri])
    ok &= (s0 != 0) & (np.sign(d0) == np.sign(s0)) & (np.abs(d0) >= 1e-6)
    order = np.argsort(depth[tri].mean(axis=1))
    mask = np.zeros((h, w), np.uint8)
    for t in order:
        if not ok[t]:
            continue
        d3 = dst_xy[tri[t]]
        m = mats[t]
        x0, y0 = np.floor(d3.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d3.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = mask[y0:y1, x0:x1]
        sub[:] = 0
        cv2.fillConvexPoly(sub, np.round(d3 - [x0, y0]).astype(np.int32), 1)
        sel = sub.astype(bool)
        if not sel.any():
            continue
        px, py = gx[y0:y1, x0:x1][sel], gy[y0:y1, x0:x1][sel]
        mapx[y0:y1, x0:x1][sel] = m[0, 0] * px + m[0, 1] * py + m[0, 2]
        mapy[y0:y1, x0:x1][sel] = m[1, 0] * px + m[1, 1] * py + m[1, 2]
    return mapx, mapy


def _signed_area(t: np.ndarray) -> np.ndarray:
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _move_points(pts: np.ndarray, dst_xy: np.ndarray, tri) -> np.ndarray:
    """Move points with the piecewise-affine warp: barycentric coordinates in the source triangle
    that holds each point (``tri``: the source `scipy.spatial.Delaunay`), applied to its target corners."""
    simplex = tri.find_simplex(pts)
    outside = simplex < 0  # cannot happen inside the image (the anchors cover it): nearest triangle
    if outside.any():
        centroids = tri.points[tri.simplices].mean(axis=1)
        simplex[outside] = np.argmin(((centroids[None] - pts[outside, None]) ** 2).sum(-1), axis=1)
    t = tri.transform[simplex]
    b = np.einsum("nij,nj->ni", t[:, :2], pts - t[:, 2])
    bary = np.concatenate([b, 1 - b.sum(axis=1, keepdims=True)], axis=1)
    return np.einsum("nk,nkd->nd", bary, dst_xy[tri.simplices[simplex]])


# ---------------------------------------------------------------------- datasets


def draw_views(rng: np.random.Generator, source_yaw: float, views: int, max_yaw: float,
               min_yaw: float = 20.0, max_pitch: float = 15.0) -> list[tuple[float, float]]:
    """``views`` (yaw turn, pitch turn) pairs in degrees: target |yaw| uniform in [min_yaw, max_yaw],
    on the side the face already looks to when it is turned more than 10 degrees (turning a face
    through frontal to the other side would show what the photograph never saw), a turn of at most
    ``max_yaw`` degrees, and a small pitch."""
    out = []
    for _ in range(views):
        target = rng.uniform(min_yaw, max_yaw)
        if abs(source_yaw) > 10:
            sign = math.copysign(1.0, source_yaw)
        else:
            sign = 1.0 if rng.random() < 0.5 else -1.0
        turn = sign * target - source_yaw
        turn = float(np.clip(turn, -max_yaw, max_yaw))
        out.append((turn, float(rng.uniform(-max_pitch, max_pitch))))
    return out


def synthesize_folder(data: Sequence[str], out_dir: str | os.PathLike, *, views: int = 3,
                      max_yaw: float = 90.0, min_yaw: float = 20.0, max_pitch: float = 15.0, seed: int = 0,
                      max_residual: float = 0.03, eos_model_dir: str | os.PathLike | None = None,
                      only: Iterable[str] | None = None, progress: bool = True,
                      shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """Synthesize ``views`` turned copies of every face in ``data`` into ``out_dir`` (.jpg + .pts).

    Resumable: faces whose views all exist are skipped; each face's record (fit residual, pose,
    views) is appended to ``out_dir/synthesis.jsonl``. Faces with a fit residual above
    ``max_residual`` (fraction of the landmark box) are skipped and recorded as such. ``only``
    restricts to the faces with these names (the readers' ``meta["name"]``, as in a training run's
    ``data_lists.json``: e.g. its training split). ``shard=(k, n)`` takes every
    n-th face starting at k, so n processes can share the work. Returns counts.
    """
    from tqdm import tqdm

    from ..datasets import load_datasets, write_pts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"views": int(views), "max_yaw": float(max_yaw), "min_yaw": float(min_yaw),
                "max_pitch": float(max_pitch), "seed": int(seed), "max_residual": float(max_residual)}
    cfg_path = out / "synthesis_config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if old != settings:
            raise ValueError(f"{out} was synthesized with {old}; resuming with other settings {settings} would "
                             "mix two recipes under the same names: use another --out")
    else:
        cfg_path.write_text(json.dumps(settings, indent=1))
    ds = load_datasets(list(data))
    keep = None if only is None else set(only)
    synth = PoseSynthesizer(eos_model_dir)
    log_path = out / ("synthesis.jsonl" if shard == (0, 1) else f"synthesis.{shard[0]}of{shard[1]}.jsonl")
    counts = {"faces": 0, "written": 0, "skipped_fit": 0, "skipped_done": 0, "not_68": 0}
    # faces an earlier call already rejected for their fit are not fitted (nor logged) again
    rejected = {r.get("name") for f in out.glob("synthesis*.jsonl") for r in map(json.loads, f.read_text().splitlines())
                if r.get("skipped")}
    items = [i for i in range(len(ds)) if i % shard[1] == shard[0]]
    with open(log_path, "a") as log:
        for i in tqdm(items, desc="synthesize", disable=not progress):
            path, pts = ds.items[i]
            name = ds.metas[i]["name"]
            if keep is not None and name not in keep:
                continue
            counts["faces"] += 1
            stem = name.replace("/", "_")
            rng = np.random.default_rng([seed, _stable_hash(stem)])
            names = [out / f"{stem}_v{k}" for k in range(views)]
            if all(n.with_suffix(".pts").is_file() for n in names):
                counts["skipped_done"] += 1
                continue
            if name in rejected:
                counts["skipped_fit"] += 1
                continue
            if pts.shape != (68, 2) or not np.isfinite(pts).all():
                counts["not_68"] += 1
                continue
            image = ds.load_image(i)
            h, w = image.shape[:2]
            fit = synth.fit(pts, (w, h))
            rec: dict[str, Any] = {"source": path, "name": name, "residual": round(fit.residual, 5),
                                   "yaw_pitch_roll": [round(a, 2) for a in fit.yaw_pitch_roll]}
            if fit.residual > max_residual:
                counts["skipped_fit"] += 1
                rec["skipped"] = "fit residual above max_residual"
                log.write(json.dumps(rec) + "\n")
                continue
            rec["views"] = []
            for view, (yaw, pitch) in zip(names, draw_views(rng, fit.yaw_pitch_roll[0], views, max_yaw,
                                                           min_yaw, max_pitch)):
                img2, pts2 = synth.render(image, pts, fit, yaw, pitch)
                tmp = view.with_name(view.name + ".tmp.jpg")
                cv2.imwrite(str(tmp), img2[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                os.replace(tmp, view.with_suffix(".jpg"))
                write_pts(view.with_suffix(".pts"), pts2)  # written last: marks the view done
                rec["views"].append({"file": view.with_suffix(".jpg").name, "yaw": round(yaw, 2),
                                     "pitch": round(pitch, 2)})
                counts["written"] += 1
            log.write(json.dumps(rec) + "\n")
            log.flush()
    return counts


def select_views(synth_dir: str | os.PathLike, out_dir: str | os.PathLike, *, max_final_yaw: float = 80.0,
                 views: Iterable[int] | None = None, min_final_yaw: float = 0.0) -> int:
    """Link (not copy) the synthesized views of ``synth_dir`` whose head ends at most
    ``max_final_yaw`` (and at least ``min_final_yaw``, e.g. to oversample the hardest turns) degrees
    from frontal (the fitted yaw plus the view's turn), optionally only view numbers ``views``, into ``out_dir``: a training or validation folder every reader loads. Past
    80 degrees the face collapses to a sliver and the jaw labels fold (docs/training.md), so the
    runs drop those views. Idempotent; returns the number of views selected."""
    src, dst = Path(synth_dir), Path(out_dir)
    logs = sorted(src.glob("synthesis*.jsonl"))
    if not logs:
        raise FileNotFoundError(f"{src} holds no synthesis*.jsonl: not a synthesize-poses output folder")
    keep = None if views is None else {int(k) for k in views}
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for log in logs:
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            for view in rec.get("views", []):
                k = int(view["file"].rsplit("_v", 1)[1].split(".")[0])
                final = abs(rec["yaw_pitch_roll"][0] + view["yaw"])
                if not min_final_yaw <= final <= max_final_yaw or (keep is not None and k not in keep):
                    continue
                for ext in (".jpg", ".pts"):
                    name = view["file"][:-4] + ext
                    if not os.path.lexists(dst / name):
                        os.symlink(os.path.abspath(src / name), dst / name)
                n += 1
    return n


def _stable_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
